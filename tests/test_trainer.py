"""The training loop: precision paths, NaN guard, checkpoint resume (in-process)."""

import glob
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask, SuperResTask
from trainers.loop import TrainConfig, Trainer, TrainingDiverged, weights_digest

TINY = 32


def _trainer(tmp_path, splits, task_cls=InpaintTask, precision="float32", task_kwargs=None, **train_kwargs):
    import keras

    keras.utils.set_random_seed(0)
    task_kwargs = {"bias": "none", **(task_kwargs or {})}
    task = task_cls(FaceTaskConfig(image_size=TINY, dtype_policy=precision, g_filters=8, d_filters=8, **task_kwargs),
                    splits, log=lambda *_: None)
    cfg = dict(steps=3, batch_size=4, mixed_precision=precision, jit_compile=False, checkpoint_every=1,
               log_every=1, image_every=2)
    cfg.update(train_kwargs)
    return Trainer(task, TrainConfig(**cfg), str(tmp_path / "run"), log=lambda *_: None)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_steps_are_finite(tmp_path, tiny_splits, precision):
    trainer = _trainer(tmp_path, tiny_splits, precision=precision)
    batch = next(iter(trainer.task.train_dataset(4, 0, 0)))
    out = {k: float(v) for k, v in trainer._train_step(batch).items()}
    assert all(np.isfinite(v) for v in out.values()), out
    assert trainer.task.generator.get_layer("down0_a").compute_dtype == precision.split("_")[1]
    if precision == "mixed_float16":
        # Loss scaling through keras.optimizers.LossScaleOptimizer in the custom loop.
        assert out["loss_scale"] > 1.0
        assert isinstance(trainer.g_opt, tf.keras.optimizers.LossScaleOptimizer)


def test_loss_scale_backs_off_on_overflow(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, precision="mixed_float16")
    opt = trainer.g_opt
    var = trainer.task.generator.trainable_variables[0]
    before_w, before_scale = var.numpy().copy(), float(opt.dynamic_scale.numpy())
    grads = [tf.fill(v.shape, np.inf) if i == 0 else tf.zeros_like(v)
             for i, v in enumerate(trainer.task.generator.trainable_variables)]
    opt.apply(grads, trainer.task.generator.trainable_variables)
    assert float(opt.dynamic_scale.numpy()) == before_scale / 2  # scale halved, step skipped
    np.testing.assert_array_equal(var.numpy(), before_w)


@pytest.mark.parametrize("loss", ["least_squares", "hinge", "wgan_gp"])
def test_other_adversarial_losses_and_ema_train(tmp_path, tiny_splits, loss):
    trainer = _trainer(tmp_path, tiny_splits, task_cls=SuperResTask, adversarial_loss=loss, d_steps=2,
                       ema_decay=0.9)
    before = weights_digest(trainer.ema_generator)
    assert trainer.train() == 3
    assert weights_digest(trainer.ema_generator) != before
    assert trainer.eval_generator is trainer.ema_generator


def test_r1_penalty_trains_under_xla(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, r1_weight=5.0, jit_compile=True)
    batch = next(iter(trainer.task.train_dataset(4, 0, 0)))
    out = {k: float(v) for k, v in trainer._train_step(batch).items()}
    assert out["r1_penalty"] > 0 and all(np.isfinite(v) for v in out.values()), out


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, steps=2)
    trainer.train()
    good = trainer.manager.latest_checkpoint
    assert good.endswith("ckpt-2")
    resumed = _trainer(tmp_path, tiny_splits, steps=4)
    losses = resumed.task.losses

    def poisoned(batch, factors):  # the reconstruction becomes NaN from the third step (index 2) on
        out = dict(losses(batch, factors))
        out["reconstruction"] += tf.where(batch["step"] >= 2, np.nan, 0.0)
        return out

    resumed.task.losses = poisoned
    with pytest.raises(TrainingDiverged, match="diverged at step 3: non-finite .*reconstruction=nan.*last finite "
                                               "checkpoint is .*ckpt-2"):
        resumed.train()
    assert resumed.manager.latest_checkpoint == good


