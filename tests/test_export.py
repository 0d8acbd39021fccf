"""aign_tf.export: TF Serving layout, signatures, fresh-process reload, mixed precision, clean failures."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from aign_tf import export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
SIGNATURE = {"image": tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32),
             "mask": tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32)}


def _tiny_inpainter() -> keras.Model:
    """image [B, 64, 64, 3] + mask [B, 64, 64, 1] -> face [B, 64, 64, 3]."""
    image, mask = keras.Input((SIZE, SIZE, 3)), keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Concatenate()([image, mask])
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    face = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(x)
    return keras.Model([image, mask], face)


def _serve(model):
    def model_fn(image, mask):
        face = model([image, mask], training=False)
        return {"face": face, "composite": image * mask + tf.cast(face, tf.float32) * (1.0 - mask)}
    return model_fn


def _inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, SIZE, SIZE, 1), np.float32)
    mask[:, 20:40, 10:50] = 0.0
    return {"image": rng.random((batch, SIZE, SIZE, 3), dtype=np.float32), "mask": mask}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = _tiny_inpainter()
    root = str(tmp_path_factory.mktemp("saved_models"))
    paths = [export.export_for_serving(_serve(model), SIGNATURE, root, "inpaint_male", trackables=[model],
                                       metadata={"task": "inpaint", "bias": "male", "image_size": SIZE})
             for _ in range(2)]
    return model, root, paths


def test_layout_versions_metadata_and_tracked_weights(exported):
    model, root, paths = exported
    base = os.path.join(root, "inpaint_male")
    assert paths == [os.path.join(base, "1"), os.path.join(base, "2")]
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary export directory left behind
    assert all(os.path.isfile(os.path.join(p, "saved_model.pb")) for p in paths)
    assert export.next_version(base) == 3

    meta = export.read_metadata(paths[0])
    assert meta["task"] == "inpaint" and meta["bias"] == "male" and meta["image_size"] == SIZE
    assert meta["inputs"]["image"] == {"dtype": "float32", "shape": [-1, SIZE, SIZE, 3]}
    assert meta["outputs"]["face"]["dtype"] == "float32"
    assert meta["tensorflow_version"] == tf.__version__ and "aign_tf_version" in meta

    # The Keras 3 weights are real variables in the SavedModel's checkpoint (tracked, not frozen constants).
    reader = tf.train.load_checkpoint(os.path.join(paths[0], "variables", "variables"))
    saved = reader.get_variable_to_shape_map()
    saved_shapes = sorted(tuple(s) for k, s in saved.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert saved_shapes == sorted(tuple(w.shape) for w in model.weights)


def test_reload_in_a_fresh_process_matches(exported, tmp_path):
    model, _, paths = exported
    inputs = _inputs()
    np.savez(tmp_path / "in.npz", **inputs)
    script = ("import sys, numpy as np\n"
              "from aign_tf.export import load_serving_fn\n"
              "fn = load_serving_fn(sys.argv[1])\n"
              "x = dict(np.load(sys.argv[2]))\n"
              "out = fn(**x)\n"
              "np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})\n")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", script, paths[1], str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    expected = _serve(model)(**{k: tf.constant(v) for k, v in inputs.items()})
    assert set(out.files) == {"face", "composite"}
    for name in expected:
        assert out[name].dtype == np.float32
        np.testing.assert_allclose(out[name], expected[name].numpy(), atol=1e-5)


def test_saved_model_cli_shows_named_typed_shaped_signature(exported):
    _, _, paths = exported
    cli = shutil.which("saved_model_cli")
    cmd = [cli] if cli else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    proc = subprocess.run([*cmd, "show", "--dir", paths[0], "--tag_set", "serve", "--signature_def",
                           "serving_default"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs, outputs = proc.stdout.split("output(s):")
    assert "inputs['image'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 64, 64, 3)" in inputs
    assert "inputs['mask'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 64, 64, 1)" in inputs
    assert "outputs['face'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 64, 64, 3)" in outputs
    assert "outputs['composite']" in outputs
    assert "tensorflow/serving/predict" in proc.stdout


def test_mixed_precision_model_exports_float32_outputs(tmp_path):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(1)
        model = _tiny_inpainter()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    inputs = {k: tf.constant(v) for k, v in _inputs(batch=1, seed=1).items()}
    assert model(list(inputs.values())).dtype == tf.bfloat16  # the model really computes in bfloat16
    path = export.export_for_serving(_serve(model), SIGNATURE, str(tmp_path), "mp", version=7,
                                     trackables=[model])
    assert path == os.path.join(str(tmp_path), "mp", "7")
    out = export.load_serving_fn(path)(**inputs)
    assert out["face"].dtype == tf.float32 and out["composite"].dtype == tf.float32
    expected = tf.cast(model([inputs["image"], inputs["mask"]]), tf.float32)
    np.testing.assert_allclose(out["face"].numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="already exists.*7"):
        export.export_for_serving(_serve(model), SIGNATURE, str(tmp_path), "mp", version=7,
                                  trackables=[model])


def test_export_respects_the_umask(tmp_path):
    """The version directory comes from mkdtemp (0o700) and its metadata from mkstemp (0o600): both must get the
    modes the user's umask gives (here 0o027: group may read, others nothing), not a fixed 0o755 / 0o600."""
    keras.utils.set_random_seed(0)
    model = _tiny_inpainter()
    saved = os.umask(0o027)
    try:
        path = export.export_for_serving(_serve(model), SIGNATURE, str(tmp_path), "perm", trackables=[model])
    finally:
        os.umask(saved)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o750)
    assert oct(os.stat(os.path.join(path, "assets", export.META_FILE)).st_mode & 0o777) == oct(0o640)
    assert oct(os.stat(os.path.join(path, "saved_model.pb")).st_mode & 0o777) == oct(0o640)


