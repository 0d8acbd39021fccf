"""Run folders (aign_tf/runs.py): the settings that define a run, the default folder named after them, the check
that a folder holds this command's model, and the lock that keeps two commands out of one folder."""

import json
import os
import signal
import subprocess
import time
import types

import pytest
from conftest import REPO, cli

from aign_tf import building, main, runs


def _flags(**values):
    """Every program flag at its default, ``values`` set, task defaults applied (as main does)."""
    flags = types.SimpleNamespace(**{**vars(main.flag_defaults()), **values})
    building.apply_task_defaults(flags)
    return flags


def _run_dir(**values):
    return building.default_run_dir(_flags(**values), main.flag_defaults())


# --- which flags define a run --------------------------------------------------------------------------
def test_operational_flags_are_program_flags_and_are_left_out():
    names = set(vars(main.flag_defaults()))
    assert names >= runs.OPERATIONAL | set(runs.RECORDED)
    settings = runs.defining_settings(_flags())
    for name in ("steps", "jit_compile", "deterministic", "eval_images", "run_dir", "export_dir", "mode",
                 "checkpoint_every", "probe_epochs", "tune_trials", "bench_steps", "cache_dir", "output"):
        assert name not in settings, name
    for name in ("task", "bias", "data_dir", "data_seed", "seed", "image_size", "g_filters", "d_filters",
                 "exemplars", "g_learning_rate", "d_learning_rate", "reconstruction_weight", "adversarial_loss",
                 "mixed_precision", "batch_size", "num_train", "mask"):
        assert name in settings, name
    assert settings["exemplars"] == 256 and settings["data_dir"] == "builtin"


def test_a_task_records_only_the_flags_it_reads():
    pose = runs.defining_settings(_flags(task="pose3d"))
    assert "pose_width" in pose and "num_prior" in pose
    assert not {"bias", "exemplars", "image_size", "g_filters", "mask"} & set(pose)
    assert "factor" not in runs.defining_settings(_flags(task="inpaint"))
    assert "mask" not in runs.defining_settings(_flags(task="superres"))
    celeba = runs.defining_settings(_flags(data_dir="/data/celeba/"))
    assert celeba["data_dir"] == "/data/celeba" and "max_images" in celeba and "num_train" not in celeba
    assert "bias" not in runs.defining_settings(_flags(prior_dir="/data/one_person"))
    # bias names and keywords are case-insensitive: one setting however it is spelled
    assert runs.defining_settings(_flags(bias="Male  AND not Young"))["bias"] == "male and not young"


# --- the default folder ----------------------------------------------------------------------------------
def test_default_folder_is_named_after_the_settings_that_differ_from_their_defaults():
    join = os.path.join
    assert _run_dir() == join("runs", "inpaint_male")
    # operational flags, and a flag set to its (task) default, keep the folder
    assert _run_dir(steps=3000, jit_compile=True, eval_images=10, exemplars=256, log_every=1) == join("runs",
                                                                                                     "inpaint_male")
    assert _run_dir(seed=1) == join("runs", "inpaint_male-seed1")
    assert _run_dir(g_learning_rate=1e-3) == join("runs", "inpaint_male-g_learning_rate0.001")
    assert _run_dir(exemplars=128) == join("runs", "inpaint_male-exemplars128")
    assert _run_dir(generator_noise=False) == join("runs", "inpaint_male-nogenerator_noise")
    assert _run_dir(data_dir="/data/celeba/", seed=1) == join("runs", "inpaint_male-data_dir_celeba-seed1")
    assert _run_dir(data_dir="builtin") == join("runs", "inpaint_male")
    assert _run_dir(task="superres") == join("runs", "superres_male")  # negative_weight 0.5: its default there
    assert _run_dir(task="superres", bias="none") == join("runs", "superres_none")  # ... and 0 here
    assert _run_dir(task="pose3d") == join("runs", "pose3d_builtin")
    assert _run_dir(task="pose3d", pose_width=64) == join("runs", "pose3d_builtin-pose_width64")
    long_a = _run_dir(data_dir="/data/celeba", g_learning_rate=1e-3, mixed_precision="mixed_bfloat16",
                      generator_noise=False)
    long_b = _run_dir(data_dir="/data/celeba", g_learning_rate=1e-3, mixed_precision="mixed_float16",
                      generator_noise=False)
    assert long_a != long_b and len(os.path.basename(long_a)) == len("inpaint_male-") + 8
    assert _run_dir(seed=1, run_dir="/tmp/mine") == "/tmp/mine"


