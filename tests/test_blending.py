"""blending.poisson_blend: seamless cloning into one rectangular hole per example, checked against a dense solve of
Pérez et al.'s linear system. (pull_push_fill's tests are in test_face_data.py.)"""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf import renderers
from aign_tf.blending import hole_boxes, poisson_blend

H, W = 12, 10


def _mask(*boxes, height=H, width=W):
    """[len(boxes), H, W, 1] float32, each box (top, left, bottom, right) in pixels hidden (None: no hole)."""
    mask = np.ones([len(boxes), height, width, 1], np.float32)
    for i, box in enumerate(boxes):
        if box is not None:
            top, left, bottom, right = box
            mask[i, top:bottom, left:right] = 0.0
    return mask


def _dense_blend(target, source, mask):
    """Pérez et al. (2003) eq. 7 for one image, solved densely in f: at each hole pixel p,
    |N_p| f_p - sum_{q in N_p, hole} f_q = sum_{q in N_p, visible} target_q + sum_{q in N_p} (source_p - source_q),
    N_p the 4-neighbours inside the image."""
    height, width, channels = target.shape
    hole = mask[..., 0] < 0.5
    points = np.argwhere(hole)
    index = -np.ones((height, width), int)
    index[hole] = np.arange(len(points))
    a, b = np.zeros((len(points), len(points))), np.zeros((len(points), channels))
    for row, (y, x) in enumerate(points):
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            qy, qx = y + dy, x + dx
            if not (0 <= qy < height and 0 <= qx < width):
                continue
            a[row, row] += 1.0
            b[row] += source[y, x] - source[qy, qx]
            if hole[qy, qx]:
                a[row, index[qy, qx]] -= 1.0
            else:
                b[row] += target[qy, qx]
    out = target.astype(np.float64).copy()
    out[hole] = np.linalg.solve(a, b)
    return out


def _laplacian(image):
    """[H, W, C] -> [H-2, W-2, C] 5-point Laplacian at the interior pixels."""
    return (4.0 * image[1:-1, 1:-1] - image[:-2, 1:-1] - image[2:, 1:-1] - image[1:-1, :-2] - image[1:-1, 2:])


# Interior, touching one edge (top / right), a corner (bottom-left), spanning the width, one pixel, no hole.
BOXES = [(3, 2, 8, 6), (0, 3, 5, 7), (4, 6, 9, 10), (7, 0, 12, 4), (2, 0, 6, 10), (5, 5, 6, 6), None]


def test_source_shifted_by_a_constant_gives_back_the_target():
    rng = np.random.default_rng(0)
    target = rng.random([len(BOXES), H, W, 3]).astype(np.float32)
    source = target + np.array([0.3, -0.7, 2.0], np.float32)  # any constant per channel: same gradients
    out = poisson_blend(target, source, _mask(*BOXES)).numpy()
    np.testing.assert_allclose(out, target, atol=1e-5)


def test_constant_target_and_a_ramp_source_give_a_harmonic_fill():
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    ramp = np.stack([0.05 * yy + 0.02 * xx, -0.03 * xx, 0.1 * yy], -1).astype(np.float32)[None]
    target = np.full([1, H, W, 3], 0.4, np.float32)
    mask = _mask((3, 2, 8, 6))
    out = poisson_blend(target, ramp, mask).numpy()
    hole = mask[0, 1:-1, 1:-1, 0] == 0
    np.testing.assert_allclose(_laplacian(out[0])[hole], _laplacian(ramp[0])[hole], atol=1e-5)  # both 0
    np.testing.assert_array_equal(out[mask[..., 0] == 1], target[mask[..., 0] == 1])
    np.testing.assert_allclose(out, target, atol=1e-5)  # the harmonic fill of a constant border is that constant


def test_matches_a_dense_solve_for_every_kind_of_box_in_one_batch():
    rng = np.random.default_rng(1)
    target = rng.random([len(BOXES), H, W, 3]).astype(np.float32)
    source = rng.random([len(BOXES), H, W, 3]).astype(np.float32)
    mask = _mask(*BOXES)
    out = poisson_blend(target, source, mask).numpy()
    for i, box in enumerate(BOXES):
        expected = target[i] if box is None else _dense_blend(target[i], source[i], mask[i])
        np.testing.assert_allclose(out[i], expected, atol=1e-4, err_msg=f"box {box}")
        np.testing.assert_array_equal(out[i][mask[i, ..., 0] == 1], target[i][mask[i, ..., 0] == 1])
    # The same hole for every example (the fixed mouth/nose box) and the same in float64.
    same = np.repeat(_mask((0, 0, 5, 4)), 3, axis=0)
    target, source = target[:3].astype(np.float64), source[:3].astype(np.float64)
    out64 = poisson_blend(target, source, same).numpy()
    for i in range(3):
        np.testing.assert_allclose(out64[i], _dense_blend(target[i], source[i], same[i]), atol=1e-10)


