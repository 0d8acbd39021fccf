"""The AIGN training loop: tf.function GradientTape steps for discriminator and generator, each with its own
optimizer (Keras 3 ``LossScaleOptimizer`` under ``mixed_float16``), optional EMA of the generator, checkpoints
that a re-run resumes from, TensorBoard summaries, a progress line and a NaN/Inf guard: a checkpoint is written,
restored, evaluated or exported only when every variable it holds is finite.

It knows a task only through :class:`aign_tf.tasks.base.Task`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from aign_tf import augment
from aign_tf import losses as losses_lib
from trainers import summaries
from trainers.fake_pool import FakePool

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


class TrainingDiverged(RuntimeError):
    """A loss or a checkpointed variable (weights, optimizer slots, loss scale, EMA, fake pool) became NaN or Inf;
    nothing non-finite was saved, and the message names the last finite checkpoint."""


def checkpointed_float_variables(items: dict) -> list[tuple[str, tf.Variable]]:
    """Every floating-point variable reachable from a checkpoint's objects, once each, labelled
    ``<checkpoint key>: <variable path>``. items: {checkpoint key: a tf.Variable, or an object with ``.variables``
    (a Keras model or optimizer: weights, slots, loss scale; a tf.Module such as the fake pool)}.
    Integer variables (iterations, step counters) cannot hold a NaN or Inf and are left out."""
    seen, out = set(), []
    for key, obj in items.items():
        for v in [obj] if isinstance(obj, tf.Variable) else obj.variables:
            if id(v) in seen or not tf.as_dtype(v.dtype).is_floating:
                continue
            seen.add(id(v))
            out.append((f"{key}: {getattr(v, 'path', None) or v.name}", v))
    return out


def describe_nonfinite(bad: dict[str, tuple[int, int]], shown: int = 4) -> str:
    """'N non-finite values in M variables: a (n of size), ...' for {label: (non-finite count, size)}, worst first."""
    worst = sorted(bad.items(), key=lambda kv: -kv[1][0])
    listed = ", ".join(f"{label} ({n:,} of {size:,})" for label, (n, size) in worst[:shown])
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return (f"{sum(n for n, _ in bad.values()):,} non-finite values in {len(bad)} checkpointed variable"
            f"{'s' if len(bad) > 1 else ''}: {listed}{more}")


@dataclasses.dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 16
    seed: int = 0
    adversarial_loss: str = "non_saturating"
    d_steps: int = 1
    gp_weight: float = 10.0
    r1_weight: float = 0.0
    reconstruction_weight: float = 10.0
    adversarial_weight: float = 1.0
    supervised_weight: float = 10.0
    prior_cycle_weight: float = 0.0
    negative_weight: float = 0.0  # share of the discriminator's "fake" side given to the prior's negatives
    fake_pool: int = 0  # generated samples kept for the discriminator (0 = off)
    feature_matching_weight: float = 0.0
    instance_noise: float = 0.0  # stddev of Gaussian noise on the discriminator's inputs at step 0 (0 = off)
    diff_augment: str = ""  # DiffAugment transforms on the discriminator's inputs, e.g. "translation,cutout"
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5
    ema_decay: float = 0.0
    mixed_precision: str = "float32"
    jit_compile: bool = True
    checkpoint_every: int = 250
    log_every: int = 25
    image_every: int = 250
    max_checkpoints: int = 3

    def validate(self):
        if self.adversarial_loss not in losses_lib.ADVERSARIAL_LOSSES:
            raise ValueError(f"--adversarial_loss={self.adversarial_loss!r} is not one of "
                             f"{sorted(losses_lib.ADVERSARIAL_LOSSES)}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"--mixed_precision={self.mixed_precision!r} is not one of {PRECISIONS}")
        if self.fake_pool and self.fake_pool < self.batch_size:
            raise ValueError(f"--fake_pool={self.fake_pool} must be 0 (off) or at least --batch_size="
                             f"{self.batch_size}")
        augment.validate_policy(self.diff_augment)
        if not 0.0 <= self.negative_weight < 1.0:
            raise ValueError(f"--negative_weight={self.negative_weight} must be in [0, 1)")
        for name in ("prior_cycle_weight", "feature_matching_weight", "instance_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name}={getattr(self, name)} must be >= 0")
        for name in ("steps", "batch_size", "d_steps", "checkpoint_every", "log_every", "image_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}={getattr(self, name)} must be >= 1")


def _optimizer(lr: float, beta_1: float, precision: str) -> keras.optimizers.Optimizer:
    opt = keras.optimizers.Adam(lr, beta_1=beta_1)
    return keras.optimizers.LossScaleOptimizer(opt) if precision == "mixed_float16" else opt


class _Progress:
    """One progress line: step, named values, steps/s and ETA (redrawn in place on a terminal)."""

    def __init__(self, total: int, start: int, stream=sys.stdout):
        self.total, self.start, self.stream = total, start, stream
        self.t0 = time.perf_counter()
        self.tty = stream.isatty()

    def update(self, step: int, values: dict[str, float], final: bool = False):
        elapsed = time.perf_counter() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        width = 20
        done = int(width * step / self.total)
        text = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        eta_s = "--" if math.isnan(eta) else f"{int(eta) // 60}:{int(eta) % 60:02d}"
        line = f"step {step}/{self.total} [{'=' * done}{'.' * (width - done)}] {text} {rate:.2f} steps/s ETA {eta_s}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Trainer:
    """Trains ``task.generator`` and ``task.discriminator``; state lives in ``run_dir``. ``hparams`` ({name: bool,
    int, float or str}, e.g. :func:`trainers.summaries.hparam_values` of the flags) go to TensorBoard's HParams
    dashboard when training starts."""

    def __init__(self, task, config: TrainConfig, run_dir: str, log=print, hparams: dict | None = None):
        config.validate()
        if config.prior_cycle_weight > 0 and not task.has_prior_cycle:
            raise ValueError(f"--prior_cycle_weight={config.prior_cycle_weight}: task {task.name!r} has no prior "
                             "cycle term; use 0")
        if config.diff_augment and len(getattr(task.discriminator.input, "shape", ())) != 4:
            raise ValueError(f"--diff_augment={config.diff_augment}: task {task.name!r} has no image discriminator; "
                             "leave it empty")
        self.task, self.config, self.run_dir, self.log, self.hparams = task, config, run_dir, log, hparams
        self.gen_loss_fn, self.disc_loss_fn = losses_lib.ADVERSARIAL_LOSSES[config.adversarial_loss]
        self.g_opt = _optimizer(config.g_learning_rate, config.beta_1, config.mixed_precision)
        self.d_opt = _optimizer(config.d_learning_rate, config.beta_1, config.mixed_precision)
        self.g_opt.build(task.generator.trainable_variables)
        self.d_opt.build(task.discriminator.trainable_variables)
        self.ema_generator = None
        if config.ema_decay > 0:
            self.ema_generator = keras.models.clone_model(task.generator)
            self.ema_generator.set_weights(task.generator.get_weights())
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        items = dict(generator=task.generator, discriminator=task.discriminator, g_optimizer=self.g_opt,
                     d_optimizer=self.d_opt, step=self.step)
        if self.ema_generator is not None:
            items["ema_generator"] = self.ema_generator
        self.fake_pool = None
        if config.fake_pool:
            self.fake_pool = FakePool(config.fake_pool, task.discriminator.input_shape[1:], config.seed + 5)
            items["fake_pool"] = self.fake_pool
        # The discriminator's last hidden features (the input of its "logits" layer), for feature matching.
        self.d_features = None
        if config.feature_matching_weight > 0:
            self.d_features = keras.Model(task.discriminator.input, task.discriminator.get_layer("logits").input)
        self.checkpoint = tf.train.Checkpoint(**items)
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(run_dir, "checkpoints"),
                                                  max_to_keep=config.max_checkpoints)
        self.last_finite_checkpoint = None  # the newest checkpoint restored or saved with every variable finite
        # One fused check over everything the checkpoint holds: the non-finite count of each floating variable.
        self.checked_variables = checkpointed_float_variables(items)
        self._count_nonfinite = tf.function(lambda: tf.stack([
            tf.math.count_nonzero(tf.logical_not(tf.math.is_finite(tf.convert_to_tensor(v))), dtype=tf.int64)
            for _, v in self.checked_variables]))
        self._train_step = tf.function(self._step, jit_compile=config.jit_compile)

    @property
    def tensorboard_dir(self) -> str:
        return os.path.join(self.run_dir, "tensorboard")

    @property
    def eval_generator(self) -> keras.Model:
        """The generator used for evaluation and export: the EMA copy when enabled."""
        return self.ema_generator if self.ema_generator is not None else self.task.generator

    def nonfinite_variables(self) -> dict[str, tuple[int, int]]:
        """{label: (non-finite values, size)} of the checkpointed variables holding a NaN or Inf (empty: all finite)."""
        counts = self._count_nonfinite().numpy()
        return {label: (int(n), int(np.prod(v.shape))) for (label, v), n in zip(self.checked_variables, counts,
                                                                                strict=True) if n}

    def restore(self) -> int:
        """Restores the newest checkpoint in run_dir whose variables are all finite; returns the step reached
        (0 without a checkpoint). A newer checkpoint holding a NaN or Inf (one written before the guard checked
        the variables) is skipped with a message; if every checkpoint holds one, TrainingDiverged."""
        latest = self.manager.latest_checkpoint
        newest_first = ([latest] if latest else []) + [p for p in reversed(self.manager.checkpoints) if p != latest]
        skipped = []
        for path in newest_first:
            self.checkpoint.restore(path).assert_existing_objects_matched()
            bad = self.nonfinite_variables()
            if not bad:
                self.last_finite_checkpoint = path
                for generator in (self.task.generator, self.ema_generator):
                    if generator is not None:  # values the task derives from restored weights (an exemplar bank's)
                        self.task.generator_restored(generator)
                self.log(f"resumed from {path} at step {int(self.step.numpy())}"
                         + (f", the newest finite checkpoint; skipped {'; '.join(skipped)}" if skipped else ""))
                return int(self.step.numpy())
            skipped.append(f"{path} ({describe_nonfinite(bad, shown=2)})")
        if skipped:
            raise TrainingDiverged(f"no finite checkpoint to resume from: {'; '.join(skipped)}. Delete "
                                   f"{self.manager.directory} or choose another --run_dir")
        return 0

    def check_finite(self, step: int, losses: dict[str, float] | None = None) -> None:
        """TrainingDiverged if a loss in ``losses`` or a checkpointed variable is NaN or Inf, naming the step,
        the non-finite terms and the last finite checkpoint (the state is not saved)."""
        bad_losses = {k: v for k, v in (losses or {}).items() if not math.isfinite(v)}
        bad_variables = self.nonfinite_variables()
        if not bad_losses and not bad_variables:
            return
        what = []
        if bad_losses:
            what.append("non-finite " + ", ".join(f"{k}={v}" for k, v in bad_losses.items()))
        if bad_variables:
            what.append(describe_nonfinite(bad_variables))
        raise TrainingDiverged(
            f"training diverged at step {step}: {'; '.join(what)}. Stopped without saving; the last finite checkpoint "
            f"is {self.last_finite_checkpoint or 'none (no checkpoint yet)'}. Try a lower learning rate or loss "
            "weight, or --mixed_precision=float32")

    # --- one step ------------------------------------------------------------------------------------
    @staticmethod
    def _scaled(opt, loss):
        """The loss the tape differentiates: scaled up under a LossScaleOptimizer (which unscales the
        gradients, checks them for overflow and adjusts the scale inside ``apply``). Call inside the tape."""
        return opt.scale_loss(loss) if isinstance(opt, keras.optimizers.LossScaleOptimizer) else loss

    def _instance_noise(self, x: tf.Tensor, step: tf.Tensor, stream: int) -> tf.Tensor:
        """Instance noise (Sonderby et al. 2017, "Amortised MAP inference for image super-resolution", section
        3.4; Arjovsky & Bottou 2017): Gaussian noise on what the discriminator sees, real and fake alike, with a
        stddev of ``instance_noise`` at step 0 falling linearly to 0 at ``steps``. It makes the two
        distributions overlap, so the discriminator cannot separate them perfectly and win early, and it hides
        pixel-level differences, so early on it judges (and the generator follows) coarser structure. Drawn
        statelessly from (seed, step, stream): resumable and deterministic."""
        cfg = self.config
        if cfg.instance_noise <= 0:
            return x
        fraction_left = tf.maximum(1.0 - tf.cast(step, tf.float32) / cfg.steps, 0.0)
        seed = tf.stack([tf.constant(cfg.seed + 11 + stream, tf.int64), step])
        noise = tf.random.stateless_normal(tf.shape(x), seed, dtype=tf.float32)
        return x + tf.cast(cfg.instance_noise * fraction_left * noise, x.dtype)

    def _discriminator_input(self, x: tf.Tensor, step: tf.Tensor, stream: int) -> tf.Tensor:
        """What the discriminator sees of ``x``: DiffAugment's transforms (``diff_augment``, drawn statelessly
        from (seed, step, stream)), then instance noise."""
        if self.config.diff_augment:
            key = tf.random.experimental.stateless_fold_in(
                tf.stack([tf.constant(self.config.seed, tf.int64), step]), 7000 + stream)
            x = augment.diff_augment(x, key, self.config.diff_augment)
        return self._instance_noise(x, step, stream)

    def _discriminator_steps(self, real, fake, negative, batch, out):
        """``d_steps`` updates of the discriminator on the same real and generated views (the generator does
        not change between them); returns the last loss. ``fake`` carries no gradient to the generator.
        With ``negative`` (views of real factors the prior excludes) the loss is
        ``(1 - w) * L(real, fake) + w * L(real, negative)``, w = ``negative_weight``: the negatives take a
        share w of the fake side (Rumi-GAN, Asokan & Seelamantula 2020, "Teaching a GAN What Not to Learn")."""
        cfg, D = self.config, self.task.discriminator
        for i in range(cfg.d_steps):
            with tf.GradientTape() as tape:
                fake_i = fake if self.fake_pool is None else self.fake_pool.query(fake, batch["step"] * cfg.d_steps + i)
                see = lambda x, stream: tf.cast(  # noqa: E731
                    D(self._discriminator_input(x, batch["step"], stream), training=True), tf.float32)
                real_logits, fake_logits = see(real, 2 * i), see(fake_i, 2 * i + 1)
                d_loss = self.disc_loss_fn(real_logits, fake_logits)
                if negative is not None:
                    w = cfg.negative_weight
                    d_loss = (1.0 - w) * d_loss + w * self.disc_loss_fn(real_logits, see(negative, 100 + i))
                if cfg.adversarial_loss == "wgan_gp":
                    seed = tf.stack([tf.cast(cfg.seed + 3, tf.int64), batch["step"]])
                    gp = losses_lib.gradient_penalty(lambda x: D(x, training=True), real, fake_i, seed)
                    out["gradient_penalty"] = gp
                    d_loss = d_loss + cfg.gp_weight * gp
                if cfg.r1_weight > 0:
                    r1 = losses_lib.r1_penalty(lambda x: D(x, training=True), real)
                    out["r1_penalty"] = r1
                    d_loss = d_loss + cfg.r1_weight * r1
                d_scaled = self._scaled(self.d_opt, d_loss)
            self.d_opt.apply(tape.gradient(d_scaled, D.trainable_variables), D.trainable_variables)
        return d_loss

    def _step(self, batch):
        """One training step: the generator's prediction is computed once; the discriminator updates on it
        (without recording), then the generator updates against the updated discriminator."""
        task, cfg = self.task, self.config
        G, D = task.generator, task.discriminator
        out = {}
        real = task.discriminator_view(task.real_factors(batch), batch, real=True)  # fixed for the whole step
        negative = None
        if cfg.negative_weight > 0:
            negative = task.negative_factors(batch)
            if negative is None:
                raise ValueError(f"--negative_weight={cfg.negative_weight}: task {task.name!r} gives no negatives "
                                 "(face tasks with a --bias that excludes faces do)")
            negative = task.discriminator_view(negative, batch, real=True)
        with tf.GradientTape() as tape:
            fake = task.generate(G, batch, training=True)
            fake_view = task.discriminator_view(fake, batch, real=False)
            with tape.stop_recording():
                detached = tf.nest.map_structure(tf.stop_gradient, fake_view)
                out["d_loss"] = self._discriminator_steps(real, detached, negative, batch, out)
            terms = task.losses(batch, fake)
            if cfg.prior_cycle_weight > 0:
                terms["prior_cycle"] = task.prior_cycle_loss(G, batch)
            seen_view = self._discriminator_input(fake_view, batch["step"], 2 * cfg.d_steps)
            adv = self.gen_loss_fn(tf.cast(D(seen_view, training=True), tf.float32))
            if self.d_features is not None:
                terms["feature_matching"] = losses_lib.feature_matching_loss(
                    self.d_features(real, training=True), self.d_features(fake_view, training=True))
            weights = {"reconstruction": cfg.reconstruction_weight, "supervised": cfg.supervised_weight,
                       "prior_cycle": cfg.prior_cycle_weight, "feature_matching": cfg.feature_matching_weight}
            g_loss = cfg.adversarial_weight * adv + tf.add_n([weights.get(k, 1.0) * v for k, v in terms.items()])
            g_scaled = self._scaled(self.g_opt, g_loss)
        self.g_opt.apply(tape.gradient(g_scaled, G.trainable_variables), G.trainable_variables)
        if self.ema_generator is not None:
            for ema_w, w in zip(self.ema_generator.weights, G.weights, strict=True):
                if w.trainable:  # the rest (an exemplar bank) keeps its cloned value: averaging adds rounding error
                    ema_w.assign(cfg.ema_decay * ema_w + (1.0 - cfg.ema_decay) * tf.cast(w, ema_w.dtype))
        out.update(g_loss=g_loss, g_adversarial=adv, **terms)
        out.update(task.metrics(batch, tf.nest.map_structure(tf.stop_gradient, fake)))
        if isinstance(self.g_opt, keras.optimizers.LossScaleOptimizer):
            out["loss_scale"] = tf.cast(self.g_opt.dynamic_scale, tf.float32)
        return out

    # --- the loop ------------------------------------------------------------------------------------
    def train(self) -> int:
        cfg = self.config
        terms = ("reconstruction", "supervised", "prior_cycle", "feature_matching")
        start = self.restore()
        if start >= cfg.steps:
            self.log(f"already trained to step {start} (--steps={cfg.steps}); nothing to do")
            return start
        writer = tf.summary.create_file_writer(self.tensorboard_dir)
        if self.hparams:
            summaries.write_hparams(writer, self.hparams)
        preview = next(iter(self.task.train_dataset(8, cfg.seed + 1000, 0)))
        data = iter(self.task.train_dataset(cfg.batch_size, cfg.seed, start))
        progress = _Progress(cfg.steps, start)
        self.log(f"training {self.task.name} from step {start} to {cfg.steps}; TensorBoard: "
                 f"tensorboard --logdir {self.tensorboard_dir}")
        step = start
        wait_s = 0.0
        while step < cfg.steps:
            t = time.perf_counter()
            batch = next(data)
            wait_s += time.perf_counter() - t
            values = {k: float(v) for k, v in self._train_step(batch).items()}
            if step == start:  # the graph of one training step, once per run (the step is traced by now)
                summaries.write_graph(writer, self._train_step.get_concrete_function(batch).graph)
            if not all(math.isfinite(v) for v in values.values()):  # (losses are computed before the update)
                self.check_finite(step + 1, values)
            step += 1
            self.step.assign(step)
            if step % cfg.log_every == 0 or step == cfg.steps:
                with writer.as_default(step=step):
                    for k, v in values.items():
                        tf.summary.scalar(f"train/{k}", v)
                    tf.summary.scalar("perf/input_wait_fraction", wait_s / max(time.perf_counter() - progress.t0,
                                                                              1e-9))
                shown = {k: values[k] for k in ("d_loss", "g_adversarial", *terms) if k in values}
                progress.update(step, shown, final=step == cfg.steps)
            images_due = step % cfg.image_every == 0 or step == cfg.steps
            checkpoint_due = step % cfg.checkpoint_every == 0 or step == cfg.steps
            if images_due or checkpoint_due:
                self.check_finite(step)  # the updated weights and optimizer state, before anything reads them
            if images_due:
                fake = self.task.generate(self.eval_generator, preview, training=False)
                with writer.as_default(step=step):
                    tf.summary.image("samples/input|output|rendered|prior", self.task.sample_images(preview, fake))
            if checkpoint_due:
                self.last_finite_checkpoint = self.manager.save(checkpoint_number=step)
        writer.flush()
        return step


def weights_digest(model: keras.Model) -> str:
    """A short digest of a model's weights, for comparing runs (e.g. resumed vs uninterrupted)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]
