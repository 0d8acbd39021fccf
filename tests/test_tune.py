"""--mode=tune (trainers/tune.py): the search space, the validation split carved from the training split, the
objective, and a tiny in-process pose3d search that writes results.json and resumes without re-running trials."""

import glob
import json
import os
import types

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from aign_tf import building, main
from aign_tf.data import synthetic_poses
from trainers import tune
from trainers.loop import Trainer, TrainingDiverged

CURRENT = {"g_learning_rate": 2e-4, "d_learning_rate": 5e-4, "adversarial_weight": 1.0,
           "reconstruction_weight": 10.0, "d_steps": 2, "adversarial_loss": "hinge"}


def _flags(tmp_path, **overrides):
    """Every program flag at its default (task defaults applied), tiny pose3d sizes, then ``overrides``."""
    flags, _ = main.program_flags()
    values = dict(vars(flags), task="pose3d", num_train=64, num_test=32, num_prior=64, eval_images=32,
                  batch_size=8, pose_width=32, pose_blocks=1, pose_d_width=16, jit_compile=False, log_every=1,
                  image_every=100, cache_dir=str(tmp_path / "cache"), tune_trials=2, tune_steps=3)
    values.update(overrides)
    flags = types.SimpleNamespace(**values)
    building.apply_task_defaults(flags)
    return flags


def test_search_space_searches_the_ranges_and_keeps_fixed_flags():
    hp = keras_tuner.HyperParameters()
    fixed = {"d_learning_rate", "d_steps"}
    assert tune.search_space(hp, CURRENT, fixed) == CURRENT  # the first values are the flags' own
    space = {h.name: h for h in hp.space}
    assert set(space) == set(tune.SEARCHED)
    for seed in range(40):
        sample = {name: h.random_sample(seed) for name, h in space.items()}
        assert sample["d_learning_rate"] == 5e-4 and sample["d_steps"] == 2
        for name, (low, high) in tune.LOG_UNIFORM.items():
            if name not in fixed:
                assert low <= sample[name] <= high, (name, sample[name])
        assert sample["adversarial_loss"] in ("non_saturating", "least_squares", "hinge")
    assert space["g_learning_rate"].sampling == "log"
    assert {type(space[n]).__name__ for n in fixed} == {"Fixed"}


def _rows(arrays):
    return {a.tobytes() for a in arrays}


def test_validation_split_is_the_end_of_train_and_leaves_test_alone(tiny_splits, tmp_path):
    poses = synthetic_poses.load_or_generate(40, 8, 16, seed=0, cache_dir=str(tmp_path), log=None)
    for splits, field in ((tiny_splits, "images"), (poses, "poses")):
        carved = tune.validation_splits(splits, 0.1)
        train, val, whole = (getattr(s, field) for s in (carved.train, carved.test, splits.train))
        assert len(val) == round(0.1 * len(whole)) and len(train) + len(val) == len(whole)
        np.testing.assert_array_equal(np.concatenate([train, val]), whole)  # validation = the end of train
        assert not _rows(train) & _rows(val)
        assert not _rows(val) & _rows(getattr(splits.test, field))  # nothing of the test split
        assert getattr(splits.test, field) is getattr(splits.test, field) and len(splits.train) == len(whole)
    carved = tune.validation_splits(poses, 0.25)
    assert carved.prior is poses.prior and carved.skeleton is poses.skeleton
    assert carved.description == poses.description
    for fraction in (0.0, 1.0, 0.001):
        with pytest.raises(ValueError, match="tune_val_fraction"):
            tune.validation_splits(poses, fraction)


