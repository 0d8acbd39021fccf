"""``python -m aign_tf.main --mode=bench``: how fast the tasks train and serve on this machine.

For each task it measures, on the built-in data at the flags' batch and image size (each task's default
batch size unless ``--batch_size`` is given):
  * the real training step (``Trainer._train_step`` on real pipeline batches) after warm-up, compiled as a
    plain ``tf.function`` and with XLA (``jit_compile=True``): steps/s, images/s, median step time and the
    fraction of wall time spent blocked in ``next(iterator)`` waiting for input;
  * the step's FLOPs, counted per op of the graph of the traced step that runs (TF's registered statistics, the
    profiler's, and our own counts for the op types it has none for, e.g. Einsum: ``count_flops``), as achieved
    GFLOP/s against this machine's float32 matmul peak (best of a few large ``tf.matmul``);
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
from trainers.step_timing import percentile_ms, read_back, time_train_steps

MAX_BENCH_TRAIN_IMAGES = 2000  # the built-in data is generated on first use: keep setup quick
MAX_BENCH_TEST_IMAGES = 64
BUSY_MACHINE_CORES = 0.25  # other processes' average CPU use above which the report warns
FLOP_COUNT_METHOD = ("per op of the traced tf.function step graph that runs (dead gradient ops pruned): TF's "
                     "registered flops statistic (tf.compat.v1.profiler float_operation) where it has one, "
                     "aign_tf.bench.own_op_flops for the op types it has none for (Einsum, most element-wise ops)")


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
# TF registers a "flops" statistic (what ``tf.compat.v1.profiler``'s float_operation reports) for convolutions,
# matmuls, pooling, reductions and the basic element-wise ops only; every other op type counts 0 there, e.g.
# ``Einsum``. ``op_flops`` counts those op types itself (below) and lists which did what.

# Element-wise ops the profiler has no count for: FLOPs per output element (per element of the value added or
# subtracted for the variable updates), by the profiler's own convention (Log, Neg, Mul, Greater: 1; Rsqrt, 2;
# Softmax, 5: one per arithmetic step).
ELEMENTWISE_FLOPS = {
    "Abs": 1, "Sign": 1, "Floor": 1, "Ceil": 1, "Round": 1, "Rint": 1, "Exp": 1, "Expm1": 1, "Log1p": 1,
    "Sqrt": 1, "Tanh": 1, "Sin": 1, "Cos": 1, "Tan": 1, "Atan": 1, "Asin": 1, "Acos": 1, "Erf": 1, "Inv": 1,
    "Relu": 1,  # max(x, 0)
    "Relu6": 2,  # min(max(x, 0), 6)
    "Elu": 3,  # x > 0 ? x : exp(x) - 1
    "LeakyRelu": 2,  # max(x, alpha * x)
    "Sigmoid": 4,  # 1 / (1 + exp(-x))
    "Softplus": 2,  # log1p(exp(x))
    "Softsign": 3,  # x / (1 + |x|)
    "Div": 1, "DivNoNan": 1, "FloorDiv": 1, "FloorMod": 1, "Mod": 1, "TruncateDiv": 1, "MulNoNan": 1,
    "Atan2": 1, "Xlogy": 2, "Xdivy": 1,
    "IsFinite": 1, "IsNan": 1, "IsInf": 1,  # comparisons, as the profiler's Equal
    "ReluGrad": 1,  # x > 0 ? dy : 0
    "Relu6Grad": 2, "EluGrad": 2,
    "LeakyReluGrad": 2,  # x > 0 ? dy : alpha * dy
    "SigmoidGrad": 3,  # dy * y * (1 - y)
    "TanhGrad": 3,  # dy * (1 - y * y)
    "SqrtGrad": 2,  # dy * 0.5 / y
    "SoftplusGrad": 5,  # dy * sigmoid(x)
    "Cross": 3,  # per component: two products and a difference
    "Cumsum": 1, "Cumprod": 1,
    "AssignAddVariableOp": 1, "AssignSubVariableOp": 1,  # the optimizers' in-place updates
}
# Reductions: one add / multiply / comparison per input element that is folded into another, i.e. input elements
# - output elements, as the profiler counts Sum and ArgMax.
REDUCTIONS = frozenset({"Max", "Min", "Prod", "UnsortedSegmentSum", "SegmentSum"})
# Op types that do no floating-point arithmetic, counted 0 on purpose: data movement and layout, shapes and
# constants, variable reads and plain assignments, control flow, conversions, integer / boolean bit operations and
# random draws (counter-based integer generators).
ZERO_FLOP_OPS = frozenset({
    "Const", "Placeholder", "Identity", "IdentityN", "NoOp", "StopGradient", "PreventGradient", "Snapshot",
    "ReadVariableOp", "AssignVariableOp", "VarHandleOp", "VarIsInitializedOp", "DestroyResourceOp",
    "Reshape", "Squeeze", "ExpandDims", "Transpose", "ConjugateTranspose", "Tile", "BroadcastTo", "ReverseV2",
    "ConcatV2", "ConcatOffset", "Pack", "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "StridedSliceGrad",
    "TensorStridedSliceUpdate", "GatherV2", "GatherNd", "ScatterNd", "TensorScatterUpdate", "Pad", "PadV2",
    "MirrorPad", "Fill", "ZerosLike", "OnesLike", "Range", "LinSpace", "Shape", "ShapeN", "Size", "Rank",
    "BroadcastArgs", "BroadcastGradientArgs", "InvertPermutation", "Cast", "Bitcast", "OneHot", "Select",
    "SelectV2", "Where", "ResizeNearestNeighbor", "DepthToSpace", "SpaceToDepth",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "LeftShift", "RightShift", "LogicalAnd", "LogicalOr", "LogicalNot",
    "CheckNumerics", "Assert", "EnsureShape",
    "StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg", "StatelessRandomUniformV2",
    "StatelessRandomNormalV2", "StatelessTruncatedNormalV2", "StatelessRandomUniformIntV2",
    "StatelessRandomUniformFullIntV2", "RandomUniform", "RandomStandardNormal", "TruncatedNormal",
})


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


def einsum_flops(equation: str, shapes: list[list[int]]) -> int:
    """FLOPs of ``tf.einsum(equation, *operands)`` with operands of static ``shapes``.

    Two operands: 2 x the product of the sizes of every distinct index when some index is summed (a
    contraction: one multiply and one add per term, the profiler's MatMul convention 2 * m * n * k), the product
    alone when none is (a broadcast product). One operand: one add per input element when it sums an index, 0 for
    a transposition or diagonal. ``...`` stands for the broadcast dimensions (aligned from the right)."""
    lhs, arrow, out = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum {equation!r}: {len(terms)} operands in the equation, {len(shapes)} shapes")
    sizes: dict[str, int] = {}
    ellipsis_rank = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes, strict=True)
                         if "..." in t), default=0)
    ellipsis = "".join(chr(0x100 + i) for i in range(ellipsis_rank))  # labels no equation uses
    for i, (term, shape) in enumerate(zip(terms, shapes, strict=True)):
        labels = term.replace("...", ellipsis[ellipsis_rank - (len(shape) - len(term.replace("...", ""))):])
        terms[i] = labels
        if len(labels) != len(shape):
            raise ValueError(f"einsum {equation!r}: operand {i} has shape {shape}")
        for label, size in zip(labels, shape, strict=True):
            sizes[label] = max(sizes.get(label, 1), int(size))
    if arrow:
        out = out.replace("...", ellipsis)
    else:  # implicit output: the labels used once, sorted, after the broadcast dimensions
        joined = "".join(terms)
        out = ellipsis + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in ellipsis))
    summed = bool(set(sizes) - set(out))
    if len(terms) == 1:
        return int(np.prod(shapes[0], dtype=np.int64)) if summed else 0
    product = int(np.prod(list(sizes.values()), dtype=np.int64))
    return 2 * product if summed else product


def svd_flops(shape: list[int], compute_uv: bool, full_matrices: bool) -> int:
    """FLOPs of ``tf.linalg.svd`` on [..., m, n] matrices (Golub & Van Loan, "Matrix Computations", 3rd ed., table
    5.5.1, Golub-Reinsch SVD, with m >= n): 4mn^2 - 4n^3/3 for the singular values alone, 4m^2n + 8mn^2 + 9n^3
    with full U and V, 14mn^2 + 8n^3 with the thin U."""
    m, n = max(shape[-2:]), min(shape[-2:])
    batch = int(np.prod(shape[:-2], dtype=np.int64))
    if not compute_uv:
        each = 4 * m * n * n - 4 * n**3 / 3
    elif full_matrices:
        each = 4 * m * m * n + 8 * m * n * n + 9 * n**3
    else:
        each = 14 * m * n * n + 8 * n**3
    return int(round(batch * each))


def _elements(shape) -> int:
    return int(np.prod(shape.as_list(), dtype=np.int64))


def own_op_flops(op) -> int | None:
    """Our count for an op the profiler has no statistic for; None for an op type we do not know either.
    Raises ValueError when a shape it needs is not fully defined."""
    kind = op.type
    if kind in ZERO_FLOP_OPS:
        return 0
    shapes = [op.outputs[0].shape] if op.outputs else []
    if kind in ("AssignAddVariableOp", "AssignSubVariableOp"):
        shapes = [op.inputs[1].shape]
    elif kind in REDUCTIONS:
        shapes = [op.inputs[0].shape, op.outputs[0].shape]
    elif kind in ("Einsum", "Svd", "ResizeBilinearGrad", "ResizeNearestNeighborGrad"):
        shapes = [t.shape for t in op.inputs]
    for shape in shapes:
        if not shape.is_fully_defined():
            raise ValueError(f"{kind} op {op.name}: shape {shape} is not fully defined")
    if kind in ELEMENTWISE_FLOPS:
        return ELEMENTWISE_FLOPS[kind] * _elements(shapes[0])
    if kind in REDUCTIONS:
        return max(_elements(shapes[0]) - _elements(shapes[1]), 0)
    if kind == "Einsum":
        return einsum_flops(op.get_attr("equation").decode(), [s.as_list() for s in shapes])
    if kind == "Svd":
        return svd_flops(shapes[0].as_list(), op.get_attr("compute_uv"), op.get_attr("full_matrices"))
    if kind == "ResizeBilinear":  # three linear interpolations (a + (b - a) * t) per output value
        return 9 * _elements(shapes[0])
    if kind == "ResizeBilinearGrad":  # each incoming gradient value is weighted onto 4 inputs and added there
        return 8 * _elements(shapes[0])
    if kind == "ResizeNearestNeighborGrad":  # each incoming gradient value is added to one input
        return _elements(shapes[0])
    return None


@dataclasses.dataclass
class FlopCount:
    """The FLOPs of one call of a graph, by who counted them."""

    total: int
    profiler: int  # by TF's registered statistics (what tf.compat.v1.profiler's float_operation reports)
    filled_in: dict[str, int]  # op type -> FLOPs we counted where the profiler has no statistic (> 0 only)
    zero_op_types: list[str]  # op types that ran, counted 0 on purpose (ZERO_FLOP_OPS, or 0 by our rule)
    uncounted: dict[str, int]  # op type -> number of ops nobody could count (unknown type or shape): not in total


def count_flops(graph) -> FlopCount:
    """Float operations of one call of a concrete function, from its FuncGraph ``graph`` (static shapes), summed
    over :func:`live_op_names` only (on a GAN step the whole static graph overcounts by about half).

    Each op counts its registered TF ``flops`` statistic (``tf.compat.v1.profiler``'s float_operation: Conv2D and
    its two backprops, MatMul, pooling, reductions, basic element-wise ops); an op type with none is counted by
    :func:`own_op_flops` (Einsum from its equation and shapes, the other element-wise ops, ...). What neither
    knows (or an op without static shapes) is listed in ``uncounted``, never silently 0."""
    from tensorflow.python.framework import ops as tf_ops

    live = live_op_names(graph)
    profiler, filled, zero, uncounted = 0, {}, set(), {}
    for op in graph.get_operations():
        if op.name not in live:
            continue
        try:
            tf_ops._stats_registry.lookup(op.type + ",flops")
            registered = True
        except LookupError:
            registered = False
        try:
            flops = (int(tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0) if registered
                     else own_op_flops(op))
        except ValueError:  # a shape the count needs is not static
            flops = None
        if flops is None:
            uncounted[op.type] = uncounted.get(op.type, 0) + 1
        elif registered:
            profiler += flops
        elif flops:
            filled[op.type] = filled.get(op.type, 0) + flops
        else:
            zero.add(op.type)
    zero -= set(filled)
    return FlopCount(total=profiler + sum(filled.values()), profiler=profiler,
                     filled_in=dict(sorted(filled.items())), zero_op_types=sorted(zero),
                     uncounted=dict(sorted(uncounted.items())))


def graph_flops(graph) -> int:
    """Float operations of one call of a concrete function (the total of :func:`count_flops`)."""
    return count_flops(graph).total


# --- timing helpers --------------------------------------------------------------------------------------
def time_calls(fn, inputs: dict, calls: int, warmup_calls: int = 2) -> list[float]:
    """Wall time (s) of each of ``calls`` calls ``fn(**inputs)`` with every output read back to NumPy."""
    for _ in range(warmup_calls):
        read_back(fn(**inputs))
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        read_back(fn(**inputs))
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
    return {"latency_ms_median": percentile_ms(latency, 50), "latency_ms_p90": percentile_ms(latency, 90),
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
                count = count_flops(concrete.graph)
                result["step_gflop"] = count.total / 1e9
                result["step_gflop_profiler"] = count.profiler / 1e9
                result["flops_filled_in_gflop"] = {kind: f / 1e9 for kind, f in count.filled_in.items()}
                result["flops_zero_op_types"] = count.zero_op_types
                result["flops_uncounted_op_types"] = count.uncounted
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
    ("train step GFLOP (every op that runs)", ("step_gflop",), "{:.2f}"),
    ("of which TF's profiler counts", ("step_gflop_profiler",), "{:.2f}"),
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


def flop_notes(tasks: list[dict]) -> list[str]:
    """Per task, which op types we counted where TF's profiler has no statistic (GFLOP each), which ran and were
    counted 0 on purpose, and which nobody counted (normally none)."""
    lines = []
    for t in tasks:
        filled_in = t["flops_filled_in_gflop"]
        small = [kind for kind, g in filled_in.items() if g < 0.0005]
        filled = ", ".join(f"{kind} {g:.3f}" for kind, g in filled_in.items() if kind not in small)
        if small:
            filled += (", " if filled else "") + f"under 0.0005 each: {', '.join(small)}"
        filled = filled or "none"
        uncounted = ", ".join(f"{kind} ({n} ops)" for kind, n in t["flops_uncounted_op_types"].items()) or "none"
        lines.append(f"- {t['task']} FLOPs: counted by aign_tf (GFLOP; no profiler statistic): {filled}. Counted 0 "
                     f"on purpose: {', '.join(t['flops_zero_op_types']) or 'none'}. Not counted: {uncounted}.")
    return lines


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
    lines += ["", *flop_notes(tasks)]
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
