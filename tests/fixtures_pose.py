"""Writes tiny Human3.6M and CMU-BVH files in their real layouts, quirks included, for tests.

Human3.6M (VideoPose3D's ``data_3d_h36m.npz``): one key ``positions_3d`` holding a pickled dict
{subject: {action: float32 [T, 32, 3]}} of WORLD positions in METRES, Z up (the floor is z = 0), the subject
walking and turning; action names as in the real file ('Directions', 'Directions 1', 'Sitting 1', ...).
The 32 joints are built from a 17-joint canonical pose (the kept joints at their Human3.6M indices, the 15
dropped ones placed nearby). One frame has a NaN in a kept joint, another a NaN in a dropped joint.

CMU BVH (the cgspeed MotionBuilder-friendly release): the real joint names and nesting, a 6-channel root
``Xposition Yposition Zposition Zrotation Yrotation Xrotation``, 3-channel joints ``Zrotation Yrotation
Xrotation``, End Sites, offsets in CMU ASF units (about 56 mm), CRLF line endings, tab indentation, trailing
spaces, ``Frame Time: .0083333``, trailing blank lines, and one motion line with a value missing.
"""

from __future__ import annotations

import os

import numpy as np

# --- the camera, in NumPy ------------------------------------------------------------------------------


def pinhole(points, rotation, translation, focal) -> np.ndarray:
    """[N, J, 2] float64, the reference for ``renderers.perspective_render``: X_cam = R @ X + t,
    x = f * X_cam[:2] / X_cam[2] (OpenCV frame, principal point at the origin)."""
    cam = np.einsum("nab,njb->nja", np.asarray(rotation, np.float64), points) + np.asarray(translation)[:, None]
    return np.asarray(focal, np.float64)[:, None] * cam[..., :2] / cam[..., 2:]


def numpy_photograph(points, rotation, translation, focal, confidence=None):
    """Stand-in for ``poses.photograph`` that needs no TensorFlow (importing the renderer takes 20-30 s on a
    small machine, which tests of the data modules alone should not pay)."""
    from aign_tf.data.poses import PoseArrays

    confidence = np.ones(np.shape(points)[:2], np.float32) if confidence is None else confidence
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return PoseArrays(f32(points), f32(rotation), f32(translation), f32(focal),
                      f32(pinhole(points, rotation, translation, focal)), f32(confidence))


# --- Human3.6M ---------------------------------------------------------------------------------------
H36M17_NAMES = ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax", "Neck", "Head",
                "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
# Index in the 32-joint Human3.6M array of each of the 17 joints (VideoPose3D keeps these, in this order).
KEPT_32 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

# A standing person in the canonical frame: mm, root at the origin, +y up, facing +z, so the LEFT side is +x.
STANDING_MM = np.array([
    [0, 0, 0],  # Hip
    [-130, 0, 0], [-140, -440, 15], [-145, -880, -40],  # RHip RKnee RFoot
    [130, 0, 0], [140, -440, 15], [145, -880, -40],  # LHip LKnee LFoot
    [0, 230, -15], [0, 480, -5], [0, 600, 45], [0, 715, 10],  # Spine Thorax Neck Head(top)
    [150, 465, -5], [185, 190, 10], [200, -55, 60],  # LShoulder LElbow LWrist
    [-150, 465, -5], [-185, 190, 10], [-200, -55, 60],  # RShoulder RElbow RWrist
], np.float64)
PELVIS_HEIGHT_MM = 920.0


def canonical_to_h36m_world(points_mm: np.ndarray) -> np.ndarray:
    """Canonical (+y up) mm -> a Z-up world frame in metres: (x, y, z)_world = (x, -z, y)_canonical / 1000
    (a proper rotation, so left stays left)."""
    p = np.asarray(points_mm, np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1) / 1000.0


