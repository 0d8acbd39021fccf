"""Process-level end to end: the CLI at tiny size, one run per face task, plus kill-and-resume."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, cli

pytestmark = pytest.mark.e2e


def _run(args, cwd, timeout=600):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\n"
                                  f"STDERR:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _saved_model_cli():
    import shutil

    exe = shutil.which("saved_model_cli")
    return [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.parametrize("task,bias", [("inpaint", "male"), ("superres", "Male and not Young")])
def test_train_eval_export_predict(tmp_path, shared_cache, task, bias):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    common = [f"--task={task}", f"--bias={bias}", f"--run_dir={run_dir}", f"--cache_dir={shared_cache}",
              f"--export_dir={export_dir}"]
    out = _run(cli("--steps=10", "--checkpoint_every=5", *common), REPO)
    assert f"run directory: {run_dir}" in out
    assert "step 10/10" in out and "steps/s" in out and "ETA" in out
    assert "bias strength" in out and "consistency PSNR" in out
    assert ("excluded faces are the negatives" in out) == (task == "superres")  # superres's default
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["step"] == 10 and result["task"] == task
    assert np.isfinite(result["consistency_psnr_db"]) and "Male" in result["attributes"]
    assert os.path.exists(result["samples_png"])
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run_dir / "tensorboard"))
    slug = "male" if task == "inpaint" else "male_and_not_young"
    # Exported under the run's name: the task and bias plus the settings that differ from their defaults (the
    # tiny sizes), so this model never becomes a new version of a default-sized inpaint_male.
    (model_name,) = os.listdir(export_dir)
    assert model_name.startswith(f"{task}_{slug}-") and "image_size32" in model_name
    # The signature as TF Serving sees it (saved_model_cli on an exported face model: test_export.py).
    import tensorflow as tf

    signature = tf.saved_model.load(str(export_dir / model_name / "1")).signatures["serving_default"]
    low = 32 if task == "inpaint" else 8
    inputs = signature.structured_input_signature[1]
    assert inputs["image"].shape.as_list() == [None, low, low, 3] and inputs["image"].dtype == tf.float32
    assert set(inputs) == ({"image", "mask"} if task == "inpaint" else {"image"})
    assert "face" in signature.structured_outputs

    meta = json.loads((export_dir / model_name / "1" / "assets" / "aign_tf_meta.json").read_text())
    assert meta["step"] == 10 and meta["checkpoint"] == str(run_dir / "checkpoints" / "ckpt-10")
    assert len(meta["weights_digest"]) == 16
    if task == "superres":  # (inpaint's resume: the kill-and-resume test below)
        # Re-running the same command resumes (nothing to train) and exports nothing: version 1 holds these
        # weights (a version 2 would be an identical model TF Serving takes for a new one).
        out = _run(cli("--steps=10", *common), REPO)
        assert "resumed from" in out and "nothing to do" in out
        assert f"{export_dir / model_name / '1'} already holds these weights" in out
        assert sorted(os.listdir(export_dir / model_name)) == ["1"]

    # predict: a folder of images in, PNGs out.
    from aign_tf import formats

    src = tmp_path / "inputs"
    formats.write_image(str(src / "a.png"), np.random.default_rng(0).random((40, 50, 3)))
    out = _run(cli("--mode=predict", f"--input={src}", f"--output={tmp_path / 'pred'}", *common), REPO)
    assert (tmp_path / "pred" / f"a_{task}.png").exists()
    manifest = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert manifest["model"]["task"] == task and manifest["model"]["bias"] == bias
    assert [p["outputs"] for p in manifest["predictions"]] == [[str(tmp_path / "pred" / f"a_{task}.png")]]


def test_pose3d_train_eval_export_predict(tmp_path, shared_cache):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    common = [sys.executable, "-m", "aign_tf.main", "--task=pose3d", f"--run_dir={run_dir}",
              f"--cache_dir={shared_cache}", f"--export_dir={export_dir}", "--num_train=256", "--num_test=64",
              "--num_prior=256", "--eval_images=64", "--batch_size=8", "--pose_width=32", "--pose_d_width=16",
              "--nojit_compile", "--log_every=5", "--image_every=10", "--paired_fraction=0.05"]
    out = _run(common + ["--steps=10"], REPO)
    assert "step 10/10" in out and "MPJPE" in out and "PA-MPJPE" in out
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["task"] == "pose3d" and result["step"] == 10 and np.isfinite(result["mpjpe_mm"])
    assert os.path.exists(result["samples_png"])
    (model_name,) = os.listdir(export_dir)
    assert model_name.startswith("pose3d_builtin-")  # the run's name: its settings differ from the defaults
    version_dir = export_dir / model_name / "1"
    show = subprocess.run(_saved_model_cli() + ["show", "--dir", str(version_dir), "--all"],
                          capture_output=True, text=True, check=True).stdout
    default, with_camera = show.split("signature_def['serving_default']")[1].split("signature_def['with_camera']")
    assert "inputs['joints_2d']" in default and "(-1, 17, 2)" in default and "DT_FLOAT" in default
    assert "outputs['pose_3d']" in default and "(-1, 17, 3)" in default and "outputs['rotation']" in default
    assert "inputs['focal']" not in default
    assert "inputs['focal']" in with_camera and "inputs['confidence']" in with_camera and "(-1, 17)" in with_camera
    # The SavedModel serves batches of any size (tensorflow-graphics' rotate would not, see BUILD.md).
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    joints = tf.random.uniform([5, 17, 2], -0.3, 0.3, seed=0)
    assert loaded.signatures["serving_default"](joints_2d=joints)["pose_3d"].shape == (5, 17, 3)

    # predict reads 2D keypoints (pixels, no focal given) and writes 3D JSON + a figure.
    from aign_tf import formats

    joints = np.random.default_rng(0).uniform(300, 700, (2, 17, 2))
    formats.write_json(tmp_path / "kp.json", {"joints_2d": joints, "image_width": 1000})
    out = _run(common + ["--mode=predict", f"--input={tmp_path / 'kp.json'}", f"--output={tmp_path / 'pred'}"],
               REPO)
    assert "nominal" in out
    pred = json.loads((tmp_path / "pred" / "kp_pose3d.json").read_text())
    assert np.asarray(pred["pose_3d"]).shape == (2, 17, 3) and pred["units"] == "mm"
    assert (tmp_path / "pred" / "kp_pose3d.png").exists()
    manifest = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert manifest["model"]["task"] == "pose3d" and manifest["model"]["step"] == 10
    assert manifest["model"]["checkpoint"].endswith("ckpt-10") and manifest["model"]["skeleton"] == "h36m17"
    assert manifest["predictions"] == [{"input": str(tmp_path / "kp.json"), "poses": 2, "outputs": [
        str(tmp_path / "pred" / "kp_pose3d.json"), str(tmp_path / "pred" / "kp_pose3d.png")]}]


def test_user_errors_are_one_clear_line(tmp_path, shared_cache):
    # (an unknown attribute in --bias: the --flagfile test below)
    proc = subprocess.run(cli(f"--data_dir={tmp_path / 'missing'}", f"--cache_dir={shared_cache}"), cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "missing" in proc.stderr and "Traceback" not in proc.stderr
    for flag, needle in (("--bias=male", "--bias applies to the face tasks"), (f"--data_dir={tmp_path}",
                                                                              "data_3d_h36m.npz")):
        proc = subprocess.run([sys.executable, "-m", "aign_tf.main", "--task=pose3d", flag,
                               f"--run_dir={tmp_path / 'pose'}"], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode != 0 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _checkpoint_values(run_dir):
    """Every variable of the latest checkpoint (generator, discriminator, optimizer slots, step)."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    names = [n for n, _ in tf.train.list_variables(path) if n not in ("_CHECKPOINTABLE_OBJECT_GRAPH",)
             and not n.startswith("save_counter")]
    assert any(n.startswith("g_optimizer/_trainable_variables") for n in names), names
    return path, {n: reader.get_tensor(n) for n in names}


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, shared_cache):
    steps = 40
    args = ["--task=inpaint", "--bias=none", "--deterministic", "--seed=3", f"--steps={steps}",
            "--checkpoint_every=5", "--export=false", f"--cache_dir={shared_cache}"]
    _run(cli(*args, f"--run_dir={tmp_path / 'straight'}"), REPO)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(*args, f"--run_dir={killed}"), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "checkpoints" / "checkpoint").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = (killed / "checkpoints" / "checkpoint").read_text()
    assert f"ckpt-{steps}" not in ckpt, "killed too late: the run had already finished"

    out = _run(cli(*args, f"--run_dir={killed}"), REPO)
    assert "resumed from" in out
    path_a, a = _checkpoint_values(tmp_path / "straight")
    path_b, b = _checkpoint_values(killed)
    assert path_a.endswith(f"ckpt-{steps}") and path_b.endswith(f"ckpt-{steps}")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _nonfinite_in_checkpoints(run_dir):
    """{checkpoint: number of NaN/Inf values in it} for every checkpoint on disk in run_dir."""
    import glob

    import tensorflow as tf

    counts = {}
    for index in sorted(glob.glob(str(run_dir / "checkpoints" / "ckpt-*.index"))):
        reader = tf.train.load_checkpoint(index[: -len(".index")])
        counts[os.path.basename(index)[: -len(".index")]] = sum(
            int(np.size(t) - np.isfinite(t).sum()) for t in (reader.get_tensor(n) for n, d in
                                                              reader.get_variable_to_dtype_map().items()
                                                              if d.is_floating))
    return counts


