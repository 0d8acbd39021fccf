"""BVH (Biovision hierarchy) motion capture, e.g. the CMU Graphics Lab database, as a source of 3D prior poses.

The format (see datasets/cmu_mocap/README.md): a ``HIERARCHY`` section with one ``ROOT`` joint, nested
``JOINT`` blocks and ``End Site`` leaves in braces. Every joint has an ``OFFSET x y z`` (its position in the
parent's frame in the rest pose) and a ``CHANNELS n name ...`` line naming the values it takes from each
frame, any subset of Xposition Yposition Zposition Xrotation Yrotation Zrotation in any order (typically
6 for the root, 3 rotations for the others). Then ``MOTION``, ``Frames: T``, ``Frame Time: seconds`` and T
lines of numbers, one per frame, the channels of all joints in hierarchy (depth-first) order.

Conventions implemented (the usual ones of BVH readers):

* rotations are in degrees and applied in the order the channels are listed, as intrinsic rotations: for
  ``Zrotation Yrotation Xrotation`` the joint's local rotation is ``R = Rz @ Ry @ Rx`` (column vectors,
  right-handed), so a point in the joint's frame is first rotated about x, then y, then z;
* the local translation is the OFFSET plus the joint's position channels (only the root has them in
  practice; readers disagree on whether a root's non-zero OFFSET is added to its position channels, but
  CMU's roots are at OFFSET 0 0 0, so it does not matter there);
* a joint's world transform is its parent's times its local (translation, rotation):
  ``p_j = p_parent + R_parent @ t_j``, ``R_j = R_parent @ R_local_j``; End Sites are fixed points at their
  OFFSET in the parent's frame;
* whitespace is free: tabs, CRLF line endings, trailing spaces, braces on the name's line, blank lines.

Malformed hierarchies (truncated, a missing brace/OFFSET, an unknown channel) raise ``ValueError`` naming the
file and line. A motion line with the wrong number of values, non-numbers or non-finite values is skipped and
counted (``BvhMotion.skipped``, ``BvhMotion.skipped_lines``), as are frames that ``Frames:`` declares but the
file does not contain (a truncated download).

CMU specifics: the BVH conversions of the CMU database (Bruce Hahne's "cgspeed" releases; the original /
MotionBuilder-friendly naming Hips, LHipJoint, LeftUpLeg, LeftLeg, ... and the 3dsMax-friendly naming
LHipJoint, LeftHip, LeftKnee, ...) are +y up with the subject facing +z in the rest pose (toes along +z, the
left hip at +x), 120 frames per second (``Frame Time: .0083333``), and keep the length unit of CMU's ASF
skeletons (the hips stand about 16-17 units above the floor): the CMU FAQ (mocap.cs.cmu.edu/faqs.php)
converts them to metres with ``(1.0 / 0.45) * 2.54 / 100 = 0.056444`` (the ASF ``length 0.45`` scale, then
inches), i.e. 56.444 mm per unit. :func:`estimate_scale_to_mm` picks that unit (or mm, cm, inch, m) from the
skeleton's size when no scale is given.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from aign_tf.data import poses
from aign_tf.data.h36m import WORLD_TO_CANONICAL, face_forward
from aign_tf.data.skeleton import H36M_17

_CHANNEL_NAMES = {name.lower(): name for name in
                  ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")}
_AXIS = {"X": 0, "Y": 1, "Z": 2}
_README = "see datasets/cmu_mocap/README.md"

# File units -> millimetres, for :func:`estimate_scale_to_mm`.
CMU_ASF_UNIT_MM = 25.4 / 0.45  # 56.444 mm: CMU FAQ, (1.0 / 0.45) * 2.54 / 100 m
UNITS_MM = {"mm": 1.0, "cm": 10.0, "inch": 25.4, "cmu_asf": CMU_ASF_UNIT_MM, "m": 1000.0}
# Rest-pose "height" used to pick the unit: mean leg (hip -> knee -> ankle) plus the spine chain (Hip ->
# Spine -> Thorax -> Neck -> Head top) of the 17-joint skeleton; about 900 + 730 mm for a Human3.6M subject.
NOMINAL_HEIGHT_PROXY_MM = 1600.0

# CMU BVH joint(s) per H36M_17 joint; several names = their mean position. "Head_End" is the End Site
# under Head (End Sites are named "<parent>_End"). Matched by comparing the CMU rest skeleton (hips at the
# root height, LHipJoint/RHipJoint zero-length, LowerBack at the root; Spine ~2.2 units up, Spine1 ~4.4,
# Neck at Spine1, Neck1 ~5.9, Head ~7.3, the head End Site ~8.8; shoulders (LeftArm) ~5.4) with the
# Human3.6M one (above the pelvis: Spine ~230 mm, Thorax ~490 with the shoulders level with it, Neck/nose
# ~610, Head top ~730).
CMU_TO_H36M: dict[str, tuple[str, ...]] = {
    # Human3.6M's pelvis lies between the hip joint centres; CMU's Hips sits ~0.1 m higher and behind them,
    # so the midpoint of the two hip joints is the better match.
    "Hip": ("LeftUpLeg", "RightUpLeg"),
    "RHip": ("RightUpLeg",), "RKnee": ("RightLeg",), "RFoot": ("RightFoot",),  # UpLeg = hip joint, Leg = knee,
    "LHip": ("LeftUpLeg",), "LKnee": ("LeftLeg",), "LFoot": ("LeftFoot",),  # Foot = ankle (ToeBase = ball)
    "Spine": ("Spine",),  # mid-back: about half-way from the pelvis to the neck's base in both skeletons
    "Thorax": ("Neck1",),  # base of the neck, level with the shoulders ("Neck" coincides with Spine1, lower)
    "Neck": ("Head",),  # the Head joint (skull base / top of the neck), half-way from Thorax to the head top
    "Head": ("Head_End",),  # top of the head
    # CMU's LeftShoulder is the clavicle (at Spine1); LeftArm is the shoulder joint, LeftForeArm the elbow,
    # LeftHand the wrist.
    "LShoulder": ("LeftArm",), "LElbow": ("LeftForeArm",), "LWrist": ("LeftHand",),
    "RShoulder": ("RightArm",), "RElbow": ("RightForeArm",), "RWrist": ("RightHand",),
}
# The same skeleton in the 3dsMax-friendly CMU release (joints LHipJoint, LeftHip, LeftKnee, LeftAnkle,
# LeftToe, lowerback, Chest, Chest2, lowerneck, Neck, Head, LeftCollar, LeftShoulder, LeftElbow, LeftWrist).
CMU_3DSMAX_TO_H36M: dict[str, tuple[str, ...]] = {
    "Hip": ("LeftHip", "RightHip"),
    "RHip": ("RightHip",), "RKnee": ("RightKnee",), "RFoot": ("RightAnkle",),
    "LHip": ("LeftHip",), "LKnee": ("LeftKnee",), "LFoot": ("LeftAnkle",),
    "Spine": ("Chest",), "Thorax": ("Neck",), "Neck": ("Head",), "Head": ("Head_End",),
    "LShoulder": ("LeftShoulder",), "LElbow": ("LeftElbow",), "LWrist": ("LeftWrist",),
    "RShoulder": ("RightShoulder",), "RElbow": ("RightElbow",), "RWrist": ("RightWrist",),
}
KNOWN_MAPPINGS: dict[str, dict[str, tuple[str, ...]]] = {"cmu": CMU_TO_H36M, "cmu_3dsmax": CMU_3DSMAX_TO_H36M}


@dataclasses.dataclass
class BvhMotion:
    """A parsed BVH file. Joints (End Sites included) are in file order, so parents come first."""

    source: str  # the path, or '<text>'
    joint_names: tuple[str, ...]  # End Sites are named '<parent>_End'
    parents: tuple[int, ...]  # -1 for the root
    offsets: np.ndarray  # float64 [J, 3] rest offsets from the parent, file units
    channels: tuple[tuple[str, ...], ...]  # per joint, e.g. ('Zrotation', 'Yrotation', 'Xrotation'); () for End Sites
    channel_start: tuple[int, ...]  # per joint, the column of its first channel in ``frames``
    end_site: tuple[bool, ...]
    frames: np.ndarray  # float64 [T, C] channel values (degrees for rotations, file units for positions)
    frame_time: float  # seconds per frame
    frames_declared: int  # the 'Frames:' line
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> motion lines dropped
    skipped_lines: tuple[int, ...] = ()  # 1-based line numbers of the dropped motion lines

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def every(self, stride: int) -> BvhMotion:
        """The same motion keeping every ``stride``-th frame."""
        return dataclasses.replace(self, frames=self.frames[::max(1, int(stride))])


# --- parsing -----------------------------------------------------------------------------------------
class _Tokens:
    """Whitespace/brace-separated tokens of the HIERARCHY section with their 1-based line numbers."""

    def __init__(self, lines: list[str], first_line: int, source: str):
        self.items = [(tok, first_line + k) for k, line in enumerate(lines)
                      for tok in re.findall(r"[{}]|[^\s{}]+", line)]
        self.i, self.source = 0, source
        self.last_line = first_line + max(len(lines) - 1, 0)

    def error(self, line: int, message: str) -> ValueError:
        return ValueError(f"{self.source} line {line}: {message}")

    def peek(self) -> str | None:
        return self.items[self.i][0] if self.i < len(self.items) else None

    def next(self, expected: str, inside: str) -> tuple[str, int]:
        if self.i >= len(self.items):
            raise self.error(self.last_line, f"the HIERARCHY ends while {expected} was expected inside {inside} "
                                             "(truncated file or missing '}'?)")
        self.i += 1
        return self.items[self.i - 1]

    def expect(self, keyword: str, inside: str) -> int:
        tok, line = self.next(f"'{keyword}'", inside)
        if tok.lower() != keyword.lower():
            raise self.error(line, f"expected '{keyword}' in {inside}, got '{tok}'")
        return line

    def number(self, what: str, inside: str) -> float:
        tok, line = self.next(what, inside)
        try:
            value = float(tok)
        except ValueError:
            raise self.error(line, f"expected {what} in {inside}, got '{tok}'") from None
        if not np.isfinite(value):
            raise self.error(line, f"{what} in {inside} is {tok}")
        return value


class _Builder:
    def __init__(self):
        self.names, self.parents, self.offsets, self.channels, self.end_site = [], [], [], [], []

    def add(self, name, parent, offset, channels, end_site):
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append(offset)
        self.channels.append(tuple(channels))
        self.end_site.append(end_site)
        return len(self.names) - 1


def _parse_offset(tok: _Tokens, inside: str) -> list[float]:
    tok.expect("OFFSET", inside)
    return [tok.number(f"OFFSET {axis}", inside) for axis in "xyz"]


def _parse_joint(tok: _Tokens, kind: str, parent: int, out: _Builder) -> None:
    name, line = tok.next(f"the {kind} name", f"the {kind} block")
    if name in ("{", "}"):
        raise tok.error(line, f"{kind} without a name")
    if name in out.names:
        raise tok.error(line, f"joint name '{name}' used twice")
    inside = f"{kind} {name}"
    tok.expect("{", inside)
    offset = _parse_offset(tok, inside)
    channels: list[str] = []
    if (tok.peek() or "").lower() == "channels":
        tok.next("CHANNELS", inside)
        count_tok, count_line = tok.next("the channel count", inside)
        if not count_tok.isdigit():
            raise tok.error(count_line, f"expected the number of channels after CHANNELS in {inside}, "
                                        f"got '{count_tok}'")
        for _ in range(int(count_tok)):
            ch, ch_line = tok.next(f"{count_tok} channel names", inside)
            if ch.lower() not in _CHANNEL_NAMES:
                raise tok.error(ch_line, f"unknown channel '{ch}' in {inside} (CHANNELS {count_tok} declares "
                                         f"{count_tok} of {', '.join(_CHANNEL_NAMES.values())})")
            channels.append(_CHANNEL_NAMES[ch.lower()])
        if len(set(channels)) != len(channels):
            raise tok.error(count_line, f"repeated channel in {inside}: {' '.join(channels)}")
    index = out.add(name, parent, offset, channels, False)
    while True:
        word, line = tok.next("JOINT, End Site or '}'", inside)
        key = word.lower()
        if key == "joint":
            _parse_joint(tok, "JOINT", index, out)
        elif key == "end":
            tok.expect("Site", inside)
            site, k = f"{name}_End", 1
            while site in out.names:  # a second End Site under the same joint: '<name>_End2', ...
                k += 1
                site = f"{name}_End{k}"
            tok.expect("{", f"the End Site of {name}")
            site_offset = _parse_offset(tok, f"the End Site of {name}")
            tok.expect("}", f"the End Site of {name}")
            out.add(site, index, site_offset, (), True)
        elif key == "}":
            return
        else:
            raise tok.error(line, f"unexpected '{word}' in {inside} (expected JOINT, End Site or '}}')")


def _read_text(path_or_text) -> tuple[str, str]:
    """-> (text, source name). A str containing a newline or starting with HIERARCHY is BVH text."""
    if isinstance(path_or_text, str) and ("\n" in path_or_text or path_or_text.lstrip().startswith("HIERARCHY")):
        return path_or_text, "<text>"
    path = os.fspath(path_or_text)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BVH file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text, path


def _parse_motion(lines: list[str], first_line: int, num_channels: int, source: str
                  ) -> tuple[np.ndarray, float, int, dict[str, int], tuple[int, ...]]:
    """The lines after MOTION -> (frames [T, C], frame time, declared T, skipped, skipped line numbers)."""
    numbered = [(first_line + k, line.strip()) for k, line in enumerate(lines) if line.strip()]
    header = {}
    for key, pattern in (("frames", r"frames\s*:\s*(\S+)$"), ("frame_time", r"frame\s*time\s*:\s*(\S+)$")):
        if not numbered:
            raise ValueError(f"{source}: the file ends before the '{'Frames:' if key == 'frames' else 'Frame Time:'}' "
                             "line of the MOTION section")
        line_no, line = numbered.pop(0)
        match = re.match(pattern, line, re.IGNORECASE)
        try:
            header[key] = int(match.group(1)) if key == "frames" else float(match.group(1))
        except (AttributeError, ValueError):
            expected = "'Frames: <count>'" if key == "frames" else "'Frame Time: <seconds>'"
            raise ValueError(f"{source} line {line_no}: expected {expected}, got {line[:60]!r}") from None
    if header["frames"] < 0 or not header["frame_time"] >= 0:
        raise ValueError(f"{source}: Frames: {header['frames']} / Frame Time: {header['frame_time']} must be >= 0")
    skipped: dict[str, int] = {}
    bad_lines: list[int] = []
    rows: list[list[str]] = []

    def skip(reason: str, line_no: int) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1
        bad_lines.append(line_no)

    kept_lines = []
    for line_no, line in numbered:
        fields = line.split()
        if len(fields) != num_channels:
            skip("motion lines with a wrong number of values", line_no)
        else:
            rows.append(fields)
            kept_lines.append(line_no)
    try:  # fast path: one conversion for the whole block
        frames = np.array(rows, dtype=np.float64).reshape(len(rows), num_channels)
    except ValueError:
        good, good_lines = [], []
        for fields, line_no in zip(rows, kept_lines, strict=True):
            try:
                good.append([float(v) for v in fields])
                good_lines.append(line_no)
            except ValueError:
                skip("motion lines with non-numbers", line_no)
        frames, kept_lines = np.array(good, np.float64).reshape(len(good), num_channels), good_lines
    finite = np.isfinite(frames).all(axis=1)
    for line_no in np.asarray(kept_lines, int)[~finite]:
        skip("motion lines with non-finite values", int(line_no))
    frames = frames[finite]
    missing = header["frames"] - len(numbered)
    if missing > 0:
        skipped["frames declared but missing"] = missing
    return frames, header["frame_time"], header["frames"], skipped, tuple(sorted(bad_lines))


def parse_bvh(path_or_text) -> BvhMotion:
    """Parses a BVH file (a path) or BVH text (a str containing newlines) into a :class:`BvhMotion`.

    Hierarchy errors (truncated, missing brace or OFFSET, unknown channel, no MOTION) -> ValueError naming the
    file and line; a missing path -> FileNotFoundError. Bad motion lines are skipped and counted, see the
    module docstring.
    """
    text, source = _read_text(path_or_text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = next((k for k, line in enumerate(lines) if line.strip()), None)
    if start is None or lines[start].strip().upper() != "HIERARCHY":
        line_no = 1 if start is None else start + 1
        got = "an empty file" if start is None else repr(lines[start].strip()[:60])
        raise ValueError(f"{source} line {line_no}: expected 'HIERARCHY' (not a BVH file?), got {got}")
    motion_at = next((k for k in range(start + 1, len(lines)) if lines[k].strip().upper() == "MOTION"), len(lines))
    tok = _Tokens(lines[start + 1:motion_at], start + 2, source)
    out = _Builder()
    if (tok.peek() or "").upper() != "ROOT":
        line = tok.items[0][1] if tok.items else start + 1
        raise tok.error(line, f"expected 'ROOT <name>' after HIERARCHY, got {tok.peek()!r}")
    while tok.peek() is not None:
        word, line = tok.next("ROOT", "the HIERARCHY")
        if word.upper() != "ROOT":
            raise tok.error(line, f"unexpected '{word}' after the closing brace of the ROOT joint")
        _parse_joint(tok, "ROOT", -1, out)
    if motion_at == len(lines):
        raise ValueError(f"{source}: no MOTION section after the HIERARCHY (truncated file?)")
    starts, c = [], 0
    for channels in out.channels:
        starts.append(c)
        c += len(channels)
    frames, frame_time, declared, skipped, bad = _parse_motion(lines[motion_at + 1:], motion_at + 2, c, source)
    return BvhMotion(source=source, joint_names=tuple(out.names), parents=tuple(out.parents),
                     offsets=np.array(out.offsets, np.float64).reshape(-1, 3), channels=tuple(out.channels),
                     channel_start=tuple(starts), end_site=tuple(out.end_site), frames=frames,
                     frame_time=frame_time, frames_declared=declared, skipped=skipped, skipped_lines=bad)


# --- kinematics --------------------------------------------------------------------------------------
def _world_positions(motion: BvhMotion, frames: np.ndarray) -> np.ndarray:
    """float64 [T, J, 3] world positions of every joint and End Site for channel values [T, C]."""
    t = len(frames)
    positions = np.zeros((motion.num_joints, t, 3))
    rotations = np.zeros((motion.num_joints, t, 3, 3))
    for j, parent in enumerate(motion.parents):
        translation = np.repeat(motion.offsets[j][None], t, axis=0)
        local = None
        for k, channel in enumerate(motion.channels[j]):
            values = frames[:, motion.channel_start[j] + k]
            axis = _AXIS[channel[0]]
            if channel.endswith("position"):
                translation[:, axis] += values
            else:
                step = (poses.rot_x, poses.rot_y, poses.rot_z)[axis](np.deg2rad(values))
                local = step if local is None else local @ step
        if parent < 0:
            positions[j] = translation
            rotations[j] = np.eye(3) if local is None else local
        else:
            positions[j] = positions[parent] + np.einsum("tij,tj->ti", rotations[parent], translation)
            rotations[j] = rotations[parent] if local is None else rotations[parent] @ local
    return positions.transpose(1, 0, 2)


def forward_kinematics(motion: BvhMotion) -> np.ndarray:
    """float32 [T, J, 3] world positions (file units and axes) of all joints and End Sites, in
    ``motion.joint_names`` order, vectorised over frames."""
    return _world_positions(motion, motion.frames).astype(np.float32)


def rest_positions(motion: BvhMotion) -> np.ndarray:
    """float64 [J, 3]: the skeleton with every channel 0 (offsets only; the root at its OFFSET)."""
    return _world_positions(motion, np.zeros((1, motion.num_channels)))[0]


# --- mapping to Human3.6M -----------------------------------------------------------------------------
def _check_mapping(mapping: Mapping[str, str | Iterable[str]]) -> dict[str, tuple[str, ...]]:
    missing = [n for n in H36M_17.joint_names if n not in mapping]
    extra = [n for n in mapping if n not in H36M_17.joint_names]
    if missing or extra:
        raise ValueError(f"a BVH -> H36M mapping needs exactly the keys {', '.join(H36M_17.joint_names)}; missing "
                         f"{missing or 'none'}, unknown {extra or 'none'}")
    resolved = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in mapping.items()}
    empty = [k for k, v in resolved.items() if not v]
    if empty:
        raise ValueError(f"mapping entries without BVH joints: {empty}")
    return resolved


def resolve_mapping(motion: BvhMotion, mapping: Mapping[str, str | Iterable[str]] | None = None
                    ) -> tuple[str, list[list[int]]]:
    """-> (mapping name, per H36M_17 joint the indices of the BVH joints to average).

    mapping: {H36M joint name: BVH joint name or names}; None tries :data:`KNOWN_MAPPINGS` (CMU's two
    releases) and takes the first whose joints are all in the file. A joint the file lacks -> ValueError
    naming the file and the missing joints."""
    candidates = {"custom": _check_mapping(mapping)} if mapping is not None else KNOWN_MAPPINGS
    index = {name: j for j, name in enumerate(motion.joint_names)}
    problems = []
    for name, table in candidates.items():
        missing = sorted({b for h in H36M_17.joint_names for b in table[h] if b not in index})
        if not missing:
            return name, [[index[b] for b in table[h]] for h in H36M_17.joint_names]
        problems.append(f"{name} mapping: no {', '.join(missing)}")
    raise ValueError(f"{motion.source}: cannot map the BVH joints to the 17 Human3.6M joints ({'; '.join(problems)})"
                     f"; pass mapping={{H36M joint: BVH joint(s)}} for this rig. Joints in the file: "
                     f"{', '.join(motion.joint_names)}")


def _mapped(positions: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """[..., J_bvh, 3] -> [..., 17, 3], each H36M joint the mean of its BVH joints."""
    return np.stack([positions[..., g, :].mean(axis=-2) for g in groups], axis=-2)


def estimate_scale_to_mm(motion: BvhMotion, mapping: Mapping[str, str | Iterable[str]] | None = None
                         ) -> tuple[float, str]:
    """Guesses the file's length unit -> (millimetres per file unit, unit name from :data:`UNITS_MM`).

    BVH has no unit field. The rest skeleton's size in the 17-joint layout (mean leg length hip -> knee ->
    ankle, plus the spine chain Hip -> Spine -> Thorax -> Neck -> Head top; rotation-invariant bone sums) is
    compared with :data:`NOMINAL_HEIGHT_PROXY_MM`, and the unit among mm, cm, inch, CMU ASF units (56.444 mm)
    and m that brings it closest (in ratio) wins. Neighbouring candidates differ by 2.2x or more, so a
    subject 40 % off the nominal size still gets the right unit; CMU files (about 25 units) get 'cmu_asf'.
    """
    _, groups = resolve_mapping(motion, mapping)
    rest = _mapped(rest_positions(motion), groups)
    name = H36M_17.index

    def chain(*joints):
        return sum(np.linalg.norm(rest[name(b)] - rest[name(a)]) for a, b in zip(joints[:-1], joints[1:], strict=True))

    legs = 0.5 * (chain("LHip", "LKnee", "LFoot") + chain("RHip", "RKnee", "RFoot"))
    size = legs + chain("Hip", "Spine", "Thorax", "Neck", "Head")
    if not size > 0:
        raise ValueError(f"{motion.source}: the rest skeleton has no extent; cannot estimate its unit "
                         "(pass scale_to_mm)")
    unit = min(UNITS_MM, key=lambda u: abs(np.log(size * UNITS_MM[u] / NOMINAL_HEIGHT_PROXY_MM)))
    return UNITS_MM[unit], unit


def bvh_to_h36m(motion: BvhMotion, scale_to_mm: float | None = None,
                mapping: Mapping[str, str | Iterable[str]] | None = None, up_axis: str = "y") -> np.ndarray:
    """float32 [T, 17, 3] canonical Human3.6M-layout poses: root-relative millimetres, +y up, facing +z.

    scale_to_mm: millimetres per file unit (56.444 for CMU, 10 for a file in cm); None estimates it
      (:func:`estimate_scale_to_mm`).
    mapping: {H36M joint: BVH joint name(s)} for rigs other than CMU's; None = :data:`KNOWN_MAPPINGS`.
    up_axis: 'y' (BVH's usual, CMU) or 'z' (turned to +y up like Human3.6M's world frame).

    Each frame is turned about +y so the hips' right -> left axis lies along +x (root yaw removed,
    :func:`h36m.face_forward`): the discriminator compares poses in the canonical frame, where the facing
    direction belongs to the camera, not to the pose.
    """
    _, groups = resolve_mapping(motion, mapping)
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    if scale_to_mm is None:
        scale_to_mm, _ = estimate_scale_to_mm(motion, mapping)
    if not scale_to_mm > 0:
        raise ValueError(f"scale_to_mm must be > 0, got {scale_to_mm}")
    joints = _mapped(_world_positions(motion, motion.frames), groups)
    if up_axis == "z":
        joints = np.einsum("ij,tkj->tki", WORLD_TO_CANONICAL.astype(np.float64), joints)
    return face_forward(poses.root_relative(joints * float(scale_to_mm)))


# --- a folder of files -------------------------------------------------------------------------------
def _bvh_files(paths_or_dir) -> list[str]:
    items = [paths_or_dir] if isinstance(paths_or_dir, str | os.PathLike) else list(paths_or_dir)
    files = []
    for item in items:
        item = os.path.abspath(os.path.expanduser(os.fspath(item)))
        if os.path.isdir(item):
            found = sorted(os.path.join(d, f) for d, _, names in os.walk(item) for f in names
                           if f.lower().endswith(".bvh"))
            if not found:
                raise FileNotFoundError(f"no *.bvh files under {item} ({_README})")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"BVH file or folder not found: {item} ({_README})")
    return files


def load_bvh_prior(paths_or_dir, frame_stride: int = 4, log: Callable[[str], None] = print,
                   mapping: Mapping[str, str | Iterable[str]] | None = None, scale_to_mm: float | None = None,
                   up_axis: str = "y") -> tuple[np.ndarray, dict[str, int]]:
    """3D prior poses from BVH files: a folder (searched recursively for *.bvh), a file, or a list of either.

    frame_stride: keep every n-th frame (4: CMU's 120 Hz -> 30 Hz).
    mapping / scale_to_mm / up_axis: see :func:`bvh_to_h36m` (None = per-file detection).
    Returns (float32 [M, 17, 3] canonical poses, skipped {reason: count}). A file that cannot be parsed or
    lacks the mapped joints is skipped, counted ('unreadable BVH files', 'BVH files without the mapped
    joints') and logged with the reason; bad motion lines inside readable files are counted by reason.
    Missing path or a folder without .bvh files -> FileNotFoundError; no readable file at all -> ValueError.
    """
    if int(frame_stride) < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    files = _bvh_files(paths_or_dir)
    skipped: dict[str, int] = {}

    def count(reason: str, n: int = 1) -> None:
        skipped[reason] = skipped.get(reason, 0) + n

    parts, units = [], {}
    for path in files:
        try:
            motion = parse_bvh(path)
        except (ValueError, OSError) as err:
            count("unreadable BVH files")
            log(f"BVH: skipping {path}: {err}")
            continue
        try:
            resolve_mapping(motion, mapping)
        except ValueError as err:
            count("BVH files without the mapped joints")
            log(f"BVH: skipping {path}: {err}")
            continue
        for reason, n in motion.skipped.items():
            count(reason, n)
        if motion.skipped:
            log(f"BVH: {path}: skipped motion lines {list(motion.skipped_lines[:5])}"
                f"{' ...' if len(motion.skipped_lines) > 5 else ''} ({', '.join(motion.skipped)})")
        scale, unit = (scale_to_mm, "given") if scale_to_mm is not None else estimate_scale_to_mm(motion, mapping)
        units[unit] = units.get(unit, 0) + 1
        poses_3d = bvh_to_h36m(motion.every(frame_stride), scale, mapping, up_axis)
        keep, dropped = poses.valid_rows(poses_3d, H36M_17.num_joints)
        for reason, n in dropped.items():
            count(reason, n)
        parts.append(poses_3d[keep])
    if not parts:
        raise ValueError(f"none of the {len(files)} BVH files could be used ({skipped}); {_README}")
    prior = np.concatenate(parts).astype(np.float32)
    log(f"BVH prior: {len(prior)} poses from {len(parts)} of {len(files)} files (every {frame_stride}th frame; "
        f"units {units})")
    return prior, skipped
