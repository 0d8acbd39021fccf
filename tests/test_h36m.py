"""Human3.6M in VideoPose3D's data_3d_h36m.npz layout: joints, axes, units, bad rows, splits, unpairing."""

import os

import numpy as np
import pytest
from fixtures_pose import KEPT_32, STANDING_MM, canonical_to_h36m_world, numpy_photograph, write_h36m_fixture

from aign_tf.data import h36m, poses
from aign_tf.data.skeleton import H36M_17

FRAMES = 30


@pytest.fixture
def no_tf(monkeypatch):
    monkeypatch.setattr(poses, "photograph", numpy_photograph)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_h36m_fixture(tmp_path_factory.mktemp("h36m"), frames=FRAMES)


@pytest.fixture(scope="module")
def splits(fixture):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(poses, "photograph", numpy_photograph)
        messages = []
        result = h36m.load_h36m(os.path.dirname(fixture["path"]), seed=3, log=messages.append)
    return result, messages


def _frame_index(fixture):
    """All fixture frames as (keys [(subject, action, frame)], local poses [N, 17, 3]) for matching."""
    keys, rows = [], []
    for subject, actions in fixture["local"].items():
        for action, local in actions.items():
            keys += [(subject, action, t) for t in range(len(local))]
            rows.append(local)
    return keys, np.concatenate(rows)


def _match(fixture, found):
    """The fixture frame of each row of ``found`` [M, 17, 3] (each must match one to 0.05 mm)."""
    keys, rows = _frame_index(fixture)
    dist = np.abs(found[:, None] - rows[None]).max(axis=(2, 3))
    best = dist.argmin(axis=1)
    assert dist[np.arange(len(found)), best].max() < 0.05, "a loaded pose matches no fixture frame"
    return [keys[i] for i in best]


# --- the file ----------------------------------------------------------------------------------------
def test_kept_joints_are_videopose3d_17_of_32():
    removed = [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]  # VideoPose3D's remove_joints list
    assert h36m.H36M_KEPT_JOINTS == tuple(j for j in range(32) if j not in removed) == KEPT_32
    assert len(h36m.H36M_KEPT_JOINTS) == H36M_17.num_joints


def test_axes_map_z_up_to_y_up_as_a_rotation():
    m = h36m.WORLD_TO_CANONICAL
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-7)
    assert np.linalg.det(m) == pytest.approx(1.0)  # a rotation: left stays left
    np.testing.assert_allclose(m @ [0, 0, 1], [0, 1, 0])  # world up -> canonical up


def test_read_positions_values_axes_and_units(fixture):
    positions, skipped = h36m.read_positions_3d(fixture["path"])
    assert sorted(positions) == ["S1", "S11", "S5", "S9"]
    assert skipped == {"non-finite joints": 1}
    for subject, actions in fixture["canonical"].items():
        for action, expected in actions.items():
            got = positions[subject][action]
            assert got.dtype == np.float32 and got.shape[1:] == (17, 3)
            keep = [t for t in range(FRAMES) if (subject, action, t) not in fixture["nan_frames"]]
            np.testing.assert_allclose(got, expected[keep], atol=0.01)  # mm, canonical axes, not root-relative


def test_standing_head_is_up_and_feet_near_floor(fixture):
    positions, _ = h36m.read_positions_3d(fixture["path"])
    pose = positions["S9"]["WalkDog"]
    head, hip, feet = pose[:, H36M_17.index("Head")], pose[:, 0], pose[:, [3, 6]]
    assert (head[:, 1] - hip[:, 1] > 500).all()  # +y is up, in mm
    assert (np.abs(feet[..., 1]) < 150).all()  # the floor (world z = 0) is y = 0
    assert (np.linalg.norm(hip[:, [0, 2]], axis=1) > 100).all()  # not root-relative: the subject walks around


