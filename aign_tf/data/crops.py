"""The face crop: which part of a photo becomes the model's square input, shared by the CelebA loader (training,
evaluation) and ``--mode=predict``, so a CelebA-aligned photo is cut the same way in both.

``crop`` is a box ``(top, left, height, width)`` in 218x178 aligned-CelebA pixels (scaled to the image's size)
or one of the names in :data:`CROP_MODES`:

* ``celeba``: :data:`CELEBA_CROP`, the box the CelebA loader trains on;
* ``center``: the central square (the whole picture when it is square);
* ``none``: the whole picture, resized to a square (a non-square picture is stretched);
* ``auto``: ``celeba`` for a picture with the aligned CelebA shape (178x218, or the same aspect ratio within
  1 %, e.g. 89x109), ``center`` otherwise: predict's default.

TensorFlow is imported inside the functions that build ops, so :func:`check_crop` (and ``--mode=predict``'s checks
of its arguments) run without it.
"""

from __future__ import annotations

from collections.abc import Sequence

ALIGNED_HEIGHT_PX, ALIGNED_WIDTH_PX = 218, 178
# (top, left, height, width) in the 218x178 aligned image, then resized to 64x64: the square that puts CelebA's
# mean landmarks (aign_tf/data/layout.py: eyes (69, 111) and (108, 111), nose tip (88, 135), mouth corners (72, 152)
# and (105, 152)) where the built-in faces have their features. Those faces had their eyes at row 0.415 and their
# mouth at 0.70 (synthetic_faces GENERATOR_VERSION 2), so the side makes the eye-to-mouth distance, 41 px, 0.285 of
# the image: 41 / 0.285 = 143.9 -> 144; the top puts the eyes (pixel row 111, centre 111.5) at 0.415:
# 111.5 - 0.415 * 144 = 51.7 -> 52; the left centres the point between the eyes (pixel 88.5, centre 89.0):
# 89 - 144 / 2 = 17. On this box the mean eyes fall at row 0.413 and columns 0.365 / 0.635, the nose tip at
# 0.580, the mouth at 0.698 (layout.LAYOUT), and the built-in faces now draw exactly that layout. It keeps the
# face from the forehead to below the chin with the cheeks (rows 52-195, columns 17-160 of the image).
# It replaced (55, 35, 108, 108), the 108x108 centre crop of the DCGAN-style CelebA pipeline
# (carpedm20/DCGAN-tensorflow: `--input_height=108 --crop`), a tighter box on which the mean eyes fell at row
# 0.52, the nose tip at 0.75 and the mouth at 0.90: the mouth_nose hole (rows 0.50-0.90) hid the lower half of
# the eyes and stopped at the mouth line, and a model trained on the built-in faces met real faces 0.11 of the
# image lower and 1.33x larger than it had learnt.
CELEBA_CROP: tuple[int, int, int, int] = (52, 17, 144, 144)
CROP_MODES = ("auto", "celeba", "center", "none")
ASPECT_TOLERANCE = 0.01  # auto: relative difference of height/width from 218/178 still called aligned CelebA


def check_crop(crop: str | Sequence[int]) -> str | tuple[int, int, int, int]:
    """A crop name from CROP_MODES, or a (top, left, height, width) box inside the aligned image; else ValueError."""
    if isinstance(crop, str):
        if crop not in CROP_MODES:
            raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROP_MODES)} or a box "
                             "(top, left, height, width)")
        return crop
    if len(crop) != 4:
        raise ValueError(f"crop={tuple(crop)} must be 4 numbers (top, left, height, width)")
    top, left, height, width = (int(v) for v in crop)
    if (min(top, left) < 0 or min(height, width) < 1 or top + height > ALIGNED_HEIGHT_PX
            or left + width > ALIGNED_WIDTH_PX):
        raise ValueError(f"crop={tuple(crop)} must be (top, left, height, width) inside the "
                         f"{ALIGNED_HEIGHT_PX}x{ALIGNED_WIDTH_PX} aligned CelebA image")
    return top, left, height, width


def is_aligned_celeba(height, width):
    """bool scalar tensor: an image of ``height`` x ``width`` pixels has the aligned CelebA aspect ratio (218:178
    within ASPECT_TOLERANCE)."""
    import tensorflow as tf

    ratio = tf.cast(height, tf.float32) / tf.cast(width, tf.float32)
    target = ALIGNED_HEIGHT_PX / ALIGNED_WIDTH_PX
    return tf.abs(ratio / target - 1.0) <= ASPECT_TOLERANCE


def crop_box(height, width, crop: str | Sequence[int] = CELEBA_CROP):
    """int32 ``[4]`` (top, left, height, width) in the pixels of a ``height`` x ``width`` image: the part ``crop``
    keeps. A box in aligned-image pixels is scaled to the image (its edges rounded, so it never leaves the
    image); ``auto`` picks the ``celeba`` box or the ``center`` square by :func:`is_aligned_celeba`."""
    import tensorflow as tf

    crop = check_crop(crop)
    h, w = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    if crop == "none":
        return tf.stack([0, 0, h, w])
    side = tf.minimum(h, w)
    center = tf.stack([(h - side) // 2, (w - side) // 2, side, side])
    if crop == "center":
        return center
    top, left, box_h, box_w = CELEBA_CROP if isinstance(crop, str) else crop
    scale_y = tf.cast(h, tf.float32) / ALIGNED_HEIGHT_PX
    scale_x = tf.cast(w, tf.float32) / ALIGNED_WIDTH_PX
    # Round the edges, not the sizes, so the scaled box never leaves the image.
    y0, x0, y1, x1 = (tf.cast(tf.round(v), tf.int32) for v in (top * scale_y, left * scale_x,
                                                               (top + box_h) * scale_y, (left + box_w) * scale_x))
    box = tf.stack([y0, x0, tf.maximum(y1 - y0, 1), tf.maximum(x1 - x0, 1)])
    if crop == "auto":
        return tf.where(is_aligned_celeba(h, w), box, center)
    return box


def crop_and_resize(image, image_size: int, crop: str | Sequence[int] = CELEBA_CROP, method: str = "bilinear"):
    """image ``[H, W, C]`` (uint8, or float in [0, 1]) -> float32 ``[S, S, C]`` in [0, 1]: the part ``crop`` keeps
    (see :func:`crop_box`), resized to ``image_size`` with antialiasing (``bilinear``: a widened kernel when
    downsampling; ``nearest`` for masks)."""
    import tensorflow as tf

    shape = tf.shape(image)
    top, left, height, width = tf.unstack(crop_box(shape[0], shape[1], crop))
    cropped = tf.image.crop_to_bounding_box(image, top, left, height, width)
    resized = tf.image.resize(tf.image.convert_image_dtype(cropped, tf.float32), [image_size, image_size],
                              method=method, antialias=method != "nearest")
    resized = tf.clip_by_value(resized, 0.0, 1.0)
    resized.set_shape([image_size, image_size, image.shape[-1]])
    return resized
