"""The built-in procedural 3D poses: a parametric articulated skeleton posed by forward kinematics.

It needs no download and is the default data of the ``pose3d`` task. Everything is vectorised NumPy over a
batch of poses: 50,000 poses take about a second on one core.

Subjects. A subject is a set of bone lengths drawn from ``(seed, subject id)``: a stature (``height``,
normal 1690 +- 90 mm clipped to [1500, 1950]) scales Human3.6M-like reference proportions (pelvis
half-width 130, thigh 450, shin 440, lumbar 230, thoracic 250, neck 120, head 115, clavicle 165, upper arm
280, forearm 250 mm for a 1673 mm stature), then every bone group is jittered by a factor of about
1 +- 3 % (at most 8 %). Left and right share their factors, so every subject is left/right symmetric.

Poses. Each pose has 30 joint angles (degrees; the names are the keys of ``LIMITS``): per side hip
flexion/abduction/twist, knee flexion, clavicle elevation/protraction, shoulder flexion/abduction/twist and
elbow flexion; lumbar and thoracic flexion/side bend/twist; neck flexion/side bend/twist and head flexion.
Signs: flexion > 0 moves a limb forward (hip, shoulder), bends the knee backwards and the elbow forwards,
leans the trunk or the head forwards; abduction > 0 moves a limb away from the midline; twist > 0 is an
external (outward) rotation for limbs and a turn to the subject's left for the trunk and neck; side bend
> 0 is towards the subject's left. Each pose family has its own angle distribution plus random variation:

  * ``standing``: nearly straight legs, relaxed arms, small trunk and head motion;
  * ``walking``: a gait cycle (phase uniform, speed 0.6-1.3): hips swing +-22 deg, the swing knee flexes up
    to ~60 deg, arms swing opposite to the legs, the thorax counter-rotates;
  * ``sitting``: on a chair, hips ~88 deg and knees ~90 deg, hands on the lap;
  * ``reaching``: one or both arms raised forward to overhead with nearly straight elbows;
  * ``crouching``: hips 95-120 deg, knees 110-145 deg (one depth for both legs), the trunk leaning ~40 deg
    forward.

Every angle is then clipped to its anatomical range (``LIMITS``): knees and elbows bend one way only
(0-155 and 0-150 deg), hip and shoulder ranges are limited, lumbar/thoracic bend and twist are small. The
pelvis (the root frame) is never rotated: poses are canonical (+y up, the subject facing +z, +x the
subject's left; see ``skeleton``) with no body yaw, the camera azimuth supplies the viewpoint. Joint 0
(Hip) is at the origin; arrays are float32 millimetres.

Forward kinematics: every non-root joint j has a rest offset (a direction times the subject's bone length,
in its parent's frame) and a local rotation L_j of its incoming bone; G_j = G_parent @ L_j and
X_j = X_parent + G_j @ offset_j. The angle-to-rotation map is specific to the 17-joint Human3.6M layout
(``skeleton.H36M_17``), the only skeleton supported here.

Determinism: poses come in chunks of ``CHUNK_SIZE``, chunk c drawn from
``np.random.SeedSequence([seed, 0, stream, c])``; a whole chunk is always drawn (all five families' angles
for every pose, the family then picked per pose), so pose i of a seed is the same whatever n is, and a
pose's angles do not depend on which families are enabled. Subject bodies come from
``SeedSequence([seed, 1, subject, 0])``, cameras and 2D noise of ``load_or_generate`` from
``SeedSequence([seed, 2, stream, c])``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from aign_tf import formats
from aign_tf.data import poses as poses_lib
from aign_tf.data.poses import PoseArrays, PoseSplits
from aign_tf.data.skeleton import H36M_17, Skeleton

POSE_FAMILIES = ("standing", "walking", "sitting", "reaching", "crouching")
GENERATOR_VERSION = 1  # bump whenever the bodies, the angle sampling or the cameras change: it keys the cache
CHUNK_SIZE = 1024
DEFAULT_NUM_SUBJECTS = (24, 8, 24)  # train, test, prior: disjoint id ranges, in this order
DEFAULT_NOISE_2D = 0.004  # normalised image units: ~2 px on a 1000 px wide image

# ------------------------------------------------------------------------------------------------ bodies

# Per joint of H36M_17: (bone group, unit rest direction of the incoming bone in the parent frame). The
# right side is the mirror image (x -> -x) of the left. Bone groups share one length (and one jitter).
_REST = {
    "RHip": ("pelvis", (-1.0, -0.05, 0.0)),
    "RKnee": ("thigh", (0.0, -1.0, 0.0)),
    "RFoot": ("shin", (0.0, -1.0, 0.0)),
    "LHip": ("pelvis", (1.0, -0.05, 0.0)),
    "LKnee": ("thigh", (0.0, -1.0, 0.0)),
    "LFoot": ("shin", (0.0, -1.0, 0.0)),
    "Spine": ("lumbar", (0.0, 1.0, 0.0)),
    "Thorax": ("thoracic", (0.0, 1.0, 0.03)),
    "Neck": ("neck", (0.0, 1.0, 0.45)),  # the H36M "Neck/Nose" point sits in front of the thorax line
    "Head": ("head", (0.0, 1.0, -0.2)),
    "LShoulder": ("clavicle", (1.0, -0.12, -0.05)),
    "LElbow": ("upper_arm", (0.0, -1.0, 0.0)),
    "LWrist": ("forearm", (0.0, -1.0, 0.0)),
    "RShoulder": ("clavicle", (-1.0, -0.12, -0.05)),
    "RElbow": ("upper_arm", (0.0, -1.0, 0.0)),
    "RWrist": ("forearm", (0.0, -1.0, 0.0)),
}
# Reference bone lengths (mm), roughly the average Human3.6M subject.
_REFERENCE_MM = {"pelvis": 130.0, "thigh": 450.0, "shin": 440.0, "lumbar": 230.0, "thoracic": 250.0,
                 "neck": 120.0, "head": 115.0, "clavicle": 165.0, "upper_arm": 280.0, "forearm": 250.0}
_GROUPS = tuple(_REFERENCE_MM)
_ANKLE_MM = 75.0  # sole to ankle joint, added to the joint span to get a stature
_HEIGHT_MM = (1690.0, 90.0, 1500.0, 1950.0)  # mean, std, min, max of the subjects' stature
_PROPORTION_STD, _PROPORTION_MAX = 0.03, 0.08


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def _rest_directions() -> tuple[np.ndarray, np.ndarray]:
    """(unit directions float64 [J, 3] of every joint's incoming bone (zeros for the root), bone-group index
    int [J] (-1 for the root))."""
    names = H36M_17.joint_names
    dirs, groups = np.zeros((len(names), 3)), np.full(len(names), -1)
    for j, name in enumerate(names[1:], 1):
        group, direction = _REST[name]
        dirs[j], groups[j] = _unit(direction), _GROUPS.index(group)
    return dirs, groups


_DIRS, _BONE_GROUP = _rest_directions()


def _reference_stature() -> float:
    """Stature (mm) of the reference body: rest-pose span from the feet to the head joint plus the ankle."""
    length = np.array([_REFERENCE_MM[g] for g in _GROUPS])
    y = lambda *joints: sum(_DIRS[H36M_17.index(j)][1] * length[_BONE_GROUP[H36M_17.index(j)]] for j in joints)
    return y("Spine", "Thorax", "Neck", "Head") - y("LHip", "LKnee", "LFoot") + _ANKLE_MM


_REFERENCE_STATURE = _reference_stature()


def _subject_bodies(seed: int, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stature float64 [S] mm, bone-group lengths float64 [S, len(_GROUPS)] mm) of the given subject ids."""
    mean, std, lo, hi = _HEIGHT_MM
    height = np.empty(len(subjects))
    lengths = np.empty((len(subjects), len(_GROUPS)))
    reference = np.array([_REFERENCE_MM[g] for g in _GROUPS])
    for k, subject in enumerate(subjects):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1, int(subject), 0]))
        height[k] = np.clip(rng.normal(mean, std), lo, hi)
        jitter = np.clip(rng.normal(0.0, _PROPORTION_STD, len(_GROUPS)), -_PROPORTION_MAX, _PROPORTION_MAX)
        lengths[k] = reference * (height[k] / _REFERENCE_STATURE) * (1.0 + jitter)
    return height, lengths


