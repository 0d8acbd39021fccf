"""aign_tf command line: ``python -m aign_tf.main --task=inpaint --bias=male``.

Modes: ``train`` (default: train, resume if a checkpoint exists, then evaluate, save samples and export),
``eval``, ``export``, ``predict`` (files in, PNGs out), ``tune`` (keras-tuner hyper-parameter search,
``trainers/tune.py``) and ``bench``. ``--helpfull`` lists every flag;
``--flagfile=FILE`` reads flags from a file.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402

from aign_tf.building import FACE_TASKS, TASK_DEFAULTS, TASK_NAMES  # noqa: E402

FLAGS = flags.FLAGS
MODES = ("train", "eval", "export", "predict", "tune", "bench")


def _default_help(name: str) -> str:
    return "default: " + ", ".join(f"{v} ({k})" for k, v in TASK_DEFAULTS[name].items())


flags.DEFINE_enum("task", "inpaint", list(TASK_NAMES), "Which AIGN task to run.")
flags.DEFINE_enum("mode", "train", MODES, "train (then eval + export), eval, export, predict, tune "
                  "(hyper-parameter search) or bench.")
flags.DEFINE_string("bias", "male", "Prior collection the discriminator sees: a shortcut (male, female, young, old, "
                    "big_lips, big_nose, smiling, eyeglasses, none) or an expression over CelebA attribute names, "
                    "e.g. 'Male and not Young'.")
flags.DEFINE_string("prior_dir", None, "A folder of images (e.g. one identity) used as the prior collection "
                    "instead of --bias; pose3d: a folder of BVH motion capture (datasets/cmu_mocap/README.md).")
flags.DEFINE_string("data_dir", None, "Face data: unset/'builtin' = procedural faces (no download); a CelebA "
                    "folder (datasets/celeba/README.md); 'tfds' or 'tfds:DIR' for a prepared TFDS celeb_a. pose3d: "
                    "unset/'builtin' = procedural skeletons; a folder with Human3.6M's data_3d_h36m.npz "
                    "(datasets/h36m/README.md).")
flags.DEFINE_string("cache_dir", "datasets/cache", "Where generated/decoded data and the attribute probe are cached.")
flags.DEFINE_string("run_dir", None, "Checkpoints, TensorBoard, eval results. Default runs/<task>_<bias>.")
flags.DEFINE_string("export_dir", "saved_models", "SavedModels go to <export_dir>/<task>_<bias>/<version>/.")
flags.DEFINE_integer("steps", None, "Training steps (generator updates); " + _default_help("steps"))
flags.DEFINE_integer("batch_size", None, "Batch size; " + _default_help("batch_size"))
flags.DEFINE_integer("image_size", 64, "Face image size (the factors' resolution).")
flags.DEFINE_integer("factor", 4, "superres: downsampling factor of the renderer.")
flags.DEFINE_enum("mask", "mouth_nose", ["mouth_nose", "random_box"], "inpaint: which region is hidden.")
flags.DEFINE_integer("seed", 0, "The one seed for initialisation, batches and masks.")
flags.DEFINE_integer("data_seed", 0, "Seed of the built-in dataset and of the observation/prior split.")
flags.DEFINE_bool("deterministic", False, "Deterministic ops, so a resumed run equals an uninterrupted one.")
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                  "Compute precision; mixed_float16 uses dynamic loss scaling (GPU only gains from it).")
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA; " + _default_help("jit_compile") + ".")
flags.DEFINE_enum("adversarial_loss", "non_saturating", ["non_saturating", "least_squares", "hinge", "wgan_gp"],
                  "Adversarial loss pair.")
flags.DEFINE_integer("d_steps", 1, "Discriminator updates per generator update.")
flags.DEFINE_float("reconstruction_weight", 10.0, "Weight of the reconstruction (render vs observation) loss.")
flags.DEFINE_float("adversarial_weight", 1.0, "Weight of the generator's adversarial loss.")
flags.DEFINE_float("supervised_weight", 10.0, "Weight of the paired-supervision loss.")
flags.DEFINE_float("prior_cycle_weight", 0.0, "Weight of the prior cycle: L1 between prior samples and the "
                   "generator's output from their rendering (CycleGAN's backward cycle with the renderer as the "
                   "fixed forward map; uses only the unpaired prior). Face tasks.")
flags.DEFINE_float("negative_weight", None, "Face tasks with a --bias that excludes faces: the discriminator also "
                   "learns to reject the excluded faces (Rumi-GAN negatives), which take this share of its 'fake' "
                   "side; in [0, 1), 0 = off. " + _default_help("negative_weight")
                   + " (0 with --bias=none or --prior_dir, which exclude no face).")
flags.DEFINE_integer("fake_pool", 0, "Generated samples kept in a history the discriminator also trains on "
                     "(SimGAN / CycleGAN image pool, e.g. 50); 0 = off.")
flags.DEFINE_float("feature_matching_weight", 0.0, "Weight of feature matching: the generator matches the batch "
                   "mean of the discriminator's last hidden features on the prior (Salimans et al. 2016).")
flags.DEFINE_float("instance_noise", None, "Stddev of Gaussian noise added to everything the discriminator sees "
                   "(real and generated), falling linearly to 0 at --steps (instance noise, Sonderby et al. 2017); "
                   "0 = off; " + _default_help("instance_noise") + ".")
flags.DEFINE_string("diff_augment", "", "Image tasks: differentiable augmentations of everything the discriminator "
                    "sees, real and generated, in its updates and the generator's (DiffAugment, Zhao et al. 2020): "
                    "comma-separated from color, translation, cutout; empty = off.")
flags.DEFINE_float("gp_weight", 10.0, "WGAN-GP gradient-penalty weight.")
flags.DEFINE_float("r1_weight", 0.0, "R1 penalty weight (gradient of D on real samples, Mescheder et al. 2018); "
                   "0 = off.")
flags.DEFINE_float("paired_fraction", 0.0, "Fraction of observations whose ground truth is used (supervised term).")
flags.DEFINE_float("g_learning_rate", 2e-4, "Generator Adam learning rate.")
flags.DEFINE_float("d_learning_rate", 2e-4, "Discriminator Adam learning rate.")
flags.DEFINE_float("ema_decay", 0.0, "EMA decay of generator weights for eval/export (0 = off, e.g. 0.999).")
flags.DEFINE_integer("g_filters", 16, "Generator base width.")
flags.DEFINE_integer("d_filters", 16, "Discriminator base width.")
flags.DEFINE_bool("generator_noise", None, "Face tasks: per-pixel Gaussian noise inputs to the generator's "
                  "bottleneck and decoder where the observation is silent (the hole; every pixel for superres), "
                  "with learned per-channel strengths (StyleGAN's noise inputs): a source of stochastic detail; "
                  + _default_help("generator_noise") + ".")
flags.DEFINE_integer("exemplars", None, "Face tasks: the generator picks one of this many prior faces per input "
                     "(all of them if the prior holds fewer; a learned choice, straight-through Gumbel-softmax): "
                     "inpainting fills the hole with its hole, super-resolution adds its detail; 0 = off; "
                     + _default_help("exemplars") + ".")
flags.DEFINE_float("exemplar_balance", 0.0, "With --exemplars: weight of a load-balancing term on the choice "
                   "(Switch Transformer's: lowers the probability of the faces chosen most often in a batch); 0 = off.")
flags.DEFINE_float("exemplar_match", None, "With --exemplars: the choice's logits also get minus this weight times "
                   "each bank face's reconstruction error against the input (mean squared, over the observed "
                   "values: the visible pixels, the low-resolution image); 0 = off; "
                   + _default_help("exemplar_match") + ".")
flags.DEFINE_bool("spectral_norm", False, "Spectral normalisation in the discriminator.")
flags.DEFINE_integer("checkpoint_every", 250, "Checkpoint interval in steps.")
flags.DEFINE_integer("log_every", 25, "Progress/TensorBoard scalar interval in steps.")
flags.DEFINE_integer("image_every", 250, "TensorBoard image interval in steps.")
flags.DEFINE_integer("num_train", None, "Built-in data: training faces (half observations, half prior pool) / "
                     "observed poses; " + _default_help("num_train"))
flags.DEFINE_integer("num_test", None, "Built-in data: held-out faces / poses; " + _default_help("num_test"))
flags.DEFINE_integer("num_prior", 40000, "pose3d, built-in data: 3D poses in the unpaired prior collection.")
flags.DEFINE_integer("eval_images", None, "Held-out images (poses) used by eval; " + _default_help("eval_images"))
flags.DEFINE_integer("pose_width", 512, "pose3d: generator hidden width.")
flags.DEFINE_integer("pose_blocks", 2, "pose3d: generator residual blocks.")
flags.DEFINE_integer("pose_d_width", 256, "pose3d: discriminator hidden width.")
flags.DEFINE_integer("max_images", None, "CelebA/TFDS: use at most this many images per split.")
flags.DEFINE_integer("probe_epochs", 6, "Epochs of the attribute probe (trained once, cached).")
flags.DEFINE_bool("export", True, "train mode: export a SavedModel at the end.")
flags.DEFINE_string("input", None, "predict: an image file or a folder of images.")
flags.DEFINE_string("input_mask", None, "predict (inpaint): a mask image (white = hole); default the task's mask.")
flags.DEFINE_string("output", None, "predict: output folder (default <run_dir>/predictions).")
flags.DEFINE_integer("tune_trials", 8, "tune: number of trials (hyper-parameter settings). Re-running the same "
                     "command resumes the search; a larger value adds trials.")
flags.DEFINE_integer("tune_steps", None, "tune: training steps per trial; default a quarter of --steps: " + ", ".join(
    f"{v // 4} ({k})" for k, v in TASK_DEFAULTS["steps"].items()) + ".")
flags.DEFINE_enum("tune_algorithm", "random", ["random", "bayesian"], "tune: keras-tuner RandomSearch or "
                  "BayesianOptimization (Gaussian process; the first half of the trials are random).")
flags.DEFINE_string("tune_objective", None, "tune: the eval-result key to optimise on the validation split; default "
                    "bias_strength (maximised) for the face tasks, mpjpe_mm (minimised) for pose3d. An unknown key "
                    "stops with the list of valid ones.")
flags.DEFINE_float("tune_val_fraction", 0.1, "tune: this fraction at the end of the training split is held out as "
                   "the validation set every trial is scored on; the test split is never used by tune.")
flags.DEFINE_list("bench_tasks", None, "bench: tasks to measure (default: all of " + ",".join(TASK_NAMES) + ").")
flags.DEFINE_integer("bench_steps", 30, "bench: timed training steps per compile mode.")
flags.DEFINE_integer("bench_serving_calls", 50, "bench: batch-1 serving calls timed per model.")
flags.DEFINE_string("bench_out", None, "bench: JSON results path (default runs/bench.json).")


def build(log=print):
    """Builds (task, trainer) from the flags."""
    from aign_tf.building import build_task, default_run_dir, seed_everything, train_config
    from trainers.loop import Trainer
    from trainers.summaries import hparam_values

    seed_everything(FLAGS)
    task = build_task(FLAGS, log)
    hparams = hparam_values(vars(program_flags()[0]))  # for TensorBoard's HParams dashboard
    return task, Trainer(task, train_config(FLAGS), default_run_dir(FLAGS), log=log, hparams=hparams)


def program_flags(flag_values=FLAGS) -> tuple[types.SimpleNamespace, set[str]]:
    """(a namespace of every flag this program defines with its value, the names set on the command line or
    in a --flagfile). absl's own flags are left out."""
    defined = flag_values.get_flags_for_module(flag_values.find_module_defining_flag("task"))
    return types.SimpleNamespace(**{f.name: f.value for f in defined}), {f.name for f in defined if f.present}


