"""Renderers: analytic values, gradients, shape validation, determinism, dtypes and tf.function."""

import numpy as np
import pytest
import tensorflow as tf
from fixtures_pose import pinhole

from aign_tf import renderers


def _max_jacobian_error(fn, x):
    theoretical, numerical = tf.test.compute_gradient(fn, [x], delta=1e-3)
    return max(float(np.max(np.abs(t - n))) for t, n in zip(theoretical, numerical, strict=True))


# --- downsample_render --------------------------------------------------------------------------------


def test_downsample_constant_image_stays_constant():
    images = tf.fill([2, 8, 8, 3], 0.37)
    out = renderers.downsample_render(images, 4)
    assert out.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(out.numpy(), 0.37, rtol=1e-6)


def test_downsample_checkerboard_averages_to_half():
    board = (np.indices((8, 6)).sum(axis=0) % 2).astype(np.float32)  # 0/1 checkerboard
    images = tf.constant(board[None, :, :, None])
    out = renderers.downsample_render(images, 2)
    assert out.shape == (1, 4, 3, 1)
    np.testing.assert_allclose(out.numpy(), 0.5, rtol=1e-6)


def test_downsample_matches_block_mean_reference():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 6, 9, 2)).astype(np.float32)
    expected = images.reshape(2, 2, 3, 3, 3, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(renderers.downsample_render(images, 3).numpy(), expected, rtol=1e-5)


def test_downsample_gradient_matches_finite_differences():
    x = tf.random.stateless_uniform([1, 4, 4, 2], seed=[1, 2], dtype=tf.float64)
    assert _max_jacobian_error(lambda t: renderers.downsample_render(t, 2), x) < 1e-6
    # Each output pixel is the mean of factor^2 inputs: d out / d in = 1 / 4 inside its block.
    theoretical, _ = tf.test.compute_gradient(lambda t: renderers.downsample_render(t, 2), [x])
    assert set(np.unique(theoretical[0]).round(6)) == {0.0, 0.25}


def test_downsample_factor_one_is_identity():
    images = tf.random.stateless_uniform([1, 3, 5, 3], seed=[0, 0])
    np.testing.assert_array_equal(renderers.downsample_render(images, 1).numpy(), images.numpy())


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_downsample_keeps_low_precision_dtype(dtype):
    out = renderers.downsample_render(tf.ones([1, 4, 4, 3], dtype), 2)
    assert out.dtype == dtype
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), 1.0)


@pytest.mark.parametrize("shape, factor, needle", [
    ([1, 6, 8, 3], 4, "height 6 is not divisible by factor 4"),
    ([1, 8, 6, 3], 4, "width 6 is not divisible by factor 4"),
    ([8, 8, 3], 2, "rank 4"),
    ([1, 8, 8, 3], 0, "factor"),
    ([1, 8, 8, 3], 2.0, "factor"),
    ([1, 8, 8, 3], True, "factor"),
])
def test_downsample_rejects_bad_arguments(shape, factor, needle):
    with pytest.raises(ValueError, match=needle):
        renderers.downsample_render(tf.zeros(shape), factor)


def test_downsample_under_tf_function_with_unknown_size_checks_at_run_time():
    fn = tf.function(lambda t: renderers.downsample_render(t, 2),
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    assert fn(tf.ones([1, 4, 6, 3])).shape == (1, 2, 3, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="divisible by factor 2"):
        fn(tf.ones([1, 5, 6, 3]))


def test_block_upsample_repeats_each_pixel_and_downsample_inverts_it():
    images = tf.reshape(tf.range(12, dtype=tf.float32), [1, 2, 3, 2])
    up = renderers.block_upsample(images, 3).numpy()
    assert up.shape == (1, 6, 9, 2)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(images.numpy(), 3, axis=1), 3, axis=2))
    np.testing.assert_allclose(renderers.downsample_render(up, 3), images, rtol=1e-6)