def expand_to_32(pose17: np.ndarray) -> np.ndarray:
    """Canonical mm [..., 17, 3] -> [..., 32, 3]: the 17 at their Human3.6M indices, the dropped joints (toes, foot and
    head ends, the static spine/clavicle joints, hands and thumbs) placed next to their neighbours."""
    out = np.zeros(pose17.shape[:-2] + (32, 3), pose17.dtype)
    out[..., KEPT_32, :] = pose17
    down_forward = np.array([0.0, -40.0, 120.0])  # canonical mm (toes ahead of the ankle)
    out[..., 4, :] = pose17[..., 3, :] + down_forward  # RToeBase
    out[..., 5, :] = out[..., 4, :] + [0, 0, 50]  # R toe end site
    out[..., 9, :] = pose17[..., 6, :] + down_forward  # LToeBase
    out[..., 10, :] = out[..., 9, :] + [0, 0, 50]
    out[..., 11, :] = pose17[..., 0, :]  # the spine joint at the pelvis
    out[..., 16, :] = out[..., 24, :] = pose17[..., 8, :]  # clavicles at the thorax
    for wrist, base in ((13, 20), (16, 28)):  # hand, hand end, thumb, thumb end
        for k in range(4):
            out[..., base + k, :] = pose17[..., wrist, :] + [0, -30.0 * (k + 1), 10.0 * k]
    return out


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


H36M_SUBJECTS = ("S1", "S5", "S9", "S11")
H36M_ACTIONS = ("Directions", "Directions 1", "Sitting 1", "Sitting 2", "WalkDog", "WalkDog 1")


