"""aign_tf command line: ``python -m aign_tf.main --task=inpaint --bias=male``.

Modes: ``train`` (default: train, resume if a checkpoint exists, then evaluate, save samples and export),
``eval``, ``export``, ``predict`` (files in, PNGs out: ``aign_tf/predict.py``), ``tune`` (keras-tuner
hyper-parameter search, ``trainers/tune.py``) and ``bench``. ``--helpfull`` lists every flag;
``--flagfile=FILE`` reads flags from a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
import types

from absl import app, flags, logging

from aign_tf.building import FACE_TASKS, TASK_DEFAULTS, TASK_NAMES

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
flags.DEFINE_string("run_dir", None, "Checkpoints, TensorBoard, eval results, settings.json. Default "
                    "runs/<task>_<bias>, plus -<flag><value> per setting that differs from its default, e.g. "
                    "runs/inpaint_male-seed1 (docs/how-it-works.md, 'Run folders').")
flags.DEFINE_string("export_dir", "saved_models", "SavedModels go to <export_dir>/<run name>/<version>/ (the run name: "
                    "the default run folder's, e.g. inpaint_male).")
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
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA. Unset: what a resumed run used, else "
                  "whichever of XLA and plain tf.function a short trial measures faster on this machine for "
                  "these settings (once; cached in --cache_dir).")
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
flags.DEFINE_string("input", None, "predict: an image file or a folder of images (face tasks; unreadable files are "
                    "skipped and listed in <output>/skipped.txt); pose3d: a keypoint file (.json or .npy).")
flags.DEFINE_string("input_mask", None, "predict (inpaint): a mask image (white = hole), cut like the photos; default "
                    "the task's mask.")
flags.DEFINE_string("output", None, "predict: output folder (default <run_dir>/predictions): the predictions, "
                    "predictions.json (inputs, outputs, model) and skipped.txt.")
flags.DEFINE_enum("crop", "auto", ["auto", "celeba", "center", "none"], "predict (face tasks): the part of each photo "
                  "the model sees: celeba = the box the CelebA loader trains on (brows to chin of an aligned 178x218 "
                  "photo), center = the central square, none = the whole photo squashed to a square, auto = celeba "
                  "for a photo with the aligned CelebA shape, center otherwise.")
flags.DEFINE_bool("tf_log", False, "Show TensorFlow's C++ start-up log (CUDA probing, CPU features), hidden by "
                  "default; TF_CPP_MIN_LOG_LEVEL is then left as you set it.")
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


def build(run_dir: str, values, log=print):
    """Builds (task, trainer) from the flags; the trainer's state lives in ``run_dir``. ``values``: every program
    flag's value (``program_flags``); an unset ``--jit_compile`` is decided here (``jit_compile_choice``) and set in
    both."""
    from aign_tf.building import load_splits, make_task, seed_everything, train_config
    from trainers.loop import Trainer
    from trainers.summaries import hparam_values

    seed_everything(FLAGS)
    splits = load_splits(FLAGS, log)
    if FLAGS.jit_compile is None:
        FLAGS.jit_compile = values.jit_compile = jit_compile_choice(run_dir, values, splits, log)
        seed_everything(FLAGS)  # the trial's networks drew from the seeded RNG: the run's start as without it
    task = make_task(FLAGS, splits, log)
    hparams = hparam_values(vars(values))  # for TensorBoard's HParams dashboard
    return task, Trainer(task, train_config(FLAGS), run_dir, log=log, hparams=hparams)


def jit_compile_choice(run_dir: str, values, splits, log=print) -> bool:
    """``--jit_compile`` when unset: the value a resumed run's folder recorded (so it goes on computing as it
    began); for a new training run, the faster of XLA and tf.function on this machine (``trainers.compile_choice``);
    False for eval / export / predict, which do not train."""
    from aign_tf import runs

    recorded = runs.recorded_value(run_dir, "jit_compile") if runs.has_checkpoint(run_dir) else None
    if recorded is not None:
        return bool(recorded)
    if values.mode != "train":
        return False
    from trainers.compile_choice import choose_for_run

    return choose_for_run(values, splits, log)


def program_flags(flag_values=FLAGS) -> tuple[types.SimpleNamespace, set[str]]:
    """(a namespace of every flag this program defines with its value, the names set on the command line or
    in a --flagfile). absl's own flags are left out."""
    defined = flag_values.get_flags_for_module(flag_values.find_module_defining_flag("task"))
    return types.SimpleNamespace(**{f.name: f.value for f in defined}), {f.name for f in defined if f.present}


