"""The built-in procedural poses: determinism, forward-kinematics correctness (bone lengths, symmetry),
anatomical limits, the pose families, the train / test / prior split and the cache.

Importing the TensorFlow renderer (TensorFlow + tensorflow_graphics) takes 20-30 s on a small machine, so
the split tests photograph with ``numpy_photograph``, a NumPy pinhole with the renderer's conventions;
``test_real_renderer_agrees`` checks the real one against it.
"""

import contextlib
import dataclasses

import numpy as np
import pytest
from fixtures_pose import numpy_photograph, pinhole

from aign_tf.data import poses as poses_lib
from aign_tf.data import synthetic_poses as sp
from aign_tf.data.skeleton import H36M_17, Skeleton

SK = H36M_17
PARENTS = np.array(SK.parents)
J = SK.index


@pytest.fixture(scope="module")
def drawn():
    """3000 poses of 16 subjects (about 0.15 s)."""
    return sp.generate_poses(3000, seed=5)


@contextlib.contextmanager
def numpy_camera():
    """Photographs with ``numpy_photograph`` inside the block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(poses_lib, "photograph", numpy_photograph)
        yield


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("pose_cache"))
    lines = []
    with numpy_camera():
        out = sp.load_or_generate(300, 100, 400, seed=2, cache_dir=cache, missing_fraction=0.1, log=lines.append)
    return out, cache, lines


def bone_lengths(poses: np.ndarray) -> np.ndarray:
    """[N, J, 3] -> [N, J - 1] lengths of the bones (joint - parent), joint order 1..J-1."""
    return np.linalg.norm(poses[:, 1:] - poses[:, PARENTS[1:]], axis=-1)


def angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_api_constants():
    assert sp.POSE_FAMILIES == ("standing", "walking", "sitting", "reaching", "crouching")
    assert sp.GENERATOR_VERSION == 1
    assert set(sp.ANGLE_NAMES) == {f"{a}_{s}" for a in sp._SIDED for s in "LR"} | (set(sp.LIMITS) - set(sp._SIDED))


def test_shapes_dtypes_finite_root(drawn):
    poses, subjects, family = drawn
    assert poses.shape == (3000, 17, 3) and poses.dtype == np.float32
    assert subjects.shape == (3000,) and subjects.dtype == np.int32
    assert family.shape == (3000,) and family.dtype == np.int32
    assert np.isfinite(poses).all()
    np.testing.assert_array_equal(poses[:, 0], 0.0)
    assert set(subjects.tolist()) == set(range(16))
    counts = np.bincount(family, minlength=5)
    assert counts.min() > 500  # uniform over the five families
    empty = sp.generate_poses(0, seed=1)
    assert empty[0].shape == (0, 17, 3) and empty[1].shape == (0,)


def test_determinism_and_chunk_independence():
    n = sp.CHUNK_SIZE + 37  # spans two chunks
    a = sp.generate_poses(n, seed=3)
    b = sp.generate_poses(n, seed=3)
    short = sp.generate_poses(20, seed=3)
    for x, y, z in zip(a, b, short, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x[:20], z)
    other_seed = sp.generate_poses(20, seed=4)[0]
    other_stream = sp.generate_poses(20, seed=3, stream=1)[0]
    assert np.abs(other_seed - short[0]).max() > 10.0
    assert np.abs(other_stream - short[0]).max() > 10.0
    # Restricting the families only changes which family is picked: the picked angles are the same.
    sitting = sp.generate_poses(200, seed=3, families=("sitting",))
    assert (sitting[2] == 2).all()
    same = a[2][:200] == 2
    assert same.sum() > 10
    np.testing.assert_allclose(sitting[0][same], a[0][:200][same], atol=1e-3)


def test_bone_lengths_constant_per_subject_and_symmetric(drawn):
    poses, subjects, _ = drawn
    lengths = bone_lengths(poses)
    for s in np.unique(subjects):
        per = lengths[subjects == s]
        assert per.shape[0] > 50
        assert np.abs(per - per[0]).max() < 0.02, f"subject {s}: bone lengths change between poses"
    for left, right in zip(SK.left, SK.right, strict=True):
        np.testing.assert_allclose(lengths[:, left - 1], lengths[:, right - 1], atol=0.02)
    # Different subjects have different bodies.
    firsts = np.stack([lengths[subjects == s][0] for s in np.unique(subjects)])
    gaps = np.linalg.norm(firsts[:, None] - firsts[None], axis=-1) + np.eye(len(firsts)) * 1e9
    assert gaps.min() > 5.0


def test_proportions_are_h36m_like(drawn):
    poses, _, family = drawn
    mean = dict(zip(SK.joint_names[1:], bone_lengths(poses).mean(0), strict=True))
    expected = {"RHip": 130, "RKnee": 450, "RFoot": 440, "LElbow": 280, "LWrist": 250}
    for joint, mm in expected.items():
        assert abs(mean[joint] - mm) < 0.08 * mm, (joint, mean[joint])
    assert 150 <= mean["LShoulder"] <= 180
    standing = poses[family == 0]
    span = standing[:, J("Head"), 1] - standing[:, [J("LFoot"), J("RFoot")], 1].min(1)  # joint span, no soles
    assert span.min() > 1300 and span.max() < 1950
    assert 1500 < span.mean() < 1700


def test_fk_rest_pose_and_mirror_symmetry():
    n = 3
    lengths = np.tile([[130.0, 450.0, 440.0, 230.0, 250.0, 120.0, 115.0, 165.0, 280.0, 250.0]], (n, 1))
    zero = {name: np.zeros(n) for name in sp.ANGLE_NAMES}
    rest = sp.pose_from_angles(zero, lengths)
    # Straight legs hang vertically below the hips, straight arms below the shoulders.
    for hip, knee, foot in (("LHip", "LKnee", "LFoot"), ("RHip", "RKnee", "RFoot")):
        np.testing.assert_allclose(rest[:, J(foot)] - rest[:, J(hip)], [[0.0, -890.0, 0.0]] * n, atol=1e-6)
        assert rest[0, J(knee), 1] == pytest.approx(rest[0, J(hip), 1] - 450.0)
    np.testing.assert_allclose(rest[:, J("LWrist")] - rest[:, J("LShoulder")], [[0.0, -530.0, 0.0]] * n, atol=1e-6)
    assert rest[0, J("LHip"), 0] > 100 and rest[0, J("RHip"), 0] < -100  # +x is the subject's left
    assert rest[0, J("Neck"), 2] > 20  # the nose-like neck point is in front
    # Rotations compose parent first: a thigh abducted to horizontal (+x) with the knee flexed 90 deg puts the
    # shin backwards (-z), in the thigh's own flexion plane.
    bent_knee = dict(zero, hip_abd_L=np.full(n, 90.0), knee_L=np.full(n, 90.0))
    p = sp.pose_from_angles(bent_knee, lengths)
    np.testing.assert_allclose(p[:, J("LKnee")] - p[:, J("LHip")], [[450.0, 0.0, 0.0]] * n, atol=1e-6)
    np.testing.assert_allclose(p[:, J("LFoot")] - p[:, J("LKnee")], [[0.0, 0.0, -440.0]] * n, atol=1e-6)
    # A thigh flexed 90 deg and abducted 30 deg stays horizontal and points forward and out (knees apart
    # when seated): abduction is applied in the pelvis frame before flexion.
    seated = dict(zero, hip_flex_L=np.full(n, 90.0), hip_abd_L=np.full(n, 30.0))
    p = sp.pose_from_angles(seated, lengths)
    np.testing.assert_allclose(p[:, J("LKnee")] - p[:, J("LHip")], [[225.0, 0.0, 450.0 * np.cos(np.pi / 6)]] * n,
                               atol=1e-6)
    # An arm abducted to horizontal with the elbow flexed 90 deg points the forearm forwards (+z).
    bent_elbow = dict(zero, sh_abd_R=np.full(n, 90.0), elbow_R=np.full(n, 90.0))
    p = sp.pose_from_angles(bent_elbow, lengths)
    np.testing.assert_allclose(p[:, J("RElbow")] - p[:, J("RShoulder")], [[-280.0, 0.0, 0.0]] * n, atol=1e-6)
    np.testing.assert_allclose(p[:, J("RWrist")] - p[:, J("RElbow")], [[0.0, 0.0, 250.0]] * n, atol=1e-6)
    # Equal left and right angles with no lateral trunk motion give a mirror-symmetric pose.
    rng = np.random.default_rng(0)
    angles = {}
    for name in sp.ANGLE_NAMES:
        if name.endswith("_R"):
            continue
        angles[name] = rng.uniform(*sp.LIMITS[name[:-2] if name.endswith("_L") else name], n)
        if name.endswith("_L"):
            angles[name[:-2] + "_R"] = angles[name]
        elif name.endswith(("_side", "_twist")):
            angles[name] = np.zeros(n)
    pose = sp.pose_from_angles(angles, lengths)
    mirrored = pose[:, SK.flip_permutation()] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirrored, pose, atol=1e-6)
    # ... and a non-zero side bend breaks it (the check above can fail).
    angles["thoracic_side"] = np.full(n, 10.0)
    bent = sp.pose_from_angles(angles, lengths)
    assert np.abs(bent[:, SK.flip_permutation()] * np.array([-1.0, 1.0, 1.0]) - bent).max() > 20.0
    # Positive side bend leans the thorax to the subject's left (+x), positive twist turns it to the left.
    assert bent[0, J("Head"), 0] > pose[0, J("Head"), 0] + 20.0


def test_knees_and_elbows_bend_one_way_within_limits(drawn):
    poses = drawn[0]
    for hip, knee, foot in (("LHip", "LKnee", "LFoot"), ("RHip", "RKnee", "RFoot")):
        thigh = poses[:, J(knee)] - poses[:, J(hip)]
        shin = poses[:, J(foot)] - poses[:, J(knee)]
        flexion = angle_deg(thigh, shin)
        assert flexion.max() <= 155.5 and flexion.max() > 120  # deep crouches reach deep flexion
        # The knee hinge (thigh x shin) points to the subject's side (+x) for both legs: the shin only folds
        # backwards, behind the thigh line, never forwards (hyperextension).
        hinge = np.cross(thigh, shin)[:, 0] / (np.linalg.norm(thigh, axis=-1) * np.linalg.norm(shin, axis=-1))
        assert hinge.min() > -1e-4
        assert (hinge > 0.1).mean() > 0.5
    for shoulder, elbow, wrist in (("LShoulder", "LElbow", "LWrist"), ("RShoulder", "RElbow", "RWrist")):
        flexion = angle_deg(poses[:, J(elbow)] - poses[:, J(shoulder)], poses[:, J(wrist)] - poses[:, J(elbow)])
        assert flexion.max() <= 150.5 and flexion.mean() > 10


def test_clip_to_limits():
    clipped = sp.clip_to_limits({"knee_L": np.array([-10.0, 80.0, 200.0]), "lumbar_twist": np.array([40.0])})
    np.testing.assert_array_equal(clipped["knee_L"], [0.0, 80.0, 155.0])
    np.testing.assert_array_equal(clipped["lumbar_twist"], [15.0])


def test_pose_families(drawn):
    poses, _, family = drawn
    fam = {name: poses[family == k] for k, name in enumerate(sp.POSE_FAMILIES)}
    feet = [J("LFoot"), J("RFoot")]
    hip_height = {name: -p[:, feet, 1].min(1) for name, p in fam.items()}  # root above the lower foot, mm
    assert (fam["standing"][:, feet, 1] < -700).all()  # feet well below the hips
    assert hip_height["standing"].mean() > 850
    assert hip_height["sitting"].mean() < hip_height["standing"].mean() - 300
    assert hip_height["crouching"].mean() < hip_height["sitting"].mean() - 100
    # Sitting: thighs roughly horizontal and forward, shins roughly vertical.
    p = fam["sitting"]
    thigh = angle_deg(p[:, J("LKnee")] - p[:, J("LHip")], np.array([0.0, 0.0, 1.0]))
    shin = angle_deg(p[:, J("LFoot")] - p[:, J("LKnee")], np.array([0.0, -1.0, 0.0]))
    assert np.median(thigh) < 25 and np.median(shin) < 30
    # Reaching: at least one wrist above the head joint most of the time; standing: never.
    def wrist_above_head(p):
        return (p[:, [J("LWrist"), J("RWrist")], 1].max(1) > p[:, J("Head"), 1])
    assert wrist_above_head(fam["reaching"]).mean() > 0.3
    assert wrist_above_head(fam["standing"]).mean() == 0.0
    # Walking: the feet are apart front to back; standing: side by side.
    stride = {name: np.abs(p[:, J("LFoot"), 2] - p[:, J("RFoot"), 2]).mean() for name, p in fam.items()}
    assert stride["walking"] > 2 * stride["standing"]
    # Crouching leans the trunk forward; canonical poses face +z (no body yaw): the hips stay on the x axis.
    lean = {name: np.median(p[:, J("Thorax"), 2]) for name, p in fam.items()}
    assert lean["crouching"] > lean["standing"] + 100
    np.testing.assert_array_equal(poses[:, [J("LHip"), J("RHip")], 2], 0.0)
    assert np.abs(poses[:, [J("LHip"), J("RHip")], 1]).max() < 10.0
    assert (poses[:, J("LHip"), 0] > 100).all() and (poses[:, J("RHip"), 0] < -100).all()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="17-joint Human3.6M"):
        sp.generate_poses(4, 0, skeleton=Skeleton("tiny", ("a", "b"), (-1, 0), (), ()))
    with pytest.raises(ValueError, match="families"):
        sp.generate_poses(4, 0, families=("dancing",))
    with pytest.raises(ValueError, match="n="):
        sp.generate_poses(-1, 0)
    with pytest.raises(ValueError, match="subjects"):
        sp.generate_poses(4, 0, subjects=[1, 1])
    with pytest.raises(ValueError, match="missing_fraction"):
        sp.load_or_generate(4, 4, 4, 0, None, missing_fraction=1.5)
    # Same layout under another name is accepted.
    renamed = dataclasses.replace(SK, name="h36m17-copy")
    np.testing.assert_array_equal(sp.generate_poses(5, 0, skeleton=renamed)[0], sp.generate_poses(5, 0)[0])


def test_splits_shapes_and_subjects_disjoint(splits):
    out, _, _ = splits
    assert isinstance(out, poses_lib.PoseSplits) and out.skeleton == SK
    assert len(out.train) == 300 and len(out.test) == 100 and out.prior.shape == (400, 17, 3)
    assert out.prior.dtype == np.float32 and out.train.joints_2d.dtype == np.float32
    assert "procedural" in out.description and "unpaired" in out.description
    # Subjects are identified by their bone lengths (constant per subject, distinct between subjects).
    def bodies(p):
        """One bone-length vector per distinct body (poses within 0.5 mm are the same subject)."""
        reps = []
        for v in bone_lengths(p):
            if not reps or np.linalg.norm(np.array(reps) - v, axis=-1).min() > 0.5:
                reps.append(v)
        return np.array(reps)
    train, test, prior = bodies(out.train.poses), bodies(out.test.poses), bodies(out.prior)
    assert len(train) == 24 and len(test) == 8 and len(prior) == 24
    for a, b in ((train, test), (train, prior), (test, prior)):
        assert np.linalg.norm(a[:, None] - b[None], axis=-1).min() > 5.0
    # The prior is an independent draw (unpaired): not the train poses on other bodies, nor the same angles.
    def directions(p):
        d = p[:, 1:] - p[:, PARENTS[1:]]
        return d / np.linalg.norm(d, axis=-1, keepdims=True)
    for other in (out.prior[:300], out.test.poses):
        k = len(other)
        differ = angle_deg(directions(other), directions(out.train.poses[:k])).max(1)
        assert (differ < 1.0).mean() < 0.05


def test_observations_are_noisy_photographs(splits):
    out, _, _ = splits
    for part in (out.train, out.test):
        clean = pinhole(part.poses, part.rotation, part.translation, part.focal)
        seen = part.confidence > 0
        assert set(np.unique(part.confidence)) == {0.0, 1.0}
        assert 0.05 < 1 - seen.mean() < 0.15  # missing_fraction=0.1
        np.testing.assert_array_equal(part.joints_2d[~seen], 0.0)
        residual = (part.joints_2d - clean)[seen]
        assert 0.0035 < residual.std() < 0.0045 and np.abs(residual).max() < 6 * 0.004
        assert np.abs(residual.mean()) < 5e-4
        # Every joint is in front of the camera and near the image.
        cam = np.einsum("nab,njb->nja", part.rotation, part.poses) + part.translation[:, None]
        assert cam[..., 2].min() > 1000
        assert np.abs(clean).max() < 1.5
    # Full-circle cameras: the camera's azimuth (where the subject's facing direction +z points in the
    # camera frame) covers the circle.
    forward = out.train.rotation[:, :, 2]  # canonical +z in camera coordinates
    azimuth = np.arctan2(forward[:, 0], -forward[:, 2])
    assert np.histogram(azimuth, bins=4, range=(-np.pi, np.pi))[0].min() > 40


def test_cache_round_trip(splits):
    out, cache, lines = splits
    assert len(lines) == 1 and "generated" in lines[0]
    again_lines = []
    with numpy_camera():  # (only used if the cache were not read)
        again = sp.load_or_generate(300, 100, 400, seed=2, cache_dir=cache, missing_fraction=0.1,
                                    log=again_lines.append)
    assert len(again_lines) == 1 and "loaded" in again_lines[0]
    for field in dataclasses.fields(poses_lib.PoseArrays):
        np.testing.assert_array_equal(getattr(again.train, field.name), getattr(out.train, field.name))
        np.testing.assert_array_equal(getattr(again.test, field.name), getattr(out.test, field.name))
    np.testing.assert_array_equal(again.prior, out.prior)
    assert again.description == out.description
    # Another parameter is another file.
    assert sp.cache_path(cache, {"version": 1, "skeleton": "h36m17", "num_train": 300, "num_test": 100,
                                 "num_prior": 400, "seed": 2, "noise_2d": 0.0}) != sp.cache_path(
        cache, {"version": 1, "skeleton": "h36m17", "num_train": 300, "num_test": 100, "num_prior": 400,
                "seed": 2, "noise_2d": 0.004})


def test_noise_free_and_uncached():
    with numpy_camera():
        out = sp.load_or_generate(40, 10, 10, seed=2, cache_dir=None, noise_2d=0.0, log=None)
        bigger = sp.load_or_generate(60, 10, 10, seed=2, cache_dir=None, noise_2d=0.0, log=None)
    clean = pinhole(out.train.poses, out.train.rotation, out.train.translation, out.train.focal)
    np.testing.assert_allclose(out.train.joints_2d, clean, atol=1e-6)
    np.testing.assert_array_equal(out.train.confidence, 1.0)
    # Sample i does not depend on the split sizes.
    np.testing.assert_array_equal(bigger.train.poses[:40], out.train.poses)
    np.testing.assert_array_equal(bigger.train.joints_2d[:40], out.train.joints_2d)


def test_real_renderer_agrees():
    out = sp.load_or_generate(50, 10, 10, seed=4, cache_dir=None, noise_2d=0.0, log=None)
    assert sp.poses_lib.photograph is not numpy_photograph
    clean = pinhole(out.train.poses, out.train.rotation, out.train.translation, out.train.focal)
    np.testing.assert_allclose(out.train.joints_2d, clean, atol=1e-5)