# ------------------------------------------------------------------------------------------------ angles

# Anatomical ranges (degrees) of every angle; names without the _L / _R suffix apply to both sides.
LIMITS: dict[str, tuple[float, float]] = {
    "hip_flex": (-25.0, 135.0), "hip_abd": (-20.0, 50.0), "hip_twist": (-40.0, 45.0), "knee": (0.0, 155.0),
    "clav_elev": (-10.0, 25.0), "clav_prot": (-15.0, 20.0),
    "sh_flex": (-50.0, 180.0), "sh_abd": (-20.0, 130.0), "sh_twist": (-70.0, 70.0), "elbow": (0.0, 150.0),
    "lumbar_flex": (-20.0, 45.0), "lumbar_side": (-15.0, 15.0), "lumbar_twist": (-15.0, 15.0),
    "thoracic_flex": (-15.0, 35.0), "thoracic_side": (-15.0, 15.0), "thoracic_twist": (-20.0, 20.0),
    "neck_flex": (-40.0, 50.0), "neck_side": (-30.0, 30.0), "neck_twist": (-60.0, 60.0),
    "head_flex": (-20.0, 20.0),
}
_SIDED = ("hip_flex", "hip_abd", "hip_twist", "knee", "clav_elev", "clav_prot", "sh_flex", "sh_abd", "sh_twist",
          "elbow")