def _with_ci(value: float | None, ci, signed: bool = False) -> str:
    """``0.613 [0.582, 0.643]`` (20 characters; 23 with signs), or ``n/a`` when the value is unknown."""
    if value is None:
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f.format(value) + (" [" + ", ".join(f.format(v) for v in ci) + "]" if ci is not None else "")


def flag_defaults(flag_values=FLAGS) -> types.SimpleNamespace:
    """A namespace of every flag this program defines with its default (None for the task-dependent ones)."""
    defined = flag_values.get_flags_for_module(flag_values.find_module_defining_flag("task"))
    return types.SimpleNamespace(**{f.name: f.default for f in defined})


def format_eval_table(result: dict) -> str:
    """A plain-text table of an evaluation result (lines <= 120 characters, paths aside): every probe rate and
    shift with its 95 % interval, figures that break the validity rule marked NOT VALID with the reason."""
    prior = f"prior_dir={result['prior_dir']}" if result.get("prior_dir") else f"bias={result['bias']}"
    lines = [f"evaluation: task={result['task']} {prior} on {result['eval_images']} held-out images",
             f"  consistency PSNR render(output) vs input: {result['consistency_psnr_db']:.2f} dB",
             f"  PSNR / SSIM vs true faces:                {result['psnr_vs_truth_db']:.2f} dB / "
             f"{result['ssim_vs_truth']:.3f}"]
    if "seam_ratio" in result:
        lines.append(f"  seam |hole border - across| outputs / truth:  {result['seam_outputs']:.4f} / "
                     f"{result['seam_true']:.4f} = {_with_ci(result['seam_ratio'], result.get('seam_ratio_ci95'))}")
    if "exemplars_used" in result:
        lines.append(f"  exemplars used: {result['exemplars_used']} (the most used by "
                     f"{100 * result['exemplar_top_share']:.1f} % of the inputs)")
    wrap = lambda text: textwrap.wrap(text, 120, subsequent_indent="      ")  # noqa: E731
    if "attributes" in result:
        lines.append(f"  {'attribute':<12}  {'rate(outputs) [95% CI]':>22}  {'rate(true) [95% CI]':>22}  "
                     f"{'shift [95% CI]':>23}  {'probe acc [95% CI]':>20}")
        invalid: dict[str, list[str]] = {}
        for name, a in result["attributes"].items():
            lines.append(f"  {name:<12}  {_with_ci(a['rate_outputs'], a['rate_outputs_ci95']):>22}  "
                         f"{_with_ci(a['rate_true'], a['rate_true_ci95']):>22}  "
                         f"{_with_ci(a['shift'], a['shift_ci95'], signed=True):>23}  "
                         f"{_with_ci(a['probe_accuracy'], a['probe_accuracy_ci95']):>20}"
                         + ("" if a["valid"] else "  NOT VALID"))
            if not a["valid"]:
                invalid.setdefault(a["invalid_reason"], []).append(name)
        for reason, names in invalid.items():
            lines += wrap(f"  NOT VALID ({', '.join(names)}): {reason}")
    if "bias_strength" in result:
        note = "" if result["bias_valid"] else f"  NOT VALID: {result['bias_invalid_reason']}"
        lines += wrap(f"  bias strength ({result['bias_attribute']}): "
                      f"{_with_ci(result['bias_strength'], result['bias_strength_ci95'], signed=True)}{note}")
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
    """Exports the run's generator as the next version of ``<export_dir>/<run name>`` (the default run folder's
    name: ``inpaint_male``, ``inpaint_male-seed1``, so models trained on other settings, which may take other
    inputs, are served under other names), unless the newest version already holds the same weights (then
    nothing is written: TF Serving would take an identical version for a new model)."""
    from aign_tf.building import run_name
    from aign_tf.export import export_for_serving, newest_version_holding
    from trainers.loop import weights_digest

    generator = trainer.eval_generator
    model_name = run_name(program_flags()[0], flag_defaults())
    digest = weights_digest(generator)
    same = newest_version_holding(FLAGS.export_dir, model_name, digest)
    if same:
        log(f"SavedModel for TF Serving: {same} already holds these weights (weights digest {digest}); "
            "nothing exported")
        return same
    checkpoint = trainer.manager.latest_checkpoint
    meta = dict(task.export_metadata(), step=int(trainer.step.numpy()), run_dir=os.path.abspath(trainer.run_dir),
                checkpoint=checkpoint and os.path.abspath(checkpoint), weights_digest=digest)
    extra = {name: (lambda fn=fn, **inputs: fn(generator, **inputs), spec)
             for name, (fn, spec) in task.extra_serving_signatures().items()}
    path = export_for_serving(lambda **inputs: task.serve(generator, **inputs), task.serving_signature(),
                              FLAGS.export_dir, model_name, trackables=[generator], metadata=meta,
                              extra_signatures=extra)
    log(f"SavedModel for TF Serving: {path}")
    return path


