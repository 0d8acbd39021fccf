"""``python -m aign_tf.main --mode=bench``: how fast the tasks train and serve on this machine.

For each task it measures, on the built-in data at the flags' batch and image size (each task's default
batch size unless ``--batch_size`` is given):
  * the real training step (``Trainer._train_step`` on real pipeline batches) after warm-up, compiled as a
    plain ``tf.function`` and with XLA (``jit_compile=True``): steps/s, images/s, median step time and the
    fraction of wall time spent blocked in ``next(iterator)`` waiting for input;
  * the step's FLOPs, counted by TF's profiler on the graph of the traced step, as achieved GFLOP/s against
    this machine's float32 matmul peak (best of a few large ``tf.matmul``);
  * the exported SavedModel (``aign_tf.export.export_for_serving``, reloaded with ``tf.saved_model.load``):
    batch-1 latency (median, p90) and batch-64 throughput, against the same ``task.serve`` in-process.
Results go to ``--bench_out`` (JSON) and a markdown table is printed for BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

from aign_tf.building import TASK_NAMES, apply_task_defaults, build_task, train_config
from aign_tf.machine import cpu_snapshot, load_average, machine_info, other_cpu_cores

MAX_BENCH_TRAIN_IMAGES = 2000  # the built-in data is generated on first use: keep setup quick
MAX_BENCH_TEST_IMAGES = 64
BUSY_MACHINE_CORES = 0.25  # other processes' average CPU use above which the report warns
FLOP_COUNT_METHOD = ("tf.compat.v1.profiler float_operation per op of the traced tf.function step graph, "
                     "summed over the ops that run (dead gradient ops pruned)")


@dataclasses.dataclass
class BenchConfig:
    """What to measure and how long. ``run`` builds it from the flags; tests build it directly."""

    tasks: tuple[str, ...] = TASK_NAMES
    steps: int = 30  # timed training steps per compile mode
    warmup_steps: int = 3  # untimed steps first (trace / XLA compile, pipeline fill)
    serving_calls: int = 50  # batch-1 latency calls per model
    throughput_batch: int = 64
    throughput_calls: int = 5
    matmul_sizes: tuple[int, ...] = (1024, 2048)  # the peak is the best rate over these sizes
    matmul_repeats: int = 5
    out_path: str = "runs/bench.json"

    def validate(self):
        unknown = [t for t in self.tasks if t not in TASK_NAMES]
        if unknown or not self.tasks:
            raise ValueError(f"--bench_tasks={','.join(self.tasks)!r} must name one or more of {TASK_NAMES}")
        flag_names = {"steps": "--bench_steps", "serving_calls": "--bench_serving_calls"}
        for name in ("steps", "serving_calls", "throughput_batch", "throughput_calls", "matmul_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag_names.get(name, 'bench ' + name)}={getattr(self, name)} must be >= 1")
        if not self.matmul_sizes or min(self.matmul_sizes) < 1:
            raise ValueError(f"bench matmul_sizes={self.matmul_sizes} must be one or more sizes >= 1")
        if self.warmup_steps < 1:
            raise ValueError(f"bench warmup_steps={self.warmup_steps} must be >= 1 (the first step traces)")


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 ``tf.matmul`` rate, GFLOP/s, of [size, size] x [size, size] over ``repeats`` calls."""
    import tensorflow as tf

    a = tf.random.stateless_uniform([size, size], [1, 2], dtype=tf.float32)
    b = tf.random.stateless_uniform([size, size], [3, 4], dtype=tf.float32)
    tf.matmul(a, b).numpy()  # warm-up
    best_s = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        tf.matmul(a, b).numpy()
        best_s = min(best_s, time.perf_counter() - t)
    return 2.0 * size**3 / best_s / 1e9


# --- FLOPs -----------------------------------------------------------------------------------------------
def live_op_names(graph) -> set[str]:
    """Names of the ops of a concrete function's ``graph`` that run: those its outputs and control outputs
    (variable updates) depend on. The function runtime prunes the rest, e.g. gradients the tape builds
    for tensors no optimizer update reads (the generator's, in the discriminator step)."""
    live, stack = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
    while stack:
        op = stack.pop()
        if op.name not in live:
            live.add(op.name)
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
    return live