def format_eval_table(result: dict) -> str:
    """A plain-text table of an evaluation result."""
    lines = [f"evaluation: task={result['task']} bias={result['bias']} on {result['eval_images']} held-out images",
             f"  consistency PSNR render(output) vs input: {result['consistency_psnr_db']:.2f} dB",
             f"  PSNR / SSIM vs true faces:                {result['psnr_vs_truth_db']:.2f} dB / "
             f"{result['ssim_vs_truth']:.3f}"]
    if "exemplars_used" in result:
        lines.append(f"  exemplars used: {result['exemplars_used']} (the most used by "
                     f"{100 * result['exemplar_top_share']:.1f} % of the inputs)")
    if "attributes" in result:
        lines.append(f"  {'attribute':<12} {'rate(outputs)':>13} {'rate(true)':>10} {'shift':>7} {'probe acc':>9}")
        for name, a in result["attributes"].items():
            note = "" if a["probe_reliable"] else "  (probe near chance: not a valid figure)"
            lines.append(f"  {name:<12} {a['rate_outputs']:>13.3f} {a['rate_true']:>10.3f} {a['shift']:>+7.3f} "
                         f"{a['probe_accuracy']:>9.3f}{note}")
    if "bias_strength" in result:
        valid = "" if result["bias_probe_reliable"] else " (probe unreliable for this attribute: not quoted)"
        lines.append(f"  bias strength ({result['bias_attribute']}): {result['bias_strength']:+.3f}{valid}")
    return "\n".join(lines)


