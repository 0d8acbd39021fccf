"""The benchmark at a tiny size: every figure present, finite and positive; FLOPs plausible."""

import json
import math
import os
import types

import pytest

from aign_tf import bench, machine, main

TINY = 32
BATCH = 4


def _flags(tmp_path, **overrides):
    values = dict(
        vars(main.program_flags()[0]),  # every flag at its default, so a new flag needs no edit here
        image_size=TINY, factor=4, mask="mouth_nose", bias="none", prior_dir=None, g_filters=8, d_filters=8,
        spectral_norm=False, mixed_precision="float32", paired_fraction=0.0, data_seed=0,
        cache_dir=str(tmp_path / "cache"), batch_size=BATCH, seed=0, adversarial_loss="non_saturating",
        d_steps=1, gp_weight=10.0, reconstruction_weight=10.0, adversarial_weight=1.0, supervised_weight=10.0,
        g_learning_rate=2e-4, d_learning_rate=2e-4, ema_decay=0.0, jit_compile=True, data_dir=None,
        num_train=64, num_test=16, max_images=None, bench_tasks=["inpaint"], bench_steps=3,
        bench_out=str(tmp_path / "bench.json"), eval_images=16, steps=1, checkpoint_every=1, log_every=1,
        image_every=1, task="inpaint", num_prior=64, pose_width=16, pose_blocks=1, pose_d_width=16,
        exemplars=0)  # the U-Net inpainter, whose convolutions the FLOP check below counts
    values.update(overrides)
    return types.SimpleNamespace(**values)


def _numbers(tree, prefix=""):
    """(path, value) of every int/float leaf of a nested dict."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _numbers(v, f"{prefix}/{k}")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield prefix, tree


def _conv_forward_flops(model, batch_size):
    """2 * out_h * out_w * k_h * k_w * c_in * c_out * batch summed over the model's Conv2D layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w, c_in, _ = layer.kernel.shape
            total += 2 * h * w * k_h * k_w * c_in * c_out * batch_size
    return total


def test_bench_tiny_reports_every_figure(tmp_path, capsys):
    flags = _flags(tmp_path)
    cfg = bench.bench_config_from_flags(flags)
    assert cfg.tasks == ("inpaint",) and cfg.steps == 3 and cfg.out_path == flags.bench_out
    cfg = bench.BenchConfig(tasks=cfg.tasks, steps=3, warmup_steps=1, serving_calls=3, throughput_batch=8,
                            throughput_calls=2, matmul_sizes=(128, 256), matmul_repeats=2, out_path=cfg.out_path)
    report = bench.run(flags, cfg)

    out = capsys.readouterr().out
    assert bench.markdown_report(report) in out and f"results: {flags.bench_out}" in out
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu_model"]
    assert report["machine"]["tensorflow"].startswith("2.")
    (task,) = report["tasks"]
    assert task["task"] == "inpaint"
    expected = {"steps_per_s", "images_per_s", "step_ms_median", "step_ms_p90", "input_wait_fraction",
                "warmup_s", "achieved_gflops", "fraction_of_matmul_peak"}
    for mode in ("tf_function", "xla"):
        assert expected <= set(task[mode]), task[mode]
        assert task[mode]["images_per_s"] == pytest.approx(BATCH * task[mode]["steps_per_s"])
        assert task[mode]["input_wait_fraction"] < 1.0
    for section in ("saved_model", "in_process"):
        assert set(task[section]) == {"latency_ms_median", "latency_ms_p90", "throughput_images_per_s"}
        assert task[section]["latency_ms_p90"] >= task[section]["latency_ms_median"]
    busy = task.pop("other_processes_cores")  # other processes' load: may be 0
    assert busy is None or (math.isfinite(busy) and busy >= 0)
    numbers = dict(_numbers(task))
    assert len(numbers) >= 24, numbers
    for path, value in numbers.items():
        assert math.isfinite(value) and value > 0, (path, value)
    task["other_processes_cores"] = busy
    assert report["matmul_peak_gflops"] == max(report["matmul_gflops_by_size"].values()) > 0

    # The profiler counted the convolutions that run in the step, forward and backward, and not the dead
    # gradient ops of the static graph: convs alone are ~3 G (one forward, its backward) + 8 D forward passes
    # here; counting the generator's prediction twice (as the loop did before 5250f24) would give ~4 G + 8 D.
    from aign_tf.networks.image import patch_discriminator, unet_generator
    from aign_tf.tasks.faces import InpaintTask

    forward = (_conv_forward_flops(unet_generator(TINY, InpaintTask.in_channels, 8), BATCH)
               + _conv_forward_flops(patch_discriminator(TINY, 3, 8), BATCH))
    assert 2.6 * forward <= task["step_gflop"] * 1e9 <= 3.4 * forward, (task["step_gflop"], forward)

    # Every op that ran was counted: the profiler's statistics plus ours (the U-Net's LeakyRelu, Adam's updates).
    assert task["flops_uncounted_op_types"] == {}
    assert {"LeakyRelu", "AssignAddVariableOp"} <= set(task["flops_filled_in_gflop"])
    assert {"Reshape", "ReadVariableOp"} <= set(task["flops_zero_op_types"])
    assert task["step_gflop"] == pytest.approx(task["step_gflop_profiler"]
                                               + sum(task["flops_filled_in_gflop"].values()))

    table = bench.markdown_report(report)
    assert "- inpaint FLOPs: counted by aign_tf" in table and "LeakyRelu" in table
    assert "| figure | inpaint |" in table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(bench.ROWS) + 1
    assert "nan" not in table and report["machine"]["cpu_model"] in table