def test_downsample_consistent_hits_the_target_in_range_and_keeps_feasible_detail():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(0.5, 0.8, (3, 8, 8, 3)), tf.float32)  # far outside [0, 1]
    target = rng.uniform(size=(3, 2, 2, 3)).astype(np.float32)
    target[1] = 0.0  # the bounds themselves: every pixel must be 0 / 1
    target[2] = 1.0
    out = renderers.downsample_consistent(images, target, 4).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(renderers.downsample_render(out, 4), target, atol=1e-6)
    np.testing.assert_allclose(out[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[2], 1.0, atol=1e-6)
    # Images already in range with the target's block means come back unchanged.
    inside = tf.random.stateless_uniform([2, 8, 8, 1], seed=[3, 4])
    same = renderers.downsample_consistent(inside, renderers.downsample_render(inside, 4), 4)
    np.testing.assert_allclose(same, inside, atol=1e-6)


def test_downsample_consistent_moves_each_pixel_in_proportion_to_its_room():
    block = tf.constant([[0.0, 0.5], [0.5, 1.0]], tf.float32)[None, :, :, None]  # mean 0.5
    up = renderers.downsample_consistent(block, tf.fill([1, 1, 1, 1], 0.75), 2).numpy()[0, :, :, 0]
    np.testing.assert_allclose(up, [[0.5, 0.75], [0.75, 1.0]], atol=1e-6)  # x + 0.25 (1 - x) / 0.5
    down = renderers.downsample_consistent(block, tf.fill([1, 1, 1, 1], 0.25), 2).numpy()[0, :, :, 0]
    np.testing.assert_allclose(down, [[0.0, 0.25], [0.25, 0.5]], atol=1e-6)  # x - 0.25 x / 0.5


def test_downsample_consistent_gradient_matches_finite_differences():
    x = tf.random.stateless_uniform([1, 4, 4, 1], seed=[5, 6], minval=0.1, maxval=0.9, dtype=tf.float64)
    target = tf.constant([[[[0.3], [0.6]], [[0.7], [0.45]]]], tf.float64)
    assert _max_jacobian_error(lambda t: renderers.downsample_consistent(t, target, 2), x) < 1e-6


# --- box_mask and mask_render ---------------------------------------------------------------------------


def test_box_mask_zeroes_exactly_the_box():
    mask = renderers.box_mask(2, 8, 8, (0.25, 0.5, 0.75, 1.0))
    assert mask.shape == (2, 8, 8, 1) and mask.dtype == tf.float32
    expected = np.ones((8, 8), np.float32)
    expected[2:6, 4:8] = 0.0  # rows with centres in [0.25, 0.75), columns in [0.5, 1.0)
    for b in range(2):
        np.testing.assert_array_equal(mask.numpy()[b, :, :, 0], expected)


def test_mask_render_zeroes_exactly_the_hidden_pixels():
    images = tf.random.stateless_uniform([2, 8, 8, 3], seed=[3, 4], minval=0.1, maxval=1.0)
    mask = renderers.box_mask(2, 8, 8, (0.0, 0.0, 0.5, 0.25))
    out = renderers.mask_render(images, mask).numpy()
    assert np.all(out[:, :4, :2, :] == 0.0)
    visible = np.ones((8, 8), bool)
    visible[:4, :2] = False
    np.testing.assert_array_equal(out[:, visible, :], images.numpy()[:, visible, :])


def test_mask_render_gradient_is_the_mask():
    mask = renderers.box_mask(1, 3, 3, (0.0, 0.0, 0.5, 0.5))  # hides pixel (0, 0) only
    x = tf.random.stateless_uniform([1, 3, 3, 2], seed=[5, 6], dtype=tf.float64)
    fn = lambda t: renderers.mask_render(t, mask)
    assert _max_jacobian_error(fn, x) < 1e-6
    theoretical, _ = tf.test.compute_gradient(fn, [x])
    expected = np.diag(np.broadcast_to(mask.numpy(), (1, 3, 3, 2)).reshape(-1))
    np.testing.assert_allclose(theoretical[0], expected)


def test_mask_render_accepts_per_channel_mask_and_keeps_dtype():
    images = tf.ones([1, 2, 2, 3], tf.bfloat16)
    mask = np.ones((1, 2, 2, 3), np.float32)
    mask[..., 0] = 0.0
    out = renderers.mask_render(images, mask)
    assert out.dtype == tf.bfloat16
    np.testing.assert_array_equal(tf.cast(out, tf.float32).numpy()[..., 0], 0.0)


@pytest.mark.parametrize("image_shape, mask_shape, needle", [
    ([2, 8, 8, 3], [2, 8, 4, 1], "width 4 does not match images width 8"),
    ([2, 8, 8, 3], [1, 8, 8, 1], "batch 1 does not match"),
    ([2, 8, 8, 3], [2, 8, 8, 2], "1 or 3 channels"),
    ([2, 8, 8, 3], [2, 8, 8], "rank 4"),
])
def test_mask_render_rejects_mismatched_shapes(image_shape, mask_shape, needle):
    with pytest.raises(ValueError, match=needle):
        renderers.mask_render(tf.zeros(image_shape), tf.ones(mask_shape))


@pytest.mark.parametrize("box", [(0.5, 0.0, 0.5, 1.0), (0.0, 0.6, 1.0, 0.4), (-0.1, 0.0, 0.5, 0.5),
                                 (0.0, 0.0, 1.2, 0.5), (0.0, 0.0, 0.5)])
def test_box_mask_rejects_bad_boxes(box):
    with pytest.raises(ValueError, match="box"):
        renderers.box_mask(1, 8, 8, box)


def test_box_mask_accepts_a_tensor_batch_size_under_tf_function():
    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32)])
    def observe(images):
        return renderers.mask_render(images, renderers.box_mask(tf.shape(images)[0], 4, 4, (0, 0, 0.5, 0.5)))

    out = observe(tf.ones([3, 4, 4, 3]))
    assert out.shape == (3, 4, 4, 3)
    assert float(tf.reduce_sum(out)) == 3 * 12 * 3  # 4 of 16 pixels hidden per image


