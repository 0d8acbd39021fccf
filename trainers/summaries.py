"""TensorBoard summaries beyond the training scalars and image grids: a run's hyper-parameters (the HParams
dashboard), its evaluation figures as scalars and the graph of one training step. Used by ``trainers/loop.py``
(graph, run hyper-parameters), ``trainers/tune.py`` (each trial's hyper-parameters and results) and
``aign_tf/main.py`` (the evaluation figures).

Every writer takes a log directory or an open ``tf.summary`` writer.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from aign_tf import runs

# Flags that say where a run's files go or how often it reports, not what it trains: left out of its hparams.
NOT_HPARAMS = frozenset({"mode", "run_dir", "cache_dir", "export", "export_dir", "checkpoint_every", "log_every",
                         "image_every", "input", "input_mask", "output"})
NOT_HPARAM_PREFIXES = ("tune_", "bench_")  # the other modes' flags
# Numbers in an eval result that identify it, count its inputs or repeat a setting rather than measure the model.
NOT_FIGURES = frozenset({"step", "seed", "eval_images", "eval_poses", "skipped_images", "skipped",
                         "paired_fraction"})


def _writer(target) -> tf.summary.SummaryWriter:
    return target if isinstance(target, tf.summary.SummaryWriter) else tf.summary.create_file_writer(target)


def hparam_values(flag_values: dict) -> dict:
    """The HParams of a run from {flag name: value}: the flags that define what it trains (:data:`NOT_HPARAMS`, the
    other modes' flags and the other kind of task's flags, ``aign_tf.runs.FACE_ONLY`` / ``POSE_ONLY``, left out),
    as bool, int, float or str; a list becomes comma-joined text and an unset flag (None) is left out."""
    other_task = runs.FACE_ONLY if flag_values.get("task") == "pose3d" else runs.POSE_ONLY  # flags it never reads
    out = {}
    for name in sorted(flag_values):
        value = flag_values[name]
        if (name in NOT_HPARAMS or name in other_task or name.startswith(NOT_HPARAM_PREFIXES)
                or value is None):
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        elif not isinstance(value, (bool, int, float, str)):
            value = str(value)
        out[name] = value
    return out


def write_hparams(target, values: dict, trial_id: str | None = None) -> None:
    """The run's hyper-parameters {name: bool/int/float/str} for TensorBoard's HParams dashboard; its metrics are
    the scalars of the same run (e.g. ``eval/...``, ``tune/...``)."""
    from tensorboard.plugins.hparams import api as hparams_api

    writer = _writer(target)
    with writer.as_default():
        hparams_api.hparams(values, trial_id=trial_id)
    writer.flush()


def eval_scalars(result: dict, prefix: str = "eval") -> dict[str, float]:
    """Every numeric figure of an evaluation result as {``prefix/key[/subkey...]``: float}: nested dicts are
    flattened (``eval/attributes/Male/shift``); text, booleans, None, lists and the top-level :data:`NOT_FIGURES`
    are left out. Pure."""
    out = {}

    def walk(values: dict, name: str, top: bool):
        for key, value in values.items():
            if top and key in NOT_FIGURES:
                continue
            if isinstance(value, dict):
                walk(value, f"{name}/{key}", False)
            elif isinstance(value, numbers.Real) and not isinstance(value, bool):
                out[f"{name}/{key}"] = float(value)

    walk(result, prefix, True)
    return out


def write_scalars(target, scalars: dict[str, float], step: int) -> None:
    """{tag: value} as TensorBoard scalars at ``step``."""
    writer = _writer(target)
    with writer.as_default(step=step):
        for tag, value in scalars.items():
            tf.summary.scalar(tag, value)
    writer.flush()


def write_graph(target, graph: tf.Graph) -> None:
    """A graph (e.g. a traced training step's ``concrete_function.graph``) for TensorBoard's Graphs dashboard."""
    writer = _writer(target)
    with writer.as_default():
        tf.summary.graph(graph)
    writer.flush()