def evaluate(task, trainer, log=print) -> dict:
    from aign_tf import formats
    from trainers import summaries

    splits = task.splits
    if FLAGS.task in FACE_TASKS:
        from aign_tf.building import face_probe

        result = task.evaluate(trainer.eval_generator, trainer.run_dir, probe=face_probe(FLAGS, splits, log))
        result["skipped_images"] = splits.skipped_images
        table, shows = format_eval_table(result), "input | output | truth"
    else:
        result = task.evaluate(trainer.eval_generator, trainer.run_dir)
        result["skipped"] = splits.skipped
        table, shows = task.format_eval(result), "input 2D | predicted 3D over the truth in grey | true 3D"
    result.update(step=int(trainer.step.numpy()), seed=FLAGS.seed, command=" ".join(sys.argv))
    path = os.path.join(trainer.run_dir, "eval.json")
    formats.write_json(path, result)
    summaries.write_scalars(trainer.tensorboard_dir, summaries.eval_scalars(result), result["step"])
    log(table)
    log(f"held-out samples ({shows}): {result['samples_png']}\nresults: {path}")
    return result


def export(task, trainer, log=print) -> str:
    from aign_tf.building import run_slug
    from aign_tf.export import export_for_serving

    generator = trainer.eval_generator
    meta = dict(task.export_metadata(), step=int(trainer.step.numpy()))
    extra = {name: (lambda fn=fn, **inputs: fn(generator, **inputs), spec)
             for name, (fn, spec) in task.extra_serving_signatures().items()}
    path = export_for_serving(lambda **inputs: task.serve(generator, **inputs), task.serving_signature(),
                              FLAGS.export_dir, f"{FLAGS.task}_{run_slug(FLAGS)}", trackables=[generator],
                              metadata=meta, extra_signatures=extra)
    log(f"SavedModel for TF Serving: {path}")
    return path


