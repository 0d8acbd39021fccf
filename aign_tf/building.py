"""Builds a task, its data and its training configuration from flags (absl FlagValues or any namespace with
the same attributes). The command line (``aign_tf.main``), the benchmark (``aign_tf.bench``) and the
hyper-parameter search (``trainers/tune.py``) all build through here, so imports run one way:
command line -> (bench, tune) -> building -> tasks -> data / networks / renderers.
"""

from __future__ import annotations

import os
import types

TASK_NAMES = ("inpaint", "superres", "pose3d")
FACE_TASKS = ("inpaint", "superres")
# Flags whose default depends on the task (their flag default is None = "the task's default").
TASK_DEFAULTS = {
    "steps": {"inpaint": 1500, "superres": 1500, "pose3d": 3000},
    "batch_size": {"inpaint": 16, "superres": 16, "pose3d": 64},
    "num_train": {"inpaint": 12000, "superres": 12000, "pose3d": 10000},
    "num_test": {"inpaint": 1000, "superres": 1000, "pose3d": 2000},
    "eval_images": {"inpaint": 1000, "superres": 1000, "pose3d": 2000},
    "instance_noise": {"inpaint": 0.1, "superres": 0.0, "pose3d": 0.0},
    "generator_noise": {"inpaint": True, "superres": False, "pose3d": False},
    "exemplars": {"inpaint": 256, "superres": 256, "pose3d": 0},
    "exemplar_match": {"inpaint": 300.0, "superres": 100.0, "pose3d": 0.0},
    # Taken only where the bias leaves faces out (not --bias=none, not --prior_dir); see apply_task_defaults.
    "negative_weight": {"inpaint": 0.0, "superres": 0.5, "pose3d": 0.0},
}


def apply_task_defaults(flag_values) -> None:
    """Fills the task-dependent flags the user left unset (see TASK_DEFAULTS)."""
    from aign_tf.data.bias import names_every_face

    for name, per_task in TASK_DEFAULTS.items():
        if getattr(flag_values, name) is None:
            setattr(flag_values, name, per_task[flag_values.task])
            if name == "negative_weight" and (flag_values.prior_dir or names_every_face(flag_values.bias)):
                flag_values.negative_weight = 0.0  # nothing is excluded, so there are no negatives


def task_config(flags):
    """The face task's configuration from parsed flags (or any object with the same attributes)."""
    from aign_tf.tasks.faces import FaceTaskConfig

    return FaceTaskConfig(image_size=flags.image_size, factor=flags.factor, mask=flags.mask, bias=flags.bias,
                          prior_dir=flags.prior_dir, g_filters=flags.g_filters, d_filters=flags.d_filters,
                          spectral_norm=flags.spectral_norm, generator_noise=flags.generator_noise,
                          seed=flags.seed, dtype_policy=flags.mixed_precision,
                          paired_fraction=flags.paired_fraction, negatives=flags.negative_weight > 0,
                          exemplars=flags.exemplars, exemplar_balance=flags.exemplar_balance,
                          exemplar_match=flags.exemplar_match, eval_images=flags.eval_images, data_seed=flags.data_seed,
                          cache_dir=flags.cache_dir)


def train_config(flags):
    """The training loop's configuration from parsed flags (or any object with the same attributes)."""
    from trainers.loop import TrainConfig

    return TrainConfig(
        steps=flags.steps, batch_size=flags.batch_size, seed=flags.seed, adversarial_loss=flags.adversarial_loss,
        d_steps=flags.d_steps, fake_pool=flags.fake_pool, feature_matching_weight=flags.feature_matching_weight,
        instance_noise=flags.instance_noise, diff_augment=flags.diff_augment,
        gp_weight=flags.gp_weight, r1_weight=flags.r1_weight,
        reconstruction_weight=flags.reconstruction_weight,
        adversarial_weight=flags.adversarial_weight, supervised_weight=flags.supervised_weight,
        prior_cycle_weight=flags.prior_cycle_weight, negative_weight=flags.negative_weight,
        g_learning_rate=flags.g_learning_rate, d_learning_rate=flags.d_learning_rate, ema_decay=flags.ema_decay,
        mixed_precision=flags.mixed_precision, jit_compile=flags.jit_compile,
        checkpoint_every=flags.checkpoint_every, log_every=flags.log_every, image_every=flags.image_every)


def pose_task_config(flags):
    """The pose task's configuration from parsed flags (or any object with the same attributes)."""
    from aign_tf.tasks.pose import PoseTaskConfig

    return PoseTaskConfig(width=flags.pose_width, blocks=flags.pose_blocks, d_width=flags.pose_d_width,
                          dtype_policy=flags.mixed_precision, paired_fraction=flags.paired_fraction,
                          eval_images=flags.eval_images, data_seed=flags.data_seed)