ANGLE_NAMES: tuple[str, ...] = tuple(f"{a}_{s}" for s in "LR" for a in _SIDED) + tuple(
    a for a in LIMITS if a not in _SIDED)


class _Draw:
    """Normal / uniform draws of ``count`` values from one generator (the order of calls is the stream)."""

    def __init__(self, rng: np.random.Generator, count: int):
        self.rng, self.count = rng, count

    def n(self, mean, std) -> np.ndarray:
        return self.rng.normal(mean, std, self.count)

    def u(self, lo, hi) -> np.ndarray:
        return self.rng.uniform(lo, hi, self.count)

    def folded(self, mean, std) -> np.ndarray:
        """|normal|: for one-sided angles near their limit (a straight knee) without a pile-up at 0."""
        return np.abs(self.n(mean, std))


def _trunk_and_head(d: _Draw, a: dict, lumbar=(2.0, 4.0), thoracic=(2.0, 4.0), side=3.0, twist=4.0,
                    neck=(5.0, 8.0), neck_twist=15.0) -> None:
    a["lumbar_flex"], a["lumbar_side"], a["lumbar_twist"] = d.n(*lumbar), d.n(0, side), d.n(0, twist)
    a["thoracic_flex"], a["thoracic_side"], a["thoracic_twist"] = d.n(*thoracic), d.n(0, side), d.n(0, twist)
    a["neck_flex"], a["neck_side"], a["neck_twist"] = d.n(*neck), d.n(0, 6.0), d.n(0, neck_twist)
    a["head_flex"] = d.n(0.0, 6.0)


def _relaxed_arm(d: _Draw, a: dict, s: str, flex=(5.0, 12.0), abd=(10.0, 6.0), twist=(0.0, 15.0),
                 elbow=(15.0, 12.0)) -> None:
    a[f"clav_elev_{s}"], a[f"clav_prot_{s}"] = d.n(0.0, 3.0), d.n(0.0, 4.0)
    a[f"sh_flex_{s}"], a[f"sh_abd_{s}"], a[f"sh_twist_{s}"] = d.n(*flex), d.n(*abd), d.n(*twist)
    a[f"elbow_{s}"] = d.folded(*elbow)


def _standing_leg(d: _Draw, a: dict, s: str) -> None:
    a[f"hip_flex_{s}"], a[f"hip_abd_{s}"], a[f"hip_twist_{s}"] = d.n(3.0, 6.0), d.n(5.0, 3.0), d.n(5.0, 8.0)
    a[f"knee_{s}"] = d.folded(3.0, 6.0)


def _standing(d: _Draw) -> dict[str, np.ndarray]:
    a: dict[str, np.ndarray] = {}
    for s in "LR":
        _standing_leg(d, a, s)
        _relaxed_arm(d, a, s)
    _trunk_and_head(d, a)
    return a