def graph_flops(graph) -> int:
    """Float operations of one call of a concrete function, from its FuncGraph ``graph`` (static shapes).

    Each op is counted by ``tf.compat.v1.profiler`` (``float_operation``: the ops' registered statistics,
    Conv2D and its two backprops, MatMul, element-wise ops; ops without statistics count 0), summed over
    :func:`live_op_names` only: on a GAN step the whole static graph overcounts by about half."""
    import tensorflow as tf

    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    root = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options)
    live = live_op_names(graph)
    total, stack = 0, [root]
    while stack:  # the scope view nests ops by name; float_ops is each op's own count
        node = stack.pop()
        total += node.float_ops if node.name in live else 0
        stack.extend(node.children)
    return int(total)


# --- timing helpers --------------------------------------------------------------------------------------
def _percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds), q) * 1e3)


def _read_back(outputs: dict) -> dict:
    """Every output tensor as NumPy, so the timed work has finished (as the training loop's float())."""
    return {k: v.numpy() for k, v in outputs.items()}


def time_train_steps(train_step, data, batch_size: int, steps: int, warmup_steps: int) -> dict:
    """Times ``steps`` iterations of the training loop's inner body (``next(data)``, the step, reading its
    values back as the loop does) after ``warmup_steps`` untimed ones.

    Returns steps/s and images/s over the timed wall time, the median and p90 step time excluding the input
    wait, the input-wait fraction (time blocked in ``next(data)`` / wall time) and the warm-up time."""
    t = time.perf_counter()
    for _ in range(warmup_steps):
        _read_back(train_step(next(data)))
    warmup_s = time.perf_counter() - t
    wait_s, step_s = 0.0, []
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(data)
        t1 = time.perf_counter()
        values = _read_back(train_step(batch))
        step_s.append(time.perf_counter() - t1)
        wait_s += t1 - t0
        if not all(np.all(np.isfinite(v)) for v in values.values()):
            raise ValueError(f"bench: non-finite training values {values}; try --mixed_precision=float32")
    total_s = time.perf_counter() - start
    return {"steps_per_s": steps / total_s, "images_per_s": steps * batch_size / total_s,
            "step_ms_median": _percentile_ms(step_s, 50), "step_ms_p90": _percentile_ms(step_s, 90),
            "input_wait_fraction": wait_s / total_s, "warmup_s": warmup_s, "timed_steps": steps}


def time_calls(fn, inputs: dict, calls: int, warmup_calls: int = 2) -> list[float]:
    """Wall time (s) of each of ``calls`` calls ``fn(**inputs)`` with every output read back to NumPy."""
    for _ in range(warmup_calls):
        _read_back(fn(**inputs))
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        _read_back(fn(**inputs))
        out.append(time.perf_counter() - t)
    return out


def serving_inputs(signature: dict, batch_size: int, seed: int = 0) -> dict:
    """Uniform [0, 1) float32 inputs shaped like ``signature`` (name -> TensorSpec with a None batch), batch
    ``batch_size``; the serving computation's cost does not depend on the values."""
    import tensorflow as tf

    return {name: tf.random.stateless_uniform([batch_size, *spec.shape[1:]], [seed, i], dtype=spec.dtype)
            for i, (name, spec) in enumerate(sorted(signature.items()))}


def serving_figures(fn, signature: dict, cfg: BenchConfig) -> dict:
    """Batch-1 latency (median / p90 ms over ``cfg.serving_calls`` calls) and batch-``throughput_batch``
    images/s (over ``cfg.throughput_calls`` calls) of ``fn(**inputs) -> dict of tensors``."""
    latency = time_calls(fn, serving_inputs(signature, 1), cfg.serving_calls)
    batch = time_calls(fn, serving_inputs(signature, cfg.throughput_batch, seed=1), cfg.throughput_calls)
    return {"latency_ms_median": _percentile_ms(latency, 50), "latency_ms_p90": _percentile_ms(latency, 90),
            "throughput_images_per_s": cfg.throughput_batch * len(batch) / sum(batch)}