def _nonfinite_tensors(path):
    """{tensor name: non-finite count} of a checkpoint on disk, for the tensors holding a NaN or Inf."""
    reader = tf.train.load_checkpoint(path)
    counts = {}
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating:
            counts[name] = int(np.size(reader.get_tensor(name)) - np.isfinite(reader.get_tensor(name)).sum())
    return {k: v for k, v in counts.items() if v}


def test_an_update_that_poisons_the_weights_or_optimizer_state_is_never_checkpointed(tmp_path, tiny_splits):
    # A huge adversarial weight leaves the step's losses finite (they are computed before the update) but puts
    # Inf into the generator's Adam slots: the guard must look at what the checkpoint would hold.
    trainer = _trainer(tmp_path, tiny_splits, steps=2)
    trainer.train()
    poisoned = _trainer(tmp_path, tiny_splits, steps=6, adversarial_weight=1e38)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 3: [\d,]+ non-finite values in \d+ checkpointed "
                                               r"variables?: g_optimizer: .* \([\d,]+ of [\d,]+\).*last finite "
                                               r"checkpoint is .*ckpt-2\b"):
        poisoned.train()
    assert [os.path.basename(p) for p in poisoned.manager.checkpoints] == ["ckpt-1", "ckpt-2"]
    for path in poisoned.manager.checkpoints:
        assert _nonfinite_tensors(path) == {}, path

    # From scratch, with the last step's update poisoned: no checkpoint and no image summary from those weights.
    fresh = _trainer(tmp_path / "fresh", tiny_splits, steps=1, image_every=1, adversarial_weight=1e38)
    with pytest.raises(TrainingDiverged, match="diverged at step 1: .*last finite checkpoint is none"):
        fresh.train()
    assert fresh.manager.latest_checkpoint is None
    events = glob.glob(str(tmp_path / "fresh" / "run" / "tensorboard" / "events.*"))
    tags = {v.tag for path in events for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value}
    assert not any(t.startswith("samples/") for t in tags), tags


def test_the_finiteness_check_covers_every_floating_variable_a_checkpoint_holds(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, precision="mixed_float16", ema_decay=0.9, fake_pool=8)
    path = trainer.manager.save(checkpoint_number=0)
    floating = [n for n, d in tf.train.load_checkpoint(path).get_variable_to_dtype_map().items() if d.is_floating]
    labels = [label for label, _ in trainer.checked_variables]
    assert len(labels) == len(set(labels)) == len(floating)  # every tensor on disk is one checked variable
    for owner in ("generator", "discriminator", "g_optimizer", "d_optimizer", "ema_generator", "fake_pool"):
        assert any(label.startswith(owner + ": ") for label in labels), owner
    assert any(label.endswith("dynamic_scale") for label in labels)  # the loss scale
    assert trainer.nonfinite_variables() == {}
    slot = [v for label, v in trainer.checked_variables if label.startswith("fake_pool: ")][0]
    slot.assign(tf.fill(slot.shape, np.inf))
    bad = trainer.nonfinite_variables()
    assert list(bad.values()) == [(int(np.prod(slot.shape)), int(np.prod(slot.shape)))], bad


