"""The attribute probe: its training augmentation (artefact patches that carry no attribute), its one-thread
training and cache, the region probe and the probe's features."""

import json

import numpy as np
import pytest
import tensorflow as tf

from aign_tf.metrics import wilson_interval
from aign_tf.probe import Probe, occlude


def test_occlude_patches_about_half_the_images_inside_one_box():
    images = tf.random.stateless_uniform([200, 32, 32, 3], [0, 1])
    out = occlude(images, [3, 4]).numpy()
    assert out.shape == (200, 32, 32, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    changed = np.any(out != images.numpy(), axis=-1)  # [B, S, S]
    hit = changed.any(axis=(1, 2))
    assert 70 <= hit.sum() <= 130
    for c in changed[hit]:
        rows, cols = np.flatnonzero(c.any(1)), np.flatnonzero(c.any(0))
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert 4 <= height <= 18 and 4 <= width <= 18  # one box, at most about half the side
        assert c.sum() >= 0.9 * height * width  # a filled rectangle
    np.testing.assert_array_equal(out, occlude(images, [3, 4]).numpy())
    assert not np.array_equal(out, occlude(images, [3, 5]).numpy())
    np.testing.assert_array_equal(occlude(images, [3, 4], rate=0.0).numpy(), images.numpy())
    assert np.any(occlude(images, [3, 4], rate=1.0).numpy() != images.numpy(), axis=(1, 2, 3)).all()


def test_the_same_data_trains_the_same_probe(tmp_path):
    from aign_tf.probe import load_or_train_probe

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, (96, 2), dtype=np.uint8)
    probes = [load_or_train_probe(str(tmp_path / name), images, labels, images[:16], labels[:16], ["A", "B"],
                                  epochs=2, batch_size=16, log=lambda *_: None) for name in ("a", "b")]
    for w_a, w_b in zip(probes[0].model.get_weights(), probes[1].model.get_weights(), strict=True):
        np.testing.assert_array_equal(w_a, w_b)
    # Trained in a child process on one thread (0 = TensorFlow's default: one per core), whatever this one uses.
    (info,) = [json.loads(p.read_text()) for p in (tmp_path / "a").glob("probe_*/probe.json")]
    assert info["threads"] == {"intra_op": 1, "inter_op": 1}
    assert not list((tmp_path / "a").glob("probe_*/tmp*"))  # the arrays handed to the child are gone
    # The accuracy's sample size is recorded, so each accuracy gets its 95 % Wilson interval.
    assert info["accuracy_images"] == 16 and probes[0].accuracy_images == 16
    a = probes[0].accuracy["A"]
    assert probes[0].accuracy_interval("A") == pytest.approx(wilson_interval(round(16 * a), 16))
    assert probes[0].reliable("A") == (wilson_interval(round(16 * a), 16)[0] >= 0.75)
    # A probe cached before the count was recorded has its accuracy measured again on the held-out images given.
    (info_path,) = (tmp_path / "a").glob("probe_*/probe.json")
    del info["accuracy_images"]
    info_path.write_text(json.dumps(info))
    legacy = load_or_train_probe(str(tmp_path / "a"), images, labels, images[:10], labels[:10], ["A", "B"],
                                 epochs=2, batch_size=16, log=lambda *_: None)
    assert legacy.accuracy_images == 10 and set(legacy.accuracy) == {"A", "B"}
    assert legacy.accuracy_interval("B") is not None