# --- building from the flags -----------------------------------------------------------------------------
def task_flags(flags, task_name: str):
    """A copy of ``flags`` (absl FlagValues or any namespace) for ``task_name``: its defaults where the flags
    leave a task-dependent value unset, and small data sets."""
    import types

    values = flags.flag_values_dict() if hasattr(flags, "flag_values_dict") else dict(vars(flags))
    copy = types.SimpleNamespace(**{**values, "task": task_name})
    apply_task_defaults(copy)
    copy.num_train = min(copy.num_train, MAX_BENCH_TRAIN_IMAGES)
    copy.num_test = min(copy.num_test, MAX_BENCH_TEST_IMAGES)
    copy.eval_images = MAX_BENCH_TEST_IMAGES
    copy.num_prior = min(getattr(copy, "num_prior", None) or MAX_BENCH_TRAIN_IMAGES, MAX_BENCH_TRAIN_IMAGES)
    return copy


def _train_config(flags, jit_compile: bool):
    return dataclasses.replace(train_config(flags), steps=1, jit_compile=jit_compile)


def bench_config_from_flags(flags) -> BenchConfig:
    tasks = getattr(flags, "bench_tasks", None) or list(TASK_NAMES)
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    return BenchConfig(tasks=tuple(tasks), steps=getattr(flags, "bench_steps", 30),
                       serving_calls=getattr(flags, "bench_serving_calls", 50),
                       out_path=getattr(flags, "bench_out", None) or "runs/bench.json")


# --- one task --------------------------------------------------------------------------------------------
def bench_task(task_name: str, flags, cfg: BenchConfig, peak_gflops: float, log=print) -> dict:
    """All figures of one task (see the module docstring)."""
    import keras
    import tensorflow as tf

    from aign_tf.export import export_for_serving
    from trainers.loop import Trainer

    flags = task_flags(flags, task_name)
    keras.utils.set_random_seed(flags.seed)
    quiet = lambda *_: None  # noqa: E731
    task = build_task(flags, log=quiet)  # data first: generating it is not the benchmark
    start = cpu_snapshot()
    result = {"task": task_name, "batch_size": flags.batch_size,
              "generator_params": int(task.generator.count_params()),
              "discriminator_params": int(task.discriminator.count_params())}
    with tempfile.TemporaryDirectory(prefix="aign_bench_") as tmp:
        # Both trainers update the same networks: the compile mode is the only difference.
        for mode, jit in (("tf_function", False), ("xla", True)):
            trainer = Trainer(task, _train_config(flags, jit), os.path.join(tmp, f"run_{mode}"), log=quiet)
            data = iter(task.train_dataset(flags.batch_size, flags.seed, 0))
            log(f"bench {task_name}: training step, {mode} ({cfg.warmup_steps} warm-up + {cfg.steps} timed)")
            result[mode] = time_train_steps(trainer._train_step, data, flags.batch_size, cfg.steps,
                                            cfg.warmup_steps)
            if not jit:
                concrete = trainer._train_step.get_concrete_function(next(data))
                result["step_gflop"] = graph_flops(concrete.graph) / 1e9
                result["flop_count_method"] = FLOP_COUNT_METHOD
            del data  # stop its prefetching before the next mode is timed
        for mode in ("tf_function", "xla"):
            r = result[mode]
            r["achieved_gflops"] = result["step_gflop"] / (r["step_ms_median"] / 1e3)
            r["fraction_of_matmul_peak"] = r["achieved_gflops"] / peak_gflops
        result["xla_speedup"] = result["tf_function"]["step_ms_median"] / result["xla"]["step_ms_median"]

        log(f"bench {task_name}: export SavedModel and time serving")
        generator = task.generator
        signature = task.serving_signature()
        path = export_for_serving(lambda **inputs: task.serve(generator, **inputs), signature,
                                  os.path.join(tmp, "export"), f"bench_{task_name}", trackables=[generator],
                                  metadata=task.export_metadata())
        loaded = tf.saved_model.load(path)
        result["saved_model"] = serving_figures(loaded.signatures["serving_default"], signature, cfg)
        in_process = tf.function(lambda inputs: task.serve(generator, **inputs), reduce_retracing=True)
        result["in_process"] = serving_figures(lambda **inputs: in_process(inputs), signature, cfg)
    result["other_processes_cores"] = other_cpu_cores(start, cpu_snapshot())
    return result