def main(argv):
    try:
        _main(argv)
    except app.UsageError as e:  # one line, not absl's docstring and flag list
        _usage_error(str(e))
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


def _usage_error(message: str):
    """A usage error: one line on stderr, exit status 2."""
    sys.stderr.write(f"aign_tf: error: {message} (see --helpfull)\n")
    sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, a bad flag reported like every other usage error."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        _usage_error(str(e))


def _import_tensorflow() -> None:
    from aign_tf import quiet

    quiet.import_tensorflow(show_log=FLAGS.tf_log)


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    if FLAGS.mode == "bench":  # each task with its own defaults
        _import_tensorflow()
        from aign_tf import bench

        bench.run(FLAGS)
        return
    from aign_tf.building import apply_task_defaults

    apply_task_defaults(FLAGS)
    if FLAGS.task not in FACE_TASKS:
        for name in ("bias", "image_size", "factor", "mask", "crop"):
            if FLAGS[name].present:
                raise app.UsageError(f"--{name} applies to the face tasks ({', '.join(FACE_TASKS)}), "
                                     f"not --task={FLAGS.task}")
    from aign_tf import runs
    from aign_tf.building import default_run_dir

    values, given = program_flags()
    run_dir = default_run_dir(values, flag_defaults())
    if FLAGS.mode == "tune":
        _import_tensorflow()
        from trainers import tune

        with runs.locked(os.path.join(run_dir, "tune")):
            tune.run(values, given, run_dir)
        return
    # Every check a user's argument can fail comes before TensorFlow, the data and the model are loaded.
    if FLAGS.mode == "predict" and not FLAGS.input:
        raise app.UsageError("--mode=predict needs --input=FILE_OR_FOLDER")
    if FLAGS.input_mask and FLAGS.task != "inpaint":
        raise app.UsageError(f"--input_mask applies to --task=inpaint, not --task={FLAGS.task}")
    if FLAGS.mode != "train" and not runs.has_checkpoint(run_dir):
        raise app.UsageError(f"no checkpoint in {run_dir}; train first (--mode=train) or set --run_dir")
    request = None
    if FLAGS.mode == "predict":
        from aign_tf import predict

        request = predict.check_request(FLAGS.task, FLAGS.input, FLAGS.output or os.path.join(run_dir, "predictions"),
                                        crop=FLAGS.crop, input_mask=FLAGS.input_mask)
    # Every mode that writes into the run folder holds its lock (predict writes there unless --output is given).
    writes = FLAGS.mode != "predict" or not FLAGS.output
    with runs.locked(run_dir) if writes else contextlib.nullcontext():
        _run(values, "run_dir" in given, run_dir, writes, request)


def _run(values, run_dir_given: bool, run_dir: str, writes: bool, request=None, log=print):
    """train / eval / export / predict (``request``: from ``predict.check_request``) in ``run_dir``, after checking
    that the folder holds this command's settings (a new folder records them)."""
    from aign_tf import runs
    from aign_tf.building import default_settings

    settings = runs.defining_settings(values)
    recorded = runs.check_settings(run_dir, settings, default_settings(values, flag_defaults()), run_dir_given)
    if not recorded and runs.has_checkpoint(run_dir):
        log(f"warning: {run_dir} has checkpoints but no {runs.SETTINGS_FILE} (made before aign_tf recorded a "
            "run's settings): assuming this command's settings" + (", recording them" if writes else ""))
    print(f"run directory: {os.path.abspath(run_dir)}", flush=True)
    _import_tensorflow()
    task, trainer = build(run_dir, values)
    if FLAGS.mode == "train" or (writes and not recorded):
        runs.write_settings(run_dir, settings, runs.recorded_settings(values))
    if FLAGS.mode == "train":
        trainer.train()
        evaluate(task, trainer)
        if FLAGS.export:
            export(task, trainer)
        return
    trainer.restore()
    if FLAGS.mode == "predict":
        from aign_tf import predict

        predict.run(task, trainer, request, batch_size=FLAGS.batch_size)
    else:
        {"eval": evaluate, "export": export}[FLAGS.mode](task, trainer)


def run():
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
