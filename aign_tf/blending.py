"""Filling a hole from what surrounds it: pull-push (a smooth fill from the visible pixels) and Poisson blending
(a donor's content pasted seamlessly).

Both are pure, differentiable TensorFlow functions of `[B, H, W, C]` images and a `[B, H, W, 1]` mask
(1 = visible, 0 = hole) with H and W static; the batch size may be unknown (``tf.function``).
"""

from __future__ import annotations

import math

import tensorflow as tf


def pull_push_fill(images: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Fills the hidden pixels of ``images`` from the visible ones by pull-push (Gortler et al. 1996, "The
    Lumigraph", section 3.4): average-pool colour * mask and mask down to 1x1, then going back up, each
    level keeps its own visible colour and takes the upsampled coarser fill where pixels are hidden. Every
    hidden pixel gets the colour of the visible pixels nearest to it (the surrounding skin for a mouth box),
    not the face's overall mean.

    images: [B, H, W, C] float32; mask: [B, H, W, 1], 1 = visible (H, W static).
    Returns [B, H, W, C]: equal to ``images`` where mask == 1, a smooth fill elsewhere."""
    nums, dens = [images * mask], [mask]
    while max(nums[-1].shape[1:3]) > 1:  # "SAME" pooling averages only the cells inside the image
        nums.append(tf.nn.avg_pool2d(nums[-1], 2, 2, "SAME"))
        dens.append(tf.nn.avg_pool2d(dens[-1], 2, 2, "SAME"))
    fill = tf.math.divide_no_nan(nums[-1], dens[-1])
    for num, den in zip(reversed(nums[:-1]), reversed(dens[:-1]), strict=True):
        up = tf.image.resize(fill, num.shape[1:3], method="bilinear")
        known = tf.math.divide_no_nan(num, den)
        weight = tf.minimum(den * 4.0, 1.0)  # a cell a quarter visible is trusted fully
        fill = weight * known + (1.0 - weight) * up
    return images * mask + fill * (1.0 - mask)


# --- Poisson blending -----------------------------------------------------------------------------------------

def hole_boxes(mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Each example's hole as a rectangle, and whether it is one.

    mask: `[B, H, W, 1]`, 1 = visible, 0 = hole (a pixel is in the hole where mask < 0.5).
    Returns ``(rows, cols, is_box)``: rows and cols `[B, 2]` int32 ``(start, count)`` of the hole's bounding
    box (``(0, 0)`` for an example without a hole), and is_box `[B]` bool: the hole is exactly that box (an
    empty hole counts as one)."""
    hidden = tf.convert_to_tensor(mask)[..., 0] < 0.5  # [B, H, W]
    spans, inside = [], []
    for axis, size in ((2, hidden.shape[1]), (1, hidden.shape[2])):  # rows: any hidden pixel along W
        used = tf.cast(tf.reduce_any(hidden, axis=axis), tf.int32)  # [B, size]
        start = tf.argmax(used, axis=1, output_type=tf.int32)  # the first used position (0 if none)
        end = size - tf.argmax(tf.reverse(used, [1]), axis=1, output_type=tf.int32)  # after the last one
        count = tf.where(tf.reduce_any(used > 0, axis=1), end - start, 0)
        position = tf.range(size)[None, :]
        inside.append((position >= start[:, None]) & (position < (start + count)[:, None]))  # [B, size]
        spans.append(tf.stack([start, count], axis=1))
    box = inside[0][:, :, None] & inside[1][:, None, :]
    return spans[0], spans[1], tf.reduce_all(tf.equal(box, hidden), axis=[1, 2])


def _laplacian_eigenbasis(span: tf.Tensor, size: int, dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    """The 1-D second-difference operator on each example's span of ``size`` positions, diagonalised.

    span: `[B, 2]` int32 (start, count). On the ``count`` positions of the span the operator is tridiagonal
    [-1, 2, -1] with a Dirichlet end (the value beyond it is known) where the span stops inside the image and a
    Neumann end (diagonal 1: nothing beyond it) where it reaches the image edge. Its orthonormal eigenvectors
    have closed forms, with x the position in the span and k = 0 .. count - 1 the mode:
      * Dirichlet at both ends: sin(pi (k + 1) (x + 1) / (n + 1)), eigenvalue 2 - 2 cos(pi (k + 1) / (n + 1)),
      * one Neumann end, x counted from it: cos(pi (2k + 1) (2x + 1) / (2 (2n + 1))), eigenvalue
        2 - 2 cos(pi (2k + 1) / (2n + 1)),
      * Neumann at both ends (a span covering the axis): cos(pi k (2x + 1) / (2n)), eigenvalue 2 - 2 cos(pi k / n),
        0 for the constant (k = 0).
    Each is cos(pi P / Q) for integers P, Q, with P reduced modulo 2Q in integers first, so the trigonometry sees
    an argument in [0, 2 pi) and float32 loses nothing to the angle's size.

    Returns ``(vectors, values)``: vectors `[B, size, size]`, column k the k-th eigenvector placed at the span's
    positions in image coordinates (zero outside the span; columns k >= count are zero), values `[B, size]`
    eigenvalues (1 for the unused columns, so nothing divides by 0 there), both in ``dtype``."""
    start, n = span[:, 0][:, None, None], span[:, 1][:, None, None]  # [B, 1, 1] int32
    x = tf.range(size)[None, :, None] - start  # [B, size, 1]: the vectors' rows, as positions in the span
    k = tf.range(size)[None, None, :]  # [1, 1, size]: their columns, the modes
    free_start, free_end = tf.equal(start, 0), tf.equal(start + n, size)
    both, one = free_start & free_end, tf.not_equal(free_start, free_end)
    x = tf.where(one & free_end, n - 1 - x, x)  # one Neumann end: count from it
    # Angles pi * P / Q of the vectors' entries, and pi * P0 / Q of the eigenvalues' cosines, per case.
    q = tf.where(both, 2 * n, tf.where(one, 2 * (2 * n + 1), 2 * (n + 1)))  # [B, 1, 1]
    p = tf.where(both, k * (2 * x + 1), tf.where(one, (2 * k + 1) * (2 * x + 1), 2 * (k + 1) * (x + 1) - (n + 1)))
    p0 = tf.where(both, 2 * k, tf.where(one, 2 * (2 * k + 1), 2 * (k + 1)))  # [B, 1, size]
    q = tf.maximum(q, 1)
    angle = lambda p: math.pi * tf.cast(tf.math.floormod(p, 2 * q), dtype) / tf.cast(q, dtype)  # noqa: E731
    norm = tf.where(both, tf.where(tf.equal(k, 0), 1.0 / tf.cast(n, dtype), 2.0 / tf.cast(n, dtype)),
                    tf.where(one, 4.0 / tf.cast(2 * n + 1, dtype), 2.0 / tf.cast(n + 1, dtype)))
    vectors = tf.cos(angle(p)) * tf.sqrt(norm)
    vectors = tf.where((x >= 0) & (x < n) & (k < n), vectors, tf.zeros((), dtype))
    values = 4.0 * tf.square(tf.sin(angle(p0)[:, 0, :] / 2.0))  # 2 - 2 cos, without the cancellation
    return vectors, tf.where(k[:, 0, :] < n[:, 0, :], values, tf.ones((), dtype))


def poisson_blend(target: tf.Tensor, source: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Seamless cloning (Pérez, Gangnet & Blake 2003, "Poisson image editing", guided interpolation with the
    source's gradients): ``source``'s content in the hole, its brightness and colour shifted smoothly to meet
    ``target`` at the hole's border.

    Inside the hole the result f has the discrete Laplacian (5-point stencil) of ``source`` with f = ``target``
    on the visible pixels next to the hole: f = source + d, d the discrete harmonic interpolation into the hole
    of (target - source) on its border ring. Where the hole reaches the image edge there is no pixel beyond it,
    and d has a zero normal derivative there (Neumann; Pérez et al.'s sum over the neighbours inside the
    image). A hole must be one axis-aligned rectangle per example (``renderers.box_mask``,
    ``renderers.random_box_masks``): its operator is ``T_h (x) I + I (x) T_w`` with 1-D second-difference
    operators whose eigenbases have closed forms, so the solve is exact and made of matmuls,
    ``d = V_h ((V_h^T R V_w) / (lambda_i + mu_j)) V_w^T`` with R the border term, every example's bases padded
    to the image size (different boxes cost the same as one).

    Linear in ``target`` and ``source`` and differentiable in both (not in ``mask``); works eagerly, in
    ``tf.function`` with an unknown batch size and under XLA.

    Args:
      target: `[B, H, W, C]` float32 or float64, H and W static: the image kept outside the hole.
        Only its pixels on the hole's border ring enter the fill (the hole's own pixels are never read).
      source: `[B, H, W, C]` the donor, same dtype; only its pixels in the hole and on the ring are read.
      mask: `[B, H, W, 1]` 1 = visible (keep target), 0 = hole; a pixel is in the hole where mask < 0.5.

    Returns:
      `[B, H, W, C]`: exactly ``target`` where the mask is visible, the blend in the hole (not clipped: it can
      leave the range of the inputs). An example without a hole is ``target`` unchanged; a hole covering the
      whole image has no border and gets ``source`` (d = 0).

    Raises:
      ValueError: a rank or static shape is wrong, or (eagerly) an example's hole is not one rectangle; the
        message names the first such example's index. In a graph (``tf.function``) the check is a
        ``tf.debugging.Assert`` that raises ``tf.errors.InvalidArgumentError`` naming the examples when the
        graph runs; under XLA, which drops assertions, such an example is blended as if its hole were its
        bounding box (the visible pixels inside that box still keep ``target``), a result without meaning.
    """
    target = tf.convert_to_tensor(target)
    if target.dtype not in (tf.float32, tf.float64):
        raise ValueError(f"target must be float32 or float64; got dtype {target.dtype.name}")
    source = tf.convert_to_tensor(source, target.dtype)
    mask = tf.cast(tf.convert_to_tensor(mask), target.dtype)
    for name, tensor, channels in (("target", target, None), ("source", source, target.shape[-1]),
                                   ("mask", mask, 1)):
        shape = tensor.shape
        if shape.rank != 4 or shape[1] is None or shape[2] is None:
            raise ValueError(f"{name} must have shape [B, H, W, C] with H and W static; got {shape}")
        if (shape[1:3] != target.shape[1:3] or not shape[:1].is_compatible_with(target.shape[:1])
                or (channels is not None and shape[3] not in (None, channels))):
            raise ValueError(f"{name} shape {shape.as_list()} does not match target shape "
                             f"{target.shape.as_list()} (mask: [B, H, W, 1])")
    height, width = target.shape[1], target.shape[2]
    rows, cols, is_box = hole_boxes(mask)
    if tf.executing_eagerly():
        bad = tf.where(~is_box)[:, 0].numpy()
        if len(bad):
            raise ValueError(f"poisson_blend: the hole of mask example {int(bad[0])} is not one axis-aligned "
                             f"rectangle ({len(bad)} such examples: {bad[:10].tolist()})")
    else:
        check = tf.debugging.Assert(tf.reduce_all(is_box), [
            "poisson_blend: holes that are not one axis-aligned rectangle, mask examples:",
            tf.where(~is_box)[:, 0]], summarize=10)
        with tf.control_dependencies([check]):
            rows = tf.identity(rows)
    v_h, lam = _laplacian_eigenbasis(rows, height, target.dtype)  # [B, H, H], [B, H]
    v_w, mu = _laplacian_eigenbasis(cols, width, target.dtype)  # [B, W, W], [B, W]
    total = lam[:, :, None] + mu[:, None, :]  # [B, H, W]: 0 only for a hole covering the image (its constant)
    inverse = tf.math.divide_no_nan(tf.ones_like(total), total)
    v_h, v_w, inverse = v_h[:, None], v_w[:, None], inverse[:, None]  # [B, 1, ...]: the same for every channel
    hidden = mask < 0.5  # [B, H, W, 1]
    # The border term: at each hole pixel, the sum of (target - source) over its visible 4-neighbours.
    ring = tf.where(hidden, tf.zeros_like(target), target - source)
    padded = tf.pad(ring, [[0, 0], [1, 1], [1, 1], [0, 0]])
    around = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:])
    border = tf.transpose(tf.where(hidden, around, tf.zeros_like(around)), [0, 3, 1, 2])  # [B, C, H, W]
    coefficients = tf.matmul(tf.matmul(v_h, border, transpose_a=True), v_w) * inverse
    offset = tf.transpose(tf.matmul(tf.matmul(v_h, coefficients), v_w, transpose_b=True), [0, 2, 3, 1])
    return tf.where(hidden, source + offset, target)
