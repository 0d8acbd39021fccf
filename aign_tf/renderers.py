"""Renderers: fixed, parameter-free, differentiable maps from predicted factors to the observation space.

Each renderer is a pure function of tensors (no variables, no state) that works eagerly, under
``tf.function`` and with XLA. Argument shapes are validated up front where they are statically known, so a
wrong shape fails with one ``ValueError`` naming the argument instead of an error deep inside an op.

Face tasks:
  * super-resolution: ``downsample_render`` (average pooling); ``downsample_consistent`` maps images onto
    those it renders to a given observation,
  * inpainting: ``mask_render`` with a mask from ``box_mask`` or ``random_box_masks``.
Pose task:
  * ``perspective_render``: rigid transform + pinhole projection (tensorflow-graphics'
    ``rendering.camera.perspective.project``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import tensorflow as tf


def _static_rank_4(tensor: tf.Tensor, name: str) -> tf.TensorShape:
    shape = tensor.shape
    if shape.rank is not None and shape.rank != 4:
        raise ValueError(f"{name} must have shape [B, H, W, C] (rank 4); got shape {shape.as_list()}")
    return shape


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive Python int; got {value!r}")
    return int(value)


def _batch_size(value, name: str = "batch_size"):
    """A positive Python int, or a scalar integer tensor (e.g. ``tf.shape(images)[0]``) passed through."""
    if isinstance(value, tf.Tensor | tf.Variable):
        if value.shape.rank not in (None, 0):
            raise ValueError(f"{name} must be a scalar; got a tensor of shape {value.shape.as_list()}")
        return tf.cast(value, tf.int32)
    return _positive_int(value, name)


def downsample_render(images: tf.Tensor, factor: int) -> tf.Tensor:
    """Super-resolution renderer: average-pools non-overlapping ``factor x factor`` blocks.

    Args:
      images: `[B, H, W, C]` floating images (any float dtype; the output keeps it). H and W must be
        divisible by ``factor``.
      factor: positive Python int; 1 is the identity.

    Returns:
      `[B, H / factor, W / factor, C]` images, each pixel the mean of its block.

    Raises:
      ValueError: ``factor`` is not a positive int, ``images`` is not rank 4, or a statically known H or W
        is not divisible by ``factor``. (With H or W unknown at trace time the divisibility check runs
        at execution time as a ``tf.debugging`` assertion.)
    """
    factor = _positive_int(factor, "factor")
    images = tf.convert_to_tensor(images)
    shape = _static_rank_4(images, "images")
    if shape.rank is None:
        raise ValueError("images must have a known rank 4 ([B, H, W, C]); got unknown rank")
    for axis, label in ((1, "height"), (2, "width")):
        size = shape[axis]
        if size is not None and size % factor:
            raise ValueError(f"images {label} {size} is not divisible by factor {factor} "
                             f"(images shape {shape.as_list()})")
    if factor == 1:
        return tf.identity(images)
    if shape[1] is None or shape[2] is None:
        dims = tf.shape(images)[1:3]
        with tf.control_dependencies([tf.debugging.assert_equal(
                dims % factor, 0, message=f"images height and width must be divisible by factor {factor}")]):
            images = tf.identity(images)
    return tf.nn.avg_pool2d(images, ksize=factor, strides=factor, padding="VALID")


def block_upsample(images: tf.Tensor, factor: int) -> tf.Tensor:
    """Nearest-neighbour upsampling by repetition, the right inverse of ``downsample_render``.

    Args:
      images: `[B, h, w, C]` (any dtype).
      factor: positive Python int.

    Returns:
      `[B, h * factor, w * factor, C]`, each input pixel repeated over a ``factor x factor`` block. Built from
      ``tf.repeat``, whose gradient XLA compiles (``tf.image.resize(method="nearest")``'s does not).
    """
    factor = _positive_int(factor, "factor")
    return tf.repeat(tf.repeat(images, factor, axis=1), factor, axis=2)


def downsample_consistent(images: tf.Tensor, target: tf.Tensor, factor: int) -> tf.Tensor:
    """Maps images onto those the super-resolution renderer maps to ``target``, keeping them in [0, 1].

    The images are clipped to [0, 1]; each ``factor x factor`` block then moves towards the bound on the side
    of its mean error, each pixel in proportion to its room: with ``r = target - mean(clipped)`` per block and
    channel, ``x + r (1 - x) / mean(1 - x)`` for ``r > 0`` and ``x + r x / mean(x)`` for ``r < 0``. That sets
    every block's mean to ``target`` exactly and keeps every pixel in [0, 1] (for ``target`` in [0, 1]), and it
    keeps the images' detail within a block where the block has room for it (a feasible point, not the nearest
    one). Sonderby et al. 2017 add the detail to the upsampled observation the same way without the range
    constraint.

    Args:
      images: `[B, H, W, C]` float; H and W divisible by ``factor``.
      target: `[B, H / factor, W / factor, C]` the same float dtype, in [0, 1] (it is clipped to it).
      factor: positive Python int.

    Returns:
      `[B, H, W, C]` in [0, 1] with ``downsample_render(result, factor) == clip(target, 0, 1)`` up to rounding.
    """
    clipped = tf.clip_by_value(images, 0.0, 1.0)
    target = tf.clip_by_value(tf.convert_to_tensor(target, clipped.dtype), 0.0, 1.0)
    mean = downsample_render(clipped, factor)
    gap = target - mean
    up_room = tf.math.divide_no_nan(tf.nn.relu(gap), 1.0 - mean)
    down_room = tf.math.divide_no_nan(tf.nn.relu(-gap), mean)
    return (clipped + block_upsample(up_room, factor) * (1.0 - clipped)
            - block_upsample(down_room, factor) * clipped)


def mask_render(images: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Inpainting renderer: zeroes the hidden pixels.

    Args:
      images: `[B, H, W, C]` floating images.
      mask: `[B, H, W, 1]` (or `[B, H, W, C]`) with 1 = visible and 0 = hidden; any real dtype, cast to
        the dtype of ``images``.

    Returns:
      `[B, H, W, C]` ``images * mask`` in the dtype of ``images``: the observation the generator sees.

    Raises:
      ValueError: either argument is not rank 4, or their statically known B, H, W differ, or the mask's
        channel count is neither 1 nor C.
    """
    images = tf.convert_to_tensor(images)
    mask = tf.convert_to_tensor(mask)
    image_shape = _static_rank_4(images, "images")
    mask_shape = _static_rank_4(mask, "mask")
    if image_shape.rank is not None and mask_shape.rank is not None:
        for axis, label in ((0, "batch"), (1, "height"), (2, "width")):
            a, b = image_shape[axis], mask_shape[axis]
            if a is not None and b is not None and a != b:
                raise ValueError(f"mask {label} {b} does not match images {label} {a} "
                                 f"(images {image_shape.as_list()}, mask {mask_shape.as_list()})")
        c_img, c_mask = image_shape[3], mask_shape[3]
        if c_mask is not None and c_mask != 1 and c_img is not None and c_mask != c_img:
            raise ValueError(f"mask must have 1 or {c_img} channels; got mask shape {mask_shape.as_list()}")
    return images * tf.cast(mask, images.dtype)