def test_restore_skips_a_poisoned_checkpoint_and_refuses_when_none_is_finite(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, steps=2)
    trainer.train()
    good = weights_digest(trainer.task.generator)
    # A checkpoint written with a NaN (as the guard once allowed): the generator weight and an Adam slot.
    trainer.task.generator.trainable_variables[0].assign(tf.fill(trainer.task.generator.trainable_variables[0].shape,
                                                                 np.nan))
    trainer.g_opt.variables[-1].assign(tf.fill(trainer.g_opt.variables[-1].shape, np.inf))
    trainer.step.assign(3)
    trainer.manager.save(checkpoint_number=3)
    logged = []
    again = _trainer(tmp_path, tiny_splits, steps=4)
    again.log = logged.append
    assert again.restore() == 2  # the newest finite checkpoint
    assert weights_digest(again.task.generator) == good
    assert again.last_finite_checkpoint.endswith("ckpt-2")
    assert len(logged) == 1 and re.fullmatch(r"resumed from \S+ckpt-2 at step 2, the newest finite checkpoint; "
                                             r"skipped \S+ckpt-3 \([\d,]+ non-finite values in 2 checkpointed "
                                             r"variables: .*generator: .*\)", logged[0]), logged
    assert again.train() == 4  # and it trains on from there; ckpt-3 is rewritten, finite
    assert _nonfinite_tensors(again.manager.latest_checkpoint) == {}

    only_poison = _trainer(tmp_path / "poison", tiny_splits, steps=1)
    only_poison.train()
    only_poison.task.generator.trainable_variables[0].assign(
        tf.fill(only_poison.task.generator.trainable_variables[0].shape, np.nan))
    only_poison.manager.save(checkpoint_number=1)
    with pytest.raises(TrainingDiverged, match="no finite checkpoint to resume from: .*ckpt-1 .*1 checkpointed "
                                               "variable: generator: "):
        _trainer(tmp_path / "poison", tiny_splits, steps=1).restore()


def test_resume_continues_from_checkpoint(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, steps=2)
    trainer.train()
    again = _trainer(tmp_path, tiny_splits, steps=2)
    assert again.restore() == 2
    assert weights_digest(again.task.generator) == weights_digest(trainer.task.generator)
    assert again.train() == 2  # nothing left to do


@pytest.mark.parametrize("task_cls", [InpaintTask, SuperResTask])
def test_prior_cycle_is_l1_of_generator_on_rendered_prior(tmp_path, tiny_splits, task_cls):
    trainer = _trainer(tmp_path, tiny_splits, task_cls=task_cls, prior_cycle_weight=5.0)
    task, G = trainer.task, trainer.task.generator
    batch = next(iter(task.train_dataset(4, 0, 0)))
    observed = task.observe(batch["prior"], batch["step"])
    error = tf.abs(task.generate(G, observed, training=True) - batch["prior"])
    hidden = 1.0 - observed["mask"] if task_cls is InpaintTask else tf.ones_like(error[..., :1])
    expected = tf.reduce_sum(error * hidden) / tf.reduce_sum(hidden * tf.ones_like(error))
    with tf.GradientTape() as tape:
        value = task.prior_cycle_loss(G, batch)
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)
    grads = tape.gradient(value, G.trainable_variables)
    assert all(g is not None for g in grads) and float(tf.linalg.global_norm(grads)) > 0
    out = trainer._train_step(batch)
    assert np.isfinite(float(out["prior_cycle"])) and float(out["prior_cycle"]) > 0


def test_prior_cycle_needs_a_task_that_defines_it(tmp_path, tiny_splits):
    task = InpaintTask(FaceTaskConfig(image_size=TINY, bias="none", g_filters=8, d_filters=8), tiny_splits,
                       log=lambda *_: None)
    task.has_prior_cycle = False
    with pytest.raises(ValueError, match="prior_cycle_weight=1.0: task 'inpaint' has no prior cycle"):
        Trainer(task, TrainConfig(prior_cycle_weight=1.0), str(tmp_path / "run"), log=lambda *_: None)
    with pytest.raises(ValueError, match="prior_cycle_weight=-1.0 must be >= 0"):
        Trainer(task, TrainConfig(prior_cycle_weight=-1.0), str(tmp_path / "run"), log=lambda *_: None)


def test_fake_pool_and_feature_matching_train_under_xla_and_the_pool_is_checkpointed(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, fake_pool=8, feature_matching_weight=1.0, jit_compile=True, steps=2)
    assert trainer.train() == 2
    assert int(trainer.fake_pool.filled.numpy()) == 8  # two batches of 4
    stored = trainer.fake_pool.items.numpy()
    assert stored.shape == (8, *trainer.task.discriminator.input_shape[1:]) and np.abs(stored).sum() > 0
    again = _trainer(tmp_path, tiny_splits, fake_pool=8, feature_matching_weight=1.0, steps=2)
    again.restore()
    np.testing.assert_array_equal(again.fake_pool.items.numpy(), stored)
    batch = next(iter(trainer.task.train_dataset(4, 0, 2)))
    out = {k: float(v) for k, v in trainer._train_step(batch).items()}
    assert out["feature_matching"] > 0 and all(np.isfinite(v) for v in out.values()), out