def load_splits(flags, log=print):
    """The data of ``flags.task`` (FaceSplits or PoseSplits; built-in data is generated and cached on first use)."""
    if flags.task == "pose3d":
        from aign_tf.tasks.pose import load_pose_splits

        splits = load_pose_splits(flags.data_dir, flags.prior_dir, flags.cache_dir, flags.data_seed,
                                  flags.num_train, flags.num_test, flags.num_prior, log=log)
        log(f"data: {splits.description}: {len(splits.train)} train / {len(splits.test)} test poses"
            + "".join(f", {n} skipped ({reason})" for reason, n in splits.skipped.items()))
    else:
        from aign_tf.data.faces import load_face_splits

        splits = load_face_splits(flags.data_dir, flags.image_size, flags.cache_dir, flags.data_seed,
                                  flags.num_train, flags.num_test, flags.max_images)
        log(f"data: {splits.source}: {len(splits.train)} train / {len(splits.test)} test images"
            + (f", {splits.skipped_images} unreadable images skipped" if splits.skipped_images else ""))
    return splits


def make_task(flags, splits, log=print):
    """The task named by ``flags.task`` over ``splits`` (from :func:`load_splits`, or a part of them)."""
    if flags.task == "pose3d":
        from aign_tf.tasks.pose import PoseTask

        task = PoseTask(pose_task_config(flags), splits, log=log)
    else:
        from aign_tf.tasks.faces import TASKS

        task = TASKS[flags.task](task_config(flags), splits, log=log)
    log(f"prior: {task.prior_description}")
    return task


def build_task(flags, log=print):
    """The task named by ``flags.task`` with its data."""
    return make_task(flags, load_splits(flags, log), log)


def seed_everything(flags) -> None:
    """Seeds Python, NumPy and TensorFlow from ``flags.seed``; deterministic ops under ``flags.deterministic``."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(flags.seed)
    if flags.deterministic:
        tf.config.experimental.enable_op_determinism()


def face_probe(flags, splits, log=print, region=None):
    """The attribute probe eval measures face outputs with: trained once on ``splits.train`` (its accuracy on
    ``splits.test``) and cached under ``flags.cache_dir``. With ``region`` (``(top, left, bottom, right)``
    fractions, e.g. the inpainting hole) the region probe that sees only that box (``aign_tf.probe``)."""
    from aign_tf.probe import load_or_train_probe

    return load_or_train_probe(flags.cache_dir, splits.train.images, splits.train.labels, splits.test.images,
                               splits.test.labels, splits.train.attribute_names, epochs=flags.probe_epochs,
                               seed=flags.data_seed, log=log, region=region)


def run_slug(flags) -> str:
    """The run's name after its task: the bias (face tasks), the prior folder or the pose data."""
    from aign_tf.data.bias import bias_slug

    if flags.prior_dir:
        return "prior_" + bias_slug(os.path.basename(os.path.normpath(flags.prior_dir)))
    if flags.task not in FACE_TASKS:
        return "builtin" if flags.data_dir in (None, "", "builtin") else "data"
    return bias_slug(flags.bias)


def default_settings(flags, flag_defaults):
    """The defining settings (``aign_tf.runs``) of ``flags``' task, bias and prior folder with every other flag at
    its default (the data: built-in; the flags read are those of ``flags``' data); ``flag_defaults``: a namespace
    of every program flag's default."""
    from aign_tf import runs

    same = {name: getattr(flags, name) for name in ("task", "bias", "prior_dir", "data_dir")}
    defaults = types.SimpleNamespace(**{**vars(flag_defaults), **same})
    apply_task_defaults(defaults)
    return {**runs.defining_settings(defaults), "data_dir": runs.normalise("data_dir", flag_defaults.data_dir)}


def run_name(flags, flag_defaults) -> str:
    """``<task>_<slug>`` plus a part per defining setting that differs from its default (``aign_tf.runs.run_name``):
    ``inpaint_male``, ``inpaint_male-seed1``, ``inpaint_male-data_dir_celeba``."""
    from aign_tf import runs

    return runs.run_name(f"{flags.task}_{run_slug(flags)}", runs.defining_settings(flags),
                         default_settings(flags, flag_defaults))


def default_run_dir(flags, flag_defaults) -> str:
    """``--run_dir`` or ``runs/<run_name>``; ``flags``: every program flag (task defaults applied),
    ``flag_defaults``: their defaults (``aign_tf.main.program_flags``, ``flag_defaults``)."""
    return flags.run_dir or os.path.join("runs", run_name(flags, flag_defaults))
