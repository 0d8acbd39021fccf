"""The attribute probe: a small classifier trained once on labelled true faces and cached, used as the
instrument that measures how often an attribute appears in a set of images (the bias figures).

Its own per-attribute accuracy on held-out *true* images is reported beside every bias figure with its 95 %
Wilson interval; the probe is reliable for an attribute when the interval's lower end reaches
``metrics.MIN_PROBE_ACCURACY`` (0.75), and a figure from an unreliable probe is marked not valid, not quoted
(``metrics.figure_validity``, docs/measuring-intervals.md).

The probe is trained with half of its images partly occluded by artefacts (``occlude``): a flat, noisy,
blocky or random-colour patch, or noise added over the content, in the mouth/nose box or a random box, labels
unchanged. Without that, a probe
trained only on clean faces reads any noise around the mouth as stubble: on held-out faces, a mouth/nose box of
uniform random colours made 89 % of them "Male" (truth 48 %), so a generator that fills a hole with noise would
score a male bias it never drew.

A **region probe** (``region=(top, left, bottom, right)`` fractions) sees only that box of each face, cropped and
resized to the probe's input size: for inpainting, the hole, so a bias is read where the prediction acts and not
from the visible pixels the output copies from its input. ``Probe.features`` gives the probe's penultimate-layer
activations, the feature space of the realism figures (``metrics.frechet_distance``, ``metrics.kernel_distance``;
docs/measuring-intervals.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from aign_tf import metrics, renderers
from aign_tf.data.synthetic_faces import MOUTH_NOSE_BOX
from aign_tf.networks.image import attribute_probe

PROBE_VERSION = 6  # bump when the probe's architecture or training changes: it keys the cache
# (a region probe's key also holds its region; the full-image probe's key and training are v6's unchanged)
# 6: trained in a child process on one thread, so a machine trains the same probe whatever its core count (the
#    training is 5's: on one thread it gives 5's one-thread instance)
# 5: also noise added over the box's own content (grey and colour), labels unchanged
# 4: augmentation drawn statelessly from (seed, batch index), so the same data and thread count train the same
#    probe (3 drew brightness from a stateful generator inside a parallel map: two trainings differed by up to 0.09
#    in a bias figure); another thread count still trains another probe (CPU reductions split differently)


def check_region(region) -> tuple[float, float, float, float] | None:
    """None, or ``(top, left, bottom, right)`` fractions of the image side with ``0 <= top < bottom <= 1`` and
    ``0 <= left < right <= 1`` -> that tuple of floats (None stays None); anything else -> ValueError naming it."""
    if region is None:
        return None
    try:
        top, left, bottom, right = (float(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region must be four numbers (top, left, bottom, right) or None; got {region!r}") from None
    if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
        raise ValueError(f"region (top, left, bottom, right) must satisfy 0 <= top < bottom <= 1 and "
                         f"0 <= left < right <= 1; got {tuple(region)!r}")
    return top, left, bottom, right


def region_pixels(region, height: int, width: int) -> tuple[int, int, int, int]:
    """The pixels of ``region`` in a height x width image: (top, left, bottom, right), bottom and right exclusive,
    by the rule of ``renderers.box_mask`` (a pixel belongs to the box when its centre, ``(i + 0.5) / side`` in
    float32, lies in ``[top, bottom) x [left, right)``). NumPy only, so it also runs while a graph is traced. A
    region that holds no pixel centre -> ValueError naming it and the size."""
    top, left, bottom, right = (np.float32(v) for v in check_region(region))
    rows = _inside(height, top, bottom)
    cols = _inside(width, left, right)
    if not (len(rows) and len(cols)):
        raise ValueError(f"region {tuple(region)!r} holds no pixel centre of a {height}x{width} image")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _inside(size: int, low: np.float32, high: np.float32) -> np.ndarray:
    """Indices of the pixels whose float32 centre ``(i + 0.5) / size`` (``renderers.pixel_centres``) is in
    [low, high)."""
    centres = (np.arange(size, dtype=np.float32) + np.float32(0.5)) / np.float32(size)
    return np.flatnonzero((centres >= low) & (centres < high))


def crop_region(images, region, size: int) -> tf.Tensor:
    """The probe's view of a region: the pixels of ``region`` (``region_pixels``) of every image, resized to size x
    size (bilinear, antialiased when it shrinks).

    Args:
      images: `[B, H, W, 3]` float in [0, 1].
      region: ``(top, left, bottom, right)`` fractions.
      size: the output side in pixels.

    Returns:
      `[B, size, size, 3]` float32 in [0, 1].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    top, left, bottom, right = region_pixels(region, int(images.shape[1]), int(images.shape[2]))
    crop = images[:, top:bottom, left:right]
    return tf.clip_by_value(tf.image.resize(crop, [size, size], method="bilinear", antialias=True), 0.0, 1.0)