def _walking(d: _Draw) -> dict[str, np.ndarray]:
    a: dict[str, np.ndarray] = {}
    phase, speed = d.u(0.0, 2 * np.pi), d.u(0.6, 1.3)
    for s, leg_phase in (("L", phase), ("R", phase + np.pi)):
        # Hip flexion peaks at heel strike (leg_phase = pi/2); the swing knee flexes most just after toe-off.
        a[f"hip_flex_{s}"] = 8.0 + 22.0 * speed * np.sin(leg_phase) + d.n(0.0, 3.0)
        a[f"hip_abd_{s}"], a[f"hip_twist_{s}"] = d.n(4.0, 2.5), d.n(5.0, 6.0)
        swing = np.maximum(np.cos(leg_phase + 0.5), 0.0) ** 2
        a[f"knee_{s}"] = 4.0 + (38.0 + 18.0 * speed) * swing + d.folded(0.0, 4.0)
        # Each arm swings with the opposite leg: forward when that leg is forward.
        _relaxed_arm(d, a, s, flex=(0.0, 4.0), abd=(8.0, 4.0), elbow=(12.0, 6.0))
        a[f"sh_flex_{s}"] += 4.0 - 20.0 * speed * np.sin(leg_phase)
        a[f"elbow_{s}"] += 0.5 * np.maximum(a[f"sh_flex_{s}"], 0.0)
    _trunk_and_head(d, a, lumbar=(4.0, 3.0), thoracic=(2.0, 3.0), twist=2.0, neck_twist=8.0)
    a["thoracic_twist"] += 6.0 * speed * np.sin(phase)  # the thorax turns with the forward (right) arm
    a["neck_twist"] -= a["thoracic_twist"]  # the head keeps looking ahead
    return a


def _sitting(d: _Draw) -> dict[str, np.ndarray]:
    a: dict[str, np.ndarray] = {}
    knee_mean = d.n(90.0, 14.0)  # the chair height and the foot placement, shared by both legs
    for s in "LR":
        a[f"hip_flex_{s}"], a[f"hip_abd_{s}"], a[f"hip_twist_{s}"] = d.n(88.0, 7.0), d.n(10.0, 6.0), d.n(0.0, 10.0)
        a[f"knee_{s}"] = knee_mean + d.n(0.0, 8.0)
        _relaxed_arm(d, a, s, flex=(20.0, 14.0), abd=(10.0, 8.0), twist=(-20.0, 15.0), elbow=(50.0, 18.0))
    _trunk_and_head(d, a, lumbar=(-4.0, 7.0), thoracic=(6.0, 6.0), neck=(10.0, 10.0), neck_twist=20.0)
    return a


def _reaching(d: _Draw) -> dict[str, np.ndarray]:
    a: dict[str, np.ndarray] = {}
    which = d.u(0.0, 3.0)  # [0, 1): left arm, [1, 2): right arm, [2, 3): both
    target = d.u(60.0, 175.0)  # shoulder flexion of the reach: forward (~90) to overhead (~170)
    for s, reaching in (("L", (which < 1) | (which >= 2)), ("R", which >= 1)):
        _standing_leg(d, a, s)
        _relaxed_arm(d, a, s)
        a[f"hip_flex_{s}"] += d.n(0.0, 6.0)  # a step forward or back
        reach_flex, reach_abd, reach_elbow = target + d.n(0.0, 8.0), d.n(12.0, 14.0), d.folded(0.0, 12.0)
        a[f"sh_flex_{s}"] = np.where(reaching, reach_flex, a[f"sh_flex_{s}"])
        a[f"sh_abd_{s}"] = np.where(reaching, reach_abd, a[f"sh_abd_{s}"])
        a[f"elbow_{s}"] = np.where(reaching, reach_elbow, a[f"elbow_{s}"])
        a[f"clav_elev_{s}"] = a[f"clav_elev_{s}"] + np.where(reaching, np.clip(target - 90.0, 0.0, None) / 8.0, 0.0)
        a[f"clav_prot_{s}"] = a[f"clav_prot_{s}"] + np.where(reaching, 8.0, 0.0)
    _trunk_and_head(d, a, lumbar=(3.0, 6.0), thoracic=(0.0, 5.0), side=5.0, twist=7.0, neck=(-5.0, 10.0))
    return a