def write_h36m_fixture(root, subjects=H36M_SUBJECTS, actions=H36M_ACTIONS, frames: int = 30, joints: int = 32,
                       seed: int = 0, nan_frame=("S1", "Directions", 7), dropped_nan_frame=("S5", "Sitting 1", 3),
                       units: float = 1.0, file_name: str = "data_3d_h36m.npz") -> dict:
    """Writes ``root/data_3d_h36m.npz``. Every frame is ``STANDING_MM`` scaled per subject, with its own
    random offsets on every joint except the root and the two hips (so the hips' axis stays the canonical +x),
    then turned by a random yaw and moved on the floor; stored Z-up in metres (times ``units``).

    nan_frame: (subject, action, frame) given a NaN in a kept joint (Thorax); dropped_nan_frame: one given
    a NaN only in a dropped joint (the right toe). None disables either. joints: 32 (the real file) or 17.

    Returns a dict: path; canonical[subject][action] = float64 [T, 17, 3] mm, canonical axes, not
    root-relative (the NaN frame included); local[...] = the same root-relative before the yaw (the expected
    canonical, facing +z pose); nan_frames = [(subject, action, frame)] that must be skipped.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    path = os.path.join(str(root), file_name)
    data, canonical, local = {}, {}, {}
    for s_index, subject in enumerate(subjects):
        data[subject], canonical[subject], local[subject] = {}, {}, {}
        size = 0.9 + 0.05 * s_index
        for action in actions:
            noise = rng.normal(0.0, 25.0, (frames, 17, 3))
            noise[:, [0, 1, 4]] = 0.0
            pose = STANDING_MM * size + noise  # [T, 17, 3] root-relative, facing +z
            yaw = rng.uniform(-np.pi, np.pi, frames)
            walk = np.cumsum(rng.normal(0.0, 30.0, (frames, 3)), axis=0) + [500.0, 0.0, -800.0]
            walk[:, 1] = PELVIS_HEIGHT_MM * size
            placed = np.einsum("tij,tkj->tki", np.stack([_yaw(a) for a in yaw]), pose) + walk[:, None]
            world = canonical_to_h36m_world(expand_to_32(placed) if joints == 32 else placed)
            world = (world * units).astype(np.float32)
            if nan_frame is not None and (subject, action) == tuple(nan_frame[:2]):
                world[nan_frame[2], KEPT_32[8] if joints == 32 else 8, 1] = np.nan
            if dropped_nan_frame is not None and joints == 32 and (subject, action) == tuple(dropped_nan_frame[:2]):
                world[dropped_nan_frame[2], 4, 0] = np.nan
            data[subject][action] = world
            canonical[subject][action] = placed
            local[subject][action] = pose
    np.savez_compressed(path, positions_3d=data)  # a dict -> a pickled 0-d object array, as VideoPose3D does
    nan_frames = [tuple(nan_frame)] if nan_frame is not None and nan_frame[0] in subjects else []
    return {"path": path, "canonical": canonical, "local": local, "nan_frames": nan_frames}


# --- CMU BVH -----------------------------------------------------------------------------------------
# (name, offset in CMU ASF units, children); "End" = an End Site. Offsets are a plausible adult (~1.5 m).
def _arm(side: str, sign: float):
    pre = "Left" if side == "L" else "Right"
    return (f"{pre}Shoulder", (0, 0, 0), [
        (f"{pre}Arm", (sign * 3.2, 0.9, 0.05), [
            (f"{pre}ForeArm", (sign * 5.0, 0, 0), [
                (f"{pre}Hand", (sign * 3.4, 0, 0), [
                    (f"{pre}FingerBase", (0, 0, 0), [
                        (f"{pre}HandIndex1", (sign * 0.7, 0, 0), [("End", (sign * 0.6, 0, 0), [])])]),
                    (f"{side}Thumb", (0, 0, 0), [("End", (sign * 0.6, 0, 0.6), [])])])])])])


def _leg(side: str, sign: float):
    pre = "Left" if side == "L" else "Right"
    return (f"{side}HipJoint", (0, 0, 0), [
        (f"{pre}UpLeg", (sign * 1.7, -1.7, 0.8), [
            (f"{pre}Leg", (sign * 2.4, -6.6, 0), [
                (f"{pre}Foot", (sign * 2.5, -6.9, 0), [
                    (f"{pre}ToeBase", (sign * 0.15, -0.45, 2.0), [("End", (0, 0, 1.0), [])])])])])])


CMU_SKELETON = ("Hips", (0, 0, 0), [
    _leg("L", 1.0), _leg("R", -1.0),
    ("LowerBack", (0, 0, 0), [
        ("Spine", (0, 2.2, 0), [
            ("Spine1", (0, 2.2, -0.1), [
                ("Neck", (0, 0, 0), [
                    ("Neck1", (0, 1.45, 0.2), [
                        ("Head", (0, 1.45, -0.2), [("End", (0, 1.5, 0), [])])])]),
                _arm("L", 1.0), _arm("R", -1.0)])])])])
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
JOINT_CHANNELS = ("Zrotation", "Yrotation", "Xrotation")


def cmu_joints() -> list[tuple[str, str | None, np.ndarray]]:
    """[(name, parent name, offset)] of the CMU fixture's joints in file order, End Sites as '<parent>_End'."""
    out = []

    def walk(node, parent):
        name, offset, children = node
        name = f"{parent}_End" if name == "End" else name
        out.append((name, parent, np.array(offset, np.float64)))
        for child in children:
            walk(child, name)

    walk(CMU_SKELETON, None)
    return out


def cmu_columns() -> dict[tuple[str, str], int]:
    """(joint, channel) -> column of a frame row (the root's 6 channels, then 3 per joint, file order)."""
    columns, c = {}, 0
    for name, parent, _ in cmu_joints():
        if name.endswith("_End"):
            continue
        for channel in ROOT_CHANNELS if parent is None else JOINT_CHANNELS:
            columns[(name, channel)] = c
            c += 1
    return columns


def cmu_rest_world(root_position=(0.0, 0.0, 0.0), scale: float = 1.0) -> dict[str, np.ndarray]:
    """Joint name -> world position with every rotation 0: the root position plus the summed offsets."""
    world = {}
    for name, parent, offset in cmu_joints():
        world[name] = (np.asarray(root_position, np.float64) if parent is None else world[parent]) + offset * scale
    return world


def cmu_frame(values: dict[tuple[str, str], float] | None = None) -> np.ndarray:
    """A frame row [C] of zeros with the given (joint, channel) values set."""
    columns = cmu_columns()
    row = np.zeros(len(columns))
    for key, value in (values or {}).items():
        row[columns[key]] = value
    return row


