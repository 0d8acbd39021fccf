"""--mode=predict (aign_tf/predict.py), one-line usage errors and the quiet TensorFlow start-up: units first, then
process-level tests on one tiny inpainting model trained once for this module."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, cli
from PIL import Image

from aign_tf import predict, quiet

# Substrings of TensorFlow's start-up lines on a CPU-only machine (aign_tf/quiet.py says which prints what).
NOISE = ("absl::InitializeLog", "cudart_stub", "cuInit", "cpu_feature_guard", "To enable the following instructions")


def _aligned_photo(path, seed=0):
    """A 178x218 (aligned CelebA size) picture, PNG or JPEG by the suffix: smooth colours plus noise, so a crop in
    the wrong place shows (and a JPEG has detail its decoders disagree on)."""
    yy, xx = np.mgrid[0:218, 0:178].astype(np.float32)
    rng = np.random.default_rng(seed)
    image = np.stack([128 + 120 * np.sin(yy / 17 + rng.uniform(0, 6)), 128 + 120 * np.cos(xx / 13),
                      255 * (yy * xx) / (218 * 178)], -1) + rng.normal(0, 10, (218, 178, 3))
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


def _mixed_folder(folder, bad=True):
    """Good pictures of different sizes and modes (+ a corrupt JPEG and a text file when ``bad``)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / "a_rgb.png")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8), mode="L").save(folder / "b_grey.png")
    Image.fromarray(rng.integers(0, 256, (24, 36, 4), dtype=np.uint8), mode="RGBA").save(folder / "c_rgba.png")
    Image.fromarray(rng.integers(0, 65536, (20, 20), dtype=np.uint16)).save(folder / "d_deep.png")  # 16-bit
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = (255, 0, 0)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: 16 wide, 32 high
    im.save(folder / "e_phone.jpg", exif=exif, quality=95)
    _aligned_photo(folder / "f_celeba.png")
    if bad:
        (folder / "x.jpg").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
        (folder / "notes.txt").write_text("not a picture\n")
    return folder


# --- units ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_predict_crops_an_aligned_celeba_photo_as_the_loader_does(tmp_path, suffix):
    from aign_tf.data import celeba

    path = _aligned_photo(tmp_path / f"000001{suffix}")
    loader = next(iter(celeba.make_image_dataset([path], np.zeros((1, 40), np.uint8), 64)))[0].numpy()
    batch = next(predict.batches([path], 64))  # predict's default crop
    np.testing.assert_allclose(batch["image"][0], loader, atol=1e-6)
    assert batch["box"][0].tolist() == list(celeba.CELEBA_CROP) and batch["aligned"][0]
    # The centre square (what predict used to take) is a different picture: the comparison above can fail.
    centre = next(predict.batches([path], 64, crop="center"))["image"][0]
    assert np.abs(centre - loader).mean() > 0.05


def test_crop_boxes():
    from aign_tf.data.crops import crop_box

    def box(h, w, crop):
        return crop_box(h, w, crop).numpy().tolist()

    assert box(218, 178, "auto") == box(218, 178, "celeba") == [52, 17, 144, 144]
    # Half size: the box scaled, its edges rounded half to even (left 8.5 -> 8, right 80.5 -> 80).
    assert box(109, 89, "auto") == box(109, 89, "celeba") == [26, 8, 72, 72]
    assert box(100, 200, "auto") == box(100, 200, "center") == [0, 50, 100, 100]
    assert box(218, 178, "center") == [20, 0, 178, 178]
    assert box(100, 200, "none") == [0, 0, 100, 200]
    with pytest.raises(ValueError, match="unknown crop 'middle'"):
        crop_box(10, 10, "middle")


def test_pipeline_decodes_every_kind_of_picture_and_reports_the_others(tmp_path):
    folder = _mixed_folder(tmp_path / "in")
    Image.fromarray(np.zeros((4, 30, 3), np.uint8)).save(folder / "g_strip.png")
    files = predict.list_folder(str(folder))
    rows = {}
    for batch in predict.batches(files, 16, batch_size=3):
        for k, path in enumerate(batch["path"]):
            rows[os.path.basename(path)] = (batch["reason"][k], batch["size"][k].tolist(), batch["image"][k])
    assert sorted(rows) == sorted(os.path.basename(f) for f in files)  # every file, once
    good = ("a_rgb.png", "b_grey.png", "c_rgba.png", "d_deep.png", "e_phone.jpg", "f_celeba.png")
    assert all(rows[name][0] == "" for name in good), {n: rows[n][0] for n in good}
    assert rows["e_phone.jpg"][1] == [32, 16]  # EXIF rotation applied: portrait
    assert rows["d_deep.png"][2].max() > 0.5  # 16-bit values scaled, not clipped to black
    for name in ("x.jpg", "notes.txt"):
        assert rows[name][0].startswith("not a readable image"), rows[name][0]
    assert rows["g_strip.png"][0].startswith("too small: 30x4 px")
    assert all(r[2].shape == (16, 16, 3) for r in rows.values())