def _crouching(d: _Draw) -> dict[str, np.ndarray]:
    a: dict[str, np.ndarray] = {}
    depth = d.u(0.0, 1.0)  # how deep: shared by both legs
    for s in "LR":
        a[f"hip_flex_{s}"] = 95.0 + 25.0 * depth + d.n(0.0, 5.0)
        a[f"hip_abd_{s}"], a[f"hip_twist_{s}"] = d.n(20.0, 8.0), d.n(10.0, 10.0)
        a[f"knee_{s}"] = 110.0 + 35.0 * depth + d.n(0.0, 5.0)
        _relaxed_arm(d, a, s, flex=(50.0, 22.0), abd=(15.0, 10.0), twist=(-10.0, 15.0), elbow=(45.0, 25.0))
    _trunk_and_head(d, a, lumbar=(25.0, 9.0), thoracic=(15.0, 7.0), neck=(-20.0, 10.0))
    return a


_SAMPLERS: dict[str, Callable[[_Draw], dict[str, np.ndarray]]] = {
    "standing": _standing, "walking": _walking, "sitting": _sitting, "reaching": _reaching,
    "crouching": _crouching}
assert tuple(_SAMPLERS) == POSE_FAMILIES


def clip_to_limits(angles: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clips every angle (degrees) to its range in ``LIMITS`` (looked up without the _L / _R suffix)."""
    out = {}
    for name, value in angles.items():
        base = name[:-2] if name[-2:] in ("_L", "_R") else name
        out[name] = np.clip(value, *LIMITS[base])
    return out


def _sample_angles(rng: np.random.Generator, family: np.ndarray) -> dict[str, np.ndarray]:
    """Joint angles (degrees, clipped to ``LIMITS``) of len(family) poses, family = indices into
    POSE_FAMILIES. Every family's angles are drawn for every pose (a fixed number of draws), then picked."""
    d = _Draw(rng, len(family))
    drawn = [_SAMPLERS[name](d) for name in POSE_FAMILIES]
    return clip_to_limits({name: np.choose(family, [a[name] for a in drawn]) for name in ANGLE_NAMES})


# --------------------------------------------------------------------------------------- kinematics

def _rot_x(deg):
    return poses_lib.rot_x(np.deg2rad(deg))


def _rot_y(deg):
    return poses_lib.rot_y(np.deg2rad(deg))


def _rot_z(deg):
    return poses_lib.rot_z(np.deg2rad(deg))


def _local_rotations(angles: dict[str, np.ndarray]) -> np.ndarray:
    """float64 [N, J, 3, 3]: the rotation of every joint's incoming bone in its parent frame (identity for
    the root and the two hip offsets: the pelvis is not rotated). Right-side rotations are the mirror
    images (x -> -x: rot_y and rot_z angles negated) of the left-side ones, so equal left and right angles
    give a mirror-symmetric pose."""
    n = len(angles["knee_L"])
    local = np.broadcast_to(np.eye(3), (n, H36M_17.num_joints, 3, 3)).copy()
    j = H36M_17.index
    for s, m in (("L", 1.0), ("R", -1.0)):
        a = {k[:-2]: v for k, v in angles.items() if k.endswith("_" + s)}
        local[:, j(s + "Knee")] = _rot_x(-a["hip_flex"]) @ _rot_z(m * a["hip_abd"]) @ _rot_y(m * a["hip_twist"])
        local[:, j(s + "Foot")] = _rot_x(a["knee"])
        clavicle = _rot_y(-m * a["clav_prot"]) @ _rot_z(m * a["clav_elev"])
        local[:, j(s + "Shoulder")] = clavicle
        # Shoulder angles are relative to the thorax, not to the clavicle: undo the clavicle rotation.
        shoulder = _rot_x(-a["sh_flex"]) @ _rot_z(m * a["sh_abd"]) @ _rot_y(m * a["sh_twist"])
        local[:, j(s + "Elbow")] = np.swapaxes(clavicle, -1, -2) @ shoulder
        local[:, j(s + "Wrist")] = _rot_x(-a["elbow"])
    for joint, part in (("Spine", "lumbar"), ("Thorax", "thoracic"), ("Neck", "neck")):
        local[:, j(joint)] = (_rot_y(angles[part + "_twist"]) @ _rot_x(angles[part + "_flex"])
                              @ _rot_z(-angles[part + "_side"]))
    local[:, j("Head")] = _rot_x(angles["head_flex"])
    return local


def forward_kinematics(parents: Sequence[int], offsets: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Joint positions [N, J, 3] (root at the origin) from rest offsets [N, J, 3] (each joint's incoming
    bone in its parent frame; row 0 unused) and local bone rotations [N, J, 3, 3]:
    G_j = G_parent @ L_j, X_j = X_parent + G_j @ offset_j, G_root = L_root."""
    n, num_joints = offsets.shape[:2]
    glob = np.empty((n, num_joints, 3, 3))
    pos = np.zeros((n, num_joints, 3))
    glob[:, 0] = local[:, 0]
    for j in range(1, num_joints):
        p = parents[j]
        glob[:, j] = glob[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + np.einsum("nab,nb->na", glob[:, j], offsets[:, j])
    return pos


def pose_from_angles(angles: dict[str, np.ndarray], bone_lengths: np.ndarray) -> np.ndarray:
    """float64 [N, 17, 3] canonical root-relative H36M_17 poses (mm) from angles (degrees, ANGLE_NAMES,
    each [N]; not clipped here) and bone-group lengths [N, len(_GROUPS)] mm."""
    lengths = np.where(_BONE_GROUP >= 0, bone_lengths[:, np.maximum(_BONE_GROUP, 0)], 0.0)  # [N, J]
    offsets = _DIRS[None] * lengths[..., None]
    return forward_kinematics(H36M_17.parents, offsets, _local_rotations(angles))


# ------------------------------------------------------------------------------------------------ public

def _check_skeleton(skeleton: Skeleton) -> None:
    if not isinstance(skeleton, Skeleton):
        raise ValueError(f"skeleton must be a Skeleton, got {type(skeleton).__name__}")
    same = (skeleton.joint_names, skeleton.parents, skeleton.left, skeleton.right) == (
        H36M_17.joint_names, H36M_17.parents, H36M_17.left, H36M_17.right)
    if not same:
        raise ValueError(f"the procedural pose generator only supports the 17-joint Human3.6M layout "
                         f"({H36M_17.name!r}); got skeleton {skeleton.name!r} with joints "
                         f"{', '.join(skeleton.joint_names)}")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}={value!r}: expected a non-negative integer")


def _check_families(families) -> np.ndarray:
    """families (names) -> int indices into POSE_FAMILIES."""
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    unknown = [f for f in families if f not in POSE_FAMILIES]
    if not families or unknown or len(set(families)) != len(families):
        raise ValueError(f"families={families!r}: expected distinct names among {', '.join(POSE_FAMILIES)}")
    return np.array([POSE_FAMILIES.index(f) for f in families])


def generate_poses(n: int, seed: int, families: Sequence[str] = POSE_FAMILIES, skeleton: Skeleton = H36M_17, *,
                   subjects: Sequence[int] = range(16), stream: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws n canonical poses: (poses float32 [n, 17, 3] mm root-relative, subject_ids int32 [n],
    family int32 [n] = index into POSE_FAMILIES).

    Each pose picks its family uniformly among ``families`` and its subject uniformly among ``subjects``
    (ids; a subject's bones depend only on (seed, id)). ``stream`` selects an independent sequence of poses
    for the same seed. Pose i depends only on (seed, stream, i, families, subjects), so
    generate_poses(10, s) equals generate_poses(1000, s)[:10] row by row.
    """
    _check_count("n", n)
    _check_count("seed", seed)
    _check_count("stream", stream)
    _check_skeleton(skeleton)
    family_index = _check_families(families)
    subjects = np.asarray(subjects, np.int64).reshape(-1)
    if len(subjects) == 0 or (subjects < 0).any() or len(np.unique(subjects)) != len(subjects):
        raise ValueError(f"subjects: expected distinct non-negative ids, got {subjects.tolist()}")
    out = np.empty((n, skeleton.num_joints, 3), np.float32)
    subject_ids = np.empty(n, np.int32)
    family = np.empty(n, np.int32)
    bodies = {}  # subject id -> bone-group lengths
    for chunk, start in enumerate(range(0, n, CHUNK_SIZE)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0, int(stream), chunk]))
        fam = family_index[(rng.random(CHUNK_SIZE) * len(family_index)).astype(np.int64)]
        subj = subjects[(rng.random(CHUNK_SIZE) * len(subjects)).astype(np.int64)]
        angles = _sample_angles(rng, fam)
        stop = min(CHUNK_SIZE, n - start)
        new = np.setdiff1d(subj[:stop], list(bodies))
        bodies.update(zip(new.tolist(), _subject_bodies(seed, new)[1], strict=True))
        lengths = np.stack([bodies[s] for s in subj[:stop].tolist()])
        part = pose_from_angles({k: v[:stop] for k, v in angles.items()}, lengths)
        out[start:start + stop] = part
        subject_ids[start:start + stop] = subj[:stop]
        family[start:start + stop] = fam[:stop]
    return out, subject_ids, family


