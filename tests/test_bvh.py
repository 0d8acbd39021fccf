"""BVH parsing, forward kinematics and the CMU -> Human3.6M 17-joint mapping."""

import os
import re

import numpy as np
import pytest
from fixtures_pose import (
    CMU_SKELETON,
    cmu_columns,
    cmu_frame,
    cmu_joints,
    cmu_rest_world,
    default_cmu_frames,
    write_cmu_bvh,
)

from aign_tf.data import bvh
from aign_tf.data.skeleton import H36M_17

CMU_MM = 56.444  # mm per CMU ASF unit: (1 / 0.45) inch

# Two joints, hand-checkable: the chest 10 up from the hips, an End Site 5 above the chest.
SMALL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.1
1 2 3 90 0 0 0 0 0
0 0 0 0 0 0 90 90 0
0 0 0 0 0 0 0 0 0
"""


@pytest.fixture(scope="module")
def cmu(tmp_path_factory):
    return write_cmu_bvh(tmp_path_factory.mktemp("cmu") / "01_01.bvh")


# --- parsing -----------------------------------------------------------------------------------------
def test_parse_cmu_layout_with_crlf_tabs_and_a_bad_line(cmu):
    with open(cmu["path"], "rb") as f:
        raw = f.read()
    assert b"\r\n" in raw and b"\t\tJOINT" in raw and raw.endswith(b"\r\n\r\n\r\n")  # the quirks are there
    motion = bvh.parse_bvh(cmu["path"])
    names = [name for name, _, _ in cmu_joints()]
    assert motion.joint_names == tuple(names) and len(names) == 31 + 7  # 31 joints, 7 End Sites
    assert motion.parents[names.index("LeftUpLeg")] == names.index("LHipJoint")
    assert motion.parents[names.index("Head_End")] == names.index("Head") and motion.end_site[names.index("Head_End")]
    assert motion.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert motion.channels[names.index("LeftArm")] == ("Zrotation", "Yrotation", "Xrotation")
    assert motion.num_channels == 96 and motion.channel_start[1] == 6 and motion.channel_start[2] == 9
    np.testing.assert_allclose(motion.offsets[names.index("LeftLeg")], [2.4, -6.6, 0.0])
    assert motion.frame_time == pytest.approx(1 / 120, rel=1e-3) and motion.frames_declared == 5
    np.testing.assert_allclose(motion.frames, cmu["frames"], atol=1e-4)  # 4 good rows, in order
    assert motion.skipped == {"motion lines with a wrong number of values": 1}
    assert motion.skipped_lines == (cmu["bad_line"],)


def test_parse_text_and_free_whitespace():
    text = SMALL.replace("ROOT Hips\n{", "ROOT Hips {").replace("\n", "  \r\n").replace("  ", "\t")
    motion = bvh.parse_bvh(text + "\r\n\r\n")
    assert motion.source == "<text>" and motion.joint_names == ("Hips", "Chest", "Chest_End")
    assert motion.parents == (-1, 0, 1) and motion.frames.shape == (3, 9) and motion.skipped == {}


def test_truncated_hierarchy_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "cut.bvh"
    write_cmu_bvh(path, truncate_hierarchy_at=40)
    with pytest.raises(ValueError, match=r"line \d+: .*(truncated|missing)") as info:
        bvh.parse_bvh(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change,match", [
    (("Xrotation Yrotation\n    End", "Xrotation Wrotation\n    End"), r"line 9: unknown channel 'Wrotation'"),
    (("OFFSET 0 10 0", "OFSET 0 10 0"), r"line 8: expected 'OFFSET' in JOINT Chest, got 'OFSET'"),
    (("OFFSET 0 5 0", "OFFSET 0 five 0"), r"line 12: expected OFFSET y in the End Site of Chest, got 'five'"),
    (("HIERARCHY", "HIERARCHIES"), r"line 1: expected 'HIERARCHY'"),
    (("Frames: 3", "Frames 3"), r"line 17: expected 'Frames: <count>'"),
    (("MOTION", "MOVEMENT"), r"unexpected 'MOVEMENT' after the closing brace"),
])
def test_malformed_hierarchy_messages(change, match):
    with pytest.raises(ValueError, match=match):
        bvh.parse_bvh(SMALL.replace(*change))


def test_bad_motion_lines_are_skipped_and_counted():
    lines = SMALL.split("\n")
    lines[19] = "1 2 3 90 0 0 0 0"  # one value short
    lines[20] = "0 0 0 0 0 0 x 90 0"  # not a number
    lines[21] = "0 0 0 0 0 0 nan 0 0"  # not finite
    motion = bvh.parse_bvh("\n".join(lines + ["0 0 0 0 0 0 0 0 0"]))
    assert motion.frames.shape == (2, 9)  # lines 19 and 23
    assert motion.skipped == {"motion lines with a wrong number of values": 1, "motion lines with non-numbers": 1,
                              "motion lines with non-finite values": 1}
    assert motion.skipped_lines == (20, 21, 22)


def test_truncated_motion_counts_missing_frames():
    motion = bvh.parse_bvh(SMALL.replace("Frames: 3", "Frames: 10"))
    assert len(motion.frames) == 3 and motion.skipped == {"frames declared but missing": 7}


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bvh"):
        bvh.parse_bvh(str(tmp_path / "nope.bvh"))


# --- forward kinematics ------------------------------------------------------------------------------
def test_fk_hand_computed_rotations_and_channel_order():
    positions = bvh.forward_kinematics(bvh.parse_bvh(SMALL))
    assert positions.dtype == np.float32 and positions.shape == (3, 3, 3)
    # frame 0: root at (1, 2, 3) turned 90 degrees about z: the chest's (0, 10, 0) becomes (-10, 0, 0)
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [-9, 2, 3], [-14, 2, 3]], atol=1e-5)
    # frame 1: chest 'Zrotation 90 Xrotation 90' = Rz @ Rx: x first takes (0, 5, 0) to (0, 0, 5), z keeps it
    # (the reverse order would give (-5, 0, 0))
    np.testing.assert_allclose(positions[1], [[0, 0, 0], [0, 10, 0], [0, 10, 5]], atol=1e-5)
    np.testing.assert_allclose(positions[2], [[0, 0, 0], [0, 10, 0], [0, 15, 0]], atol=1e-5)


def test_fk_arbitrary_channel_subset_and_order():
    text = SMALL.replace("CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
                         "CHANNELS 4 Xrotation Zposition Xposition Yposition").replace("OFFSET 0 0 0", "OFFSET 100 0 0")
    text = text.split("MOTION")[0] + "MOTION\nFrames: 1\nFrame Time: 0.1\n90 7 8 9 0 0 0\n"
    positions = bvh.forward_kinematics(bvh.parse_bvh(text))
    # root at OFFSET + (x, y, z) = (108, 9, 7), turned 90 degrees about x: (0, 10, 0) -> (0, 0, 10), ...
    np.testing.assert_allclose(positions[0], [[108, 9, 7], [108, 9, 17], [108, 9, 22]], atol=1e-5)


def test_fk_zero_rotation_frame_is_summed_offsets(cmu):
    motion = bvh.parse_bvh(cmu["path"])
    positions = bvh.forward_kinematics(motion)[0]  # frame 0: every rotation 0, root at (0.5, 17, -30)
    rest = cmu_rest_world((0.5, 17.0, -30.0))
    for j, name in enumerate(motion.joint_names):
        np.testing.assert_allclose(positions[j], rest[name], atol=1e-4, err_msg=name)


def test_fk_root_yaw_turns_the_body(cmu):
    motion = bvh.parse_bvh(cmu["path"])
    positions = bvh.forward_kinematics(motion)
    left, right = motion.joint_names.index("LeftUpLeg"), motion.joint_names.index("RightUpLeg")
    axis = positions[1, left] - positions[1, right]  # frame 1: root Yrotation 120
    yaw = np.deg2rad(120.0)
    np.testing.assert_allclose(axis / np.linalg.norm(axis), [np.cos(yaw), 0, -np.sin(yaw)], atol=1e-5)


# --- Human3.6M layout --------------------------------------------------------------------------------
def test_cmu_mapping_covers_the_17_joints():
    assert set(bvh.CMU_TO_H36M) == set(H36M_17.joint_names)
    cmu_names = {name for name, _, _ in cmu_joints()}
    assert {b for names in bvh.CMU_TO_H36M.values() for b in names} <= cmu_names


def test_rest_frame_maps_to_hand_computed_joints(cmu):
    motion = bvh.parse_bvh(cmu["path"])
    got = bvh.bvh_to_h36m(motion, scale_to_mm=CMU_MM)
    assert got.dtype == np.float32 and got.shape == (4, 17, 3)
    rest = cmu_rest_world()
    pelvis = (rest["LeftUpLeg"] + rest["RightUpLeg"]) / 2
    expected = {"Hip": pelvis, "RHip": rest["RightUpLeg"], "RKnee": rest["RightLeg"], "RFoot": rest["RightFoot"],
                "LHip": rest["LeftUpLeg"], "LKnee": rest["LeftLeg"], "LFoot": rest["LeftFoot"],
                "Spine": rest["Spine"], "Thorax": rest["Neck1"], "Neck": rest["Head"], "Head": rest["Head_End"],
                "LShoulder": rest["LeftArm"], "LElbow": rest["LeftForeArm"], "LWrist": rest["LeftHand"],
                "RShoulder": rest["RightArm"], "RElbow": rest["RightForeArm"], "RWrist": rest["RightHand"]}
    for name, position in expected.items():
        np.testing.assert_allclose(got[0, H36M_17.index(name)], (position - pelvis) * CMU_MM, atol=0.01,
                                   err_msg=name)
    assert got[0, H36M_17.index("Head"), 1] > got[0, H36M_17.index("Thorax"), 1] > 300  # +y up, mm


@pytest.mark.parametrize("unit,mm", [("cmu_asf", CMU_MM), ("cm", 10.0), ("inch", 25.4), ("m", 1000.0), ("mm", 1.0)])
def test_units_estimated_and_converted_to_mm(tmp_path, cmu, unit, mm):
    path = tmp_path / f"in_{unit}.bvh"
    write_cmu_bvh(path, scale=CMU_MM / mm)  # the same body written in another unit
    motion = bvh.parse_bvh(str(path))
    scale, name = bvh.estimate_scale_to_mm(motion)
    assert name == unit and scale == pytest.approx(mm, rel=1e-3)
    reference = bvh.bvh_to_h36m(bvh.parse_bvh(cmu["path"]), scale_to_mm=CMU_MM)
    np.testing.assert_allclose(bvh.bvh_to_h36m(motion), reference, atol=0.05 + 1e-4 * mm)


def test_root_yaw_removed_puts_hips_on_x(cmu):
    got = bvh.bvh_to_h36m(bvh.parse_bvh(cmu["path"]), scale_to_mm=CMU_MM)
    hips = got[:, H36M_17.index("LHip")] - got[:, H36M_17.index("RHip")]
    assert (hips[:, 0] > 150).all() and np.abs(hips[:, 2]).max() < 1e-3
    # frames 1 and 2: the same body pose, yawed 120 degrees / not, elsewhere in the room -> the same output
    np.testing.assert_allclose(got[1], got[2], atol=1e-3)
    assert np.abs(got[1] - got[0]).max() > 50  # ... and it is not the rest pose
    np.testing.assert_allclose(got[:, 0], 0.0, atol=1e-4)  # root-relative


def test_z_up_files_and_mapping_override():
    # a three-joint Z-up rig with its own names
    text = """HIERARCHY
