"""The two face tasks: super-resolution (``superres``) and inpainting (``inpaint``).

Both predict a full-resolution face (the factors) from an observation, render it back with a fixed renderer
(average-pool downsampling / masking) for the reconstruction loss, and let a PatchGAN discriminator compare
predicted faces with an unpaired prior collection selected by ``--bias`` (or read from ``--prior_dir``).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from aign_tf import formats, losses, metrics, renderers
from aign_tf.blending import pull_push_fill
from aign_tf.data import bias as bias_lib
from aign_tf.data import synthetic_faces
from aign_tf.data.faces import FaceArrays, FaceSplits, step_batches
from aign_tf.networks.image import exemplar_generator, patch_discriminator, unet_generator
from aign_tf.tasks.base import Batch, Task

REPORTED_ATTRIBUTES = ("Male", "Young", "Big_Lips", "Big_Nose", "Smiling", "Eyeglasses")
# How eval.json's *_ci95 intervals are computed (written beside them; docs/measuring-intervals.md).
CI95_METHODS = {
    "rate": "Wilson score interval, binomial over the held-out images",
    "shift": f"paired percentile bootstrap over the held-out images ({metrics.BOOTSTRAP_RESAMPLES} resamples, "
             f"seed {metrics.BOOTSTRAP_SEED})",
    "probe_accuracy": "Wilson score interval over the probe's held-out images",
    "valid": f"at least {metrics.MIN_FIGURE_IMAGES} images and the probe accuracy interval's low end "
             f">= {metrics.MIN_PROBE_ACCURACY}"}
MASK_MODES = ("mouth_nose", "random_box")


@dataclasses.dataclass
class FaceTaskConfig:
    image_size: int = 64
    factor: int = 4  # super-resolution downsampling factor
    mask: str = "mouth_nose"  # inpainting hole: the mouth/nose box, or random boxes
    bias: str = "male"
    prior_dir: str | None = None
    g_filters: int = 16
    d_filters: int = 16
    spectral_norm: bool = False
    generator_noise: bool = False  # per-pixel noise inputs where the observation is silent (NoiseInjection)
    seed: int = 0  # the run's seed: keys the generator's noise
    dtype_policy: str = "float32"
    paired_fraction: float = 0.0
    negatives: bool = False  # batches also carry faces the bias excludes (for the discriminator's negative term)
    exemplars: int = 0  # > 0: the generator picks one of this many prior faces (at most all; see ``compose``)
    exemplar_balance: float = 0.0  # weight of the load-balancing term on the exemplar choice
    exemplar_match: float = 0.0  # weight of -(each exemplar's reconstruction error) in the choice's logits
    eval_images: int = 1000
    data_seed: int = 0
    cache_dir: str = "datasets/cache"


def _load_prior_dir(prior_dir: str, image_size: int) -> np.ndarray:
    paths = formats.list_images(prior_dir)
    images = np.stack([formats.read_image(p, image_size) for p in paths])
    return np.round(images * 255.0).astype(np.uint8)


def seam_figures(outputs: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict:
    """The hole border's visibility on the outputs and on the true faces of the same inputs (metrics.seam_difference)
    and their ratio with its paired 95 % bootstrap interval. outputs, truth: [N, H, W, 3] in [0, 1]; mask:
    [N, H, W, 1], 1 = visible. Images without a border (no hole) are left out; ``seam_images`` counts the rest."""
    out, true = metrics.seam_difference(outputs, mask), metrics.seam_difference(truth, mask)
    used = np.isfinite(out) & np.isfinite(true)
    figures = {"seam_images": int(used.sum())}
    if not used.any():
        return figures
    figures.update(seam_outputs=float(out[used].mean()), seam_true=float(true[used].mean()))
    if figures["seam_true"] > 0:
        figures["seam_ratio"] = figures["seam_outputs"] / figures["seam_true"]
        try:
            figures["seam_ratio_ci95"] = metrics.bootstrap_ratio_interval(out[used], true[used]).tolist()
        except ValueError:  # a resample whose true faces have no contrast at all: no interval
            figures["seam_ratio_ci95"] = None
    return figures


def _coordinates(images: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C] -> [B, H, W, 2] float32 pixel-centre coordinates (y, x) in [0, 1] (CoordConv, Liu et al.
    2018). Inside a hole every other input channel is constant, so without them the generator's
    full-resolution layers cannot tell where in the hole they are and draw 8-pixel blocks of its bottleneck."""
    shape = tf.shape(images)
    h, w = images.shape[1], images.shape[2]
    grid = tf.stack(tf.meshgrid(renderers.pixel_centres(h), renderers.pixel_centres(w), indexing="ij"), -1)
    return tf.broadcast_to(grid, tf.stack([shape[0], h, w, 2]))


