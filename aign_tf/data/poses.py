"""Containers and camera sampling shared by every 3D-pose source (built-in procedural, Human3.6M, BVH).

Units and frames (see ``skeleton``): 3D joints in millimetres, root joint 0; canonical poses are
root-relative with +y up; cameras map canonical to an OpenCV frame, ``X_cam = R @ X + t``. Image
coordinates are normalised: the principal point is the origin and the image half-width is 1 (a 1000 px
wide Human3.6M frame with f = 1145 px has focal 2.29).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aign_tf.data.skeleton import Skeleton


@dataclasses.dataclass
class PoseArrays:
    """N photographed poses. Ground truth (``poses``, the camera) is for evaluation and the paired term."""

    poses: np.ndarray  # float32 [N, J, 3] canonical root-relative, mm
    rotation: np.ndarray  # float32 [N, 3, 3] canonical -> camera
    translation: np.ndarray  # float32 [N, 3] camera-frame root position, mm
    focal: np.ndarray  # float32 [N, 2] normalised focal lengths
    joints_2d: np.ndarray  # float32 [N, J, 2] normalised image coordinates (the observation)
    confidence: np.ndarray  # float32 [N, J] in [0, 1]; 0 = joint missing

    def __post_init__(self):
        n = len(self.poses)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if len(value) != n:
                raise ValueError(f"PoseArrays.{field.name} has {len(value)} rows, poses has {n}")

    def __len__(self) -> int:
        return len(self.poses)

    def subset(self, index) -> PoseArrays:
        return PoseArrays(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


@dataclasses.dataclass
class PoseSplits:
    """What a pose task trains and evaluates on."""

    skeleton: Skeleton
    train: PoseArrays  # observations (their 3D is used only by the paired term and training metrics)
    test: PoseArrays  # held out
    prior: np.ndarray  # float32 [M, J, 3] canonical root-relative poses, unpaired with ``train``
    description: str
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> count of rows dropped


def rot_x(a: np.ndarray) -> np.ndarray:
    """[...] angles (radians) -> [..., 3, 3] right-handed rotations about +x (+y turns towards +z)."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    """[...] angles (radians) -> [..., 3, 3] right-handed rotations about +y (+z turns towards +x)."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    """[...] angles (radians) -> [..., 3, 3] right-handed rotations about +z (+x turns towards +y)."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


# Canonical (+y up, subject facing +z) to an OpenCV camera in front of the subject looking back at it:
# camera y points down (-y), z forward (-z); x = y cross z stays +x.
_FRONT = np.diag([1.0, -1.0, -1.0])


def look_at_rotation(azimuth: np.ndarray, elevation: np.ndarray, roll: np.ndarray | None = None) -> np.ndarray:
    """float32 [N, 3, 3] rotations of cameras circling the subject: azimuth (rad) about the vertical axis
    (0 = in front of the subject), elevation (rad, > 0 = above, looking down), roll (rad) about the optical axis."""
    azimuth, elevation = np.asarray(azimuth, np.float64), np.asarray(elevation, np.float64)
    roll = np.zeros_like(azimuth) if roll is None else np.asarray(roll, np.float64)
    rot = rot_z(roll) @ rot_x(elevation) @ _FRONT @ rot_y(-azimuth)
    return rot.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CameraRanges:
    distance_mm: tuple[float, float] = (3500.0, 6500.0)
    elevation_deg: tuple[float, float] = (-10.0, 35.0)
    roll_deg: float = 5.0
    focal: tuple[float, float] = (2.0, 2.6)
    centre_offset: float = 0.15  # the root projects within this normalised distance of the centre


def sample_cameras(rng: np.random.Generator, n: int, ranges: CameraRanges = CameraRanges()
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random cameras around a subject: (rotation [n, 3, 3], translation [n, 3] mm, focal [n, 2]), float32.
    Azimuth is uniform over the full circle."""
    azimuth = rng.uniform(0.0, 2 * np.pi, n)
    elevation = np.deg2rad(rng.uniform(*ranges.elevation_deg, n))
    roll = np.deg2rad(rng.uniform(-ranges.roll_deg, ranges.roll_deg, n))
    rotation = look_at_rotation(azimuth, elevation, roll)
    distance = rng.uniform(*ranges.distance_mm, n)
    f = rng.uniform(*ranges.focal, n)
    centre = rng.uniform(-ranges.centre_offset, ranges.centre_offset, (n, 2))
    translation = np.concatenate([centre * (distance / f)[:, None], distance[:, None]], 1)
    return rotation, translation.astype(np.float32), np.stack([f, f], 1).astype(np.float32)


def photograph(poses: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: np.ndarray,
               confidence: np.ndarray | None = None) -> PoseArrays:
    """Project canonical poses [N, J, 3] through cameras with the package's renderer -> PoseArrays."""
    from aign_tf import renderers  # TensorFlow only when photographing

    joints_2d = np.concatenate([
        renderers.perspective_render(poses[i:i + 4096], rotation[i:i + 4096], translation[i:i + 4096],
                                     focal[i:i + 4096]).numpy()
        for i in range(0, len(poses), 4096)]) if len(poses) else np.zeros((0, poses.shape[1], 2), np.float32)
    if confidence is None:
        confidence = np.ones(poses.shape[:2], np.float32)
    return PoseArrays(poses=poses.astype(np.float32), rotation=rotation.astype(np.float32),
                      translation=translation.astype(np.float32), focal=focal.astype(np.float32),
                      joints_2d=joints_2d.astype(np.float32), confidence=confidence.astype(np.float32))


def valid_rows(poses: np.ndarray, num_joints: int) -> tuple[np.ndarray, dict[str, int]]:
    """Rows of a [N, J', 3] array fit to use: bool [N] and {reason: count} of the rest (non-finite joints).
    A wrong joint count rejects the whole array (``ValueError`` naming both counts)."""
    poses = np.asarray(poses)
    if poses.ndim != 3 or poses.shape[1:] != (num_joints, 3):
        raise ValueError(f"expected poses of shape [N, {num_joints}, 3]; got {list(poses.shape)}")
    finite = np.isfinite(poses).all(axis=(1, 2))
    skipped = {"non-finite joints": int((~finite).sum())} if (~finite).any() else {}
    return finite, skipped


def root_relative(poses: np.ndarray) -> np.ndarray:
    """[..., J, 3] -> the same with joint 0 moved to the origin."""
    return poses - poses[..., :1, :]