def test_occlude_adds_noise_over_the_content_in_a_third_of_the_patches():
    """Two of the six artefact kinds keep the box's own content under additive noise (a probe must not read noise
    over a mouth as stubble); the other four replace it."""
    cells = (np.arange(32)[:, None] // 2 + np.arange(32)[None, :] // 2) % 2  # 2x2-pixel checks, std 0.3
    images = tf.broadcast_to(tf.constant(0.2 + 0.6 * cells, tf.float32)[None, :, :, None], [300, 32, 32, 3])
    out = occlude(images, [7, 8], rate=1.0).numpy()
    kept = 0
    for o, x in zip(out, images.numpy(), strict=True):
        inside = np.any(o != x, axis=-1)
        patch = o[inside].ravel()
        kept += patch.std() > 0 and np.corrcoef(patch, x[inside].ravel())[0, 1] > 0.5
    assert 0.22 * len(out) <= kept <= 0.45 * len(out)


def test_a_failed_probe_training_says_so_with_the_child_process_error(tmp_path):
    import pytest

    from aign_tf.probe import load_or_train_probe

    images = np.zeros((32, 32, 32, 3), np.uint8)
    labels = np.zeros((32, 2), np.uint8)
    expected = r"(?s)training the attribute probe failed \(exit 1\):\n.*Traceback.*same shape"
    with pytest.raises(RuntimeError, match=expected):
        load_or_train_probe(str(tmp_path), images, labels, images[:8], labels[:8], ["A", "B", "C"], epochs=1,
                            batch_size=16, log=lambda *_: None)  # 3 names for 2 label columns


# --- the region probe and the probe's features -------------------------------------------------------------------


@pytest.mark.parametrize("size", [17, 32, 64])
@pytest.mark.parametrize("region", [(0.50, 0.28, 0.90, 0.72), (0.0, 0.0, 1.0, 1.0), (0.25, 0.5, 0.5, 0.75),
                                    (0.1, 0.3, 0.3, 0.31)])
def test_region_pixels_are_the_pixels_box_mask_hides(size, region):
    from aign_tf import renderers
    from aign_tf.probe import region_pixels

    hidden = renderers.box_mask(1, size, size, region).numpy()[0, :, :, 0] == 0
    if not hidden.any():
        with pytest.raises(ValueError, match="holds no pixel centre"):
            region_pixels(region, size, size)
        return
    top, left, bottom, right = region_pixels(region, size, size)
    box = np.zeros((size, size), bool)
    box[top:bottom, left:right] = True
    np.testing.assert_array_equal(box, hidden)


def test_bad_regions_are_clear_errors():
    from aign_tf.probe import check_region

    assert check_region(None) is None and check_region([0, 0.25, 1, 0.75]) == (0.0, 0.25, 1.0, 0.75)
    with pytest.raises(ValueError, match=r"0 <= top < bottom <= 1 .*got \(0.5, 0.2, 0.4, 0.9\)"):
        check_region((0.5, 0.2, 0.4, 0.9))
    with pytest.raises(ValueError, match="four numbers"):
        Probe(None, ["A"], {}, {}, region=(0.1, 0.2))


def _random_probe_model(size: int, names):
    """A fixed random model of attribute_probe's architecture (4 base filters)."""
    import keras

    from aign_tf.networks.image import attribute_probe

    keras.utils.set_random_seed(3)
    return attribute_probe(size, len(names), base_filters=4)


def test_a_region_probe_reads_only_its_region_resized_to_its_input():
    from aign_tf.probe import crop_region

    names = ["A", "B"]
    model = _random_probe_model(16, names)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    probe = Probe(model, names, {}, {}, region=(0.5, 0.25, 1.0, 0.75))  # rows 16-31, columns 8-23: 16 x 16
    crop = images[:, 16:, 8:24].astype(np.float32) / 255.0
    np.testing.assert_allclose(crop_region(images.astype(np.float32) / 255.0, probe.region, 16).numpy(), crop,
                               atol=1e-6)  # already 16 x 16: the resize leaves it
    expected = tf.sigmoid(model(crop, training=False)).numpy()
    np.testing.assert_allclose(probe.probabilities(images), expected, atol=1e-6)
    changed = images.copy()
    changed[:, :16] = 0  # outside the region: the region probe does not see it
    np.testing.assert_array_equal(probe.probabilities(changed), probe.probabilities(images))
    assert crop_region(images.astype(np.float32) / 255.0, (0.5, 0.25, 1.0, 0.75), 40).shape == (5, 40, 40, 3)


def test_features_are_the_activations_the_logits_read():
    names = ["A", "B", "C"]
    model = _random_probe_model(16, names)
    images = np.random.default_rng(1).integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    for region in (None, (0.25, 0.0, 0.75, 1.0)):
        probe = Probe(model, names, {}, {}, region=region)
        features = probe.features(images, batch_size=3)
        assert features.shape == (7, 16) and features.dtype == np.float32  # 4 x base_filters
        logits = model.get_layer("logits")(features).numpy()
        np.testing.assert_allclose(tf.sigmoid(logits).numpy(), probe.probabilities(images), atol=1e-5)


def test_a_region_probe_trains_on_crops_and_is_cached_under_its_region(tmp_path):
    import hashlib

    from aign_tf.probe import PROBE_VERSION, _key, crop_region, load_or_train_probe

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, (64, 2), dtype=np.uint8)
    region = (0.5, 0.28, 0.9, 0.72)
    probe = load_or_train_probe(str(tmp_path), images, labels, images[:20], labels[:20], ["A", "B"], epochs=1,
                                batch_size=16, log=lambda *_: None, region=region)
    assert probe.region == region and probe.accuracy_images == 20
    (folder,) = tmp_path.glob("probe_*")
    assert folder.name == f"probe_{_key(images, labels, 1, 0, region)}" != f"probe_{_key(images, labels, 1, 0)}"
    info = json.loads((folder / "probe.json").read_text())
    assert info["region"] == list(region)
    # The held-out accuracy is the model's on the cropped held-out images.
    view = crop_region(images[:20].astype(np.float32) / 255.0, region, 32)
    called = probe.model(view, training=False).numpy() > 0
    assert info["accuracy"]["A"] == pytest.approx(np.mean(called[:, 0] == labels[:20, 0].astype(bool)))
    again = load_or_train_probe(str(tmp_path), images, labels, images[:20], labels[:20], ["A", "B"], epochs=1,
                                batch_size=16, log=lambda *_: pytest.fail("trained again"), region=list(region))
    assert again.region == region
    # The whole-image probe's key is v6's as before, so probes already cached stay in use.
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(images[:: max(1, len(images) // 64)]).tobytes())
    h.update(np.ascontiguousarray(labels).tobytes())
    h.update(repr((images.shape, 1, 0, PROBE_VERSION)).encode())
    assert _key(images, labels, 1, 0) == h.hexdigest()[:16]
