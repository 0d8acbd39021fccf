"""The attribute probe's training augmentation (artefact patches that carry no attribute)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from aign_tf.metrics import wilson_interval
from aign_tf.probe import occlude


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