def test_random_box_masks_on_a_face_sized_batch_match_the_dense_solve():
    size = 24
    mask = renderers.random_box_masks(tf.constant([3, 4]), 5, size, size, 0.3, 0.7).numpy()
    rng = np.random.default_rng(2)
    target, source = (rng.random([5, size, size, 3]).astype(np.float32) for _ in range(2))
    out = tf.function(poisson_blend)(target, source, mask).numpy()
    for i in range(5):
        np.testing.assert_allclose(out[i], _dense_blend(target[i], source[i], mask[i]), atol=1e-4)


def test_a_hole_covering_the_image_takes_the_source():
    rng = np.random.default_rng(3)
    target, source = (rng.random([1, 6, 5, 2]).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(poisson_blend(target, source, np.zeros([1, 6, 5, 1], np.float32)).numpy(), source,
                               atol=1e-6)


def test_gradients_in_a_tf_function_with_an_unknown_batch_size():
    spec = [tf.TensorSpec([None, H, W, 3]), tf.TensorSpec([None, H, W, 3]), tf.TensorSpec([None, H, W, 1])]

    @tf.function(input_signature=spec)
    def gradients(target, source, mask):
        with tf.GradientTape() as tape:
            tape.watch([target, source])
            out = poisson_blend(target, source, mask)
            loss = tf.reduce_sum(tf.square(out) * (1.0 - mask))  # the hole's content only
        return tape.gradient(loss, [target, source])

    rng = np.random.default_rng(4)
    target, source = (tf.constant(rng.random([3, H, W, 3]), tf.float32) for _ in range(2))
    mask = _mask((3, 2, 8, 6), (0, 0, 4, 4), (6, 3, 12, 10))
    d_target, d_source = (g.numpy() for g in gradients(target, source, tf.constant(mask)))
    hidden = np.pad(mask[..., 0] == 0, [[0, 0], [1, 1], [1, 1]])
    next_to_hole = hidden[:, :-2, 1:-1] | hidden[:, 2:, 1:-1] | hidden[:, 1:-1, :-2] | hidden[:, 1:-1, 2:]
    ring = (mask[..., 0] == 1) & next_to_hole
    hole, ring = np.broadcast_to(mask == 0, d_target.shape), np.broadcast_to(ring[..., None], d_target.shape)
    assert np.isfinite(d_target).all() and np.isfinite(d_source).all()
    assert np.all(d_source[hole] != 0)
    assert np.all(d_target[ring] != 0)  # the fill meets the target's 4-neighbours of the hole...
    np.testing.assert_array_equal(d_target[~ring], 0.0)  # ...and reads no other target pixel, none in the hole


def test_a_hole_that_is_not_one_rectangle_is_refused():
    rng = np.random.default_rng(5)
    target, source = (rng.random([3, H, W, 3]).astype(np.float32) for _ in range(2))
    mask = _mask((2, 2, 5, 5), (2, 2, 5, 5), (2, 2, 5, 5))
    mask[2, 8, 8] = 0.0  # a second hole
    with pytest.raises(ValueError, match="mask example 2 is not one axis-aligned rectangle"):
        poisson_blend(target, source, mask)
    l_shape = _mask((2, 2, 6, 6))
    l_shape[0, 2:4, 4:6] = 1.0
    with pytest.raises(ValueError, match="mask example 0"):
        poisson_blend(target[:1], source[:1], l_shape)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not one axis-aligned rectangle"):
        tf.function(poisson_blend)(target, source, mask)
    with pytest.raises(ValueError, match="source shape"):
        poisson_blend(target, source[:, :, :5], mask)
    with pytest.raises(ValueError, match="mask shape"):
        poisson_blend(target, source, mask[:2])
    with pytest.raises(ValueError, match="float32 or float64; got dtype float16"):
        poisson_blend(target.astype(np.float16), source, mask)
    rows, cols, is_box = (t.numpy() for t in hole_boxes(mask))
    assert rows.tolist() == [[2, 3], [2, 3], [2, 7]] and cols.tolist() == [[2, 3], [2, 3], [2, 7]]
    assert is_box.tolist() == [True, True, False]