def test_fake_pool_smaller_than_a_batch_and_negative_feature_matching_are_rejected(tmp_path, tiny_splits):
    with pytest.raises(ValueError, match="--fake_pool=2 must be 0"):
        _trainer(tmp_path, tiny_splits, fake_pool=2)
    with pytest.raises(ValueError, match="--feature_matching_weight=-1.0 must be >= 0"):
        _trainer(tmp_path, tiny_splits, feature_matching_weight=-1.0)


def test_instance_noise_anneals_to_zero_is_reproducible_and_trains_under_xla(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, instance_noise=0.2, steps=4)
    x = tf.fill([2, 8, 8, 3], 0.5)

    def stddev(step, stream=0):
        return float(tf.math.reduce_std(trainer._instance_noise(x, tf.constant(step, tf.int64), stream) - x))

    assert abs(stddev(0) - 0.2) < 0.03 and abs(stddev(2) - 0.1) < 0.015 and stddev(4) == 0.0
    a = trainer._instance_noise(x, tf.constant(1, tf.int64), 0).numpy()
    np.testing.assert_array_equal(a, trainer._instance_noise(x, tf.constant(1, tf.int64), 0).numpy())
    assert not np.array_equal(a, trainer._instance_noise(x, tf.constant(1, tf.int64), 1).numpy())
    off = _trainer(tmp_path / "off", tiny_splits)
    assert off._instance_noise(x, tf.constant(0, tf.int64), 0) is x
    xla = _trainer(tmp_path / "xla", tiny_splits, instance_noise=0.2, jit_compile=True, steps=2)
    assert xla.train() == 2
    with pytest.raises(ValueError, match="--instance_noise=-0.1 must be >= 0"):
        _trainer(tmp_path, tiny_splits, instance_noise=-0.1)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_diff_augment_draws_per_stream_and_step_and_trains_under_xla(tmp_path, tiny_splits, precision):
    trainer = _trainer(tmp_path, tiny_splits, precision=precision, diff_augment="color,translation,cutout",
                       jit_compile=True, steps=2)
    x = tf.random.stateless_uniform([4, 8, 8, 3], [1, 2])

    def seen(step, stream):
        return trainer._discriminator_input(x, tf.constant(step, tf.int64), stream).numpy()

    np.testing.assert_array_equal(seen(1, 0), seen(1, 0))
    assert not np.array_equal(seen(1, 0), seen(1, 1)) and not np.array_equal(seen(1, 0), seen(2, 0))
    assert trainer.train() == 2
    with pytest.raises(ValueError, match="unknown transform"):
        _trainer(tmp_path, tiny_splits, diff_augment="colour")


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_generator_noise_lives_in_the_hole_is_stateless_and_trains_under_xla(tmp_path, tiny_splits, precision):
    trainer = _trainer(tmp_path, tiny_splits, precision=precision, task_kwargs={"generator_noise": True, "seed": 4},
                       jit_compile=True, steps=2)
    task = trainer.task
    batch = next(iter(task.train_dataset(4, 0, 0)))
    noise = task.generator_noise(batch).numpy()
    hole = (1.0 - batch["mask"].numpy()) > 0.5
    assert noise.shape == (4, TINY, TINY, 1) and np.all(noise[~hole] == 0.0)
    assert 0.8 < noise[hole].std() < 1.2
    np.testing.assert_array_equal(noise, task.generator_noise(batch).numpy())
    later = {**batch, "step": batch["step"] + 1}
    assert not np.array_equal(noise, task.generator_noise(later).numpy())
    # The strengths start at 0, so at initialisation the noise does not change the prediction.
    out = task.generate(task.generator, batch, training=False)
    np.testing.assert_allclose(out, task.generator({**task.generator_inputs(batch), "noise": tf.zeros_like(noise)}),
                               atol=1e-6 if precision == "float32" else 1e-2)
    assert trainer.train() == 2
    strengths = [v for v in task.generator.trainable_variables if "strength" in v.path]
    assert len(strengths) == 7  # the bottleneck and two per decoder level (depth 3)
    assert any(float(tf.reduce_max(tf.abs(v))) > 0 for v in strengths)


