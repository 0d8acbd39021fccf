"""Run folders: which flags define a run's model and data, the folder's default name, its ``settings.json`` and
its lock. Pure functions over a namespace of every program flag's value (``aign_tf.main.program_flags``, with the
task defaults applied); no TensorFlow.

- A flag is *defining* unless it is in :data:`OPERATIONAL` (or starts with ``tune_`` / ``bench_``): a new flag is
  defining until someone decides otherwise. Flags a task or data source does not read are left out
  (:func:`applies`), so setting one changes nothing.
- ``<run_dir>/settings.json`` records the defining settings when the folder is created (and, for information,
  :data:`RECORDED` of the latest training session). A later command in the folder with other defining settings
  stops with one line naming them (:func:`check_settings`): a folder never holds two models.
- The default folder is ``runs/<task>_<slug>`` plus ``-<part>`` for each defining setting that differs from its
  default (:func:`run_name`), so changing a setting without ``--run_dir`` starts a new folder.
- ``<run_dir>/.lock`` (:func:`locked`): one command at a time writes into a folder.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import socket
import sys

from aign_tf import formats

SETTINGS_FILE = "settings.json"
LOCK_FILE = ".lock"
FORMAT = 1
# Flags that do not change the model a folder holds or the data it was trained on. --steps: training further in
# the same folder is resuming (instance noise then falls to 0 at the new --steps). --eval_images and
# --probe_epochs change the measurement, not the model. --jit_compile and --deterministic choose how the same
# step is computed (RECORDED keeps them for information).
OPERATIONAL = frozenset({
    "mode", "run_dir", "export_dir", "export", "cache_dir", "steps", "checkpoint_every", "log_every", "image_every",
    "input", "input_mask", "output", "crop", "eval_images", "probe_epochs", "jit_compile", "deterministic", "tf_log"})
OPERATIONAL_PREFIXES = ("tune_", "bench_")
RECORDED = ("jit_compile", "deterministic", "steps")
# Flags only some tasks read (the others are left out of their settings).
FACE_ONLY = frozenset({"bias", "image_size", "factor", "mask", "g_filters", "d_filters", "spectral_norm",
                       "generator_noise", "exemplars", "exemplar_balance", "exemplar_match", "max_images"})
POSE_ONLY = frozenset({"num_prior", "pose_width", "pose_blocks", "pose_d_width"})
ONLY_TASK = {"factor": "superres", "mask": "inpaint"}
BUILTIN_DATA_ONLY = frozenset({"num_train", "num_test"})  # the built-in data's sizes; real data has its own
REAL_DATA_ONLY = frozenset({"max_images"})
# The default folder's base name already says these (runs/<task>_<bias or prior folder>).
IN_BASE_NAME = ("task", "bias", "prior_dir")
MAX_SUFFIX = 64  # a longer suffix becomes an 8-hex digest of the differing settings


def is_defining(name: str) -> bool:
    return name not in OPERATIONAL and not name.startswith(OPERATIONAL_PREFIXES)


def _builtin(data_dir) -> bool:
    return data_dir in (None, "", "builtin")


def applies(name: str, flags) -> bool:
    """Whether ``flags.task`` with ``flags``' data source reads the flag ``name``."""
    face = flags.task != "pose3d"
    if (name in FACE_ONLY and not face) or (name in POSE_ONLY and face):
        return False
    if name in ONLY_TASK and ONLY_TASK[name] != flags.task:
        return False
    if name == "bias" and flags.prior_dir:  # the prior folder replaces the bias
        return False
    builtin = _builtin(flags.data_dir)
    return not ((name in BUILTIN_DATA_ONLY and not builtin) or (name in REAL_DATA_ONLY and builtin))


def _path(value: str) -> str:
    return os.path.abspath(os.path.expanduser(value))


