import numpy as np
import pytest
import tensorflow as tf

from aign_tf import augment

SEED = tf.constant([3, 9], tf.int64)


def _ramp(batch=8, size=16):
    """Every pixel of every image distinct: [B, S, S, 3] in [0, 1]."""
    return tf.reshape(tf.range(batch * size * size * 3, dtype=tf.float32), [batch, size, size, 3]) / (
        batch * size * size * 3)


def test_color_shifts_brightness_and_leaves_flat_grey_flat():
    grey = tf.fill([64, 4, 4, 3], 0.5)
    out = augment.color(grey, SEED).numpy()
    # Saturation and contrast scale deviations from a mean; a flat grey image has none, so only the brightness
    # shift in [-0.25, 0.25) remains, one per image.
    per_image = out.reshape(64, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-6)
    shift = per_image[:, 0] - 0.5
    assert shift.min() >= -0.25 and shift.max() < 0.25 and shift.std() > 0.1


def test_color_scales_contrast_and_saturation_around_their_means():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0.2, 0.8, [256, 6, 6, 3]), tf.float32)
    out = augment.color(x, SEED)
    # Deviations grow by at most saturation (< 2) times contrast (< 1.5); the brightness shift adds none.
    ratio = tf.math.reduce_std(out, axis=[1, 2, 3]) / tf.math.reduce_std(x, axis=[1, 2, 3])
    assert float(tf.reduce_max(ratio)) < 3.0 and float(tf.reduce_min(ratio)) < 0.5
    assert float(tf.math.reduce_std(ratio)) > 0.2  # drawn per image


def test_translation_moves_whole_images_by_at_most_an_eighth_with_edge_pixels():
    x = _ramp(batch=32)
    out = augment.translation(x, SEED).numpy()
    xs = x.numpy()
    moved = 0
    for img, src in zip(out, xs, strict=True):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(img, src[np.clip(np.arange(16) - dy, 0, 15)][:, np.clip(np.arange(16) - dx, 0, 15)])]
        assert len(found) == 1  # exactly one shift within 16 / 8 = 2 pixels explains the image
        moved += found[0] != (0, 0)
    assert moved > 16


def test_cutout_greys_one_half_side_square_and_keeps_the_rest():
    x = tf.zeros([32, 16, 16, 1])
    out = augment.cutout(x, SEED).numpy()[..., 0]
    for img in out:
        rows, cols = np.nonzero(img)
        assert np.all(img[rows, cols] == 0.5)
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8  # at most 8 x 8, clipped at edges
        assert img.sum() == 0.5 * (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
    assert len({tuple(np.argwhere(img)[0]) for img in out}) > 8


def test_diff_augment_is_stateless_differentiable_and_checks_its_policy():
    x = _ramp()
    a = augment.diff_augment(x, SEED, "color,translation,cutout")
    np.testing.assert_array_equal(a, augment.diff_augment(x, SEED, ["cutout", "translation", "color"]))
    assert not np.array_equal(a, augment.diff_augment(x, SEED + 1, "color,translation,cutout"))
    np.testing.assert_array_equal(augment.diff_augment(x, SEED, ""), x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(augment.diff_augment(x, SEED, "color,translation,cutout"))
    grad = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(grad)) and np.count_nonzero(grad) > grad.size // 2
    for dtype in (tf.float16, tf.bfloat16):
        assert augment.diff_augment(tf.cast(x, dtype), SEED, "color,translation,cutout").dtype == dtype
    with pytest.raises(ValueError, match=r"--diff_augment=color,flip: unknown transform\(s\) \['flip'\]; valid: "
                                         r"color, translation, cutout"):
        augment.validate_policy("color,flip")
