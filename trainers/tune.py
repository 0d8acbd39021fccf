"""Hyper-parameter search (``--mode=tune``) with keras-tuner, through keras-tuner's pattern for custom training
loops: a tuner subclass whose ``run_trial`` builds the task and a :class:`trainers.loop.Trainer` with the trial's
hyper-parameters, trains for ``--tune_steps`` steps, evaluates and returns the eval results.

- The searched flags are :data:`LOG_UNIFORM` and :data:`CHOICES` (see :func:`search_space`). A searched flag
  set on the command line is fixed at its value. Trial 0 runs the flags' current values (the baseline): the
  search space is declared inside ``run_trial``, so keras-tuner's first trial takes every default.
- Trials are scored on a validation split carved from the end of the training split
  (:func:`validation_splits`); the test split is never seen by the search.
- Each trial trains in ``<run_dir>/tune/trial_<id>`` (checkpoints, TensorBoard with HParams, eval.json); the
  same command run again resumes the search (finished trials are kept, an interrupted one resumes from its
  checkpoint), and ``--tune_trials`` may be raised to add trials.
- At the end: a table of the trials best first, ``<run_dir>/tune/results.json`` and the command that retrains
  the best configuration with ``--mode=train``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import types

import keras
import keras_tuner
import numpy as np

from aign_tf import building, formats
from aign_tf.metrics import MIN_PROBE_ACCURACY
from trainers import summaries
from trainers.loop import Trainer, TrainingDiverged

# The search space: flag name -> (low, high) sampled log-uniformly, or flag name -> the choices.
LOG_UNIFORM = {"g_learning_rate": (1e-4, 1e-3), "d_learning_rate": (1e-4, 1e-3),
               "adversarial_weight": (0.1, 3.0), "reconstruction_weight": (1.0, 30.0)}
CHOICES = {"d_steps": [1, 2], "adversarial_loss": ["non_saturating", "least_squares", "hinge"]}
SEARCHED = (*LOG_UNIFORM, *CHOICES)
SHORT_NAMES = {"g_learning_rate": "g_lr", "d_learning_rate": "d_lr", "adversarial_weight": "adv_w",
               "reconstruction_weight": "rec_w", "d_steps": "d_steps", "adversarial_loss": "adv_loss"}

# Eval-result keys a search can optimise, per task, with their direction; the first is the default.
_FACE_OBJECTIVES = {"bias_strength": "max", "consistency_psnr_db": "max", "psnr_vs_truth_db": "max",
                    "ssim_vs_truth": "max"}
OBJECTIVES = {"inpaint": _FACE_OBJECTIVES, "superres": _FACE_OBJECTIVES,
              "pose3d": {"mpjpe_mm": "min", "pa_mpjpe_mm": "min", "reprojection_px": "min"}}

# Flags that do not change a trial's outcome: a resumed search may differ from the first run in these only.
NOT_SETTINGS = ("mode", "run_dir", "tune_trials", "cache_dir", "export", "export_dir", "log_every", "image_every",
                "checkpoint_every")


def search_space(hp: keras_tuner.HyperParameters, current: dict, fixed=frozenset()) -> dict:
    """Declares the searched hyper-parameters on ``hp`` and returns this trial's values {flag name: value}.

    current: {flag name: value} of every searched flag; a name in ``fixed`` (set on the command line) is
      ``hp.Fixed`` at that value, the others are searched with it as the default (the value of trial 0).
    """
    values = {}
    for name in SEARCHED:
        if name in fixed:
            values[name] = hp.Fixed(name, current[name])
        elif name in LOG_UNIFORM:
            low, high = LOG_UNIFORM[name]
            values[name] = hp.Float(name, low, high, sampling="log", default=current[name])
        else:
            values[name] = hp.Choice(name, CHOICES[name], default=current[name])
    return values


def objective(task_name: str, name: str | None = None) -> keras_tuner.Objective:
    """The keras-tuner objective for ``--tune_objective=name`` (None: the task's default) with its direction."""
    valid = OBJECTIVES[task_name]
    name = name or next(iter(valid))
    if name not in valid:
        raise ValueError(f"--tune_objective={name!r} is not an eval result of --task={task_name}; expected one "
                         f"of {', '.join(valid)}")
    return keras_tuner.Objective(name, valid[name])


def validation_splits(splits, fraction: float):
    """A copy of ``splits`` (FaceSplits or PoseSplits) whose ``test`` is the last ``fraction`` of
    ``splits.train`` and whose ``train`` is the rest; every other field (prior, skeleton, ...) is kept."""
    n = len(splits.train)
    n_val = int(round(fraction * n))
    if not 0 < fraction < 1 or not 0 < n_val < n:
        raise ValueError(f"--tune_val_fraction={fraction} of {n} training examples leaves {n_val} for validation "
                         f"and {n - n_val} for training; expected a fraction in (0, 1) leaving at least one of each")
    return dataclasses.replace(splits, train=splits.train.subset(np.arange(n - n_val)),
                               test=splits.train.subset(np.arange(n - n_val, n)))


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """What every trial shares: the base flags (a namespace), the carved splits, the face probe, the objective."""

    flags: types.SimpleNamespace
    fixed: frozenset
    steps: int
    splits: object
    probe: object
    objective: str
    log: object = print

    @property
    def current(self) -> dict:
        return {name: getattr(self.flags, name) for name in SEARCHED}


def run_trial(setup: TrialSetup, hp: keras_tuner.HyperParameters, trial_dir: str) -> dict:
    """One trial: trains the task with the trial's hyper-parameters for ``setup.steps`` steps in ``trial_dir``
    (resuming a checkpoint there) and evaluates it on the validation split. Returns {result key: value} for
    every optimisable result. A diverged run fails the trial (the search goes on); a user error stops it."""
    values = search_space(hp, setup.current, setup.fixed)
    flags = types.SimpleNamespace(**{**vars(setup.flags), **values, "steps": setup.steps})
    keras.backend.clear_session()
    building.seed_everything(flags)  # the same seed for every trial, so trials differ by their hyper-parameters only
    try:
        task = building.make_task(flags, setup.splits, log=setup.log)
        trainer = Trainer(task, building.train_config(flags), trial_dir, log=setup.log)
        trainer.train()
        extra = {"probe": setup.probe} if setup.probe is not None else {}
        result = task.evaluate(trainer.eval_generator, trial_dir, **extra)
    except TrainingDiverged as e:
        raise keras_tuner.errors.FailedTrialError(str(e)) from e
    except ValueError as e:
        raise keras_tuner.errors.FatalValueError(str(e)) from e
    metrics = {k: float(result[k]) for k in OBJECTIVES[flags.task] if k in result}
    if setup.objective not in metrics:
        raise keras_tuner.errors.FatalValueError(f"--tune_objective={setup.objective} is not in this run's eval "
                                                 f"results; expected one of {', '.join(metrics)}")
    formats.write_json(os.path.join(trial_dir, "eval.json"),
                       {**result, "split": "validation", "step": int(trainer.step.numpy()), "hyperparameters": values})
    # The trial's hyper-parameters and results for TensorBoard's HParams dashboard (``--logdir <run_dir>/tune``).
    tensorboard_dir = os.path.join(trial_dir, "tensorboard")
    summaries.write_hparams(tensorboard_dir, values, trial_id=os.path.basename(trial_dir))
    summaries.write_scalars(tensorboard_dir, {f"tune/{name}": value for name, value in metrics.items()}, setup.steps)
    return metrics


class _AIGNTrials:
    """keras-tuner's custom-training-loop hook: ``search(setup)`` calls ``run_trial(trial, setup)`` per trial."""

    def run_trial(self, trial, setup: TrialSetup):
        return run_trial(setup, trial.hyperparameters, self.get_trial_dir(trial.trial_id))


class RandomSearch(_AIGNTrials, keras_tuner.RandomSearch):
    """Random search over :func:`search_space`, one AIGN training run per trial."""


class BayesianSearch(_AIGNTrials, keras_tuner.BayesianOptimization):
    """Gaussian-process Bayesian optimisation over :func:`search_space`, one AIGN training run per trial."""


def make_tuner(algorithm: str, goal: keras_tuner.Objective, trials: int, seed: int, run_dir: str):
    """The tuner for ``--tune_algorithm``; its project is ``<run_dir>/tune`` and is resumed if it exists."""
    common = dict(objective=goal, max_trials=trials, seed=seed, directory=run_dir, project_name="tune",
                  overwrite=False)
    if algorithm == "random":
        return RandomSearch(**common)
    if algorithm == "bayesian":  # the first half of the trials are random: a GP needs points to fit
        return BayesianSearch(num_initial_points=max(2, trials // 2), **common)
    raise ValueError(f"--tune_algorithm={algorithm!r} is not one of random, bayesian")


# --- resuming ---------------------------------------------------------------------------------------
def search_settings(flags, goal: keras_tuner.Objective, steps: int) -> dict:
    """Everything that makes one trial's result comparable with another's (JSON-normalised)."""
    settings = {k: v for k, v in vars(flags).items() if k not in NOT_SETTINGS}
    settings.update(tune_objective=goal.name, direction=goal.direction, tune_steps=steps)
    return json.loads(json.dumps(settings))


def check_resumable(tune_dir: str, settings: dict) -> None:
    """A ValueError naming what differs if ``tune_dir`` holds a search made with other settings."""
    path = os.path.join(tune_dir, "search.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    changed = sorted(k for k in old.keys() | settings.keys() if old.get(k) != settings.get(k))
    if changed:
        diff = "; ".join(f"{k}: {old.get(k)!r} there, {settings.get(k)!r} now" for k in changed)
        raise ValueError(f"{tune_dir} holds a search made with other settings ({diff}); re-run with the same flags "
                         "(only --tune_trials may change) or choose another --run_dir")


# --- results ----------------------------------------------------------------------------------------
def command(flag_values: dict) -> str:
    """``python -m aign_tf.main --name=value ...`` for {flag name: value}, shell-quoted."""
    def arg(name, value):
        if isinstance(value, bool):
            return f"--{name}" if value else f"--no{name}"
        return f"--{name}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"

    return shlex.join(["python", "-m", "aign_tf.main", *(arg(k, v) for k, v in flag_values.items())])


def trial_rows(tuner) -> list[dict]:
    """Every trial, best first: the completed ones by their objective (ties by trial id), then the others."""
    sign = -1 if tuner.oracle.objective.direction == "max" else 1
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: (
        t.status != "COMPLETED", sign * t.score if t.status == "COMPLETED" else 0, int(t.trial_id)))
    rows = []
    for trial in trials:
        message = (trial.message or "").strip().splitlines()
        rows.append({"trial_id": trial.trial_id, "status": trial.status, "objective": trial.score,
                     "hyperparameters": dict(trial.hyperparameters.values),
                     "metrics": {n: trial.metrics.get_last_value(n) for n in trial.metrics.metrics},
                     "run_dir": tuner.get_trial_dir(trial.trial_id),
                     "error": message[-1].split(": ", 1)[-1] if message else None})
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def format_table(rows: list[dict], goal: keras_tuner.Objective, baseline: dict) -> str:
    """A plain-text table of ``trial_rows``; ``*`` marks the trial run with the flags' own values."""
    reported = dict.fromkeys(n for r in rows for n in r["metrics"])
    metric_names = [goal.name] + [n for n in reported if n != goal.name]
    header = ["rank", "trial", *[f"{n} ({goal.direction})" if n == goal.name else n for n in metric_names],
              *(SHORT_NAMES[n] for n in SEARCHED)]
    lines = []
    for rank, row in enumerate(rows, 1):
        mark = "*" if row["hyperparameters"] == baseline else ""
        if row["status"] == "COMPLETED":
            cells = [row["metrics"].get(n) for n in metric_names]
        else:
            cells = [row["status"]] + [None] * (len(metric_names) - 1)
        lines.append([str(rank), row["trial_id"] + mark, *map(_cell, cells),
                      *(_cell(row["hyperparameters"].get(n)) for n in SEARCHED)])
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    out = [fmt(header), *map(fmt, lines)]
    out += [f"trial {r['trial_id']} {r['status'].lower()}: {r['error'] or 'no finite objective'}"
            for r in rows if r["status"] != "COMPLETED"]
    return "\n".join(out)


# --- the mode ---------------------------------------------------------------------------------------
def run(flags, explicit: set, run_dir: str, log=print) -> dict:
    """``--mode=tune``: flags is a namespace of every flag's value (task defaults applied), ``explicit`` the names
    set on the command line. Returns the results (also written to ``<run_dir>/tune/results.json``)."""
    goal = objective(flags.task, flags.tune_objective)
    steps = flags.tune_steps or max(1, flags.steps // 4)
    fixed = frozenset(explicit) & frozenset(SEARCHED)
    if fixed == frozenset(SEARCHED):
        raise ValueError(f"every searched flag ({', '.join(SEARCHED)}) is set on the command line: nothing to search")
    for name, value in (("tune_trials", flags.tune_trials), ("tune_steps", steps)):
        if value < 1:
            raise ValueError(f"--{name}={value} must be >= 1")
    tune_dir = os.path.join(run_dir, "tune")
    settings = search_settings(flags, goal, steps)
    check_resumable(tune_dir, settings)

    data = building.load_splits(flags, log)
    splits = validation_splits(data, flags.tune_val_fraction)
    if flags.jit_compile is None:  # every trial compiles its step as measured fastest here (cached)
        from trainers.compile_choice import choose_for_run

        flags.jit_compile = choose_for_run(flags, splits, log)
    probe = building.face_probe(flags, data, log) if flags.task in building.FACE_TASKS else None
    if goal.name == "bias_strength":
        attribute = bias_target(flags, data.train.attribute_names)
        if not probe.reliable(attribute):
            interval = probe.accuracy_interval(attribute)
            shown = "unknown" if interval is None else "{:.3f} to {:.3f}".format(*interval)
            log(f"warning: the attribute probe is not reliable for {attribute} (held-out accuracy 95 % interval "
                f"{shown}; needs a low end >= {MIN_PROBE_ACCURACY}): bias_strength is not a valid figure to optimise")
    log(f"tune: {flags.tune_algorithm} search, {flags.tune_trials} trials x {steps} steps, {goal.direction}imising "
        f"{goal.name} on a validation split of the last {len(splits.test)} of {len(data.train)} training examples "
        f"(the test split is not used); fixed: {', '.join(sorted(fixed)) or 'none'}; trials in {tune_dir}")
    tuner = make_tuner(flags.tune_algorithm, goal, flags.tune_trials, flags.seed, run_dir)
    formats.write_json(os.path.join(tune_dir, "search.json"), settings)
    tuner.search(TrialSetup(flags, fixed, steps, splits, probe, goal.name, log))
    return report(tuner, flags, explicit, run_dir, goal, steps, len(splits.test), log)


def bias_target(flags, attribute_names) -> str:
    """The attribute whose bias strength eval reports for these flags; a ValueError if there is none."""
    from aign_tf.data.bias import bias_attribute

    target = None if flags.prior_dir else bias_attribute(flags.bias, attribute_names)
    if target is None:
        what = f"--prior_dir={flags.prior_dir}" if flags.prior_dir else f"--bias={flags.bias}"
        others = ", ".join(n for n in OBJECTIVES[flags.task] if n != "bias_strength")
        raise ValueError(f"--tune_objective=bias_strength needs a --bias that targets an attribute, not {what}; "
                         f"choose another --tune_objective ({others})")
    return target[0]


def report(tuner, flags, explicit: set, run_dir: str, goal, steps: int, n_val: int, log=print) -> dict:
    """Prints the trial table and the retrain command; writes ``<run_dir>/tune/results.json``."""
    from aign_tf.machine import machine_info

    rows = trial_rows(tuner)
    baseline = {name: getattr(flags, name) for name in SEARCHED}
    best = rows[0] if rows and rows[0]["status"] == "COMPLETED" else None
    user = {k: v for k, v in vars(flags).items()
            if k in explicit and k not in ("mode", "run_dir") and not k.startswith("tune_")}
    retrain = None if best is None else command(
        {**user, **best["hyperparameters"], "run_dir": os.path.join(run_dir, "tuned")})
    results = {"task": flags.task, "objective": goal.name, "direction": goal.direction,
               "algorithm": flags.tune_algorithm, "trials_requested": flags.tune_trials, "tune_steps": steps,
               "seed": flags.seed, "validation": {"fraction": flags.tune_val_fraction, "examples": n_val},
               "searched": {**LOG_UNIFORM, **CHOICES}, "fixed": sorted(set(explicit) & set(SEARCHED)),
               "command": command({k: v for k, v in vars(flags).items() if k in explicit}), "machine": machine_info(),
               "trials": rows, "best_trial": best and best["trial_id"], "retrain_command": retrain}
    path = os.path.join(run_dir, "tune", "results.json")
    formats.write_json(path, results)
    log(f"\ntrials, best first ({goal.name} on the validation split after {steps} steps; * = the flags' own values):")
    log(format_table(rows, goal, baseline))
    log(f"results: {path}")
    log(f"retrain the best configuration (trial {best['trial_id']}):\n  {retrain}" if best else
        "no trial completed: nothing to retrain")
    return results