class Probe:
    """model: keras.Model images [B, S, S, 3] in [0, 1] -> logits [B, A]; accuracy: held-out accuracy per
    attribute name; base_rate: positive rate per attribute in the held-out labels; accuracy_images: how many
    held-out images the accuracy was measured on (None: unknown); region: None (the model sees whole images), or
    ``(top, left, bottom, right)`` fractions: the model sees that box of each image resized to S x S
    (``crop_region``), and ``accuracy`` and ``base_rate`` were measured on that view."""

    def __init__(self, model: keras.Model, attribute_names, accuracy: dict, base_rate: dict,
                 accuracy_images: int | None = None, region=None):
        self.model = model
        self.attribute_names = tuple(attribute_names)
        self.accuracy = accuracy
        self.base_rate = base_rate
        self.accuracy_images = accuracy_images
        self.region = check_region(region)
        self._feature_model = None

    def _view(self, images: np.ndarray) -> np.ndarray | tf.Tensor:
        """images uint8 or float [B, H, W, 3] -> the model's input, float32 [B, S, S, 3] in [0, 1] (the region
        cropped and resized when the probe has one)."""
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        if self.region is None:
            return images
        return crop_region(images, self.region, int(self.model.input_shape[1]))

    def probabilities(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """images float32 [N, H, W, 3] in [0, 1] (or uint8) -> probabilities float32 [N, A]. Without a region H and
        W are the model's S; with one, any size (the region is cropped, then resized to S x S)."""
        out = [tf.sigmoid(self.model(self._view(images[i:i + batch_size]), training=False)).numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out, 0)

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """images float32 [N, H, W, 3] in [0, 1] (or uint8) -> float32 [N, F]: the activations the model's last
        layer (the logits) reads, i.e. ``attribute_probe``'s globally pooled last convolution (F = 4 x its
        base_filters, 64), with the probe's region crop applied like in ``probabilities``."""
        if self._feature_model is None:
            self._feature_model = keras.Model(self.model.input, self.model.layers[-1].input)
        out = [np.asarray(self._feature_model(self._view(images[i:i + batch_size]), training=False), np.float32)
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out, 0)

    def accuracy_interval(self, attribute: str) -> tuple[float, float] | None:
        """95 % Wilson interval of the held-out accuracy for ``attribute`` (None when the accuracy or the number
        of images it was measured on is unknown)."""
        accuracy, n = self.accuracy.get(attribute), self.accuracy_images
        if accuracy is None or not n:
            return None
        return metrics.wilson_interval(int(round(accuracy * n)), n)

    def reliable(self, attribute: str) -> bool:
        """The lower end of the accuracy's 95 % interval reaches ``metrics.MIN_PROBE_ACCURACY``."""
        interval = self.accuracy_interval(attribute)
        return interval is not None and interval[0] >= metrics.MIN_PROBE_ACCURACY


def occlude(images: tf.Tensor, seed, rate: float = 0.5, box=MOUTH_NOSE_BOX) -> tf.Tensor:
    """Training augmentation of the probe: artefact patches that carry no attribute.

    Each image, with probability ``rate``, gets one box (the fixed ``box``, or a random box of 1/4 to 1/2 of the
    side, with equal odds) filled with one of, with equal odds: its mean colour; mean colour + Gaussian colour
    noise; mean colour + Gaussian colour noise in 4x4-pixel blocks; uniform random colours; the image itself +
    Gaussian grey noise; the image itself + Gaussian colour noise (the noise std drawn from [0.03, 0.25) per
    image). The last two keep the face's shapes under the noise: without them a probe reads grey noise over a
    nose and mouth as stubble (v4 called 95 % of women Male with the mean face + grey noise of std 0.15 in the
    box).

    Args:
      images: `[B, S, S, 3]` float32 in [0, 1].
      seed: `[2]` integer tensor; the same seed gives the same patches.
      rate: fraction of images occluded.
      box: ``(top, left, bottom, right)`` fractions of the fixed box.

    Returns:
      `[B, S, S, 3]` float32 in [0, 1]: ``images`` outside the patches.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    b, size = tf.shape(images)[0], images.shape[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 6)
    u = tf.random.stateless_uniform(tf.stack([b, 4]), seeds[0])  # apply, which box, fill kind, noise std
    fixed = renderers.box_mask(b, size, size, box)
    boxes = tf.where(u[:, 1, None, None, None] < 0.5, fixed, renderers.random_box_masks(seeds[1], b, size, size))
    hole = (1.0 - boxes) * tf.cast(u[:, 0] < rate, tf.float32)[:, None, None, None]  # [B, S, S, 1]
    mean = tf.reduce_mean(images, [1, 2], keepdims=True)
    std = (0.03 + 0.22 * u[:, 3])[:, None, None, None]
    blocks = tf.random.stateless_normal(tf.stack([b, -(-size // 4), -(-size // 4), 3]), seeds[2])
    colour = tf.random.stateless_normal(tf.shape(images), seeds[3])
    grey = tf.random.stateless_normal(tf.concat([tf.shape(images)[:3], [1]], 0), seeds[5])
    fills = tf.stack([
        tf.broadcast_to(mean, tf.shape(images)),
        mean + std * colour,
        mean + std * renderers.block_upsample(blocks, 4)[:, :size, :size],
        tf.random.stateless_uniform(tf.shape(images), seeds[4]),
        images + std * grey,
        images + std * colour,
    ])  # [6, B, S, S, 3]
    kind = tf.one_hot(tf.cast(tf.minimum(u[:, 2] * 6.0, 5.0), tf.int32), 6)  # [B, 6]
    fill = tf.clip_by_value(tf.einsum("kbhwc,bk->bhwc", fills, kind), 0.0, 1.0)
    return images * (1.0 - hole) + fill * hole


def _key(train_images: np.ndarray, train_labels: np.ndarray, epochs: int, seed: int, region=None) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(train_images[:: max(1, len(train_images) // 64)]).tobytes())
    h.update(np.ascontiguousarray(train_labels).tobytes())
    region_part = () if region is None else (("region", check_region(region)),)  # the full probe's key unchanged
    h.update(repr((train_images.shape, epochs, seed, PROBE_VERSION) + region_part).encode())
    return h.hexdigest()[:16]


def load_or_train_probe(cache_dir: str, train_images: np.ndarray, train_labels: np.ndarray,
                        test_images: np.ndarray, test_labels: np.ndarray, attribute_names,
                        epochs: int = 6, batch_size: int = 64, seed: int = 0, max_train: int = 12000,
                        log=print, region=None) -> Probe:
    """Trains the probe on (train_images uint8 [N, S, S, 3], train_labels uint8 [N, A]) once and caches it
    under ``cache_dir/probe_<hash>/``; later calls with the same data load it. Accuracy is measured on the
    held-out (test_images, test_labels). At most ``max_train`` training images are used.

    With ``region`` (``(top, left, bottom, right)`` fractions, e.g. the inpainting hole) it is a region probe: it
    is trained on that box of the training images, resized to S x S (``crop_region``), its held-out accuracy is
    measured on the same view of the held-out images, and the region is part of the cache key. Its occlusion
    augmentation acts inside the crop (``train_probe``).

    The training runs in a child process on one thread (``_train_one_thread``): CPU reductions split by thread,
    so the same data trained on two threads gives another instrument, and on this project's 2-core VM two
    instances moved a super-resolution bias figure by 0.03-0.07. On one thread every machine of the same kind
    (CPU, TensorFlow build) trains the same probe, whatever its core count."""
    region = check_region(region)
    train_images, train_labels = train_images[:max_train], train_labels[:max_train]
    folder = os.path.join(cache_dir, f"probe_{_key(train_images, train_labels, epochs, seed, region)}")
    model_path, info_path = os.path.join(folder, "probe.keras"), os.path.join(folder, "probe.json")
    if not (os.path.exists(model_path) and os.path.exists(info_path)):
        what = "attribute probe" if region is None else f"region probe of {region}"
        log(f"training the {what} on {len(train_images)} labelled images, one thread (cached in {folder})")
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            inputs = os.path.join(tmp, "inputs.npz")
            np.savez(inputs, train_images=train_images, train_labels=train_labels, test_images=test_images,
                     test_labels=test_labels, attribute_names=np.asarray(attribute_names, str),
                     region=np.asarray(region if region is not None else [], np.float64))
            _train_one_thread(inputs, folder, epochs, batch_size, seed)
    with open(info_path) as f:
        info = json.load(f)
    probe = Probe(keras.models.load_model(model_path), attribute_names, info["accuracy"], info["base_rate"],
                  info.get("accuracy_images"), region)
    if probe.accuracy_images is None:  # cached before the count was recorded: measure on these held-out images
        held_out = held_out_figures(probe, test_images, test_labels)
        probe.accuracy, probe.base_rate = held_out["accuracy"], held_out["base_rate"]
        probe.accuracy_images = held_out["accuracy_images"]
    return probe


def held_out_figures(probe: Probe, test_images: np.ndarray, test_labels: np.ndarray) -> dict:
    """The probe's accuracy and positive rate per attribute name on held-out images (uint8 [N, S, S, 3]) with
    their labels ([N, A]), and N ("accuracy_images"); a region probe reads its region of them."""
    probs = probe.probabilities(test_images)
    truth = np.asarray(test_labels).astype(bool)
    names = probe.attribute_names
    return {"accuracy": {n: float(np.mean((probs[:, i] > 0.5) == truth[:, i])) for i, n in enumerate(names)},
            "base_rate": {n: float(np.mean(truth[:, i])) for i, n in enumerate(names)},
            "accuracy_images": int(len(truth))}


def _train_one_thread(inputs: str, folder: str, epochs: int, batch_size: int, seed: int) -> None:
    """Runs ``python -m aign_tf.probe`` on the arrays in ``inputs`` (.npz) with one intra-op and one inter-op
    thread; it writes probe.keras and probe.json into ``folder``."""
    args = [sys.executable, "-m", "aign_tf.probe", inputs, folder, str(epochs), str(batch_size), str(seed)]
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the child imports this aign_tf
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    if proc.returncode != 0:
        raise RuntimeError(f"training the attribute probe failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def train_probe(folder: str, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                test_labels: np.ndarray, attribute_names, epochs: int, batch_size: int, seed: int,
                region=None) -> None:
    """Trains the probe in this process and writes ``folder``/probe.keras, then probe.json (held-out accuracy
    and positive rate per attribute name, and the number of held-out images: ``held_out_figures``; the region).

    With ``region`` each training image is first cropped to it and resized to S x S (``crop_region``), and the
    occlusion augmentation then works in the crop: its fixed box is the whole crop, its random boxes 1/4 to 1/2 of
    the crop's side. The whole crop is what an inpainting prediction replaces, so a fill with no face in it (flat,
    noise, blocks) is exactly the artefact this probe must not read as an attribute: on those images the labels
    cannot be learnt, and the probe learns to answer them with the base rate instead of, say, "stubble". Boxes in
    full-image fractions (the full probe's mouth/nose box, random boxes anywhere) would mostly miss a small region
    or, for the hole, cover exactly the crop anyway."""
    region = check_region(region)
    keras.utils.set_random_seed(seed)
    size = train_images.shape[1]
    model = attribute_probe(size, len(attribute_names))
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=False)
    rng = np.random.default_rng(seed)
    box = MOUTH_NOSE_BOX if region is None else (0.0, 0.0, 1.0, 1.0)

    def augment(index, batch):
        x, y = batch
        x = tf.cast(x, tf.float32) / 255.0
        if region is not None:
            x = crop_region(x, region, size)
        x = tf.image.stateless_random_brightness(x, 0.05, tf.stack([tf.constant(seed + 1, tf.int64), index]))
        x = occlude(tf.clip_by_value(x, 0.0, 1.0), tf.stack([tf.constant(seed, tf.int64), index]), box=box)
        return x, tf.cast(y, tf.float32)

    order = rng.permutation(len(train_images))
    ds = (tf.data.Dataset.from_tensor_slices((train_images[order], train_labels[order]))
          .shuffle(4096, seed=seed).batch(batch_size).enumerate()
          .map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False)  # the dataset is already shuffled
    model_path = os.path.join(folder, "probe.keras")
    model.save(model_path + ".tmp.keras")
    os.replace(model_path + ".tmp.keras", model_path)
    info = {**held_out_figures(Probe(model, attribute_names, {}, {}, region=region), test_images, test_labels),
            "region": None if region is None else list(region),
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    with open(os.path.join(folder, "probe.json"), "w") as f:
        json.dump(info, f, indent=1)


def _main(argv) -> None:
    """``python -m aign_tf.probe INPUTS.npz FOLDER EPOCHS BATCH_SIZE SEED``: trains on one thread."""
    tf.config.threading.set_intra_op_parallelism_threads(1)  # before the first op creates the runtime
    tf.config.threading.set_inter_op_parallelism_threads(1)
    inputs, folder, epochs, batch_size, seed = argv
    with np.load(inputs) as data:
        arrays = {k: data[k] for k in data.files}
    region = arrays["region"].tolist() if arrays.get("region") is not None and arrays["region"].size else None
    train_probe(folder, arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"],
                [str(n) for n in arrays["attribute_names"]], int(epochs), int(batch_size), int(seed), region)


if __name__ == "__main__":
    _main(sys.argv[1:])