def predict(task, trainer, log=print) -> list[str]:
    import numpy as np

    from aign_tf import formats

    if not FLAGS.input:
        raise app.UsageError("--mode=predict needs --input=FILE_OR_FOLDER")
    if FLAGS.task == "pose3d":
        return _predict_pose(task, trainer, log)
    paths = formats.list_images(FLAGS.input) if os.path.isdir(FLAGS.input) else [FLAGS.input]
    out_dir = FLAGS.output or os.path.join(trainer.run_dir, "predictions")
    spec = task.serving_signature()["image"]
    size = spec.shape[1]
    images = np.stack([formats.read_image(p, size) for p in paths]).astype(np.float32)
    inputs = {"image": images}
    if "mask" in task.serving_signature():
        if FLAGS.input_mask:
            mask = formats.read_mask(FLAGS.input_mask, size)[None]
        else:
            mask = task.observe(images, 0)["mask"].numpy()[:1]
        inputs["mask"] = np.repeat(mask, len(images), 0)
    faces = task.serve(trainer.eval_generator, **inputs)["face"].numpy()
    written = []
    for p, face in zip(paths, faces, strict=True):
        written.append(os.path.join(out_dir, os.path.splitext(os.path.basename(p))[0] + f"_{task.name}.png"))
        formats.write_image(written[-1], face)
    log(f"wrote {len(written)} predictions to {out_dir}")
    return written


