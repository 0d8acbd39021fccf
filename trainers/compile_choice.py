"""``--jit_compile`` left unset: whether the training step runs faster compiled with XLA or as a plain
``tf.function`` is measured on this machine in a short trial and cached.

Which is faster depends on the machine, the TensorFlow build and the step itself: on two 2-core CPU VMs of the
same kind the same inpainting step was 0.58x-0.91x as fast with XLA on one and 1.22x on the other, and the
super-resolution step 0.67x against 1.53x (BENCHMARKS.md). So the choice is measured, not fixed per task: a few
steps of each on a throw-away copy of the task, once per (machine, TensorFlow version, the settings that shape the
step), remembered in ``<cache_dir>/jit_choice.json``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import tempfile

from aign_tf import formats
from aign_tf.machine import machine_info
from trainers.step_timing import time_train_steps

CACHE_FILE = "jit_choice.json"
MACHINE_KEYS = ("cpu_model", "cores", "logical_cpus", "tensorflow", "keras", "gpus")


def cache_key(machine: dict, settings: dict) -> str:
    """A digest of the machine facts that decide compiled speed and of the settings that shape the step
    (the run's defining settings: task, sizes, networks, losses, batch size, precision)."""
    facts = {"machine": {k: machine.get(k) for k in MACHINE_KEYS}, "settings": settings}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def measure(make_task, config, steps: int = 8, warmup_steps: int = 2) -> dict:
    """{"tf_function_ms", "xla_ms"}: the median step time of each compile mode, each on a new task from
    ``make_task()`` (so the run's own networks are never trained by the trial) in a temporary folder."""
    from trainers.loop import Trainer

    times = {}
    with tempfile.TemporaryDirectory(prefix="aign_jit_trial_") as tmp:
        for name, jit in (("tf_function_ms", False), ("xla_ms", True)):
            task = make_task()
            trainer = Trainer(task, dataclasses.replace(config, jit_compile=jit), os.path.join(tmp, name),
                              log=lambda *_: None)
            data = iter(task.train_dataset(config.batch_size, config.seed, 0))
            times[name] = time_train_steps(trainer._train_step, data, config.batch_size, steps,
                                           warmup_steps)["step_ms_median"]
            del data
    return times


def choose_jit_compile(make_task, config, settings: dict, cache_dir: str, log=print, measure_fn=measure) -> bool:
    """Whether to compile the training step with XLA: the cached choice for this machine and these
    ``settings``, else measured now with ``measure_fn(make_task, config)`` and cached. XLA is chosen only when its
    median step is faster."""
    machine = machine_info()
    key = cache_key(machine, settings)
    path = os.path.join(cache_dir, CACHE_FILE)
    cache = formats.read_json(path) if os.path.isfile(path) else {}
    if key in cache:
        entry = cache[key]
        log(f"--jit_compile={str(entry['jit_compile']).lower()}: measured faster on this machine "
            f"(XLA {entry['xla_ms']:.1f} ms, tf.function {entry['tf_function_ms']:.1f} ms per step; {path})")
        return bool(entry["jit_compile"])
    log("--jit_compile unset: timing a few training steps with and without XLA on this machine (once; cached)")
    times = measure_fn(make_task, config)
    jit = times["xla_ms"] < times["tf_function_ms"]
    cache = formats.read_json(path) if os.path.isfile(path) else {}  # another run may have added entries
    cache[key] = {"jit_compile": jit, **{k: round(v, 3) for k, v in times.items()},
                  "cpu_model": machine.get("cpu_model"), "tensorflow": machine.get("tensorflow"),
                  "task": settings.get("task"),
                  "measured_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    formats.write_json(path, cache)
    log(f"--jit_compile={str(jit).lower()}: XLA {times['xla_ms']:.1f} ms, tf.function {times['tf_function_ms']:.1f} "
        f"ms per step (cached in {path})")
    return jit


def choose_for_run(flags, splits, log=print) -> bool:
    """:func:`choose_jit_compile` for the run ``flags`` describes (every program flag, task defaults applied) over
    its data ``splits``: the trial builds its tasks from them, the cache key takes the run's defining settings."""
    from aign_tf import building, runs

    return choose_jit_compile(lambda: building.make_task(flags, splits, log=lambda *_: None),
                              building.train_config(flags), runs.defining_settings(flags), flags.cache_dir, log)