def test_a_file_tensorflow_cannot_decode_is_reported_not_lost(tmp_path, monkeypatch):
    """Plain JPEGs are decoded by TensorFlow (as in training) after Pillow read them; should TensorFlow still fail,
    the file is reported, not dropped. Here Pillow is made to vouch for a text file."""
    folder = _mixed_folder(tmp_path / "in", bad=False)
    (folder / "fake.jpg").write_text("no JPEG here")
    decode = predict._decode

    def vouching(path):
        if path.endswith(b"fake.jpg"):
            return np.zeros((20, 20, 3), np.uint8), b"", True
        return decode(path)

    monkeypatch.setattr(predict, "_decode", vouching)
    files = predict.list_folder(str(folder))
    reasons = {p: r for batch in predict.batches(files, 16, batch_size=4)
               for p, r in zip(batch["path"], batch["reason"], strict=True)}
    assert sorted(reasons) == sorted(files)
    assert reasons[str(folder / "fake.jpg")] == "not a readable image (TensorFlow's JPEG decoder failed)"
    assert sum(r == "" for r in reasons.values()) == len(files) - 1


def test_check_request_stops_early_naming_the_problem(tmp_path):
    good = _mixed_folder(tmp_path / "good")
    request = predict.check_request("inpaint", str(good), str(tmp_path / "out"))
    assert len(request.files) == 8 and os.path.isdir(tmp_path / "out")  # the bad files are listed, to report them
    with pytest.raises(FileNotFoundError, match="--input=.*nowhere: no such file or folder"):
        predict.check_request("inpaint", str(tmp_path / "nowhere"), str(tmp_path / "out"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="is an empty folder"):
        predict.check_request("inpaint", str(tmp_path / "empty"), str(tmp_path / "out"))
    bad = tmp_path / "bad"
    os.makedirs(bad)
    (bad / "x.jpg").write_bytes(b"\x00" * 100)
    (bad / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"none of its 2 files is a readable image \(notes.txt: .*; x.jpg: "):
        predict.check_request("inpaint", str(bad), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="x.jpg: not a readable image"):
        predict.check_request("superres", str(bad / "x.jpg"), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="hole.png"):
        predict.check_request("inpaint", str(good), str(tmp_path / "out"), input_mask=str(tmp_path / "hole.png"))
    with pytest.raises(ValueError, match="--output=.*a_rgb.png is a file"):
        predict.check_request("inpaint", str(good), str(good / "a_rgb.png"))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        os.makedirs(locked)
        os.chmod(locked, 0o500)
        with pytest.raises(ValueError, match="cannot be written"):
            predict.check_request("inpaint", str(good), str(locked))
    with pytest.raises(ValueError, match="pose3d predicts from one keypoint file"):
        predict.check_request("pose3d", str(good), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="keypoints must be a .npy or .json file"):
        predict.check_request("pose3d", str(good / "a_rgb.png"), str(tmp_path / "out"))


def test_output_names_keep_inputs_apart():
    assert predict.output_names(["/a/x.jpg", "/a/x.png", "/a/y.png"], "inpaint") == [
        "x_jpg_inpaint.png", "x_png_inpaint.png", "y_inpaint.png"]


def test_filter_noise_drops_the_start_up_lines_only():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796403003.364230   10550 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
            "GPU will not be used.\n"
            "E0000 00:00:1796403008.691749   10550 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
            "Failed call to cuInit: UNKNOWN ERROR (303)\n"
            "I0000 00:00:1796403021.538410   10923 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to "
            "use available CPU instructions in performance-critical operations.\n"
            "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
            "appropriate compiler flags.\n"
            "/x/y.py:3: UserWarning: something real\n"
            "E0000 00:00:1796403021.538410   10923 op_kernel.cc:1] a real error\n")
    assert quiet.filter_noise(text) == ("/x/y.py:3: UserWarning: something real\n"
                                        "E0000 00:00:1796403021.538410   10923 op_kernel.cc:1] a real error\n")