def _inside_interval(centres: tf.Tensor, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """Boolean: pixel centre in [low, high). Broadcasts ``centres [N]`` against ``low/high [..., 1]``."""
    return tf.logical_and(centres >= low, centres < high)


def pixel_centres(size: int) -> tf.Tensor:
    """`[size]` float32 pixel-centre positions as fractions of the image side: (i + 0.5) / size."""
    return (tf.range(size, dtype=tf.float32) + 0.5) / float(size)


def box_mask(batch_size, height: int, width: int, box: Sequence[float]) -> tf.Tensor:
    """A fixed rectangular hole, the same for every example.

    A pixel is hidden (0) when its centre ``((i + 0.5) / height, (j + 0.5) / width)`` lies in
    ``[top, bottom) x [left, right)``; every other pixel is visible (1).

    Args:
      batch_size: positive Python int or a scalar integer tensor.
      height, width: positive Python ints, the image size in pixels.
      box: ``(top, left, bottom, right)`` as fractions of the image side, ``0 <= top < bottom <= 1`` and
        ``0 <= left < right <= 1``.

    Returns:
      `[B, height, width, 1]` float32 mask, 1 = visible, 0 = hidden.

    Raises:
      ValueError: a size is not a positive int, or ``box`` is not four ordered fractions in [0, 1].
    """
    batch_size = _batch_size(batch_size)
    height = _positive_int(height, "height")
    width = _positive_int(width, "width")
    try:
        top, left, bottom, right = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be four numbers (top, left, bottom, right); got {box!r}") from None
    if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
        raise ValueError(f"box (top, left, bottom, right) must satisfy 0 <= top < bottom <= 1 and "
                         f"0 <= left < right <= 1; got {tuple(box)!r}")
    rows = _inside_interval(pixel_centres(height), top, bottom)  # [H]
    cols = _inside_interval(pixel_centres(width), left, right)  # [W]
    hidden = tf.logical_and(rows[:, None], cols[None, :])  # [H, W]
    mask = 1.0 - tf.cast(hidden, tf.float32)
    return tf.broadcast_to(mask[None, :, :, None], tf.stack([batch_size, height, width, 1]))


def random_box_masks(seed, batch_size, height: int, width: int, min_frac: float = 0.25,
                     max_frac: float = 0.5) -> tf.Tensor:
    """One random rectangular hole per example, deterministic given ``seed``.

    Each box's height and width fractions are drawn uniformly from ``[min_frac, max_frac)``, its top-left
    corner uniformly so the box stays inside the image; pixels are hidden by the same pixel-centre rule
    as ``box_mask``. Uses ``tf.random.stateless_uniform``: the same seed gives the same masks.

    Args:
      seed: `[2]` integer tensor (int32 or int64), the stateless RNG seed.
      batch_size: positive Python int or a scalar integer tensor.
      height, width: positive Python ints, the image size in pixels.
      min_frac, max_frac: box side range as fractions of the image side, ``0 < min_frac <= max_frac <= 1``.

    Returns:
      `[B, height, width, 1]` float32 masks, 1 = visible, 0 = hidden.

    Raises:
      ValueError: ``seed`` is not of shape [2], a size is not a positive int, or the fractions are out of
        range.
    """
    batch_size = _batch_size(batch_size)
    height = _positive_int(height, "height")
    width = _positive_int(width, "width")
    if not 0.0 < min_frac <= max_frac <= 1.0:
        raise ValueError(f"need 0 < min_frac <= max_frac <= 1; got min_frac={min_frac!r}, "
                         f"max_frac={max_frac!r}")
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise ValueError(f"seed must be an integer tensor of shape [2]; got dtype {seed.dtype.name}")
    if seed.shape.rank is not None and seed.shape.as_list() != [2]:
        raise ValueError(f"seed must have shape [2]; got shape {seed.shape.as_list()}")
    u = tf.random.stateless_uniform(tf.stack([batch_size, 4]), seed=seed, dtype=tf.float32)  # [B, 4]
    box_h = min_frac + (max_frac - min_frac) * u[:, 0:1]  # [B, 1]
    box_w = min_frac + (max_frac - min_frac) * u[:, 1:2]
    top = (1.0 - box_h) * u[:, 2:3]
    left = (1.0 - box_w) * u[:, 3:4]
    rows = _inside_interval(pixel_centres(height)[None, :], top, top + box_h)  # [B, H]
    cols = _inside_interval(pixel_centres(width)[None, :], left, left + box_w)  # [B, W]
    hidden = tf.logical_and(rows[:, :, None], cols[:, None, :])  # [B, H, W]
    return (1.0 - tf.cast(hidden, tf.float32))[..., None]


def _check_shape(tensor: tf.Tensor, expected: Sequence[int | None], name: str, text: str) -> None:
    shape = tensor.shape
    if shape.rank is not None and (shape.rank != len(expected) or any(
            e is not None and s is not None and s != e for s, e in zip(shape.as_list(), expected, strict=True))):
        raise ValueError(f"{name} must have shape {text}; got {shape.as_list()}")


def perspective_render(points: tf.Tensor, rotation: tf.Tensor, translation: tf.Tensor, focal: tf.Tensor,
                       principal_point: tf.Tensor | None = None) -> tf.Tensor:
    """Pose renderer: moves canonical 3D joints into the camera frame and projects them with a pinhole.

    ``X_cam = R @ X + t`` (``to_camera_frame``), then ``x = f * X_cam[:2] / X_cam[2] + c``
    (tensorflow-graphics' ``perspective.project``, which guards the division), in an OpenCV camera frame
    (x right, y down, z forward).

    Args:
      points: `[B, J, 3]` canonical (root-relative) joints, e.g. in millimetres.
      rotation: `[B, 3, 3]` rotation matrices, canonical -> camera.
      translation: `[B, 3]` camera-frame position of the root, same unit as ``points``; z > 0 is in front.
      focal: `[B, 2]` focal lengths (fx, fy) in the unit of the image coordinates.
      principal_point: `[B, 2]` or None (the origin).

    Returns:
      `[B, J, 2]` image coordinates.
    """
    points = tf.convert_to_tensor(points)
    dtype = points.dtype
    rotation, translation, focal = (tf.convert_to_tensor(t, dtype) for t in (rotation, translation, focal))
    _check_shape(points, [None, None, 3], "points", "[B, J, 3]")
    _check_shape(rotation, [None, 3, 3], "rotation", "[B, 3, 3]")
    _check_shape(translation, [None, 3], "translation", "[B, 3]")
    _check_shape(focal, [None, 2], "focal", "[B, 2]")
    if principal_point is None:
        principal_point = tf.zeros_like(focal)
    principal_point = tf.convert_to_tensor(principal_point, dtype)
    _check_shape(principal_point, [None, 2], "principal_point", "[B, 2]")
    # Imported here: tensorflow-graphics adds ~8 s to start-up, which the face tasks never need.
    from tensorflow_graphics.rendering.camera import perspective

    camera = to_camera_frame(points, rotation) + translation[:, None]
    return perspective.project(camera, focal[:, None], principal_point[:, None])


def to_camera_frame(points: tf.Tensor, rotation: tf.Tensor) -> tf.Tensor:
    """`[B, J, 3]` canonical joints -> `[B, J, 3]` the same joints rotated into the camera's axes (no translation):
    the root-relative camera-frame pose that MPJPE compares.

    A batched ``matvec``, not tensorflow-graphics' ``rotation_matrix_3d.rotate``: that one broadcasts to its
    arguments' static batch shape with unknown dimensions taken as 1, so it fails on any batch larger than 1
    in a graph traced with a ``None`` batch (a SavedModel serving signature)."""
    points = tf.convert_to_tensor(points)
    return tf.linalg.matvec(tf.convert_to_tensor(rotation, points.dtype)[:, None], points)