# --- random_box_masks ------------------------------------------------------------------------------------


def test_random_box_masks_are_deterministic_given_the_seed():
    a = renderers.random_box_masks(tf.constant([7, 11], tf.int64), 4, 16, 16)
    b = renderers.random_box_masks(tf.constant([7, 11], tf.int64), 4, 16, 16)
    c = renderers.random_box_masks(tf.constant([7, 12], tf.int64), 4, 16, 16)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    assert len({m.tobytes() for m in a.numpy()}) > 1  # different holes across the batch


def test_random_box_masks_hide_one_rectangle_of_the_requested_size():
    size, min_frac, max_frac = 32, 0.25, 0.5
    masks = renderers.random_box_masks([1, 2], 16, size, size, min_frac, max_frac).numpy()
    assert masks.shape == (16, size, size, 1) and set(np.unique(masks)) <= {0.0, 1.0}
    for m in masks[..., 0]:
        hidden = m == 0.0
        rows, cols = np.flatnonzero(hidden.any(axis=1)), np.flatnonzero(hidden.any(axis=0))
        assert np.array_equal(hidden, np.outer(hidden.any(axis=1), hidden.any(axis=0)))  # a rectangle
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)  # contiguous
        for n in (len(rows), len(cols)):
            assert np.floor(min_frac * size) <= n <= np.ceil(max_frac * size)


@pytest.mark.parametrize("kwargs, needle", [
    ({"seed": [1, 2, 3]}, "shape \\[2\\]"),
    ({"seed": [1.0, 2.0]}, "integer"),
    ({"min_frac": 0.6, "max_frac": 0.5}, "min_frac"),
    ({"min_frac": 0.0}, "min_frac"),
    ({"height": 0}, "height"),
])
def test_random_box_masks_reject_bad_arguments(kwargs, needle):
    args = {"seed": [1, 2], "batch_size": 2, "height": 8, "width": 8, **kwargs}
    with pytest.raises(ValueError, match=needle):
        renderers.random_box_masks(**args)


# --- perspective_render -------------------------------------------------------------------------------