# --- report ----------------------------------------------------------------------------------------------
ROWS = (  # (label, path into a task result, format)
    ("batch size", ("batch_size",), "{}"),
    ("train steps/s, tf.function", ("tf_function", "steps_per_s"), "{:.2f}"),
    ("train examples/s, tf.function", ("tf_function", "images_per_s"), "{:.1f}"),
    ("train steps/s, XLA", ("xla", "steps_per_s"), "{:.2f}"),
    ("train examples/s, XLA", ("xla", "images_per_s"), "{:.1f}"),
    ("input wait fraction, tf.function", ("tf_function", "input_wait_fraction"), "{:.1%}"),
    ("input wait fraction, XLA", ("xla", "input_wait_fraction"), "{:.1%}"),
    ("step time ms (median / p90), tf.function", ("tf_function", "step_ms_median", "step_ms_p90"), "{:.0f}"),
    ("step time ms (median / p90), XLA", ("xla", "step_ms_median", "step_ms_p90"), "{:.0f}"),
    ("XLA speed-up (median step time)", ("xla_speedup",), "{:.2f}x"),
    ("warm-up s (trace / compile + 1st steps), tf.function", ("tf_function", "warmup_s"), "{:.1f}"),
    ("warm-up s (trace / compile + 1st steps), XLA", ("xla", "warmup_s"), "{:.1f}"),
    ("train step GFLOP (profiler)", ("step_gflop",), "{:.2f}"),
    ("achieved GFLOP/s, tf.function", ("tf_function", "achieved_gflops"), "{:.1f}"),
    ("achieved GFLOP/s, XLA", ("xla", "achieved_gflops"), "{:.1f}"),
    ("fraction of matmul peak, XLA", ("xla", "fraction_of_matmul_peak"), "{:.1%}"),
    ("SavedModel batch-1 latency ms (median / p90)", ("saved_model", "latency_ms_median", "latency_ms_p90"),
     "{:.1f}"),
    ("in-process batch-1 latency ms (median / p90)", ("in_process", "latency_ms_median", "latency_ms_p90"),
     "{:.1f}"),
    ("SavedModel examples/s at batch {tb}", ("saved_model", "throughput_images_per_s"), "{:.0f}"),
    ("in-process examples/s at batch {tb}", ("in_process", "throughput_images_per_s"), "{:.0f}"),
    ("generator / discriminator params", ("generator_params", "discriminator_params"), "{:,}"),
    ("other processes' CPU use meanwhile (cores)", ("other_processes_cores",), "{:.2f}"),
)


def _cell(result: dict, path: tuple, fmt: str) -> str:
    if len(path) == 1:
        return "n/a" if result[path[0]] is None else fmt.format(result[path[0]])
    if isinstance(result[path[0]], dict):  # (section, key, [key2])
        section = result[path[0]]
        return " / ".join(fmt.format(section[k]) for k in path[1:])
    return " / ".join(fmt.format(result[k]) for k in path)  # two top-level keys