ROOT pelvis
{
  OFFSET 0 0 0
  CHANNELS 3 Xposition Yposition Zposition
  JOINT l_hip { OFFSET 100 0 0 CHANNELS 3 Xrotation Yrotation Zrotation End Site { OFFSET 0 0 -800 } }
  JOINT r_hip { OFFSET -100 0 0 CHANNELS 3 Xrotation Yrotation Zrotation End Site { OFFSET 0 0 -800 } }
  JOINT neck { OFFSET 0 0 500 CHANNELS 3 Xrotation Yrotation Zrotation End Site { OFFSET 0 0 200 } }
}
MOTION
Frames: 1
Frame Time: 0.01
0 0 900 0 0 0 0 0 0 0 0 0
"""
    motion = bvh.parse_bvh(text)
    with pytest.raises(ValueError, match=r"<text>: cannot map .*no .*LeftUpLeg.*pass mapping="):
        bvh.bvh_to_h36m(motion)
    mapping = {name: "pelvis" for name in H36M_17.joint_names}
    mapping.update(LHip="l_hip", RHip="r_hip", LFoot="l_hip_End", RFoot="r_hip_End", Thorax="neck", Head="neck_End",
                   Spine=("pelvis", "neck"))
    got = bvh.bvh_to_h36m(motion, scale_to_mm=1.0, mapping=mapping, up_axis="z")
    np.testing.assert_allclose(got[0, H36M_17.index("Head")], [0, 700, 0], atol=1e-3)
    np.testing.assert_allclose(got[0, H36M_17.index("LFoot")], [100, -800, 0], atol=1e-3)
    np.testing.assert_allclose(got[0, H36M_17.index("Spine")], [0, 250, 0], atol=1e-3)  # a midpoint
    with pytest.raises(ValueError, match="missing"):
        bvh.bvh_to_h36m(motion, mapping={"Hip": "pelvis"})


def test_3dsmax_release_names_are_detected(tmp_path, cmu):
    renamed = {"LeftUpLeg": "LeftHip", "LeftLeg": "LeftKnee", "LeftFoot": "LeftAnkle", "LeftToeBase": "LeftToe",
               "RightUpLeg": "RightHip", "RightLeg": "RightKnee", "RightFoot": "RightAnkle",
               "RightToeBase": "RightToe", "LowerBack": "lowerback", "Spine": "Chest", "Spine1": "Chest2",
               "Neck": "lowerneck", "Neck1": "Neck", "LeftShoulder": "LeftCollar", "LeftArm": "LeftShoulder",
               "LeftForeArm": "LeftElbow", "LeftHand": "LeftWrist", "RightShoulder": "RightCollar",
               "RightArm": "RightShoulder", "RightForeArm": "RightElbow", "RightHand": "RightWrist"}
    text = re.sub(r"\b\w+\b", lambda m: renamed.get(m.group(0), m.group(0)), cmu["text"])
    motion = bvh.parse_bvh(text)
    assert "LeftCollar" in motion.joint_names and "LeftUpLeg" not in motion.joint_names
    assert bvh.resolve_mapping(motion)[0] == "cmu_3dsmax"
    np.testing.assert_allclose(bvh.bvh_to_h36m(motion), bvh.bvh_to_h36m(bvh.parse_bvh(cmu["path"])), atol=1e-3)


# --- a folder of files -------------------------------------------------------------------------------
def test_load_bvh_prior_folder(tmp_path):
    write_cmu_bvh(tmp_path / "01_01.bvh")
    os.makedirs(tmp_path / "sub" / "deeper")
    frames = np.repeat(default_cmu_frames(), 3, axis=0)  # 12 frames
    write_cmu_bvh(tmp_path / "sub" / "deeper" / "02_01.BVH", frames=frames, bad_line_after=None)
    (tmp_path / "sub" / "broken.bvh").write_text("<html>not found</html>\n")
    write_cmu_bvh(tmp_path / "sub" / "cut.bvh", truncate_hierarchy_at=30)
    (tmp_path / "notes.txt").write_text("not a bvh")
    messages = []
    prior, skipped = bvh.load_bvh_prior(str(tmp_path), frame_stride=4, log=messages.append)
    assert prior.dtype == np.float32 and prior.shape == (1 + 3, 17, 3)  # 4 frames -> 1, 12 -> 3
    assert skipped == {"unreadable BVH files": 2, "motion lines with a wrong number of values": 1}
    assert any("broken.bvh" in m and "HIERARCHY" in m for m in messages)
    assert any("cut.bvh" in m for m in messages)
    np.testing.assert_allclose(prior[:, 0], 0.0, atol=1e-4)
    first = bvh.bvh_to_h36m(bvh.parse_bvh(str(tmp_path / "01_01.bvh")))
    np.testing.assert_allclose(prior[0], first[0], atol=1e-3)


def test_load_bvh_prior_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*.bvh files under"):
        bvh.load_bvh_prior(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        bvh.load_bvh_prior(str(tmp_path / "missing_dir"))
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    with pytest.raises(ValueError, match="none of the 1 BVH files"):
        bvh.load_bvh_prior(str(tmp_path), log=lambda m: None)


def test_fixture_skeleton_is_cmu_shaped():
    assert CMU_SKELETON[0] == "Hips" and len(cmu_columns()) == 96
    assert cmu_frame({("Hips", "Yrotation"): 5.0})[4] == 5.0  # root channels: X Y Z position, Z Y X rotation