def test_bench_pose3d_uses_its_own_batch_size_and_reports_every_figure(tmp_path):
    flags = _flags(tmp_path, bench_tasks=["pose3d"], batch_size=None)
    cfg = bench.BenchConfig(tasks=("pose3d",), steps=2, warmup_steps=1, serving_calls=2, throughput_batch=8,
                            throughput_calls=1, matmul_sizes=(128,), matmul_repeats=1, out_path=flags.bench_out)
    (task,) = bench.run_bench(flags, cfg, log=lambda *_: None)["tasks"]
    assert task["task"] == "pose3d" and task["batch_size"] == 64  # the pose task's own default batch
    for mode in ("tf_function", "xla"):
        assert task[mode]["steps_per_s"] > 0 and task[mode]["achieved_gflops"] > 0
    assert task["step_gflop"] > 0 and task["saved_model"]["latency_ms_median"] > 0


def test_bench_rejects_unknown_task(tmp_path):
    cfg = bench.bench_config_from_flags(_flags(tmp_path, bench_tasks=["inpaint", "sfm"]))
    with pytest.raises(ValueError, match="sfm.*must name one or more of"):
        cfg.validate()
    cfg = bench.bench_config_from_flags(_flags(tmp_path, bench_steps=0))
    with pytest.raises(ValueError, match="--bench_steps=0 must be >= 1"):
        cfg.validate()