def _hierarchy_lines(node, depth, scale, lines, is_root=False):
    name, offset, children = node
    tab = "\t" * depth
    if name == "End":
        lines += [f"{tab}End Site", f"{tab}{{", f"{tab}\tOFFSET " + " ".join(f"{v * scale:.5f}" for v in offset),
                  f"{tab}}}"]
        return
    channels = ROOT_CHANNELS if is_root else JOINT_CHANNELS
    lines += [f"{tab}{'ROOT' if is_root else 'JOINT'} {name}", f"{tab}{{",
              f"{tab}\tOFFSET " + " ".join(f"{v * scale:.5f}" for v in offset),
              # the real files have a trailing space after the root's channel list
              f"{tab}\tCHANNELS {len(channels)} " + " ".join(channels) + (" " if is_root else "")]
    for child in children:
        _hierarchy_lines(child, depth + 1, scale, lines)
    lines.append(f"{tab}}}")


def write_cmu_bvh(path, frames=None, bad_line_after: int | None = 1, scale: float = 1.0,
                  truncate_hierarchy_at: int | None = None) -> dict:
    """Writes a CMU-style BVH file. frames: [T, C] channel rows (default :func:`default_cmu_frames`), root
    positions in CMU units; scale multiplies offsets and root positions (e.g. 56.444 / 10 for a file in cm).
    bad_line_after: insert a motion line with one value missing after this many frames (None: none); it is
    counted in 'Frames:' like the rest. truncate_hierarchy_at: cut the file after this many hierarchy lines.

    Returns a dict: path, frames (the good rows, as written), bad_line (1-based line number or None),
    text (the written text, CRLF)."""
    frames = default_cmu_frames() if frames is None else np.asarray(frames, np.float64)
    frames = frames.copy()
    frames[:, :3] *= scale
    lines = ["HIERARCHY"]
    _hierarchy_lines(CMU_SKELETON, 0, scale, lines, is_root=True)
    if truncate_hierarchy_at is not None:
        lines = lines[:truncate_hierarchy_at]
    n_declared = len(frames) + (bad_line_after is not None)
    lines += ["MOTION", f"Frames: {n_declared}", "Frame Time: .0083333"]
    bad_line = None
    for t, row in enumerate(frames):
        if bad_line_after is not None and t == bad_line_after:
            lines.append(" ".join(f"{v:.4f}" for v in row[:-1]))
            bad_line = len(lines)
        lines.append(" ".join(f"{v:.4f}" for v in row))
    if bad_line_after is not None and bad_line is None:
        lines.append(" ".join(f"{v:.4f}" for v in frames[-1][:-1]))
        bad_line = len(lines)
    text = "\r\n".join(lines) + "\r\n\r\n\r\n"
    with open(path, "w", newline="") as f:
        f.write(text)
    return {"path": str(path), "frames": frames, "bad_line": bad_line, "text": text}


def default_cmu_frames() -> np.ndarray:
    """4 frames: [0] rest pose at root (0.5, 17, -30); [1] root yawed 120 degrees with a bent left knee, a
    raised right arm and a leaning chest; [2] the same body pose unyawed elsewhere in the room; [3] random."""
    body = {("LeftLeg", "Xrotation"): 40.0, ("RightArm", "Zrotation"): -60.0, ("Spine1", "Xrotation"): 12.0,
            ("Neck1", "Yrotation"): 20.0, ("LeftUpLeg", "Zrotation"): 10.0}
    rest = cmu_frame({("Hips", "Xposition"): 0.5, ("Hips", "Yposition"): 17.0, ("Hips", "Zposition"): -30.0})
    yawed = cmu_frame({**body, ("Hips", "Xposition"): 3.0, ("Hips", "Yposition"): 16.5, ("Hips", "Zposition"): -28.0,
                       ("Hips", "Yrotation"): 120.0})
    straight = cmu_frame({**body, ("Hips", "Xposition"): -7.0, ("Hips", "Yposition"): 16.5,
                          ("Hips", "Zposition"): 4.0})
    rng = np.random.default_rng(0)
    random = rng.uniform(-30.0, 30.0, len(rest))
    random[:3] = (1.0, 16.0, 2.0)
    return np.stack([rest, yawed, straight, random])
