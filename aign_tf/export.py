"""SavedModel export in TF Serving's layout: ``<export_root>/<model_name>/<version>/saved_model.pb``.

TF Serving polls ``<export_root>/<model_name>/`` and serves the largest integer-named version. A version
directory is written under a temporary dot-name first and renamed into place, so the server never loads a
half-written model. The ``serving_default`` signature has named, typed, shaped inputs and named float32
outputs; ``assets/aign_tf_meta.json`` records what the model is (task, bias, sizes, versions, and from the command
line the checkpoint and a digest of the weights, so an unchanged model is not exported again:
:func:`newest_version_holding`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from aign_tf import formats

META_FILE = "aign_tf_meta.json"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def next_version(base_dir: str) -> int:
    """1 + the largest integer-named subdirectory of ``base_dir`` (1 if there is none or no base_dir)."""
    if not os.path.isdir(base_dir):
        return 1
    versions = [int(name) for name in os.listdir(base_dir)
                if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))]
    return max(versions, default=0) + 1


def newest_version_holding(export_root: str, model_name: str, weights_digest: str) -> str | None:
    """The newest version directory of ``export_root/model_name`` if its metadata records ``weights_digest``
    (see ``trainers.loop.weights_digest``), else None: exporting those weights again would only add an identical
    version, which TF Serving would roll over to as if it were a new model."""
    base_dir = os.path.join(export_root, model_name)
    newest = next_version(base_dir) - 1
    if newest < 1:
        return None
    path = os.path.join(base_dir, str(newest))
    try:
        meta = read_metadata(path)
    except (FileNotFoundError, ValueError):  # not exported by aign_tf, or its metadata is damaged
        return None
    return path if isinstance(meta, dict) and meta.get("weights_digest") == weights_digest else None


def _check_signature(input_signature: Mapping[str, tf.TensorSpec]) -> list[tf.TensorSpec]:
    """Validates the named input specs; returns them as a list of TensorSpecs named by their keys."""
    if not isinstance(input_signature, Mapping) or not input_signature:
        raise ValueError(f"input_signature must be a non-empty dict name -> tf.TensorSpec, "
                         f"got {input_signature!r}")
    specs = []
    for name, spec in input_signature.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"input name {name!r} must be a Python identifier (it becomes a keyword "
                             f"argument and a serving signature key)")
        if not isinstance(spec, tf.TensorSpec):
            raise ValueError(f"input {name!r}: expected a tf.TensorSpec, got {spec!r}")
        specs.append(tf.TensorSpec(spec.shape, spec.dtype, name=name))
    return specs


def _serving_outputs(outputs) -> dict[str, tf.Tensor]:
    """model_fn's dict name -> tensor, floating outputs cast to float32 (mixed-precision models compute
    in bfloat16/float16, TF Serving clients expect DT_FLOAT)."""
    if not isinstance(outputs, Mapping) or not outputs:
        got = "a bare tensor" if tf.is_tensor(outputs) else repr(outputs)[:80]
        raise ValueError(f"model_fn must return a non-empty dict name -> tensor (the named outputs), "
                         f"got {got}")
    result = {}
    for name, value in outputs.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"output name {name!r} must be a Python identifier (it becomes a signature key)")
        value = tf.convert_to_tensor(value)
        result[name] = tf.cast(value, tf.float32) if value.dtype.is_floating else value
    return result


def _spec_json(spec) -> dict:
    return {"dtype": spec.dtype.name, "shape": [d if d is not None else -1 for d in spec.shape.as_list()]}


def _package_version() -> str | None:
    try:
        return importlib.metadata.version("aign_tf")
    except importlib.metadata.PackageNotFoundError:
        return None  # running from a source tree that was never pip-installed


def _serving_function(model_fn, specs: list[tf.TensorSpec]):
    names = [s.name for s in specs]

    # autograph off: the exported computation is straight-line tensor code, and our own ValueErrors
    # (e.g. model_fn returning a bare tensor) then reach the user unwrapped.
    @tf.function(input_signature=specs, autograph=False)
    def serve(*inputs):
        return _serving_outputs(model_fn(**dict(zip(names, inputs, strict=True))))

    return serve


def export_for_serving(model_fn: Callable[..., Mapping[str, tf.Tensor]],
                       input_signature: Mapping[str, tf.TensorSpec], export_root: str, model_name: str,
                       version: int | None = None, trackables: Sequence = (),
                       metadata: Mapping | None = None,
                       extra_signatures: Mapping[str, tuple[Callable[..., Mapping[str, tf.Tensor]],
                                                            Mapping[str, tf.TensorSpec]]] | None = None) -> str:
    """Writes a SavedModel to ``export_root/model_name/<version>/`` and returns that path.

    model_fn: called with keyword tensors named as in ``input_signature`` (e.g. ``image`` float32
      ``[None, 64, 64, 3]``, ``mask`` float32 ``[None, 64, 64, 1]``); returns a dict name -> tensor, the
      named outputs. Floating outputs are exported as float32.
    trackables: every Keras model / tf.Variable that model_fn reads, so its weights are saved.
    version: None = :func:`next_version`; an existing version is never overwritten (ValueError).
    metadata: JSON-serialisable facts (task, bias, image size ...) written to ``assets/aign_tf_meta.json``
      together with the input/output specs and the aign_tf / TensorFlow versions.
    extra_signatures: more signatures beside ``serving_default``: name -> (model_fn, input_signature), same
      rules as the main pair.
    """
    specs = _check_signature(input_signature)
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
        raise ValueError(f"model_name {model_name!r} must be a non-empty name of letters, digits, '_', '.' "
                         f"or '-' (it is a directory name)")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be a positive integer or None, got {version!r}")
    extra = {}
    for name, (fn, signature) in (extra_signatures or {}).items():
        if not isinstance(name, str) or not _NAME.match(name) or name == "serving_default":
            raise ValueError(f"extra signature name {name!r} must be an identifier other than 'serving_default'")
        extra[name] = (fn, _check_signature(signature))
    module = tf.Module()
    module.trackables = list(trackables)
    concretes = {}
    for key, (fn, fn_specs) in {"serving_default": (model_fn, specs), **extra}.items():
        function = _serving_function(fn, fn_specs)
        setattr(module, f"serve_{key}", function)  # tracked, so the signature's graph is saved
        concretes[key] = function.get_concrete_function()
    concrete = concretes["serving_default"]

    base_dir = os.path.join(export_root, model_name)
    os.makedirs(base_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-export-", dir=base_dir)  # not an integer: TF Serving ignores it
    try:
        tf.saved_model.save(module, tmp_dir, signatures=concretes)
        meta = dict(metadata or {})
        meta.update(
            model_name=model_name,
            inputs={s.name: _spec_json(s) for s in specs},
            outputs={k: _spec_json(v) for k, v in concrete.structured_outputs.items()},
            **({"extra_signatures": {key: {
                "inputs": {s.name: _spec_json(s) for s in extra[key][1]},
                "outputs": {k: _spec_json(v) for k, v in concretes[key].structured_outputs.items()}}
                for key in extra}} if extra else {}),
            aign_tf_version=_package_version(), tensorflow_version=tf.__version__,
            exported_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        formats.write_json(os.path.join(tmp_dir, "assets", META_FILE), meta)
        os.chmod(tmp_dir, formats.default_mode(directory=True))  # mkdtemp makes it 0700; the umask decides
        return _move_into_place(tmp_dir, base_dir, version)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _move_into_place(tmp_dir: str, base_dir: str, version: int | None) -> str:
    """Renames the finished export to ``base_dir/<version>``; with version None, takes the next free
    number (retrying if a concurrent export took it first)."""
    for _ in range(100):
        target = os.path.join(base_dir, str(version if version is not None else next_version(base_dir)))
        if os.path.exists(target):
            if version is not None:
                raise ValueError(f"export version already exists: {target!r} (pick another version or None)")
            continue
        try:
            os.rename(tmp_dir, target)  # atomic; fails if a concurrent export created a non-empty target
            return target
        except OSError:
            if version is not None or not os.path.exists(target):
                raise
    raise RuntimeError(f"could not find a free version number in {base_dir!r}")


def load_serving_fn(path: str):
    """The ``serving_default`` signature of the SavedModel at ``path``: call it with keyword tensors
    (``fn(image=..., mask=...)``); it returns a dict name -> tensor."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"SavedModel directory not found: {path!r}")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{path!r} is not a SavedModel directory (no saved_model.pb); expected "
                         f"<export_root>/<model_name>/<version>/")
    signatures = tf.saved_model.load(path).signatures
    if "serving_default" not in signatures:
        raise ValueError(f"{path!r} has no 'serving_default' signature (it has {sorted(signatures)})")
    return signatures["serving_default"]


def read_metadata(path: str) -> dict:
    """The ``assets/aign_tf_meta.json`` written by :func:`export_for_serving` beside the SavedModel at
    ``path``."""
    return formats.read_json(os.path.join(path, "assets", META_FILE))