def test_negatives_are_the_faces_the_bias_excludes_and_take_a_share_of_the_fake_side(tmp_path, tiny_splits):
    trainer = _trainer(tmp_path, tiny_splits, task_kwargs=dict(bias="male", negatives=True), negative_weight=0.25,
                       d_learning_rate=0.0)
    task = trainer.task
    male = list(tiny_splits.train.attribute_names).index("Male")
    pool = len(task.prior) + len(task.negatives)
    assert len(task.negatives) > 0 and pool == len(tiny_splits.train) - len(task.observations)
    batch = next(iter(task.train_dataset(4, 0, 0)))
    negative = np.round(batch["negative"].numpy() * 255).astype(np.uint8)
    excluded = {image.tobytes() for image in task.negatives}
    assert all(image.tobytes() in excluded for image in negative)
    labels = {image.tobytes(): label for image, label in zip(tiny_splits.train.images, tiny_splits.train.labels,
                                                              strict=True)}
    assert not any(labels[image.tobytes()][male] > 0 for image in negative)  # no man among the negatives

    view = lambda x, real: task.discriminator_view(x, batch, real=real)  # noqa: E731
    real, neg = view(batch["prior"], True), view(batch["negative"], True)
    fake = view(task.generate(task.generator, batch, training=True), False)
    D = lambda x: task.discriminator(x, training=True)  # noqa: E731
    loss = trainer.disc_loss_fn
    expected = 0.75 * loss(D(real), D(fake)) + 0.25 * loss(D(real), D(neg))
    np.testing.assert_allclose(float(trainer._discriminator_steps(real, fake, neg, batch, {})), float(expected),
                               rtol=1e-5)
    out = trainer._train_step(batch)
    assert all(np.isfinite(float(v)) for v in out.values())


def test_negatives_need_a_bias_that_excludes_faces_and_a_weight_below_one(tmp_path, tiny_splits):
    with pytest.raises(ValueError, match="--negative_weight needs a --bias that excludes some faces.*'none' selected "
                                         "all 40 prior-pool images .superres takes 0.5 by default; "
                                         "--negative_weight=0 trains without negatives.$"):
        InpaintTask(FaceTaskConfig(image_size=TINY, bias="none", negatives=True, g_filters=8, d_filters=8),
                    tiny_splits, log=lambda *_: None)
    with pytest.raises(ValueError, match="--negative_weight=1.0 must be in"):
        _trainer(tmp_path, tiny_splits, negative_weight=1.0)
    trainer = _trainer(tmp_path, tiny_splits, negative_weight=0.5)  # bias none: its batches carry no negatives
    with pytest.raises(ValueError, match="task 'inpaint' gives no negatives"):
        trainer._train_step(next(iter(trainer.task.train_dataset(4, 0, 0))))


@pytest.mark.parametrize("task,bias,prior_dir,expected", [
    ("superres", "male", None, 0.5), ("superres", "Male and not Young", None, 0.5), ("superres", "none", None, 0.0),
    ("superres", " All ", None, 0.0), ("superres", "male", "faces/", 0.0), ("inpaint", "male", None, 0.0)])
def test_super_resolution_takes_negatives_by_default_only_where_the_bias_excludes_faces(task, bias, prior_dir,
                                                                                      expected):
    import types

    from aign_tf import building, main

    defaults, _ = main.program_flags()
    flags = types.SimpleNamespace(**{**vars(defaults), "task": task, "bias": bias, "prior_dir": prior_dir})
    building.apply_task_defaults(flags)
    assert flags.negative_weight == expected
    explicit = types.SimpleNamespace(**{**vars(defaults), "task": task, "bias": bias, "negative_weight": 0.25})
    building.apply_task_defaults(explicit)
    assert explicit.negative_weight == 0.25  # set by the user: kept (the task says if there are no negatives)