def test_a_diverging_run_stops_with_the_message_and_leaves_no_poisoned_checkpoint(tmp_path, shared_cache):
    # Issue 23: a huge adversarial weight leaves step 1's losses finite but puts Inf into the generator's Adam
    # slots; the guard used to keep checkpoints 1 and 2 (non-finite) and a sane re-run resumed into divergence.
    run_dir = tmp_path / "run"
    common = ["--task=inpaint", "--bias=male", "--export=false", "--checkpoint_every=1", f"--run_dir={run_dir}",
              f"--cache_dir={shared_cache}"]
    proc = subprocess.run(cli("--steps=20", "--adversarial_weight=1e38", *common), cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(r"aign_tf: error: training diverged at step 1: [\d,]+ non-finite values in \d+ checkpointed "
                     r"variables?: g_optimizer: .*last finite checkpoint is none", proc.stderr), proc.stderr[-3000:]
    assert all(n == 0 for n in _nonfinite_in_checkpoints(run_dir).values()), _nonfinite_in_checkpoints(run_dir)

    out = _run(cli("--steps=3", *common), REPO)  # sane flags, same folder: trains, from a finite start
    assert "resumed from" not in out and "step 3/3" in out
    assert set(_nonfinite_in_checkpoints(run_dir).values()) == {0}
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["step"] == 3 and np.isfinite(result["psnr_vs_truth_db"])


def test_helpfull_documents_flags_and_flagfile_is_read(tmp_path):
    # absl's help flags print the help and exit with status 1.
    out = subprocess.run([sys.executable, "-m", "aign_tf.main", "--helpfull"], cwd=REPO, capture_output=True,
                         text=True).stdout
    for flag in ("--task", "--bias", "--prior_dir", "--steps", "--batch_size", "--image_size", "--data_dir",
                 "--run_dir", "--seed", "--mixed_precision", "--reconstruction_weight", "--adversarial_weight"):
        assert flag in out, flag
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text("--task=inpaint\n--bias=Male and not Wizard\n")
    proc = subprocess.run([sys.executable, "-m", "aign_tf.main", f"--flagfile={flagfile}", f"--run_dir={tmp_path}",
                           f"--cache_dir={tmp_path}", "--image_size=32", "--num_train=16", "--num_test=4"],
                          cwd=REPO, capture_output=True, text=True)
    # The flagfile was read: its --bias is rejected in one line naming the unknown and the valid attributes.
    assert proc.returncode != 0 and "Wizard" in proc.stderr and "Male" in proc.stderr
    assert "Traceback" not in proc.stderr