def _photograph_split(poses: np.ndarray, seed: int, stream: int, noise_2d: float,
                      missing_fraction: float) -> PoseArrays:
    """Random cameras (``poses.sample_cameras``, full azimuth), projection, Gaussian 2D noise of std
    noise_2d (normalised units) and missing joints (confidence 0, 2D 0), chunked like the poses."""
    n, num_joints = poses.shape[:2]
    rotation = np.empty((n, 3, 3), np.float32)
    translation = np.empty((n, 3), np.float32)
    focal = np.empty((n, 2), np.float32)
    noise = np.empty((n, num_joints, 2), np.float32)
    missing = np.empty((n, num_joints), bool)
    for chunk, start in enumerate(range(0, n, CHUNK_SIZE)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2, int(stream), chunk]))
        stop = min(CHUNK_SIZE, n - start)
        cams = poses_lib.sample_cameras(rng, CHUNK_SIZE)
        for target, value in zip((rotation, translation, focal), cams, strict=True):
            target[start:start + stop] = value[:stop]
        noise[start:start + stop] = rng.standard_normal((CHUNK_SIZE, num_joints, 2))[:stop]
        missing[start:start + stop] = (rng.random((CHUNK_SIZE, num_joints)) < missing_fraction)[:stop]
    arrays = poses_lib.photograph(poses, rotation, translation, focal)
    joints_2d = arrays.joints_2d + np.float32(noise_2d) * noise
    joints_2d[missing] = 0.0
    arrays.joints_2d = joints_2d.astype(np.float32)
    arrays.confidence = (~missing).astype(np.float32)
    return arrays