def test_objectives_defaults_and_unknown_name(tmp_path):
    assert (tune.objective("pose3d").name, tune.objective("pose3d").direction) == ("mpjpe_mm", "min")
    assert (tune.objective("inpaint").name, tune.objective("inpaint").direction) == ("bias_strength", "max")
    with pytest.raises(ValueError, match=r"--tune_objective='accuracy'.*mpjpe_mm, pa_mpjpe_mm, reprojection_px"):
        tune.run(_flags(tmp_path, tune_objective="accuracy"), set(), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")  # stopped before any data or trial
    names = ("Male", "Young")
    with pytest.raises(ValueError, match="--bias=none"):
        tune.bias_target(types.SimpleNamespace(task="inpaint", bias="none", prior_dir=None), names)
    assert tune.bias_target(types.SimpleNamespace(task="inpaint", bias="old", prior_dir=None), names) == "Young"


def test_tiny_pose_search_writes_results_and_resumes(tmp_path, monkeypatch):
    flags, run_dir = _flags(tmp_path, d_steps=1), str(tmp_path / "run")
    results = tune.run(flags, {"task", "d_steps", "num_train"}, run_dir, log=lambda *_: None)
    saved = json.loads((tmp_path / "run" / "tune" / "results.json").read_text())
    assert saved["trials"] == json.loads(json.dumps(results["trials"]))
    rows = saved["trials"]
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"] and saved["objective"] == "mpjpe_mm"
    assert rows[0]["objective"] <= rows[1]["objective"] and np.isfinite(rows[0]["objective"])
    assert all(r["hyperparameters"]["d_steps"] == 1 for r in rows)  # set on the command line: fixed
    trial_0 = next(r for r in rows if r["trial_id"] == "0")
    assert trial_0["hyperparameters"] == {n: getattr(flags, n) for n in tune.SEARCHED}  # the baseline
    for r in rows:
        assert r["run_dir"] == os.path.join(run_dir, "tune", f"trial_{r['trial_id']}")
        evaluated = json.loads((tmp_path / "run" / "tune" / f"trial_{r['trial_id']}" / "eval.json").read_text())
        assert evaluated["split"] == "validation" and evaluated["step"] == 3
        assert evaluated["eval_poses"] == 6  # the last 10 % of the 64 training poses, not the 32 test poses
        assert evaluated["mpjpe_mm"] == pytest.approx(r["objective"])
        # TensorBoard: the trial's searched values for the HParams dashboard and its results (trainers/summaries.py)
        events = glob.glob(os.path.join(r["run_dir"], "tensorboard", "events.*"))
        tags = {v.tag for path in events for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value}
        assert {"_hparams_/session_start_info", "tune/mpjpe_mm", "tune/pa_mpjpe_mm"} <= tags, tags
    retrain = saved["retrain_command"]
    assert retrain.startswith("python -m aign_tf.main --task=pose3d --d_steps=1 --num_train=64 ")
    assert f"--run_dir={run_dir}/tuned" in retrain and "--mode" not in retrain and "--tune_" not in retrain
    best = rows[0]["hyperparameters"]
    assert all(retrain.count(f" --{name}=") == 1 and f"--{name}={best[name]}" in retrain for name in tune.SEARCHED)

    calls = []
    monkeypatch.setattr(tune, "run_trial", lambda *args: calls.append(args))
    again = tune.run(flags, {"task", "d_steps", "num_train"}, run_dir, log=lambda *_: None)
    assert calls == [] and again["trials"] == results["trials"]  # resumed: nothing re-run
    with pytest.raises(ValueError, match="tune_steps: 3 there, 4 now"):
        tune.run(_flags(tmp_path, d_steps=1, tune_steps=4), set(), run_dir)


def test_diverged_trials_fail_and_the_search_goes_on(tmp_path, monkeypatch):
    def diverge(self):
        raise TrainingDiverged("non-finite g_loss at step 1")

    monkeypatch.setattr(Trainer, "train", diverge)
    results = tune.run(_flags(tmp_path), {"task"}, str(tmp_path / "run"), log=lambda *_: None)
    assert [r["status"] for r in results["trials"]] == ["FAILED", "FAILED"]
    assert all("non-finite g_loss" in r["error"] for r in results["trials"])
    assert results["best_trial"] is None and results["retrain_command"] is None


def test_bayesian_search_fits_its_model_after_the_random_trials(tmp_path, monkeypatch):
    def fake_trial(setup, hp, trial_dir):  # the objective is a known function of the hyper-parameters
        values = tune.search_space(hp, setup.current, setup.fixed)
        return {"mpjpe_mm": 1e6 * values["g_learning_rate"] + values["reconstruction_weight"]}

    monkeypatch.setattr(tune, "run_trial", fake_trial)
    flags = _flags(tmp_path, tune_algorithm="bayesian", tune_trials=3)  # 2 random trials, then the GP's choice
    results = tune.run(flags, {"task"}, str(tmp_path / "run"), log=lambda *_: None)
    rows = results["trials"]
    assert len(rows) == 3 and {r["status"] for r in rows} == {"COMPLETED"}
    assert len({json.dumps(r["hyperparameters"], sort_keys=True) for r in rows}) == 3
    assert [r["objective"] for r in rows] == sorted(r["objective"] for r in rows)
