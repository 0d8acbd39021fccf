"""Human3.6M 3D poses in the preprocessed layout of VideoPose3D, photographed through random cameras.

The file (see datasets/h36m/README.md): ``data_3d_h36m.npz``, written by VideoPose3D's
``data/prepare_data_h36m.py`` from the official ``Poses_D3_Positions_S*.tgz`` archives. It holds one key,
``positions_3d``: a pickled dict ``{subject: {action: float32 [T, 32, 3]}}`` of world joint positions in
METRES at 50 Hz, subjects 'S1', 'S5', 'S6', 'S7', 'S8', 'S9', 'S11', actions such as 'Directions',
'Directions 1', 'Sitting 1', 'Sitting 2', 'WalkDog', ... (every action type is recorded twice; S11's corrupted
'Directions' is left out by the script). Arrays that already have the 17 kept joints are accepted too.

The 17 of 32 joints: VideoPose3D's ``Human36mDataset`` removes joints [4, 5, 9, 10, 11, 16, 20, 21, 22, 23,
24, 28, 29, 30, 31] (``remove_joints`` in ``common/h36m_dataset.py``), which keeps :data:`H36M_KEPT_JOINTS`
= [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27], in that order: the order of
``skeleton.H36M_17`` (Hip, RHip, RKnee, RFoot, LHip, LKnee, LFoot, Spine, Thorax, Neck, Head, LShoulder,
LElbow, LWrist, RShoulder, RElbow, RWrist).

Axes: the Human3.6M world frame is Z-up (the floor is z = 0; VideoPose3D's visualisation puts the ground
trajectory in x, y and height on z). The package's canonical frame is +y up, so every position is mapped with
the proper rotation (-90 degrees about x) ``(x, y, z)_canonical = (x_w, z_w, -y_w)``, i.e.
``X_canonical = WORLD_TO_CANONICAL @ X_world``. A rotation (determinant +1), not an axis swap, so left stays
left. Then metres -> millimetres.

2D: ``data_2d_h36m_gt.npz`` (``positions_2d``: subject -> action -> 4 camera arrays [T, 17, 2] pixels, and
``metadata``) is not used. The npz files do not carry the cameras' extrinsics (VideoPose3D hard-codes them in
``h36m_dataset.py``), so instead every frame is photographed here through its own random camera from
:func:`poses.sample_cameras` (seeded), which also gives the camera ground truth the task needs.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Callable

import numpy as np

from aign_tf.data import poses
from aign_tf.data.skeleton import H36M_17

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
H36M_FILE = "data_3d_h36m.npz"
H36M_FPS = 50
H36M_KEPT_JOINTS = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
H36M_NUM_RAW_JOINTS = 32
# Z-up world -> +y-up canonical: a -90 degree rotation about x (det = +1).
WORLD_TO_CANONICAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], np.float32)

_README = "see datasets/h36m/README.md"
_HOW_TO_MAKE = (f"expected {H36M_FILE} as written by VideoPose3D's data/prepare_data_h36m.py "
                f"(key 'positions_3d': subject -> action -> [T, 32, 3] metres)")


# --- canonical facing ---------------------------------------------------------------------------------
def face_forward(positions: np.ndarray, left_hip: int = H36M_17.index("LHip"),
                 right_hip: int = H36M_17.index("RHip")) -> np.ndarray:
    """Removes each pose's yaw: rotates [..., J, 3] (+y up) about the vertical axis through the origin so the
    horizontal part of the hips' right -> left vector points along +x. With +y up that makes the subject face
    +z (forward = left x up), the canonical facing. Pass root-relative poses to turn them about the root.
    Returns float32 of the same shape; a pose whose hip axis is vertical is left unturned."""
    positions = np.asarray(positions, np.float64)
    axis = positions[..., left_hip, :] - positions[..., right_hip, :]
    angle = np.arctan2(axis[..., 2], axis[..., 0])  # R_y(angle) maps (x, z) = (cos, sin) * r to (r, 0)
    return np.einsum("...ij,...kj->...ki", poses.rot_y(angle), positions).astype(np.float32)


# --- the file ----------------------------------------------------------------------------------------
def _load_positions_dict(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Human3.6M 3D poses not found: {path} ({_HOW_TO_MAKE}; {_README})")
    if not zipfile.is_zipfile(path):  # checked first: np.load would try to unpickle any other file
        raise ValueError(f"{path}: not a readable .npz file (not a zip archive); {_HOW_TO_MAKE}")
    try:
        with np.load(path, allow_pickle=True) as archive:
            if "positions_3d" not in archive.files:
                raise ValueError(f"{path}: no 'positions_3d' array (found {sorted(archive.files)}); {_HOW_TO_MAKE}")
            data = archive["positions_3d"]
    except (zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err}); {_HOW_TO_MAKE}") from err
    data = data.item() if isinstance(data, np.ndarray) and data.dtype == object and data.ndim == 0 else data
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: 'positions_3d' must be a pickled dict subject -> {{action -> [T, 32, 3]}}, got "
                         f"{type(data).__name__}; {_HOW_TO_MAKE}")
    return data


def read_positions_3d(path: str) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """Reads a VideoPose3D ``data_3d_h36m.npz``.

    Returns (positions, skipped): positions[subject][action] = float32 [T', 17, 3] in millimetres, canonical
    axes (+y up, see the module docstring), NOT root-relative (the subject walks around the room); skipped =
    {reason: rows dropped}: frames with a NaN/Inf among the 17 kept joints are removed (non-finite values in
    the 15 dropped joints do not matter).

    Missing file -> FileNotFoundError naming the path and the expected file. Not an npz, no 'positions_3d',
    not the subject -> action nesting, an array that is not [T, J, 3] numbers, or values that are not in
    metres -> ValueError naming the path (and subject / action / shape found). An action whose joint count is
    neither 32 nor 17 is skipped and its rows counted in ``skipped``.
    """
    path = os.fspath(path)
    data = _load_positions_dict(path)
    positions: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, int] = {}
    head_heights = []
    for subject, actions in data.items():
        positions[str(subject)] = {}
        for action, array in actions.items():
            array = np.asarray(array)
            where = f"{path}: positions_3d[{subject!r}][{action!r}]"
            if (array.ndim == 3 and array.shape[2] == 3 and np.issubdtype(array.dtype, np.number)
                    and array.shape[1] not in (H36M_NUM_RAW_JOINTS, H36M_17.num_joints)):
                reason = f"rows with {array.shape[1]} joints (expected 32 or 17)"
                skipped[reason] = skipped.get(reason, 0) + len(array)
                continue
            if (array.ndim != 3 or array.shape[1] not in (H36M_NUM_RAW_JOINTS, H36M_17.num_joints)
                    or array.shape[2] != 3 or not np.issubdtype(array.dtype, np.number)):
                raise ValueError(f"{where} has shape {list(array.shape)} ({array.dtype}); expected [T, 32, 3] "
                                 f"(VideoPose3D's 32 Human3.6M joints) or [T, 17, 3]")
            if array.shape[1] == H36M_NUM_RAW_JOINTS:
                array = array[:, H36M_KEPT_JOINTS]
            keep, dropped = poses.valid_rows(array, H36M_17.num_joints)
            for reason, count in dropped.items():
                skipped[reason] = skipped.get(reason, 0) + count
            canonical = np.einsum("ij,tkj->tki", WORLD_TO_CANONICAL, array[keep].astype(np.float64)) * 1000.0
            positions[str(subject)][str(action)] = canonical.astype(np.float32)
            if len(canonical):
                head_heights.append(np.linalg.norm(canonical[:, 10] - canonical[:, 0], axis=-1))
    if head_heights:
        typical = float(np.median(np.concatenate(head_heights)))
        if not 100.0 < typical < 3000.0:  # the hip -> head-top distance of an adult is about 0.7 m
            raise ValueError(f"{path}: the median hip-to-head distance is {typical / 1000.0:.4g} file units; "
                             "expected metres (about 0.7); was the file written in millimetres or another unit?")
    return positions, skipped


# --- splits ------------------------------------------------------------------------------------------
def action_type(action: str) -> str:
    """'Directions 1' -> 'Directions', 'WalkDog' -> 'WalkDog' (the take number removed)."""
    return re.sub(r"[\s_\d]+$", "", action) or action


def split_takes(actions) -> tuple[list[str], list[str]]:
    """Splits one subject's action names into (observation takes, prior takes): within each action type the
    takes are sorted by name and alternate, the first to the observations (so 'Directions' -> observations,
    'Directions 1' -> prior; 'Sitting 1' -> observations, 'Sitting 2' -> prior). An action type with a single
    take (S11 has only 'Directions 1') goes to the observations."""
    groups: dict[str, list[str]] = {}
    for action in sorted(actions):
        groups.setdefault(action_type(action), []).append(action)
    observed, prior = [], []
    for takes in groups.values():
        observed += takes[0::2]
        prior += takes[1::2]
    return sorted(observed), sorted(prior)


def _stack(positions: dict[str, dict[str, np.ndarray]], takes: list[tuple[str, str]], stride: int) -> np.ndarray:
    """Root-relative, yaw-removed float32 [N, 17, 3] from (subject, action) takes, every ``stride``-th frame."""
    parts = [positions[s][a][::stride] for s, a in takes]
    stacked = np.concatenate(parts) if parts else np.zeros((0, H36M_17.num_joints, 3), np.float32)
    return face_forward(poses.root_relative(stacked))


def _subsample(rng: np.random.Generator, n: int, limit: int | None) -> np.ndarray:
    """Sorted random rows: all n, or ``limit`` of them."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=int(limit), replace=False))


def load_h36m(data_dir: str, seed: int, frame_stride: int = 5, max_frames: int | None = None,
              num_prior: int | None = None, cameras: poses.CameraRanges | None = None,
              log: Callable[[str], None] = print) -> poses.PoseSplits:
    """Human3.6M as a pose task: observations photographed through random cameras and an unpaired 3D prior.

    data_dir: the folder holding ``data_3d_h36m.npz`` (or that file's path).
    seed: cameras and subsampling (the same seed gives the same splits).
    frame_stride: keep every n-th frame of the 50 Hz recordings (5 -> 10 Hz; neighbouring frames are nearly
      identical), for the observations and the prior alike (counted after frames with NaN joints are dropped).
    max_frames: at most this many train and this many test observations (a seeded random subset, in order).
    num_prior: at most this many prior poses (a seeded random subset); None keeps all.
    cameras: the ranges :func:`poses.sample_cameras` draws from (None = ``poses.CameraRanges()``).
    log: receives one-line progress / warning messages.

    Returns PoseSplits on ``H36M_17``:
    * train: frames of the train subjects S1, S5, S6, S7, S8, from their *observation takes*;
    * test: all takes of the test subjects S9, S11;
    * prior: 3D poses of the train subjects from their *prior takes*.
    Every pose is in canonical form: root-relative millimetres, +y up, turned about +y to face +z
    (:func:`face_forward`). Each observation gets its own camera from :func:`poses.sample_cameras` and its 2D
    joints are its projection (:func:`poses.photograph`); confidences are 1.

    Why takes: Human3.6M records every action type twice per subject ('Directions' and 'Directions 1',
    'Sitting 1' and 'Sitting 2', ...). :func:`split_takes` gives one take of each type to the observations and
    the other to the prior. The prior thus never contains a frame (or a near-copy of a frame: at 50 Hz a
    shifted frame offset would be) of the sequences whose 2D the generator sees, so the discriminator's
    real poses are unpaired with the observations, while both still cover every action type (splitting
    the action *types* instead would e.g. leave all sitting poses out of the prior and make the
    discriminator reject them). The test subjects never feed the prior.

    ``skipped``: {reason: count}, e.g. 'non-finite joints' for frames with NaN/Inf joints.
    Errors: missing file -> FileNotFoundError naming the expected path; no train or no test subject in the
    file -> ValueError naming the subjects found.
    """
    if int(frame_stride) < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    path = data_dir if data_dir.endswith(".npz") else os.path.join(data_dir, H36M_FILE)
    positions, skipped = read_positions_3d(path)
    for reason, count in skipped.items():
        log(f"Human3.6M: skipped {count} frames of {path} ({reason})")
    found = sorted(positions)
    train_subjects = [s for s in H36M_TRAIN_SUBJECTS if s in positions]
    test_subjects = [s for s in H36M_TEST_SUBJECTS if s in positions]
    for role, wanted, present in (("train", H36M_TRAIN_SUBJECTS, train_subjects),
                                  ("test", H36M_TEST_SUBJECTS, test_subjects)):
        if not present:
            raise ValueError(f"{path} has none of the {role} subjects {', '.join(wanted)}; subjects found: "
                             f"{', '.join(found) or 'none'}")
        missing = [s for s in wanted if s not in present]
        if missing:
            log(f"Human3.6M: {role} subjects {', '.join(missing)} are not in {path}; using {', '.join(present)}")

    observed_takes, prior_takes = [], []
    for subject in train_subjects:
        observed, prior = split_takes(positions[subject])
        observed_takes += [(subject, a) for a in observed]
        prior_takes += [(subject, a) for a in prior]
    test_takes = [(s, a) for s in test_subjects for a in sorted(positions[s])]
    if not prior_takes:
        raise ValueError(f"{path}: the train subjects have no second take of any action to build the prior from "
                         f"(actions: {sorted({a for _, a in observed_takes})})")

    stride = int(frame_stride)
    cameras = poses.CameraRanges() if cameras is None else cameras
    splits = {}
    for k, (name, takes, limit) in enumerate((("train", observed_takes, max_frames),
                                              ("test", test_takes, max_frames))):
        rng = np.random.default_rng([int(seed), k])
        canonical = _stack(positions, takes, stride)
        canonical = canonical[_subsample(rng, len(canonical), limit)]
        rotation, translation, focal = poses.sample_cameras(rng, len(canonical), cameras)
        splits[name] = poses.photograph(canonical, rotation, translation, focal)
    prior = _stack(positions, prior_takes, stride)
    prior = prior[_subsample(np.random.default_rng([int(seed), 2]), len(prior), num_prior)]
    if num_prior is not None and len(prior) < num_prior:
        log(f"Human3.6M: only {len(prior)} prior poses available (num_prior={num_prior})")
    description = (f"Human3.6M {path}: train {len(splits['train'])} frames ({len(observed_takes)} takes of "
                   f"{', '.join(train_subjects)}), test {len(splits['test'])} frames ({', '.join(test_subjects)}), "
                   f"prior {len(prior)} poses from the other {len(prior_takes)} takes of the train subjects; "
                   f"every {stride}th frame at {H36M_FPS} Hz; random cameras (seed {seed})")
    log(description)
    return poses.PoseSplits(skeleton=H36M_17, train=splits["train"], test=splits["test"], prior=prior,
                            description=description, skipped=skipped)
