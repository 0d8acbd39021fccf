"""Network shapes, dtypes under mixed precision, and the residual start of the generator."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf.networks.image import NoiseInjection, attribute_probe, patch_discriminator, unet_generator


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("noise", [False, True])
def test_generator_and_discriminator_shapes_and_output_dtype(policy, noise):
    g = unet_generator(32, 4, base_filters=8, noise=noise, dtype_policy=policy)
    d = patch_discriminator(32, 3, base_filters=8, dtype_policy=policy)
    x = {"condition": tf.random.uniform([2, 32, 32, 4]), "base": tf.random.uniform([2, 32, 32, 3])}
    if noise:
        x["noise"] = tf.random.normal([2, 32, 32, 1])
    y = g(x)
    assert y.shape == (2, 32, 32, 3) and y.dtype == tf.float32
    logits = d(y)
    assert logits.shape == (2, 4, 4, 1) and logits.dtype == tf.float32


def test_generator_starts_near_its_base():
    g = unet_generator(16, 3, base_filters=4, depth=2)
    base = tf.random.uniform([3, 16, 16, 3])
    out = g({"condition": base, "base": base})
    assert float(tf.reduce_max(tf.abs(out - base))) < 0.05


def test_noise_injection_adds_learned_strength_times_noise_at_its_stride():
    layer = NoiseInjection(stride=2)
    x = tf.ones([1, 2, 2, 3])
    noise = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    np.testing.assert_array_equal(layer([x, noise]), x)  # strengths start at 0
    layer.strength.assign([1.0, 0.0, -2.0])
    expected = 1.0 + np.array([[0.0, 2.0], [8.0, 10.0]])[None, :, :, None] * np.array([1.0, 0.0, -2.0])
    np.testing.assert_allclose(layer([x, noise]), expected)


def test_generator_rejects_indivisible_size():
    with pytest.raises(ValueError, match="image_size=20"):
        unet_generator(20, 3, depth=3)


def test_probe_outputs_one_logit_per_attribute():
    p = attribute_probe(32, 7, base_filters=4)
    assert p(np.zeros([2, 32, 32, 3], np.float32)).shape == (2, 7)


def test_spectral_norm_discriminator_runs():
    d = patch_discriminator(16, 3, base_filters=4, depth=2, spectral_norm=True)
    assert d(tf.zeros([1, 16, 16, 3]), training=True).shape == (1, 4, 4, 1)


# --- pose networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_pose_networks_shapes_root_and_dtype(policy):
    from aign_tf.data.skeleton import H36M_17
    from aign_tf.networks.pose import pose_discriminator, pose_generator

    g = pose_generator(17 * 3 + 2, 17, width=32, blocks=1, dtype_policy=policy)
    out = g(tf.random.normal([5, 53]))
    assert out["pose"].shape == (5, 17, 3) and out["rotation_6d"].shape == (5, 6) and out["log_depth"].shape == (5, 1)
    assert all(v.dtype == tf.float32 for v in out.values())
    np.testing.assert_array_equal(out["pose"][:, 0].numpy(), 0.0)  # root-relative by construction
    d = pose_discriminator(H36M_17.parents, width=16, blocks=1, dtype_policy=policy)
    logits = d(out["pose"])
    assert logits.shape == (5, 1) and logits.dtype == tf.float32


def test_skeleton_features_bones_lengths_and_angles():
    from aign_tf.networks.pose import SkeletonFeatures

    parents = (-1, 0, 1)  # a chain of three joints
    pose = np.array([[[0, 0, 0], [0.3, 0, 0], [0.3, 0.4, 0]]], np.float32)
    feats = SkeletonFeatures(parents)(pose).numpy()[0]
    bones = feats[9:15].reshape(2, 3)
    np.testing.assert_allclose(bones, [[0.3, 0, 0], [0, 0.4, 0]], atol=1e-6)
    np.testing.assert_allclose(feats[15:17], [0.3, 0.4], rtol=1e-4)
    kcs = feats[17:].reshape(2, 2)  # cosines between the bones: a right angle
    np.testing.assert_allclose(kcs, np.eye(2), atol=1e-4)
    # Serialisable with its parents.
    layer = SkeletonFeatures.from_config(SkeletonFeatures(parents).get_config())
    assert layer.parents == list(parents)
