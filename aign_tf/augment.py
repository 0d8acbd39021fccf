"""Differentiable augmentation of what an image discriminator sees (DiffAugment: Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training", section 3 and its reference policies).

The same random family of transforms is applied to real and generated images every time the discriminator
sees them, in its own updates and in the generator's adversarial term. Every transform is differentiable in
the images, so the generator's gradient passes through it. The discriminator then cannot memorise the few
thousand images of a biased prior collection; it has to judge what survives the transforms.

All functions take images float [B, H, W, C] in [0, 1] (H, W static) and a stateless seed int [2]; they return
the same shape and dtype. Draws are per image and depend only on the seed.
"""

from __future__ import annotations

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")


def _uniform(seed: tf.Tensor, salt: int, batch: tf.Tensor, dtype, ones: int) -> tf.Tensor:
    """[B] + [1] * ``ones`` uniform in [0, 1), one draw per image."""
    key = tf.random.experimental.stateless_fold_in(seed, salt)
    return tf.cast(tf.random.stateless_uniform(tf.stack([batch] + [1] * ones), key), dtype)


def color(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Brightness shift in [-0.25, 0.25), saturation scale in [0, 2) and contrast scale in [0.5, 1.5) per image
    (DiffAugment's colour policy; its ranges on [-1, 1] images mapped to [0, 1])."""
    b = tf.shape(images)[0]
    x = images + (_uniform(seed, 0, b, images.dtype, 3) - 0.5) * 0.5
    grey = tf.reduce_mean(x, axis=-1, keepdims=True)
    x = (x - grey) * (_uniform(seed, 1, b, images.dtype, 3) * 2.0) + grey
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (_uniform(seed, 2, b, images.dtype, 3) + 0.5) + mean


def translation(images: tf.Tensor, seed: tf.Tensor, ratio: float = 0.125) -> tf.Tensor:
    """Shifts each image by up to ``ratio`` of its side in y and x (whole pixels), repeating the edge pixels
    into the uncovered border (DiffAugment pads with zeros; an edge carries no constant frame that could
    itself become a cue)."""
    b = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    shifts = []
    for salt, side in ((3, h), (4, w)):
        reach = int(side * ratio + 0.5)
        u = _uniform(seed, salt, b, tf.float32, 1)  # [B, 1]
        shift = tf.cast(tf.floor(u * (2 * reach + 1)), tf.int32) - reach
        shifts.append(tf.clip_by_value(tf.range(side)[None, :] - shift, 0, side - 1))  # [B, side]
    rows, cols = shifts
    x = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def cutout(images: tf.Tensor, seed: tf.Tensor, ratio: float = 0.5) -> tf.Tensor:
    """Sets a square of ``ratio`` times the image side, centred anywhere in the image (clipped at the edges),
    to mid grey (0 on DiffAugment's [-1, 1] scale)."""
    b = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    masks = []
    for salt, side in ((5, h), (6, w)):
        size = int(side * ratio + 0.5)
        centre = tf.floor(_uniform(seed, salt, b, tf.float32, 1) * (side + 1 - size % 2))  # [B, 1]
        start = centre - size // 2
        pos = tf.cast(tf.range(side), tf.float32)[None, :]
        masks.append(tf.cast((pos >= start) & (pos < start + size), images.dtype))  # [B, side]
    hole = masks[0][:, :, None, None] * masks[1][:, None, :, None]
    return images * (1.0 - hole) + 0.5 * hole


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def validate_policy(policy) -> tuple[str, ...]:
    """A comma-separated string or a sequence of names -> a tuple of known transform names, else ValueError."""
    names = tuple(p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip())
    unknown = [p for p in names if p not in _TRANSFORMS]
    if unknown:
        raise ValueError(f"--diff_augment={','.join(names)}: unknown transform(s) {unknown}; valid: "
                         f"{', '.join(POLICIES)} (comma-separated, applied in that order)")
    return tuple(p for p in POLICIES if p in names)


def diff_augment(images: tf.Tensor, seed: tf.Tensor, policy) -> tf.Tensor:
    """Applies the transforms named in ``policy`` (in the order colour, translation, cutout), each with its
    own draws from ``seed``. images [B, H, W, C] in [0, 1]; seed int [2]. Returns [B, H, W, C]."""
    for i, name in enumerate(validate_policy(policy)):
        images = _TRANSFORMS[name](images, tf.random.experimental.stateless_fold_in(seed, 100 + i))
    return images