def _random_camera(rng, batch):
    from scipy.spatial.transform import Rotation

    rotation = Rotation.random(batch, random_state=rng.integers(1 << 30)).as_matrix().astype(np.float32)
    translation = np.concatenate([rng.uniform(-300, 300, (batch, 2)), rng.uniform(3000, 6000, (batch, 1))], 1)
    focal = rng.uniform(1.5, 3.0, (batch, 2))
    principal = rng.uniform(-0.1, 0.1, (batch, 2))
    return rotation, translation.astype(np.float32), focal.astype(np.float32), principal.astype(np.float32)


def test_perspective_matches_numpy_pinhole_reference():
    rng = np.random.default_rng(0)
    points = rng.normal(0, 400, (3, 17, 3)).astype(np.float32)
    rotation, translation, focal, principal = _random_camera(rng, 3)
    expected = pinhole(points, rotation, translation, focal) + principal[:, None]
    out = renderers.perspective_render(points, rotation, translation, focal, principal)
    assert out.shape == (3, 17, 2)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    # No principal point = the origin.
    np.testing.assert_allclose(renderers.perspective_render(points, rotation, translation, focal).numpy(),
                               expected - principal[:, None], rtol=1e-4, atol=1e-5)


def test_perspective_point_on_the_optical_axis_lands_on_the_principal_point():
    out = renderers.perspective_render(np.zeros((1, 1, 3), np.float32), np.eye(3, dtype=np.float32)[None],
                                       [[0.0, 0.0, 4000.0]], [[2.0, 2.0]], [[0.1, -0.2]])
    np.testing.assert_allclose(out.numpy(), [[[0.1, -0.2]]], atol=1e-7)


def test_perspective_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    points = rng.normal(0, 0.4, (2, 5, 3))  # metres, float64 for a clean finite-difference check
    rotation, translation, focal, _ = _random_camera(rng, 2)
    rotation, translation, focal = (tf.constant(a, tf.float64) for a in (rotation, translation / 1000.0, focal))
    for fn, x in ((lambda p: renderers.perspective_render(p, rotation, translation, focal), points),
                  (lambda t: renderers.perspective_render(points, rotation, t, focal), translation),
                  (lambda r: renderers.perspective_render(points, r, translation, focal), rotation)):
        assert _max_jacobian_error(fn, tf.constant(x, tf.float64)) < 1e-6


def test_to_camera_frame_rotates_without_translating():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(2, 4, 3)).astype(np.float32)
    rotation = _random_camera(rng, 2)[0]
    np.testing.assert_allclose(renderers.to_camera_frame(points, rotation).numpy(),
                               np.einsum("bij,bkj->bki", rotation, points), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which, shape, needle", [
    ("points", (2, 17, 2), "points must have shape [B, J, 3]"),
    ("rotation", (2, 3), "rotation must have shape [B, 3, 3]"),
    ("translation", (2, 2), "translation must have shape [B, 3]"),
    ("focal", (2, 1), "focal must have shape [B, 2]"),
])
def test_perspective_shape_errors_name_the_argument(which, shape, needle):
    args = {"points": np.zeros((2, 17, 3)), "rotation": np.tile(np.eye(3), (2, 1, 1)),
            "translation": np.ones((2, 3)), "focal": np.ones((2, 2))}
    args[which] = np.zeros(shape)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        renderers.perspective_render(**{k: tf.constant(v, tf.float32) for k, v in args.items()})


def test_perspective_render_traced_with_an_unknown_batch_serves_any_batch():
    spec = [tf.TensorSpec([None, 17, 3]), tf.TensorSpec([None, 3, 3]), tf.TensorSpec([None, 3]),
            tf.TensorSpec([None, 2])]
    traced = tf.function(renderers.perspective_render, input_signature=spec)
    rng = np.random.default_rng(3)
    points = rng.normal(0, 400, (5, 17, 3)).astype(np.float32)
    rotation, translation, focal, _ = _random_camera(rng, 5)
    np.testing.assert_allclose(traced(points, rotation, translation, focal).numpy(),
                               pinhole(points, rotation, translation, focal), rtol=1e-4, atol=1e-5)
