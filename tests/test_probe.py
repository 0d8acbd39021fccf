"""The attribute probe's training augmentation (artefact patches that carry no attribute)."""

import numpy as np
import tensorflow as tf

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
