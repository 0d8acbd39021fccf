"""Network shapes, dtypes under mixed precision, and the residual start of the generator."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf.networks.image import attribute_probe, patch_discriminator, unet_generator


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_generator_and_discriminator_shapes_and_output_dtype(policy):
    g = unet_generator(32, 4, base_filters=8, dtype_policy=policy)
    d = patch_discriminator(32, 3, base_filters=8, dtype_policy=policy)
    x = {"condition": tf.random.uniform([2, 32, 32, 4]), "base": tf.random.uniform([2, 32, 32, 3])}
    y = g(x)
    assert y.shape == (2, 32, 32, 3) and y.dtype == tf.float32
    logits = d(y)
    assert logits.shape == (2, 4, 4, 1) and logits.dtype == tf.float32


def test_generator_starts_near_its_base():
    g = unet_generator(16, 3, base_filters=4, depth=2)
    base = tf.random.uniform([3, 16, 16, 3])
    out = g({"condition": base, "base": base})
    assert float(tf.reduce_max(tf.abs(out - base))) < 0.05


def test_generator_rejects_indivisible_size():
    with pytest.raises(ValueError, match="image_size=20"):
        unet_generator(20, 3, depth=3)


def test_probe_outputs_one_logit_per_attribute():
    p = attribute_probe(32, 7, base_filters=4)
    assert p(np.zeros([2, 32, 32, 3], np.float32)).shape == (2, 7)


def test_spectral_norm_discriminator_runs():
    d = patch_discriminator(16, 3, base_filters=4, depth=2, spectral_norm=True)
    assert d(tf.zeros([1, 16, 16, 3]), training=True).shape == (1, 4, 4, 1)