def test_newest_version_holding_finds_only_the_newest_with_the_same_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model, root = _tiny_inpainter(), str(tmp_path)
    assert export.newest_version_holding(root, "m", "aaaa") is None  # nothing exported yet
    first = export.export_for_serving(_serve(model), SIGNATURE, root, "m", trackables=[model],
                                      metadata={"weights_digest": "aaaa"})
    assert export.newest_version_holding(root, "m", "aaaa") == first
    assert export.newest_version_holding(root, "m", "bbbb") is None
    second = export.export_for_serving(_serve(model), SIGNATURE, root, "m", trackables=[model],
                                       metadata={"weights_digest": "bbbb"})
    assert export.newest_version_holding(root, "m", "bbbb") == second
    assert export.newest_version_holding(root, "m", "aaaa") is None  # only the newest counts: it would roll back
    os.makedirs(os.path.join(root, "m", "3"))  # a version without aign_tf's metadata
    assert export.newest_version_holding(root, "m", "bbbb") is None


def test_next_version_ignores_non_integer_entries(tmp_path):
    assert export.next_version(str(tmp_path / "missing")) == 1
    for name in ["3", "10", ".tmp-export-x", "backup"]:
        (tmp_path / name).mkdir()
    (tmp_path / "99").write_text("a file, not a version")
    assert export.next_version(str(tmp_path)) == 11


def test_user_errors_are_clear_and_leave_nothing_behind(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    fn = lambda x: {"y": model(x)}
    sig = {"x": tf.TensorSpec([None, 4], tf.float32)}
    root = str(tmp_path)
    with pytest.raises(ValueError, match="model_name 'a/b'"):
        export.export_for_serving(fn, sig, root, "a/b", trackables=[model])
    with pytest.raises(ValueError, match="input name 'bad name'"):
        export.export_for_serving(fn, {"bad name": sig["x"]}, root, "m", trackables=[model])
    with pytest.raises(ValueError, match="input 'x'.*TensorSpec"):
        export.export_for_serving(fn, {"x": np.zeros(3)}, root, "m", trackables=[model])
    with pytest.raises(ValueError, match="dict name -> tensor.*got a bare tensor"):
        export.export_for_serving(lambda x: model(x), sig, root, "m", trackables=[model])
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export.export_for_serving(fn, sig, root, "m", version=0, trackables=[model])
    # A failure after the SavedModel was written (metadata not JSON-able) removes the temporary directory.
    with pytest.raises(ValueError, match="JSON"):
        export.export_for_serving(fn, sig, root, "m", trackables=[model], metadata={"bad": object()})
    assert os.listdir(os.path.join(root, "m")) == []

    with pytest.raises(FileNotFoundError, match="nowhere"):
        export.load_serving_fn(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no saved_model.pb"):
        export.load_serving_fn(root)