def test_machine_readings_from_proc_files(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\ncpu MHz\t\t: 2445.406\n")
    assert machine.cpu_model(str(cpuinfo)) == "Test CPU 9000"
    assert machine.cpuinfo_field("cpu mhz", str(cpuinfo)) == "2445.406"
    assert machine.cpuinfo_field("cache size", str(cpuinfo)) is None
    stat = tmp_path / "stat"
    stat.write_text("cpu  300 100 100 5000 7 50 50 100 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    _, _, busy_s = machine.cpu_snapshot(str(stat))
    assert busy_s == pytest.approx(700 / os.sysconf("SC_CLK_TCK"))  # everything but idle and iowait
    assert machine.cpu_snapshot(str(tmp_path / "missing"))[2] is None
    # 3 busy core-seconds in 2 s of wall time, 1 of them ours: other processes kept 1 core busy.
    assert machine.other_cpu_cores((0.0, 0.0, 10.0), (2.0, 1.0, 13.0)) == pytest.approx(1.0)
    assert machine.other_cpu_cores((0.0, 0.0, 10.0), (2.0, 5.0, 13.0)) == 0.0
    assert machine.other_cpu_cores((0.0, 0.0, None), (2.0, 1.0, 13.0)) is None


def test_command_line_names_the_module():
    argv = [os.path.join("/x", "aign_tf", "main.py"), "--mode=bench", "--bench_steps=5"]
    assert bench.command_line(argv) == "python -m aign_tf.main --mode=bench --bench_steps=5"
    assert bench.command_line(["other.py", "-q"]) == "other.py -q"


def _profiler_live_total(graph):
    """What ``graph_flops`` returned before it filled in the op types TF's profiler has no statistic for: the
    profiler's float_operation count summed over the live ops."""
    import tensorflow as tf

    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    root = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options)
    live, total, stack = bench.live_op_names(graph), 0, [root]
    while stack:
        node = stack.pop()
        total += node.float_ops if node.name in live else 0
        stack.extend(node.children)
    return total


def test_einsum_and_other_ops_without_a_profiler_statistic_are_counted():
    import tensorflow as tf

    a, b = tf.zeros([2, 3, 4]), tf.zeros([2, 4, 5])
    obs, bank = tf.zeros([4, 8, 8, 3]), tf.zeros([6, 8, 8, 3])
    x, w = tf.zeros([7, 10]), tf.zeros([10, 5])

    def fn(a, b, obs, bank, x, w):
        batched = tf.einsum("bij,bjk->bik", a, b)  # 2 * 2*3*4*5
        match = tf.einsum("bhwc,khwc->bk", obs, bank)  # 2 * 4*6*8*8*3
        broadcast = tf.einsum("...ij,jk->...ik", a, b[0])  # 2 * 2*3*4*5, through the ellipsis
        implicit = tf.einsum("ij,jk", x, w)  # 2 * 7*10*5, output "ik" implied
        return {"y": tf.reshape(batched, [-1]), "m": match, "e": tf.exp(tf.matmul(x, w)),  # Exp: 35
                "s": tf.reduce_sum(broadcast) + tf.reduce_sum(implicit)}

    graph = tf.function(fn).get_concrete_function(a, b, obs, bank, x, w).graph
    count = bench.count_flops(graph)
    einsums = 2 * 2 * 3 * 4 * 5 + 2 * 4 * 6 * 8 * 8 * 3 + 2 * 2 * 3 * 4 * 5 + 2 * 7 * 10 * 5
    assert count.filled_in == {"Einsum": einsums, "Exp": 35}
    assert count.profiler == _profiler_live_total(graph) > 0  # the registered part is exactly the profiler's
    matmul, sums = 2 * 7 * 10 * 5, (2 * 3 * 5 - 1) + (7 * 5 - 1) + 1  # by the profiler: MatMul, 2 Sums, the Add
    assert count.profiler == matmul + sums
    assert bench.graph_flops(graph) == count.total == einsums + 35 + matmul + sums
    assert "Reshape" in count.zero_op_types and count.uncounted == {}


def test_einsum_flops_rules():
    assert bench.einsum_flops("ij,jk->ik", [[2, 3], [3, 4]]) == 2 * 2 * 3 * 4  # a matmul, as the profiler's
    assert bench.einsum_flops("i,j->ij", [[5], [6]]) == 30  # a product, no sum
    assert bench.einsum_flops("bk,khwc->bhwc", [[16, 256], [256, 64, 64, 3]]) == 2 * 16 * 256 * 64 * 64 * 3
    assert bench.einsum_flops("ij->i", [[5, 6]]) == 30  # one add per input element
    assert bench.einsum_flops("ij->ji", [[5, 6]]) == 0  # a transposition
    assert bench.einsum_flops("...j,...j->...", [[4, 1, 3], [5, 3]]) == 2 * 4 * 5 * 3  # broadcast ellipsis
    with pytest.raises(ValueError, match="operand 1 has shape"):
        bench.einsum_flops("ij,jk->ik", [[2, 3], [3, 4, 5]])


def test_an_op_nobody_counts_is_reported_not_silently_zero():
    import tensorflow as tf

    graph = tf.function(lambda x: tf.math.lgamma(x) + 1.0).get_concrete_function(tf.zeros([3, 4])).graph
    count = bench.count_flops(graph)
    assert count.uncounted == {"Lgamma": 1} and count.total == count.profiler == 12  # the AddV2 only


def test_inpaint_step_count_includes_the_exemplar_einsums(tmp_path, tiny_splits):
    """The default inpainter (--exemplars) chooses with an einsum over the bank and differentiates it with another;
    TF's profiler counts neither. Its bench count now holds both, exactly."""
    import keras

    from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask
    from trainers.loop import TrainConfig, Trainer

    keras.utils.set_random_seed(0)
    task = InpaintTask(FaceTaskConfig(image_size=TINY, g_filters=8, d_filters=8, bias="male", exemplars=8,
                                      exemplar_match=300.0), tiny_splits, log=lambda *_: None)
    trainer = Trainer(task, TrainConfig(steps=1, batch_size=BATCH, jit_compile=False), str(tmp_path / "run"),
                      log=lambda *_: None)
    batch = next(iter(task.train_dataset(BATCH, 0, 0)))
    graph = trainer._train_step.get_concrete_function(batch).graph
    count = bench.count_flops(graph)
    choice = 2 * BATCH * 8 * TINY * TINY * 3  # [B, K] x [K, S, S, 3], forward and its gradient to the logits
    einsum_ops = [op for op in graph.get_operations()
                  if op.type == "Einsum" and op.name in bench.live_op_names(graph)]
    assert count.filled_in["Einsum"] == sum(
        bench.einsum_flops(op.get_attr("equation").decode(), [t.shape.as_list() for t in op.inputs])
        for op in einsum_ops) >= 2 * choice
    assert count.uncounted == {}
    assert count.profiler == _profiler_live_total(graph)
    assert bench.graph_flops(graph) == count.profiler + sum(count.filled_in.values())
    assert bench.graph_flops(graph) - _profiler_live_total(graph) >= 2 * choice  # what the old count missed