class FaceTask(Task):
    """Shared machinery; subclasses define the observation, the generator's inputs and the renderer."""

    in_channels: int

    def __init__(self, config: FaceTaskConfig, splits: FaceSplits, log=print):
        self.config = config
        self.splits = splits
        self.log = log
        size = config.image_size
        names = splits.train.attribute_names
        rng = np.random.default_rng(config.data_seed)
        order = rng.permutation(len(splits.train))
        # Unpaired by construction: observations and the prior collection come from disjoint halves.
        half = len(order) // 2
        self.observations: FaceArrays = splits.train.subset(np.sort(order[:half]))
        if config.prior_dir:
            self.prior = _load_prior_dir(config.prior_dir, size)
            self.prior_description = f"{len(self.prior)} images from --prior_dir={config.prior_dir}"
        else:
            pool = splits.train.subset(np.sort(order[half:]))
            chosen = bias_lib.select_prior(pool.labels, config.bias, names)
            self.prior = pool.images[chosen]
            self.prior_description = (f"{len(chosen)} of {len(pool)} prior-pool images selected by "
                                      f"--bias={config.bias!r}")
        self.negatives = None
        if config.negatives:
            if config.prior_dir or len(chosen) == len(pool):
                raise ValueError("--negative_weight needs a --bias that excludes some faces (the excluded ones are "
                                 f"the negatives); --bias={config.bias!r}"
                                 + (f" with --prior_dir={config.prior_dir}" if config.prior_dir else
                                    f" selected all {len(pool)} prior-pool images")
                                 + " (superres takes 0.5 by default; --negative_weight=0 trains without negatives)")
            self.negatives = np.delete(pool.images, chosen, axis=0)
            self.prior_description += f"; {len(self.negatives)} excluded faces are the negatives"
        n_paired = int(round(config.paired_fraction * len(self.observations)))
        self.paired = np.zeros(len(self.observations), bool)
        self.paired[rng.permutation(len(self.observations))[:n_paired]] = True
        if config.exemplars > 0:  # the choice of a prior face is the whole generator (no U-Net)
            if config.exemplars > len(self.prior):
                log(f"--exemplars={config.exemplars}: the prior holds {len(self.prior)} faces, all of them are "
                    "the exemplars")
                config = self.config = dataclasses.replace(config, exemplars=len(self.prior))
            bank = self.prior[np.sort(rng.permutation(len(self.prior))[:config.exemplars])].astype(np.float32) / 255.0
            terms = self.exemplar_match_terms(tf.constant(bank)) if config.exemplar_match > 0 else None
            self.generator = exemplar_generator(bank, size, self.in_channels, config.g_filters,
                                                dtype_policy=config.dtype_policy, match_terms=terms)
        else:
            self.generator = unet_generator(size, self.in_channels, config.g_filters,
                                            noise=config.generator_noise, dtype_policy=config.dtype_policy)
        self.discriminator = patch_discriminator(self.discriminator_size(), 3, config.d_filters,
                                                 spectral_norm=config.spectral_norm, dtype_policy=config.dtype_policy)

    def discriminator_size(self) -> int:
        """Side of the square the discriminator sees (see ``discriminator_view``)."""
        return self.config.image_size

    # --- what subclasses define -------------------------------------------------------------------
    def observe(self, images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        """images float32 [B, S, S, 3] -> dict with "observation" (and whatever render needs)."""
        raise NotImplementedError

    def generator_inputs(self, batch: Batch) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    pixel_weighted_consistency = False  # whether consistency_weights gives a [B, h, w, 1] weight per pixel

    def consistency_weights(self, batch: Batch) -> tf.Tensor | None:
        """Which observed pixels the reconstruction compares (None = all)."""
        return None

    def hidden_weights(self, batch: Batch) -> tf.Tensor | None:
        """Which pixels the observation does not determine and the generator must invent (None = all)."""
        return None

    # --- Task interface ---------------------------------------------------------------------------
    def train_dataset(self, batch_size: int, seed: int, start_step: int) -> tf.data.Dataset:
        def prepare(images, step):
            out = self.observe(images, step)
            out["truth"] = images  # ground truth: used only by metrics and the paired term
            return out

        return step_batches(self.observations.images, self.prior, batch_size, seed, start_step, prepare,
                            paired=self.paired, negatives=self.negatives)

    def _call_generator(self, generator: keras.Model, batch: Batch, training: bool):
        """The generator's raw output on ``batch``, with its noise and Gumbel inputs when it has them."""
        inputs = self.generator_inputs(batch)
        if self.config.generator_noise and "noise" in generator.input:
            inputs["noise"] = self.generator_noise(batch)
        if self.config.exemplars:
            inputs["logit_offset"] = self.exemplar_offset(generator, batch, training)
        return generator(inputs, training=training)

    def generate(self, generator: keras.Model, batch: Batch, training: bool) -> tf.Tensor:
        return self._factors(self._call_generator(generator, batch, training), batch)

    def _factors(self, out, batch: Batch) -> tf.Tensor:
        """The predicted faces [B, S, S, 3] float32 from the generator's raw output."""
        if not self.config.exemplars:
            return tf.cast(out, tf.float32)
        return self.compose(tf.cast(out["face"], tf.float32), out["exemplar"], batch)

    def exemplar_gumbel(self, batch: Batch) -> tf.Tensor:
        """[B, K] Gumbel(0, 1) noise for the exemplar choice while training, stateless in (seed, batch["step"])."""
        shape = tf.stack([tf.shape(batch["observation"])[0], self.config.exemplars])
        key = tf.stack([tf.constant(self.config.seed + 23, tf.int64), tf.cast(batch["step"], tf.int64)])
        return -tf.math.log(-tf.math.log(tf.random.stateless_uniform(shape, key, minval=1e-20, maxval=1.0)))

    def exemplar_match_terms(self, bank: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """What the match term needs of the bank [K, S, S, 3], which depends on the bank alone: the bank rendered
        (``observable``), flattened and transposed for a plain matmul, [h*w*3, K], and its squares summed over
        the values one weight covers: [h*w, K] when ``consistency_weights`` weighs each observed pixel (a mask),
        else [1, K] (every value weighs 1). The choice layer keeps them beside the bank (``ExemplarChoice.set_bank``),
        so a step does not render the bank and square it again."""
        rendered = self.observable(tf.convert_to_tensor(bank, tf.float32))  # [K, h, w, 3]
        k = rendered.shape[0]
        squares = tf.reduce_sum(tf.square(rendered), axis=-1)  # [K, h, w]: one weight per pixel covers 3 values
        squares = tf.reshape(squares, [k, -1]) if self.pixel_weighted_consistency else \
            tf.reduce_sum(squares, axis=[1, 2])[:, None]
        return tf.transpose(tf.reshape(rendered, [k, -1])), tf.transpose(squares)

    def exemplar_match_error(self, terms: tuple[tf.Tensor, tf.Tensor], batch: Batch) -> tf.Tensor:
        """[B, K] mean squared difference between each bank face, rendered, and each observation, over the
        observed values (``consistency_weights``): the reconstruction error each exemplar would have.
        terms: ``exemplar_match_terms(bank)``. With weights w per pixel, rendered bank r and observation o it is
        (sum w r^2 - 2 sum w o r + sum w o^2) / sum w, the first two as [B, values] x [values, K] matmuls."""
        rendered, rendered_sq = terms
        obs = batch["observation"]
        flat = lambda x: tf.reshape(x, [tf.shape(x)[0], -1])  # noqa: E731
        weights = self.consistency_weights(batch)
        if weights is None:
            cross = tf.matmul(flat(obs), rendered)
            bank_sq = rendered_sq  # [1, K]
            obs_sq = tf.reduce_sum(tf.square(obs), axis=[1, 2, 3])[:, None]
            count = float(np.prod(obs.shape[1:]))
        else:  # [B, h, w, 1]: one weight per observed pixel
            cross = tf.matmul(flat(weights * obs), rendered)
            bank_sq = tf.matmul(flat(weights), rendered_sq)
            obs_sq = tf.reduce_sum(weights * tf.square(obs), axis=[1, 2, 3])[:, None]
            count = float(obs.shape[-1]) * tf.reduce_sum(weights, axis=[1, 2, 3])[:, None]
        return (bank_sq - 2.0 * cross + obs_sq) / tf.maximum(count, 1.0)

    def exemplar_offset(self, generator: keras.Model, batch: Batch, training: bool) -> tf.Tensor:
        """[B, K] what is added to the choice's learned logits: ``-exemplar_match`` times the match error
        (when on, from the match terms the choice layer keeps beside its bank) plus, while training, Gumbel noise
        (without it the choice is the highest logit)."""
        offset = tf.zeros(tf.stack([tf.shape(batch["observation"])[0], self.config.exemplars]))
        if self.config.exemplar_match > 0:
            choice = generator.get_layer("exemplar_choice")
            terms = (tf.convert_to_tensor(choice.match_rendered), tf.convert_to_tensor(choice.match_rendered_sq))
            offset -= self.config.exemplar_match * self.exemplar_match_error(terms, batch)
        return offset + self.exemplar_gumbel(batch) if training else offset

    def generator_restored(self, generator: keras.Model) -> None:
        """Recomputes the match terms the choice layer keeps beside its bank from the bank just restored (a
        checkpoint holds the bank alone: ``ExemplarChoice``)."""
        if self.config.exemplars and self.config.exemplar_match > 0:
            choice = generator.get_layer("exemplar_choice")
            choice.set_bank(choice.bank, self.exemplar_match_terms(choice.bank))

    def exemplar_logits(self, generator: keras.Model, batch: Batch) -> tf.Tensor:
        """[B, K] float32 logits of the exemplar choice without Gumbel noise (the evaluation's choice is their
        argmax)."""
        return self._call_generator(generator, batch, training=False)["logits"]

    def observable(self, images: tf.Tensor) -> tf.Tensor:
        """What the renderer keeps of any images before per-example masking: [N, S, S, 3] -> [N, h, w, 3]."""
        raise NotImplementedError

    def compose(self, face: tf.Tensor, exemplar: tf.Tensor, batch: Batch) -> tf.Tensor:
        """With ``--exemplars``: the output from the generator's face and its chosen prior face (both [B, S, S,
        3]); subclasses say how the exemplar enters without changing what the renderer sees."""
        raise NotImplementedError

    def generator_noise(self, batch: Batch) -> tf.Tensor:
        """[B, S, S, 1] unit Gaussian noise on the pixels the observation hides (``hidden_weights``), 0 on the
        rest. Stateless in (seed, batch["step"]): a resumed run draws the same noise; evaluation and serving
        (no step) use step -1, so their outputs are deterministic too."""
        size = self.config.image_size
        step = tf.cast(batch.get("step", -1), tf.int64)
        shape = tf.stack([tf.shape(batch["observation"])[0], size, size, 1])
        noise = tf.random.stateless_normal(shape, tf.stack([tf.constant(self.config.seed + 21, tf.int64), step]))
        hidden = self.hidden_weights(batch)
        return noise if hidden is None else noise * hidden

    def losses(self, batch: Batch, factors: tf.Tensor) -> dict[str, tf.Tensor]:
        out = {"reconstruction": losses.l1_reconstruction_loss(
            self.render(factors, batch), batch["observation"], weights=self.consistency_weights(batch))}
        if self.config.paired_fraction > 0:
            out["supervised"] = losses.supervised_loss(factors, batch["truth"],
                                                       weights=batch["paired"][:, None, None, None])
        if self.config.exemplars and self.config.exemplar_balance > 0:
            logits = self.exemplar_logits(self.generator, batch)
            chosen = tf.argmax(logits + self.exemplar_gumbel(batch), axis=-1)
            out["exemplar_balance"] = self.config.exemplar_balance * losses.load_balancing_loss(logits, chosen)
        return out

    has_prior_cycle = True

    def prior_cycle_loss(self, generator: keras.Model, batch: Batch) -> tf.Tensor:
        """L1 between prior faces y [B, S, S, 3] and the generator's face from their observation (y rendered:
        masked / downsampled), over the pixels the observation hides (``hidden_weights``). It teaches the
        generator what the prior collection holds where the observation is silent, e.g. the male prior's facial
        hair in a hidden mouth box."""
        prior = batch["prior"]
        observed = {**self.observe(prior, batch["step"]), "step": batch["step"]}
        return losses.l1_reconstruction_loss(self.generate(generator, observed, training=True), prior,
                                             weights=self.hidden_weights(observed))

    def metrics(self, batch: Batch, factors: tf.Tensor) -> dict[str, tf.Tensor]:
        rendered = self.render(factors, batch)
        return {
            "consistency_psnr_db": tf.reduce_mean(metrics.psnr(
                tf.clip_by_value(rendered, 0.0, 1.0), batch["observation"], weights=self.consistency_weights(batch))),
            "psnr_vs_truth_db": tf.reduce_mean(metrics.psnr(tf.clip_by_value(factors, 0.0, 1.0), batch["truth"])),
        }

    def _display_observation(self, batch: Batch) -> tf.Tensor:
        obs = batch["observation"]
        size = self.config.image_size
        return tf.image.resize(obs, [size, size], method="nearest") if obs.shape[1] != size else obs

    def sample_images(self, batch: Batch, factors: tf.Tensor, rows: int = 4) -> tf.Tensor:
        """[1, rows*S, 4*S, 3]: per row observation | output | render(output) | a prior sample."""
        size = self.config.image_size
        rendered = self.render(factors, batch)
        rendered = tf.image.resize(rendered, [size, size], method="nearest") if rendered.shape[1] != size \
            else rendered
        cols = [self._display_observation(batch), factors, rendered, batch["prior"]]
        grid = tf.concat([tf.clip_by_value(c[:rows], 0.0, 1.0) for c in cols], axis=2)  # [rows, S, 4S, 3]
        return tf.reshape(grid, [1, -1, grid.shape[2], 3])

    @property
    def bias(self) -> str | None:
        """The ``--bias`` that selected the prior collection; None with ``--prior_dir`` (which replaces it)."""
        return None if self.config.prior_dir else self.config.bias

    def export_metadata(self) -> dict:
        return {"task": self.name, "bias": self.bias, "prior_dir": self.config.prior_dir,
                "image_size": self.config.image_size, "prior": self.prior_description}

    # --- evaluation -------------------------------------------------------------------------------
    def _eval_batch(self, images: np.ndarray) -> dict[str, tf.Tensor]:
        out = self.observe(tf.constant(images, tf.float32) / 255.0, tf.constant(-1, tf.int64))
        out["truth"] = tf.constant(images, tf.float32) / 255.0
        return out

    def evaluate(self, generator: keras.Model, out_dir: str, probe=None) -> dict:
        """Held-out evaluation on the first ``eval_images`` test faces (about half male on the built-in data).

        Reports consistency (PSNR of render(output) vs the observation, on the visible pixels for
        inpainting), PSNR/SSIM against the true faces, and with a probe, per-attribute rates on outputs vs
        the true faces, the bias strength and the probe's own held-out accuracy."""
        test = self.splits.test
        n = min(self.config.eval_images, len(test))
        images = test.images[:n]
        cons, psnr_truth, ssim_truth, outputs, choices, masks = [], [], [], [], [], []
        for i in range(0, n, 100):
            batch = self._eval_batch(images[i:i + 100])
            out = self._call_generator(generator, batch, training=False)
            factors = tf.clip_by_value(self._factors(out, batch), 0.0, 1.0)
            if self.config.exemplars:
                choices.append(np.argmax(out["logits"].numpy(), -1))
            cons.append(metrics.psnr(self.render(factors, batch), batch["observation"],
                                     weights=self.consistency_weights(batch)).numpy())
            psnr_truth.append(metrics.psnr(factors, batch["truth"]).numpy())
            ssim_truth.append(metrics.ssim(factors, batch["truth"]).numpy())
            outputs.append(factors.numpy())
            if "mask" in batch:
                masks.append(batch["mask"].numpy())
        outputs = np.concatenate(outputs)
        result = {
            "task": self.name, "bias": self.bias, "prior_dir": self.config.prior_dir,
            "prior": self.prior_description, "eval_images": int(n),
            "consistency_psnr_db": float(np.mean(np.concatenate(cons))),
            "psnr_vs_truth_db": float(np.mean(np.concatenate(psnr_truth))),
            "ssim_vs_truth": float(np.mean(np.concatenate(ssim_truth))),
        }
        if choices:  # how many of the bank's faces the held-out inputs use, and the most used one's share
            counts = np.bincount(np.concatenate(choices), minlength=self.config.exemplars)
            result["exemplars_used"] = int(np.count_nonzero(counts))
            result["exemplar_top_share"] = float(counts.max() / n)
        if masks:  # measured on what the user sees: the input's visible pixels around the output's hole
            mask, truth = np.concatenate(masks), images / 255.0
            result.update(seam_figures(truth * mask + outputs * (1.0 - mask), truth, mask))
        if probe is not None:
            result.update(self._bias_figures(probe, outputs, images))
        os.makedirs(out_dir, exist_ok=True)
        shown = self.sample_indices(test.labels[:n], list(test.attribute_names))
        observed = self._display_observation(self._eval_batch(images[shown])).numpy()
        rows = [[observed[i], outputs[j], images[j] / 255.0] for i, j in enumerate(shown)]
        grid_path = os.path.join(out_dir, "eval_samples.png")
        formats.write_image(grid_path, formats.image_grid(rows))
        result["samples_png"] = grid_path
        return result

    def sample_indices(self, labels: np.ndarray, names: list[str], count: int = 8) -> np.ndarray:
        """Which of the held-out examples (labels [N, A]) the evaluation's PNG shows: the first ``count`` / 2 with
        the bias attribute and the first without it, in held-out order, so the PNG shows the faces the bias
        changes (the women, for --bias=male) beside those it keeps; the first ``count`` when the bias names no
        attribute (none, --prior_dir) or one side is missing."""
        target = None if self.bias is None else bias_lib.bias_attribute(self.bias, names)
        if target is not None:
            has = np.asarray(labels)[:, names.index(target[0])] > 0
            with_, without = np.flatnonzero(has)[:count // 2], np.flatnonzero(~has)[:count - count // 2]
            if len(with_) == count // 2 and len(without) == count - count // 2:
                return np.sort(np.concatenate([with_, without]))
        return np.arange(min(count, len(labels)))

    def _bias_figures(self, probe, outputs: np.ndarray, true_images: np.ndarray) -> dict:
        """The probe's figures on outputs and true images ([N, S, S, 3], the same N held-out inputs): per reported
        attribute and for the bias attribute, each rate and shift with its 95 % interval and its validity
        (``metrics.figure_validity``; docs/measuring-intervals.md)."""
        names = list(probe.attribute_names)
        target = None if self.bias is None else bias_lib.bias_attribute(self.bias, names)
        shown = [a for a in names if a in REPORTED_ATTRIBUTES or (target and a == target[0])]
        cols = [names.index(a) for a in shown]
        has_out = probe.probabilities(outputs)[:, cols] > 0.5  # [N, K]
        has_true = probe.probabilities(true_images)[:, cols] > 0.5
        n = len(has_out)
        shift_ci = metrics.bootstrap_mean_interval(has_out.astype(np.float64) - has_true)  # [K, 2], paired
        figures = {}
        for k, a in enumerate(shown):
            accuracy_ci = probe.accuracy_interval(a)
            valid, reason = metrics.figure_validity(n, accuracy_ci)
            figures[a] = {
                "rate_outputs": float(has_out[:, k].mean()),
                "rate_outputs_ci95": list(metrics.wilson_interval(int(has_out[:, k].sum()), n)),
                "rate_true": float(has_true[:, k].mean()),
                "rate_true_ci95": list(metrics.wilson_interval(int(has_true[:, k].sum()), n)),
                "shift": float(has_out[:, k].mean() - has_true[:, k].mean()),
                "shift_ci95": [float(v) for v in shift_ci[k]],
                "probe_accuracy": probe.accuracy.get(a), "probe_accuracy_ci95": accuracy_ci and list(accuracy_ci),
                "probe_images": probe.accuracy_images, "probe_reliable": probe.reliable(a),
                "valid": valid, "invalid_reason": reason}
        result = {"attributes": {a: f for a, f in figures.items() if a in REPORTED_ATTRIBUTES},
                  "ci95_methods": dict(CI95_METHODS)}
        if target is not None:
            attr, positive = target
            f = figures[attr]
            sign = 1.0 if positive else -1.0  # "not Young": the shift towards not having the attribute
            lo, hi = sorted(sign * v + 0.0 for v in f["shift_ci95"])  # + 0.0: no -0.0
            result.update(bias_attribute=attr if positive else f"not {attr}",
                          bias_strength=sign * f["shift"] + 0.0, bias_strength_ci95=[lo, hi],
                          bias_probe_accuracy=f["probe_accuracy"], bias_probe_accuracy_ci95=f["probe_accuracy_ci95"],
                          bias_probe_reliable=f["probe_reliable"], bias_valid=f["valid"],
                          bias_invalid_reason=f["invalid_reason"])
        return result


class InpaintTask(FaceTask):
    """Face inpainting: observation = face * mask (mask 1 = visible), condition = [masked face, mask, pixel
    coordinates]."""

    name = "inpaint"
    in_channels = 6  # masked face, mask, pixel coordinates (y, x)

    def __init__(self, config: FaceTaskConfig, splits: FaceSplits, log=print):
        if config.mask not in MASK_MODES:
            raise ValueError(f"--mask={config.mask!r} is not one of {MASK_MODES}")
        super().__init__(config, splits, log)

    def discriminator_window(self) -> tuple[int, int, int] | None:
        """(top, left, side) of the square around the fixed mouth/nose hole, with a margin of visible context
        (1/16 of the image) and a side divisible by 8; None for random holes (the whole face is judged)."""
        if self.config.mask != "mouth_nose":
            return None
        size = self.config.image_size
        top, left, bottom, right = synthetic_faces.mouth_nose_pixels(size)
        side = min(size, -(-(max(bottom - top, right - left) + 2 * (size // 16)) // 8) * 8)
        clamp = lambda start: int(min(max(start, 0), size - side))  # noqa: E731
        return clamp((top + bottom - side) // 2), clamp((left + right - side) // 2), side

    def discriminator_size(self) -> int:
        window = self.discriminator_window()
        return self.config.image_size if window is None else window[2]

    def discriminator_view(self, factors, batch, real):
        """The discriminator judges predictions as composites (visible pixels from the observation, the hole
        from the prediction), so the only way to fool it is through the hole; the reconstruction loss alone
        keeps the raw prediction consistent with the visible pixels. With the fixed mouth/nose hole it sees
        only a square around the hole with a thin ring of context: the rest of the face is the observation,
        which no prediction can change, so judging it would only let a biased discriminator win on cues the
        generator cannot fix."""
        if not real:
            mask = batch["mask"]
            factors = batch["observation"] * mask + factors * (1.0 - mask)
        window = self.discriminator_window()
        if window is None:
            return factors
        top, left, side = window
        return factors[:, top:top + side, left:left + side, :]

    def _mask(self, batch_size, step):
        size = self.config.image_size
        if self.config.mask == "mouth_nose":
            return renderers.box_mask(batch_size, size, size, synthetic_faces.MOUTH_NOSE_BOX)
        seed = tf.stack([tf.constant(self.config.data_seed + 2, tf.int64), tf.cast(step, tf.int64)])
        return renderers.random_box_masks(seed, batch_size, size, size)

    def observe(self, images, step):
        mask = self._mask(tf.shape(images)[0], step)
        return {"observation": renderers.mask_render(images, mask), "mask": mask}

    def generator_inputs(self, batch):
        obs, mask = batch["observation"], batch["mask"]
        condition = tf.concat([obs, mask, _coordinates(obs)], -1)
        if self.config.exemplars:
            # The output is the observation's visible pixels and the chosen face's hole (compose): a pull-push fill
            # would only be multiplied by 0 there (by mask * (1 - mask), for masks of 0s and 1s, the contract of
            # formats.read_mask and the SavedModel), so it is not computed.
            return {"condition": condition, "base": obs}
        # The U-Net starts from the observation with the hole filled smoothly from the visible pixels around it.
        return {"condition": condition, "base": pull_push_fill(obs, mask)}

    def render(self, factors, batch):
        return renderers.mask_render(factors, batch["mask"])

    def observable(self, images):
        return images  # the mask comes with each example (consistency_weights)

    def compose(self, face, exemplar, batch):
        """The hole is the chosen prior face's hole, unchanged; the rest is ``face`` (the observation's visible
        pixels: with exemplars the inpainting generator is the choice alone and its base is the observation)."""
        hidden = 1.0 - batch["mask"]
        return face * (1.0 - hidden) + exemplar * hidden

    pixel_weighted_consistency = True

    def consistency_weights(self, batch):
        return batch["mask"]

    def hidden_weights(self, batch):
        return 1.0 - batch["mask"]

    def serving_signature(self):
        s = self.config.image_size
        return {"image": tf.TensorSpec([None, s, s, 3], tf.float32, name="image"),
                "mask": tf.TensorSpec([None, s, s, 1], tf.float32, name="mask")}

    def serve(self, generator, image, mask):
        batch = {"observation": renderers.mask_render(image, mask), "mask": mask}
        face = tf.clip_by_value(self.generate(generator, batch, training=False), 0.0, 1.0)
        return {"face": face, "composite": image * mask + face * (1.0 - mask)}


class SuperResTask(FaceTask):
    """Face super-resolution: observation = average-pool(face, factor); condition = nearest upsampling."""

    name = "superres"
    in_channels = 3

    def __init__(self, config: FaceTaskConfig, splits: FaceSplits, log=print):
        if config.factor < 2 or config.image_size % config.factor:
            raise ValueError(f"--factor={config.factor} must be >= 2 and divide --image_size={config.image_size}")
        super().__init__(config, splits, log)

    def observe(self, images, step):
        return {"observation": renderers.downsample_render(images, self.config.factor)}

    def generator_inputs(self, batch):
        up = renderers.block_upsample(batch["observation"], self.config.factor)
        return {"condition": up, "base": up}

    def render(self, factors, batch):
        return self.observable(factors)  # the same for every example

    def observable(self, images):
        return renderers.downsample_render(images, self.config.factor)

    def compose(self, face, exemplar, batch):
        """``face`` is the observation upsampled (with exemplars the choice is the whole generator); the output
        adds the chosen prior face's detail (the face minus its render, upsampled: 0 mean over every factor x
        factor block) and is projected onto [0, 1] with every block's mean the observation's
        (``renderers.downsample_consistent``): it renders to the input exactly, so only detail the input cannot
        see differs from it, and that detail is a real face's."""
        factor = self.config.factor
        detail = exemplar - renderers.block_upsample(self.render(exemplar, batch), factor)
        return renderers.downsample_consistent(face + detail, batch["observation"], factor)

    def serving_signature(self):
        s = self.config.image_size // self.config.factor
        return {"image": tf.TensorSpec([None, s, s, 3], tf.float32, name="image")}

    def serve(self, generator, image):
        face = self.generate(generator, {"observation": image}, training=False)
        return {"face": tf.clip_by_value(face, 0.0, 1.0)}


TASKS = {"inpaint": InpaintTask, "superres": SuperResTask}