# --- settings.json -----------------------------------------------------------------------------------------
def test_a_folder_with_other_settings_stops_with_one_line_naming_them(tmp_path):
    folder = str(tmp_path / "run")
    old = runs.defining_settings(_flags())
    defaults = building.default_settings(_flags(), main.flag_defaults())
    assert runs.check_settings(folder, old, defaults, run_dir_given=True) is False  # a new folder
    runs.write_settings(folder, old, runs.recorded_settings(_flags(jit_compile=False)),
                        command="python -m aign_tf.main")
    record = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert record["settings"] == old and record["recorded"]["jit_compile"] is False
    new = runs.defining_settings(_flags(g_learning_rate=1e-3, exemplars=128))
    # No checkpoint yet (the first run stopped before one, e.g. it diverged): no model to reuse, a new start.
    assert runs.check_settings(folder, new, defaults, run_dir_given=True) is False
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    assert runs.check_settings(folder, runs.defining_settings(_flags(steps=5, jit_compile=True)), defaults, True)
    with pytest.raises(ValueError) as e:
        runs.check_settings(folder, new, defaults, run_dir_given=True)
    message = str(e.value)
    assert folder in message and "\n" not in message
    assert "--exemplars: 256 -> 128" in message and "--g_learning_rate: 0.0002 -> 0.001" in message
    # a setting the folder does not record (a flag added since) counts as its default
    del record["settings"]["seed"]
    (tmp_path / "run" / "settings.json").write_text(json.dumps(record))
    assert runs.check_settings(folder, old, defaults, True)
    with pytest.raises(ValueError, match="--seed: 0 -> 1"):
        runs.check_settings(folder, runs.defining_settings(_flags(seed=1)), defaults, True)


# --- the lock ------------------------------------------------------------------------------------------
def test_lock_names_its_holder_and_is_released(tmp_path):
    folder = str(tmp_path / "run")
    with runs.locked(folder):
        with pytest.raises(ValueError) as e, runs.locked(folder):
            pass
        assert folder in str(e.value) and f"pid {os.getpid()}" in str(e.value)
        (tmp_path / "run" / "eval.json").write_text("{}")
    with runs.locked(folder):  # released
        pass
    # a folder the lock created and nothing else wrote into is removed again
    with pytest.raises(RuntimeError), runs.locked(str(tmp_path / "new" / "run")):
        raise RuntimeError("a command that fails before writing")
    assert not (tmp_path / "new").exists()


# --- the command line --------------------------------------------------------------------------------------
def _cli(cwd, *args, timeout=600):
    return subprocess.run(cli(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def runs_settings(folder: str) -> dict:
    with open(os.path.join(folder, "settings.json")) as f:
        return json.load(f)


def _error_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aign_tf: error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.mark.e2e
def test_other_settings_never_reuse_a_run_folder(tmp_path, shared_cache):
    common = ["--steps=2", "--export=false", f"--cache_dir={shared_cache}"]
    first = _cli(tmp_path, *common)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = first.stdout.split("run directory: ", 1)[1].split("\n", 1)[0]
    assert os.path.dirname(folder) == str(tmp_path / "runs")
    settings = runs_settings(folder)["settings"]
    assert settings["seed"] == 0 and settings["g_learning_rate"] == 2e-4

    # The learning rates (once overwritten by the checkpoint's without a word), the architecture (once a
    # TensorFlow shape error) and the seed stop in the folder, in every mode, naming the flag and the folder.
    for flags, needle in ((["--g_learning_rate=0.001"], "--g_learning_rate: 0.0002 -> 0.001"),
                          (["--d_learning_rate=0.001"], "--d_learning_rate: 0.0002 -> 0.001"),
                          (["--exemplars=128"], "--exemplars: 256 -> 128"),
                          (["--mode=eval", "--seed=1"], "--seed: 0 -> 1"),
                          (["--mode=export", "--data_seed=2"], "--data_seed: 0 -> 2")):
        line = _error_line(_cli(tmp_path, *common, f"--run_dir={folder}", *flags))
        assert needle in line and folder in line, line
    # Without --run_dir another seed is another folder (which holds no model yet).
    line = _error_line(_cli(tmp_path, *common, "--mode=eval", "--seed=1"))
    assert "no checkpoint in " + os.path.relpath(folder, tmp_path) + "-seed1" in line, line

    # Operational flags: training further in the same folder goes on.
    more = _cli(tmp_path, *common[1:], "--steps=3", "--eval_images=8", "--log_every=1")
    assert more.returncode == 0, more.stderr[-3000:]
    assert f"run directory: {folder}\n" in more.stdout and "resumed from" in more.stdout
    assert "step 3/3" in more.stdout
    assert runs_settings(folder)["recorded"]["steps"] == 3


@pytest.mark.e2e
def test_a_second_command_in_a_busy_folder_stops_at_once(tmp_path, shared_cache):
    folder = tmp_path / "run"
    common = [f"--run_dir={folder}", f"--cache_dir={shared_cache}", "--export=false"]
    log = tmp_path / "first.out"
    with open(log, "w") as out:
        first = subprocess.Popen(cli(*common, "--steps=100000", "--checkpoint_every=100000"), cwd=REPO, stdout=out,
                                 stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.time() + 180
        while "training inpaint from step 0" not in log.read_text():
            assert first.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        second = _cli(REPO, *common, "--steps=1")
        line = _error_line(second)
        assert f"{folder} is in use" in line and f"pid {first.pid} " in line, line
        assert "data:" not in second.stdout  # stopped before loading anything
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed run's lock went with it.
    third = _cli(REPO, *common, "--steps=1")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "step 1/1" in third.stdout

