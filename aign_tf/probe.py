"""The attribute probe: a small classifier trained once on labelled true faces and cached, used as the
instrument that measures how often an attribute appears in a set of images (the bias figures).

Its own per-attribute accuracy on held-out *true* images is reported beside every bias figure; a figure
whose probe accuracy for that attribute is below ``RELIABLE_ACCURACY`` is marked unreliable, not quoted.
"""

from __future__ import annotations

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from aign_tf.networks.image import attribute_probe

RELIABLE_ACCURACY = 0.75
PROBE_VERSION = 2  # bump when the probe's architecture or training changes: it keys the cache


class Probe:
    """model: keras.Model images [B, S, S, 3] in [0, 1] -> logits [B, A]; accuracy: held-out accuracy per
    attribute name; base_rate: positive rate per attribute in the held-out labels."""

    def __init__(self, model: keras.Model, attribute_names, accuracy: dict, base_rate: dict):
        self.model = model
        self.attribute_names = tuple(attribute_names)
        self.accuracy = accuracy
        self.base_rate = base_rate

    def probabilities(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """images float32 [N, S, S, 3] in [0, 1] (or uint8) -> probabilities float32 [N, A]."""
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        out = [tf.sigmoid(self.model(images[i:i + batch_size], training=False)).numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out, 0)

    def reliable(self, attribute: str) -> bool:
        return self.accuracy.get(attribute, 0.0) >= RELIABLE_ACCURACY


def _key(train_images: np.ndarray, train_labels: np.ndarray, epochs: int, seed: int) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(train_images[:: max(1, len(train_images) // 64)]).tobytes())
    h.update(np.ascontiguousarray(train_labels).tobytes())
    h.update(repr((train_images.shape, epochs, seed, PROBE_VERSION)).encode())
    return h.hexdigest()[:16]


def load_or_train_probe(cache_dir: str, train_images: np.ndarray, train_labels: np.ndarray,
                        test_images: np.ndarray, test_labels: np.ndarray, attribute_names,
                        epochs: int = 6, batch_size: int = 64, seed: int = 0, max_train: int = 12000,
                        log=print) -> Probe:
    """Trains the probe on (train_images uint8 [N, S, S, 3], train_labels uint8 [N, A]) once and caches it
    under ``cache_dir/probe_<hash>/``; later calls with the same data load it. Accuracy is measured on the
    held-out (test_images, test_labels). At most ``max_train`` training images are used."""
    train_images, train_labels = train_images[:max_train], train_labels[:max_train]
    folder = os.path.join(cache_dir, f"probe_{_key(train_images, train_labels, epochs, seed)}")
    model_path, info_path = os.path.join(folder, "probe.keras"), os.path.join(folder, "probe.json")
    if os.path.exists(model_path) and os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        return Probe(keras.models.load_model(model_path), attribute_names, info["accuracy"], info["base_rate"])
    log(f"training the attribute probe on {len(train_images)} labelled images (cached in {folder})")
    keras.utils.set_random_seed(seed)
    size = train_images.shape[1]
    model = attribute_probe(size, len(attribute_names))
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=False)
    rng = np.random.default_rng(seed)

    def augment(x, y):
        x = tf.image.random_brightness(tf.cast(x, tf.float32) / 255.0, 0.05)
        return tf.clip_by_value(x, 0.0, 1.0), tf.cast(y, tf.float32)

    order = rng.permutation(len(train_images))
    ds = (tf.data.Dataset.from_tensor_slices((train_images[order], train_labels[order]))
          .shuffle(4096, seed=seed).batch(batch_size).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False)  # the dataset is already shuffled
    probe = Probe(model, attribute_names, {}, {})
    probs = probe.probabilities(test_images)
    truth = test_labels.astype(bool)
    probe.accuracy = {n: float(np.mean((probs[:, i] > 0.5) == truth[:, i])) for i, n in enumerate(attribute_names)}
    probe.base_rate = {n: float(np.mean(truth[:, i])) for i, n in enumerate(attribute_names)}
    os.makedirs(folder, exist_ok=True)
    model.save(model_path + ".tmp.keras")
    os.replace(model_path + ".tmp.keras", model_path)
    with open(info_path, "w") as f:
        json.dump({"accuracy": probe.accuracy, "base_rate": probe.base_rate}, f, indent=1)
    return probe
