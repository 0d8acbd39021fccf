"""TensorBoard summaries beyond the training scalars: hparams, eval figures, the training step's graph (in-process;
the dashboards as a TensorBoard server shows them: test_tensorboard_e2e.py)."""

import glob

import numpy as np
import tensorflow as tf

from trainers import summaries


def _events(logdir):
    """[(tag or kind, step, value or None)] of every event in a TensorBoard log directory."""
    out = []
    for path in sorted(glob.glob(f"{logdir}/events.*")):
        for e in tf.compat.v1.train.summary_iterator(path):
            if e.graph_def:
                out.append(("graph_def", e.step, len(e.graph_def)))
            for v in e.summary.value:
                value = float(tf.make_ndarray(v.tensor)) if v.metadata.plugin_data.plugin_name == "scalars" else None
                out.append((v.tag, e.step, value))
    return out


def test_eval_scalars_are_every_numeric_figure_flattened_under_eval():
    face = {"task": "inpaint", "bias": "male", "prior_dir": None, "eval_images": 1000, "step": 1500, "seed": 0,
            "consistency_psnr_db": 100.0, "psnr_vs_truth_db": 22.16, "ssim_vs_truth": np.float32(0.78),
            "exemplars_used": 87, "exemplar_top_share": 0.1, "skipped_images": 0, "samples_png": "x.png",
            "attributes": {"Male": {"rate_outputs": 0.9, "rate_true": 0.5, "shift": 0.4, "probe_accuracy": 0.97,
                                    "probe_reliable": True},
                           "Young": {"rate_outputs": 0.5, "rate_true": 0.5, "shift": 0.0, "probe_accuracy": None,
                                     "probe_reliable": np.bool_(False)}},
            "bias_attribute": "Male", "bias_strength": 0.4, "bias_probe_accuracy": 0.97, "bias_probe_reliable": True}
    assert summaries.eval_scalars(face) == {
        "eval/consistency_psnr_db": 100.0, "eval/psnr_vs_truth_db": 22.16,
        "eval/ssim_vs_truth": float(np.float32(0.78)),
        "eval/exemplars_used": 87.0, "eval/exemplar_top_share": 0.1,
        "eval/attributes/Male/rate_outputs": 0.9, "eval/attributes/Male/rate_true": 0.5,
        "eval/attributes/Male/shift": 0.4, "eval/attributes/Male/probe_accuracy": 0.97,
        "eval/attributes/Young/rate_outputs": 0.5, "eval/attributes/Young/rate_true": 0.5,
        "eval/attributes/Young/shift": 0.0, "eval/bias_strength": 0.4, "eval/bias_probe_accuracy": 0.97}
    pose = {"task": "pose3d", "eval_poses": 2000, "paired_fraction": 0.05, "skipped": {"short": 3}, "step": 3000,
            "mpjpe_mm": 72.9, "pa_mpjpe_mm": 47.7, "reprojection_px": 7.0, "data": "builtin"}
    assert summaries.eval_scalars(pose) == {"eval/mpjpe_mm": 72.9, "eval/pa_mpjpe_mm": 47.7,
                                            "eval/reprojection_px": 7.0}


def test_hparam_values_are_the_flags_that_define_the_run_with_their_types():
    flags = {"task": "inpaint", "bias": "Male and not Young", "steps": 1500, "adversarial_weight": 1.0,
             "jit_compile": False, "prior_dir": None, "bench_tasks": ["inpaint"], "tune_trials": 8,
             "run_dir": "runs/x", "cache_dir": "c", "checkpoint_every": 250, "mode": "train", "export": True,
             "pose_width": 512, "num_prior": 40000, "image_size": 64}
    assert summaries.hparam_values(flags) == {"task": "inpaint", "bias": "Male and not Young", "steps": 1500,
                                              "adversarial_weight": 1.0, "jit_compile": False, "image_size": 64}
    pose = summaries.hparam_values({**flags, "task": "pose3d"})
    assert pose == {"task": "pose3d", "steps": 1500, "adversarial_weight": 1.0, "jit_compile": False,
                    "pose_width": 512, "num_prior": 40000}
    assert summaries.hparam_values({"diff_augment": ("color", "cutout")}) == {"diff_augment": "color,cutout"}


def test_a_run_writes_its_hparams_and_the_graph_of_one_step_once_and_eval_figures_at_its_step(tmp_path, tiny_splits):
    import keras

    from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask
    from trainers.loop import TrainConfig, Trainer

    keras.utils.set_random_seed(0)
    task = InpaintTask(FaceTaskConfig(image_size=32, bias="none", g_filters=8, d_filters=8), tiny_splits,
                       log=lambda *_: None)
    trainer = Trainer(task, TrainConfig(steps=2, batch_size=4, jit_compile=True, log_every=1, image_every=2,
                                        checkpoint_every=2), str(tmp_path / "run"), log=lambda *_: None,
                      hparams={"task": "inpaint", "steps": 2, "adversarial_weight": 1.0})
    trainer.train()
    summaries.write_scalars(trainer.tensorboard_dir, summaries.eval_scalars({"step": 2, "bias_strength": 0.25}), 2)
    events = _events(trainer.tensorboard_dir)
    graphs = [e for e in events if e[0] == "graph_def"]
    assert len(graphs) == 1 and graphs[0][2] > 10_000, graphs  # one serialized GraphDef of the XLA-compiled step
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(next(e.graph_def for p in glob.glob(f"{trainer.tensorboard_dir}/events.*")
                               for e in tf.compat.v1.train.summary_iterator(p) if e.graph_def))
    assert any("Adam" in node.op or "adam" in node.name.lower() for node in graph.node)  # the optimizer updates
    assert [e[0] for e in events].count("_hparams_/session_start_info") == 1
    assert ("eval/bias_strength", 2, 0.25) in events
    assert {"train/g_loss", "train/d_loss", "samples/input|output|rendered|prior"} <= {e[0] for e in events}