def _predict_pose(task, trainer, log=print) -> list[str]:
    import numpy as np

    from aign_tf import formats

    inputs = formats.read_keypoints(FLAGS.input, task.skeleton.num_joints)
    n = len(inputs["joints_2d"])
    if "focal" not in inputs:
        inputs["focal"] = np.full((n, 2), task.config.nominal_focal, np.float32)
        log(f"no focal length in {FLAGS.input}: assuming the nominal {task.config.nominal_focal} (normalised)")
    out = {k: v.numpy() for k, v in task.serve_with_camera(trainer.eval_generator, **inputs).items()}
    out_dir = FLAGS.output or os.path.join(trainer.run_dir, "predictions")
    stem = os.path.join(out_dir, os.path.splitext(os.path.basename(FLAGS.input))[0] + f"_{task.name}")
    formats.write_json(stem + ".json", {"units": "mm", "joint_names": list(task.skeleton.joint_names), **out})
    formats.write_image(stem + ".png", task.prediction_figure(inputs, out))
    log(f"wrote {n} 3D poses to {stem}.json and a figure to {stem}.png")
    return [stem + ".json", stem + ".png"]


def main(argv):
    try:
        _main(argv)
    except (ValueError, FileNotFoundError) as e:
        if os.environ.get("AIGN_TRACEBACK"):
            raise
        # A user-caused problem (bad flag value, missing data, empty prior, diverged run): one clear line.
        sys.exit(f"aign_tf: error: {e}")
    except RuntimeError as e:
        from trainers.loop import TrainingDiverged

        if isinstance(e, TrainingDiverged) and not os.environ.get("AIGN_TRACEBACK"):
            sys.exit(f"aign_tf: error: {e}")
        raise


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    if FLAGS.mode == "bench":  # each task with its own defaults
        from aign_tf import bench

        bench.run(FLAGS)
        return
    from aign_tf.building import apply_task_defaults

    apply_task_defaults(FLAGS)
    if FLAGS.task not in FACE_TASKS:
        for name in ("bias", "image_size", "factor", "mask"):
            if FLAGS[name].present:
                raise ValueError(f"--{name} applies to the face tasks ({', '.join(FACE_TASKS)}), "
                                 f"not --task={FLAGS.task}")
    if FLAGS.mode == "tune":
        from aign_tf.building import default_run_dir
        from trainers import tune

        tune.run(*program_flags(), default_run_dir(FLAGS))
        return
    task, trainer = build()
    print(f"run directory: {os.path.abspath(trainer.run_dir)}", flush=True)
    if FLAGS.mode == "train":
        trainer.train()
        evaluate(task, trainer)
        if FLAGS.export:
            export(task, trainer)
        return
    if trainer.restore() == 0:
        raise app.UsageError(f"no checkpoint in {trainer.run_dir}; train first (--mode=train) or set --run_dir")
    {"eval": evaluate, "export": export, "predict": predict}[FLAGS.mode](task, trainer)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