def test_nan_row_skipped_only_when_a_kept_joint_is_nan(fixture):
    positions, skipped = h36m.read_positions_3d(fixture["path"])
    assert len(positions["S1"]["Directions"]) == FRAMES - 1  # NaN in the thorax (joint 13 of 32)
    assert len(positions["S5"]["Sitting 1"]) == FRAMES  # NaN only in the right toe (dropped joint 4)
    assert skipped == {"non-finite joints": 1}
    assert all(np.isfinite(a).all() for actions in positions.values() for a in actions.values())


def test_seventeen_joint_arrays_are_accepted(tmp_path, fixture):
    info = write_h36m_fixture(tmp_path, frames=FRAMES, joints=17)
    seventeen, skipped = h36m.read_positions_3d(info["path"])
    thirty_two, _ = h36m.read_positions_3d(fixture["path"])
    assert skipped == {"non-finite joints": 1}
    np.testing.assert_allclose(seventeen["S11"]["Sitting 2"], thirty_two["S11"]["Sitting 2"], atol=1e-3)


def test_wrong_joint_count_is_skipped_and_counted_a_malformed_array_is_an_error(tmp_path):
    path = tmp_path / "data_3d_h36m.npz"
    good = np.repeat(canonical_to_h36m_world(STANDING_MM)[None], 5, 0).astype(np.float32)  # [5, 17, 3] metres
    np.savez_compressed(path, positions_3d={"S1": {"Walking 1": np.zeros((12, 25, 3), np.float32),
                                                   "Walking": good}})
    positions, skipped = h36m.read_positions_3d(str(path))
    assert skipped == {"rows with 25 joints (expected 32 or 17)": 12}
    assert list(positions["S1"]) == ["Walking"] and positions["S1"]["Walking"].shape == (5, 17, 3)

    np.savez_compressed(path, positions_3d={"S1": {"Walking 1": np.zeros((12, 17), np.float32)}})
    with pytest.raises(ValueError) as info:
        h36m.read_positions_3d(str(path))
    message = str(info.value)
    assert str(path) in message and "'S1'" in message and "'Walking 1'" in message and "[12, 17]" in message


def test_missing_file_names_the_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        h36m.load_h36m(str(tmp_path), seed=0)
    assert os.path.join(str(tmp_path), "data_3d_h36m.npz") in str(info.value)
    assert "prepare_data_h36m.py" in str(info.value)


def test_file_without_positions_3d(tmp_path):
    path = tmp_path / "data_3d_h36m.npz"
    np.savez_compressed(path, positions_2d={"S1": {}})
    with pytest.raises(ValueError, match=r"no 'positions_3d'.*\['positions_2d'\]"):
        h36m.read_positions_3d(str(path))


def test_not_an_npz(tmp_path):
    path = tmp_path / "data_3d_h36m.npz"
    path.write_text("<html>404</html>")
    with pytest.raises(ValueError, match="not a readable .npz"):
        h36m.read_positions_3d(str(path))


def test_file_in_millimetres_is_rejected(tmp_path):
    info = write_h36m_fixture(tmp_path, subjects=("S1",), frames=4, units=1000.0, nan_frame=None)
    with pytest.raises(ValueError, match="expected metres"):
        h36m.read_positions_3d(info["path"])


# --- splits ------------------------------------------------------------------------------------------
def test_split_takes_pairs_each_action_type():
    s1 = ["Directions 1", "Directions", "Discussion 1", "Discussion", "Eating 2", "Eating", "Sitting 1",
          "Sitting 2", "WalkDog 1", "WalkDog", "WalkTogether 1", "WalkTogether", "Walking 1", "Walking"]
    observed, prior = h36m.split_takes(s1)
    assert not set(observed) & set(prior) and sorted(observed + prior) == sorted(s1)
    assert {h36m.action_type(a) for a in observed} == {h36m.action_type(a) for a in prior}  # every type in both
    assert "Directions" in observed and "Directions 1" in prior and "Sitting 2" in prior
    assert h36m.split_takes(["Directions 1", "Walking", "Walking 1"]) == (["Directions 1", "Walking"], ["Walking 1"])