_SPLIT_FIELDS = ("poses", "rotation", "translation", "focal", "joints_2d", "confidence")


def cache_path(cache_dir: str, params: dict) -> str:
    """The .npz that load_or_generate uses for ``params`` (every argument that changes the arrays)."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f"synthetic_poses_v{GENERATOR_VERSION}_{params['skeleton']}_n{params['num_train']}"
                                   f"-{params['num_test']}-{params['num_prior']}_seed{params['seed']}_{digest}.npz")


def load_or_generate(num_train: int, num_test: int, num_prior: int, seed: int, cache_dir: str | None,
                     skeleton: Skeleton = H36M_17, noise_2d: float = DEFAULT_NOISE_2D,
                     missing_fraction: float = 0.0, families: Sequence[str] = POSE_FAMILIES,
                     num_subjects: tuple[int, int, int] = DEFAULT_NUM_SUBJECTS,
                     log: Callable[[str], None] | None = print) -> PoseSplits:
    """The built-in pose data: photographed train / test poses and an unpaired prior, cached.

    * train: ``num_train`` poses (stream 0) of subjects ``0 .. a-1``; test: ``num_test`` poses (stream 1)
      of subjects ``a .. a+b-1``; prior: ``num_prior`` canonical poses (stream 2) of subjects
      ``a+b .. a+b+c-1``, where (a, b, c) = ``num_subjects``. The three are disjoint in subjects and
      independent draws, so the prior is unpaired with the observations.
    * train and test are photographed by random cameras (``poses.sample_cameras``: full azimuth) with
      Gaussian noise of std ``noise_2d`` (normalised image units) on every 2D coordinate; each joint is
      missing with probability ``missing_fraction`` (confidence 0, 2D set to 0), otherwise confidence 1.

    ``cache_dir`` (None: no cache) keeps one .npz per parameter set (``cache_path``, keyed with
    GENERATOR_VERSION), written atomically; ``log`` (None: silent) gets one line saying generated or loaded
    and how long it took.
    """
    for name, value in (("num_train", num_train), ("num_test", num_test), ("num_prior", num_prior),
                        ("seed", seed)):
        _check_count(name, value)
    _check_skeleton(skeleton)
    family_index = _check_families(families)
    num_subjects = tuple(int(k) for k in num_subjects)
    if len(num_subjects) != 3 or min(num_subjects) < 1:
        raise ValueError(f"num_subjects={num_subjects!r}: expected three positive counts (train, test, prior)")
    if not (np.isfinite(noise_2d) and noise_2d >= 0):
        raise ValueError(f"noise_2d={noise_2d!r}: expected a non-negative number (normalised image units)")
    if not 0.0 <= missing_fraction < 1.0:
        raise ValueError(f"missing_fraction={missing_fraction!r}: expected a fraction in [0, 1)")
    families = tuple(POSE_FAMILIES[i] for i in family_index)
    a, b, c = num_subjects
    ranges = {"train": range(0, a), "test": range(a, a + b), "prior": range(a + b, a + b + c)}
    description = (
        f"built-in procedural poses (synthetic_poses v{GENERATOR_VERSION}, skeleton {skeleton.name}, seed {seed}): "
        f"{num_train} train poses of subjects 0-{a - 1} and {num_test} test poses of subjects {a}-{a + b - 1}, "
        f"photographed by random cameras (full azimuth, 2D noise std {noise_2d:g}, missing joints "
        f"{missing_fraction:g}); {num_prior} unpaired prior poses of subjects {a + b}-{a + b + c - 1}; "
        f"families {'/'.join(families)}")
    params = {"version": GENERATOR_VERSION, "skeleton": skeleton.name, "num_train": int(num_train),
              "num_test": int(num_test), "num_prior": int(num_prior), "seed": int(seed),
              "noise_2d": float(noise_2d), "missing_fraction": float(missing_fraction), "families": list(families),
              "num_subjects": list(num_subjects)}
    say = log or (lambda _: None)
    started = time.perf_counter()
    path = cache_path(cache_dir, params) if cache_dir is not None else None
    if path is not None and os.path.exists(path):
        with np.load(path) as z:
            splits = {split: PoseArrays(**{f: z[f"{split}_{f}"] for f in _SPLIT_FIELDS}) for split in ("train", "test")}
            prior = z["prior"]
        say(f"synthetic poses: loaded {path} in {time.perf_counter() - started:.2f} s")
        return PoseSplits(skeleton, splits["train"], splits["test"], prior, description)
    counts = {"train": num_train, "test": num_test, "prior": num_prior}
    drawn = {split: generate_poses(counts[split], seed, families, skeleton, subjects=ranges[split], stream=stream)[0]
             for stream, split in enumerate(("train", "test", "prior"))}
    splits = {split: _photograph_split(drawn[split], seed, stream, noise_2d, missing_fraction)
              for stream, split in enumerate(("train", "test"))}
    if path is not None:
        formats.write_npz(path, prior=drawn["prior"], params=np.array(json.dumps(params)),
                          **{f"{split}_{f}": getattr(splits[split], f) for split in splits for f in _SPLIT_FIELDS})
    where = f" -> {path}" if path is not None else ""
    say(f"synthetic poses: generated {num_train} train / {num_test} test / {num_prior} prior poses in "
        f"{time.perf_counter() - started:.1f} s{where}")
    return PoseSplits(skeleton, splits["train"], splits["test"], drawn["prior"], description)