def normalise(name: str, value):
    """A flag's value as recorded: paths absolute, built-in data ``"builtin"``, a bias expression lower-case with
    its words single-spaced (bias names and keywords are case-insensitive), numbers as JSON has them."""
    if name == "data_dir":
        if _builtin(value):
            return "builtin"
        if value == "tfds" or not value.startswith("tfds:"):
            return value if value == "tfds" else _path(value)
        return "tfds:" + _path(value[len("tfds:"):])
    if name == "prior_dir":
        return _path(value) if value else None
    if name == "bias":
        return " ".join(re.findall(r"[a-z0-9_]+|[()]", value.lower()))
    return json.loads(json.dumps(value))  # tuples -> lists, as read back from the file


def defining_settings(flags) -> dict:
    """{flag name: normalised value} of the defining flags ``flags.task`` reads; ``flags`` holds every program
    flag (task defaults applied)."""
    return {name: normalise(name, value) for name, value in sorted(vars(flags).items())
            if is_defining(name) and applies(name, flags)}


def recorded_settings(flags) -> dict:
    """The operational facts settings.json keeps for information (never compared)."""
    return {name: getattr(flags, name) for name in RECORDED}


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "unset"
    if value == "":
        return '""'
    return str(value)


def differences(old: dict, new: dict, defaults: dict | None = None) -> list[str]:
    """``["--seed: 0 -> 1", ...]`` for every setting of ``new`` whose value in ``old`` differs. A setting ``old``
    does not record (a flag added since) counts as its value in ``defaults``; one ``new`` does not have (a flag
    this run does not read, or one since removed) is not compared."""
    defaults = defaults or {}
    missing = object()
    out = []
    for name in new:
        before = old.get(name, defaults.get(name, missing))
        if before != new[name]:
            out.append(f"--{name}: {'(not recorded)' if before is missing else _show(before)} -> {_show(new[name])}")
    return out


def _part(name: str, value) -> str:
    if isinstance(value, bool):
        return name if value else "no" + name
    if isinstance(value, str) and name in ("data_dir", "prior_dir") and value != "tfds":
        tfds, path = value.startswith("tfds:"), value.removeprefix("tfds:")
        value = ("tfds_" if tfds else "") + os.path.basename(os.path.normpath(path))
    if isinstance(value, (list, tuple)):
        value = "_".join(map(str, value))
    text = re.sub(r"[^a-z0-9.-]+", "_", str(value).lower()).strip("_")  # also a SavedModel name
    return f"{name}_{text}" if isinstance(value, str) else f"{name}{text}"


def run_name(base: str, settings: dict, default_settings: dict) -> str:
    """``base`` (``<task>_<slug>``) plus ``-<part>`` for each setting in ``settings`` whose value differs from
    ``default_settings`` (the settings of the same task, bias, prior folder and data with every other flag at
    its default): ``--data_dir`` first, then by flag name. A part is ``<flag><number>`` (``seed1``,
    ``g_learning_rate0.001``), ``<flag>`` / ``no<flag>`` for a boolean, ``<flag>_<text>`` for text, a path by its
    last component (``data_dir_celeba``). If the parts take more than 64 characters they are replaced by an
    8-hex digest of the differing settings (settings.json in the folder says what they are)."""
    differing = {k: v for k, v in settings.items()
                 if k not in IN_BASE_NAME and (k not in default_settings or default_settings[k] != v)}
    if not differing:
        return base
    order = sorted(differing, key=lambda k: (k != "data_dir", k))
    suffix = "-".join(_part(k, differing[k]) for k in order)
    if len(suffix) > MAX_SUFFIX:
        suffix = hashlib.sha256(json.dumps(differing, sort_keys=True).encode()).hexdigest()[:8]
    return f"{base}-{suffix}"