# --- process level --------------------------------------------------------------------------------------------
def _env(**extra):
    """The environment of a user's shell: no TF_CPP_MIN_LOG_LEVEL (conftest sets one for this process)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return dict(env, **extra)


def _call(args, **extra_env):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=_env(**extra_env), timeout=600)


@pytest.fixture(scope="module")
def tf_noise():
    """The start-up lines plain TensorFlow prints on this machine (none, e.g., where a GPU is set up)."""
    proc = _call([sys.executable, "-c", "import tensorflow as tf; tf.config.list_physical_devices()"])
    return [n for n in NOISE if n in proc.stderr]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_cache):
    """A 5-step inpainting run (32x32 faces); returns the flags that name it."""
    run_dir = tmp_path_factory.mktemp("predict") / "run"
    common = ["--task=inpaint", "--bias=none", f"--run_dir={run_dir}", f"--cache_dir={shared_cache}"]
    proc = _call(cli("--steps=5", "--checkpoint_every=5", "--export=false", *common))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return common


def test_predict_folder_skips_bad_files_and_writes_a_manifest(trained, tmp_path):
    folder, out = _mixed_folder(tmp_path / "in"), tmp_path / "out"
    proc = _call(cli("--mode=predict", f"--input={folder}", f"--output={out}", *trained))
    assert proc.returncode == 0, proc.stderr[-3000:]
    good = ["a_rgb.png", "b_grey.png", "c_rgba.png", "d_deep.png", "e_phone.jpg", "f_celeba.png"]
    for name in good:
        assert (out / (os.path.splitext(name)[0] + "_inpaint.png")).exists(), name
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in skipped) == [str(folder / "notes.txt"), str(folder / "x.jpg")]
    assert all(line.split("\t")[1].startswith("not a readable image") for line in skipped)
    manifest = json.loads((out / "predictions.json").read_text())
    assert [os.path.basename(p["input"]) for p in manifest["predictions"]] == good
    assert all(os.path.exists(p["outputs"][0]) for p in manifest["predictions"])
    by_name = {os.path.basename(p["input"]): p for p in manifest["predictions"]}
    assert by_name["f_celeba.png"]["crop"] == "celeba" and by_name["f_celeba.png"]["crop_box"] == [52, 17, 144, 144]
    assert by_name["a_rgb.png"]["crop"] == "center" and by_name["a_rgb.png"]["size"] == [50, 40]
    model = manifest["model"]
    assert model["task"] == "inpaint" and model["bias"] == "none" and model["step"] == 5
    assert model["checkpoint"].endswith("ckpt-5") and manifest["crop"] == "auto"
    assert len(manifest["skipped"]) == 2 and manifest["skipped_file"] == str(out / "skipped.txt")
    assert "predict: 8/8 images" in proc.stdout and "images/s" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-3].startswith("skipped 2 of 8 files")  # then the two, then the end
    # TensorFlow's start-up lines are gone by default (test_tf_log_...: plain TensorFlow prints them here).
    assert not [n for n in NOISE if n in proc.stderr], proc.stderr


def test_predict_on_only_bad_files_fails_in_one_line_before_loading(trained, tmp_path):
    bad = tmp_path / "bad"
    os.makedirs(bad)
    (bad / "x.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    (bad / "notes.txt").write_text("hello")
    proc = _call(cli("--mode=predict", f"--input={bad}", f"--output={tmp_path / 'out'}", *trained))
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout  # stopped before the data and the model
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aign_tf: error: --input=") and "none of its 2 files" in lines[0]


def test_tf_log_shows_tensorflows_start_up_lines(trained, tf_noise, tmp_path):
    if not tf_noise:
        pytest.skip("plain TensorFlow prints no start-up lines on this machine")
    photo = _aligned_photo(tmp_path / "p.png")
    proc = _call(cli("--mode=predict", f"--input={photo}", f"--output={tmp_path / 'out'}", "--tf_log", *trained))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [n for n in tf_noise if n not in proc.stderr] == [], proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--mode=predict"], "aign_tf: error: --mode=predict needs --input=FILE_OR_FOLDER (see --helpfull)"),
    (["--mode=eval"], "aign_tf: error: no checkpoint in "),
    (["--crop=middle"], "aign_tf: error: flag --crop=middle: value should be one of"),
    (["--task=superres", "--mode=predict", "--input=x.png", "--input_mask=m.png"],
     "aign_tf: error: --input_mask applies to --task=inpaint, not --task=superres"),
    (["--task=pose3d", "--crop=center"], "aign_tf: error: --crop applies to the face tasks"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, needle):
    proc = _call([sys.executable, "-m", "aign_tf.main", f"--run_dir={tmp_path / 'run'}", *args])
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(needle), lines[:5]
    assert not os.path.exists(tmp_path / "run")