def markdown_report(report: dict) -> str:
    """The benchmark as markdown: a settings/machine header and one table, a column per task."""
    m, s = report["machine"], report["settings"]
    tasks = report["tasks"]
    lines = [
        f"Machine: {m['cpu_model']}" + (f" @ {m['cpu_mhz']:.0f} MHz" if m["cpu_mhz"] else "")
        + f", {m['cores']} cores, TensorFlow {m['tensorflow']}, Keras {m['keras']}, Python {m['python']}; "
        f"load average before: {report['load_average_before']}.",
        f"Command: `{report['command']}`",
        f"Settings: faces {s['image_size']}x{s['image_size']}, {s['mixed_precision']}, "
        f"g_filters {s['g_filters']}, d_filters {s['d_filters']}, {s['adversarial_loss']}, d_steps "
        f"{s['d_steps']}, seed {s['seed']}; {s['warmup_steps']} warm-up + {s['steps']} timed steps per mode; "
        f"serving: {s['serving_calls']} batch-1 calls, {s['throughput_calls']} calls at batch "
        f"{s['throughput_batch']}.",
        f"Matmul peak: {report['matmul_peak_gflops']:.1f} GFLOP/s, best of {s['matmul_repeats']} float32 "
        + " and ".join(f"{n}x{n}" for n in s["matmul_sizes"]) + " tf.matmul "
        f"({', '.join(f'{g:.1f}' for g in report['matmul_gflops_by_size'].values())} GFLOP/s). "
        f"FLOPs: {report['flop_count_method']}.",
        "",
        "| figure | " + " | ".join(t["task"] for t in tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for label, path, fmt in ROWS:
        cells = [_cell(t, path, fmt) for t in tasks]
        lines.append(f"| {label.format(tb=s['throughput_batch'])} | " + " | ".join(cells) + " |")
    busy = [t["other_processes_cores"] for t in tasks if t["other_processes_cores"] is not None]
    if busy and max(busy) > BUSY_MACHINE_CORES:
        lines += ["", f"Warning: other processes kept up to {max(busy):.2f} of {m['cores']} cores busy while "
                      "this ran; the speed figures are lower than on an idle machine."]
    return "\n".join(lines)


def command_line(argv: list[str]) -> str:
    """The command as a user would type it (``python -m aign_tf.main ...`` rather than the script path)."""
    head = "python -m aign_tf.main" if argv and argv[0].endswith(os.path.join("aign_tf", "main.py")) else argv[0]
    return " ".join([head, *argv[1:]]) if argv else ""


def run_bench(flags, cfg: BenchConfig, log=print) -> dict:
    """Measures every task of ``cfg``, writes ``cfg.out_path`` (JSON) and returns the report dict."""
    import tensorflow as tf

    cfg.validate()
    before, start = load_average(), cpu_snapshot()
    machine = machine_info()
    log(f"bench: {machine['cpu_model']}, {machine['cores']} cores, TF {machine['tensorflow']}; "
        f"load average {before}")
    by_size = {str(n): matmul_gflops(n, cfg.matmul_repeats) for n in cfg.matmul_sizes}
    peak = max(by_size.values())
    log(f"bench: float32 matmul peak {peak:.1f} GFLOP/s")
    tasks = [bench_task(name, flags, cfg, peak, log=log) for name in cfg.tasks]
    names = ("image_size", "factor", "mask", "bias", "g_filters", "d_filters",
             "mixed_precision", "adversarial_loss", "d_steps", "seed", "data_dir")
    settings = {k: getattr(flags, k) for k in names}
    settings.update(dataclasses.asdict(cfg), tasks=list(cfg.tasks), matmul_sizes=list(cfg.matmul_sizes),
                    max_train_examples=MAX_BENCH_TRAIN_IMAGES,
                    jit_compile_flag=bool(getattr(flags, "jit_compile", True)))
    report = {"machine": machine, "command": command_line(sys.argv), "settings": settings,
              "matmul_peak_gflops": peak, "matmul_gflops_by_size": by_size,
              "flop_count_method": tasks[0]["flop_count_method"], "tasks": tasks,
              "other_processes_cores": other_cpu_cores(start, cpu_snapshot()),
              "load_average_before": before, "load_average_after": load_average(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tf_num_threads": {
                  "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    parent = os.path.dirname(os.path.abspath(cfg.out_path))
    os.makedirs(parent, exist_ok=True)
    with open(cfg.out_path, "w") as f:
        json.dump(report, f, indent=2)
    return report


def run(flags, cfg: BenchConfig | None = None) -> dict:
    """The ``--mode=bench`` entry point: measure, write ``--bench_out`` and print the markdown table.
    ``cfg`` defaults to the one the flags describe."""
    cfg = cfg or bench_config_from_flags(flags)
    report = run_bench(flags, cfg, log=lambda msg: print(msg, flush=True))
    print("\n" + markdown_report(report) + f"\n\nresults: {cfg.out_path}", flush=True)
    return report