# --- settings.json --------------------------------------------------------------------------------------
def command_line(argv=None) -> str:
    """The command as typed: ``python -m aign_tf.main --task=...`` (``sys.argv[0]`` is the module's file)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(os.path.join("aign_tf", "main.py")):
        argv = ["python", "-m", "aign_tf.main", *argv[1:]]
    return shlex.join(argv)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def has_checkpoint(run_dir: str) -> bool:
    """Whether ``run_dir`` holds a training checkpoint (the state file tf.train.CheckpointManager writes in
    ``<run_dir>/checkpoints``, where trainers.loop.Trainer saves); read without TensorFlow, so a command that needs
    one stops at once."""
    return os.path.isfile(os.path.join(run_dir, "checkpoints", "checkpoint"))


def _read_record(run_dir: str) -> dict | None:
    """The whole ``<run_dir>/settings.json`` (None: there is none); a ValueError if it is not one of ours."""
    path = os.path.join(run_dir, SETTINGS_FILE)
    if not os.path.exists(path):
        return None
    record = formats.read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise ValueError(f"{path} is not an aign_tf settings file (expected an object with \"settings\"); "
                         "restore it or choose another --run_dir")
    return record


def read_settings(run_dir: str) -> dict | None:
    """The defining settings recorded in ``run_dir`` (None: no settings.json)."""
    record = _read_record(run_dir)
    return None if record is None else record["settings"]


def recorded_value(run_dir: str, name: str):
    """The value of ``name`` (one of RECORDED) the folder's latest training session recorded (None: none)."""
    record = _read_record(run_dir)
    return None if record is None else (record.get("recorded") or {}).get(name)


def write_settings(run_dir: str, settings: dict, recorded: dict, command: str | None = None) -> str:
    """Writes ``<run_dir>/settings.json``: the defining settings (kept from the folder's creation), and the
    recorded facts and command of this session."""
    path, record = os.path.join(run_dir, SETTINGS_FILE), _read_record(run_dir)
    created = record.get("created_utc") if record else None
    formats.write_json(path, {
        "format": FORMAT, "created_utc": created or _now(), "settings": settings,
        "recorded": {**recorded, "command": command if command is not None else command_line(),
                     "utc": _now()}})
    return path


def check_settings(run_dir: str, settings: dict, defaults: dict, run_dir_given: bool) -> bool:
    """A ValueError naming ``run_dir`` and each differing flag (old -> new) if the folder holds a checkpoint
    trained with other defining settings. Returns whether it records the settings of a checkpoint (False: a new
    folder, one made before settings were recorded, or one whose run stopped before its first checkpoint, e.g. a
    diverged run: it holds no model, so a command with other settings may start afresh there)."""
    old = read_settings(run_dir)
    if old is None or not has_checkpoint(run_dir):
        return False
    diff = differences(old, settings, defaults)
    if diff:
        fix = ("leave out --run_dir to use the folder named after these settings, or choose another --run_dir"
               if run_dir_given else "or choose another --run_dir")
        raise ValueError(f"{run_dir} holds a model trained with other settings ({', '.join(diff)}; the folder's "
                         f"value -> this command's): re-run with the folder's settings, {fix}")
    return True


# --- the lock ------------------------------------------------------------------------------------------
def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}: "
            f"{info.get('command', '?')}")


@contextlib.contextmanager
def locked(folder: str):
    """Holds ``<folder>/.lock`` (``fcntl.flock``, exclusive) while the block runs; the file says who holds it
    (pid, host, time, command). The kernel releases the lock when the process ends, however it ends. A second
    holder gets a ValueError naming the folder and the holder's pid. A folder this call created is removed again
    if the block leaves nothing in it but the lock (a command that failed before writing anything)."""
    created, parent = [], os.path.abspath(folder)
    while not os.path.exists(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{folder} is in use by another aign_tf command ({_holder(fd)}); wait for it to end "
                             "or choose another --run_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now(),
                                  "command": command_line()}).encode(), 0)
        try:
            yield
        finally:
            if created and os.listdir(folder) == [LOCK_FILE]:
                os.remove(path)
                for directory in created:  # the deepest first
                    with contextlib.suppress(OSError):
                        os.rmdir(directory)
    finally:
        os.close(fd)  # releases the lock