def test_subject_split_and_canonical_poses(fixture, splits):
    result, _ = splits
    train_keys, test_keys = _match(fixture, result.train.poses), _match(fixture, result.test.poses)
    assert {s for s, _, _ in train_keys} == {"S1", "S5"}
    assert {s for s, _, _ in test_keys} == {"S9", "S11"}
    assert {a for _, a, _ in test_keys} == set(fixture["local"]["S9"])  # every test take is used
    assert all(t % 5 == 0 for _, _, t in test_keys)  # frame stride 5
    assert len(result.test) == 2 * 6 * FRAMES // 5
    # root-relative, facing +z: the fixture's pose before its random yaw and walk
    assert np.abs(result.train.poses[:, 0]).max() < 1e-3
    hips = result.train.poses[:, 4] - result.train.poses[:, 1]
    assert (hips[:, 0] > 100).all() and np.abs(hips[:, 2]).max() < 1e-2
    assert result.skeleton is H36M_17 and result.skipped == {"non-finite joints": 1}


def test_prior_is_unpaired_with_the_observations(fixture, splits):
    result, _ = splits
    train_takes = {(s, a) for s, a, _ in _match(fixture, result.train.poses)}
    prior_takes = {(s, a) for s, a, _ in _match(fixture, result.prior)}
    assert prior_takes and not train_takes & prior_takes  # no sequence feeds both
    assert {s for s, _ in prior_takes} == {"S1", "S5"}  # never the test subjects
    types = {h36m.action_type(a) for _, a in train_takes}
    assert {h36m.action_type(a) for _, a in prior_takes} == types  # yet the same action types
    assert result.prior.dtype == np.float32 and result.prior.shape[1:] == (17, 3)


def test_observations_are_projections_through_their_cameras(splits):
    result, messages = splits
    for part in (result.train, result.test):
        camera = np.einsum("nij,nkj->nki", part.rotation, part.poses) + part.translation[:, None]
        assert (camera[..., 2] > 1000).all()  # in front of the camera, metres away
        np.testing.assert_allclose(part.joints_2d, part.focal[:, None] * camera[..., :2] / camera[..., 2:],
                                   atol=1e-5)
        np.testing.assert_allclose(np.einsum("nij,nkj->nik", part.rotation, part.rotation),
                                   np.broadcast_to(np.eye(3), (len(part), 3, 3)), atol=1e-5)
        assert len(np.unique(np.round(part.rotation[:, 0, 0], 5))) == len(part)  # one camera per frame
    assert any("S6, S7, S8" in m for m in messages)  # missing train subjects are reported
    assert any("skipped 1 frames" in m for m in messages)


def test_seed_reproducible_and_caps(fixture, no_tf):
    data_dir = os.path.dirname(fixture["path"])
    a = h36m.load_h36m(data_dir, seed=3, max_frames=10, num_prior=7, log=lambda m: None)
    b = h36m.load_h36m(data_dir, seed=3, max_frames=10, num_prior=7, log=lambda m: None)
    c = h36m.load_h36m(data_dir, seed=4, max_frames=10, num_prior=7, log=lambda m: None)
    assert len(a.train) == len(a.test) == 10 and len(a.prior) == 7
    np.testing.assert_array_equal(a.train.joints_2d, b.train.joints_2d)
    np.testing.assert_array_equal(a.prior, b.prior)
    assert not np.allclose(a.train.rotation, c.train.rotation)


def test_missing_test_subjects_is_an_error(tmp_path, no_tf):
    write_h36m_fixture(tmp_path, subjects=("S1", "S5"), frames=5, nan_frame=None)
    with pytest.raises(ValueError, match=r"none of the test subjects S9, S11; subjects found: S1, S5"):
        h36m.load_h36m(str(tmp_path), seed=0, log=lambda m: None)


def test_face_forward_turns_hips_onto_x():
    yaw = np.deg2rad(130.0)
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    turned = STANDING_MM @ turn.T
    np.testing.assert_allclose(h36m.face_forward(turned[None])[0], STANDING_MM, atol=1e-3)
    # the fixture's world conversion really is Z-up: the head top is highest on world z
    assert canonical_to_h36m_world(STANDING_MM)[:, 2].argmax() == H36M_17.index("Head")
