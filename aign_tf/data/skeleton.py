"""Skeleton definitions (data, not code): joint names, the kinematic tree and the left/right pairs.

Networks and losses never hard-code a skeleton: they take ``Skeleton.num_joints`` and ``Skeleton.parents``
(bone vectors = joint - parent joint). The default is the 17-joint Human3.6M layout used by the widely
used preprocessed Human3.6M files (VideoPose3D / Martinez et al. "17 of 32" joints).

Conventions for every 3D pose array in the package: float32 ``[..., J, 3]`` in millimetres; joint 0 is the
root (pelvis). "Canonical" poses are root-relative in a body frame with +y up (gravity along -y); "camera"
poses are in an OpenCV camera frame (x right, y down, z forward), ``X_cam = R @ X_canonical + t``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Skeleton:
    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]  # parent index per joint, -1 for the root (joint 0)
    left: tuple[int, ...]  # joints on the subject's left, paired index-by-index with ``right``
    right: tuple[int, ...]

    def __post_init__(self):
        n = len(self.joint_names)
        if len(self.parents) != n:
            raise ValueError(f"skeleton {self.name!r}: {len(self.parents)} parents for {n} joints")
        if self.parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(self.parents) if i):
            raise ValueError(f"skeleton {self.name!r}: parents must be -1 for joint 0 and point to an earlier "
                             f"joint otherwise; got {self.parents}")
        if len(self.left) != len(self.right):
            raise ValueError(f"skeleton {self.name!r}: {len(self.left)} left joints vs {len(self.right)} right")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) pairs, one per non-root joint."""
        return tuple((p, i) for i, p in enumerate(self.parents) if p >= 0)

    def index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"skeleton {self.name!r} has no joint {name!r}; joints: "
                             f"{', '.join(self.joint_names)}") from None

    def flip_permutation(self) -> np.ndarray:
        """Joint permutation that swaps left and right (for mirroring a pose)."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm


H36M_17 = Skeleton(
    name="h36m17",
    joint_names=("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax", "Neck",
                 "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist"),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
)
