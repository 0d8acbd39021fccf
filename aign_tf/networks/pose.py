"""Pose networks: a residual MLP lifting 2D joints to a 3D skeleton and a camera, and a structure-aware
discriminator over 3D skeletons.

Neither hard-codes a skeleton: they take the joint count and the parent list (``Skeleton.parents``).
Builders take a Keras ``dtype_policy``; the output layers compute in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

# Poses enter the networks in metres (millimetres / POSE_SCALE), so activations stay near unit scale.
POSE_SCALE = 1000.0


def _residual_mlp(x, width: int, blocks: int, dropout: float, policy: str, prefix: str):
    x = layers.Dense(width, dtype=policy, name=f"{prefix}_in")(x)
    for i in range(blocks):
        h = x
        for j in range(2):
            h = layers.LayerNormalization(dtype=policy, name=f"{prefix}{i}_norm{j}")(h)
            h = layers.LeakyReLU(0.2, dtype=policy)(h)
            if dropout:
                h = layers.Dropout(dropout, dtype=policy)(h)
            h = layers.Dense(width, dtype=policy, name=f"{prefix}{i}_dense{j}")(h)
        x = layers.Add(dtype=policy)([x, h])
    x = layers.LayerNormalization(dtype=policy, name=f"{prefix}_out_norm")(x)
    return layers.LeakyReLU(0.2, dtype=policy)(x)


def pose_generator(num_features: int, num_joints: int, width: int = 512, blocks: int = 2, dropout: float = 0.0,
                   dtype_policy: str = "float32", name: str = "generator") -> keras.Model:
    """Residual MLP (after Martinez et al. 2017, "A simple yet effective baseline for 3d human pose
    estimation") with three heads.

    Input ``features``: `[B, F]` (the task's normalised 2D joints, confidences and root ray).
    Outputs (float32):
      pose: `[B, J, 3]` canonical root-relative joints in metres (joint 0 is exactly the origin),
      rotation_6d: `[B, 6]` two 3-vectors, orthonormalised into the camera rotation by the task,
      log_depth: `[B, 1]` log of the root's camera distance relative to a nominal distance.
    The heads start near zero / the identity rotation so training starts from a small pose in front of the
    camera.
    """
    inp = keras.Input((num_features,), name="features")
    x = _residual_mlp(inp, width, blocks, dropout, dtype_policy, "trunk")
    small = keras.initializers.RandomNormal(stddev=1e-3)
    joints = layers.Dense((num_joints - 1) * 3, dtype="float32", kernel_initializer=small, name="pose_head")(x)
    joints = layers.Reshape((num_joints - 1, 3), dtype="float32")(joints)
    pose = layers.Concatenate(axis=1, dtype="float32", name="pose")([ops.zeros_like(joints[:, :1]), joints])
    rot = layers.Dense(6, dtype="float32", kernel_initializer=small,
                       bias_initializer=keras.initializers.Constant([1, 0, 0, 0, 1, 0]), name="rotation_6d")(x)
    depth = layers.Dense(1, dtype="float32", kernel_initializer=small, name="log_depth")(x)
    return keras.Model(inp, {"pose": pose, "rotation_6d": rot, "log_depth": depth}, name=name)


@keras.saving.register_keras_serializable(package="aign_tf")
class SkeletonFeatures(layers.Layer):
    """Structure-aware view of a skeleton: `[B, J, 3]` (metres) -> `[B, F]`, the concatenation of
    joint coordinates (J*3), bone vectors child - parent ((J-1)*3), bone lengths (J-1) and the
    kinematic-chain-space matrix of unit bone directions (Wandt & Rosenhahn 2019, "RepNet"): the cosines of
    the angles between every pair of bones ((J-1)^2), which carry joint angles and symmetry."""

    def __init__(self, parents: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.parents = [int(p) for p in parents]
        children = [i for i, p in enumerate(self.parents) if p >= 0]
        self._child = np.array(children, np.int32)
        self._parent = np.array([self.parents[i] for i in children], np.int32)

    def call(self, pose):
        bones = ops.take(pose, self._child, axis=1) - ops.take(pose, self._parent, axis=1)  # [B, J-1, 3]
        lengths = ops.sqrt(ops.sum(ops.square(bones), axis=-1) + 1e-8)  # [B, J-1]
        unit = bones / lengths[..., None]
        kcs = ops.matmul(unit, ops.transpose(unit, (0, 2, 1)))  # [B, J-1, J-1]
        flat = lambda t: ops.reshape(t, (ops.shape(t)[0], -1))  # noqa: E731
        return ops.concatenate([flat(pose), flat(bones), lengths, flat(kcs)], axis=-1)

    def compute_output_shape(self, input_shape):
        j = input_shape[1]
        return (input_shape[0], j * 3 + (j - 1) * 4 + (j - 1) ** 2)

    def get_config(self):
        return {**super().get_config(), "parents": self.parents}


def pose_discriminator(parents: Sequence[int], width: int = 256, blocks: int = 2, dtype_policy: str = "float32",
                       name: str = "discriminator") -> keras.Model:
    """Discriminator over canonical 3D skeletons: `[B, J, 3]` metres -> logits `[B, 1]` float32, a residual MLP
    on ``SkeletonFeatures``."""
    inp = keras.Input((len(parents), 3), name="pose")
    x = SkeletonFeatures(parents, dtype="float32", name="skeleton_features")(inp)
    x = _residual_mlp(x, width, blocks, 0.0, dtype_policy, "disc")
    logits = layers.Dense(1, dtype="float32", name="logits")(x)
    return keras.Model(inp, logits, name=name)
