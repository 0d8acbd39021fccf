"""The narrow interface between a task and the training loop.

A task binds data, networks, renderer, losses and metrics. The trainer (``trainers/``) only calls what is
declared here; it never knows which renderer or data a task uses, and a task never imports the trainer.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

import keras
import tensorflow as tf

Batch = Mapping[str, tf.Tensor]


class Task(abc.ABC):
    """One AIGN problem: observation -> factors, with a fixed renderer factors -> observation.

    Attributes set by subclasses:
      name: task name, e.g. ``"inpaint"``.
      generator: keras.Model, the inverse-graphics network (trained).
      discriminator: keras.Model, judges factors: real prior sample vs predicted (trained).
    """

    name: str
    generator: keras.Model
    discriminator: keras.Model

    @abc.abstractmethod
    def train_dataset(self, batch_size: int, seed: int, start_step: int) -> tf.data.Dataset:
        """Batches for steps ``start_step, start_step + 1, ...``; batch k depends only on (seed, k), so a
        resumed run sees exactly the batches an uninterrupted one would. Each batch is a dict holding at
        least the observation and a ``"prior"`` sample of real factors."""

    @abc.abstractmethod
    def generate(self, generator: keras.Model, batch: Batch, training: bool) -> tf.Tensor:
        """Predicted factors (float32) for the batch's observations using ``generator``."""

    @abc.abstractmethod
    def render(self, factors: tf.Tensor, batch: Batch) -> tf.Tensor:
        """The fixed renderer: factors -> observation space."""

    @abc.abstractmethod
    def losses(self, batch: Batch, factors: tf.Tensor) -> dict[str, tf.Tensor]:
        """Non-adversarial generator terms, scalars keyed ``"reconstruction"`` and (when the batch carries
        paired targets) ``"supervised"``, unweighted (the trainer applies their flags' weights); any other term
        the task adds comes already weighted."""

    has_prior_cycle = False  # whether prior_cycle_loss is defined

    def prior_cycle_loss(self, generator: keras.Model, batch: Batch) -> tf.Tensor:
        """The backward cycle of CycleGAN with the fixed renderer as the forward map: a scalar distance between
        the batch's prior sample y and ``generator(render(y))``. It pairs nothing the user observed: its pairs
        come from the unpaired prior collection and the known renderer. Defined when ``has_prior_cycle``."""
        raise NotImplementedError(f"task {self.name!r} has no prior cycle term")

    def generator_restored(self, generator: keras.Model) -> None:
        """Called by the trainer after a checkpoint restored ``generator``'s weights (the generator, and its EMA copy
        when there is one). A task that keeps values derived from non-trainable weights beside them recomputes them
        here, so they match whatever the checkpoint held. Default: nothing."""
        del generator

    def real_factors(self, batch: Batch) -> tf.Tensor:
        """The discriminator's real sample (from the unpaired prior collection)."""
        return batch["prior"]

    def negative_factors(self, batch: Batch) -> tf.Tensor | None:
        """Real factors the prior collection excludes (the faces the bias leaves out), which the discriminator
        learns to reject beside the generated ones (Rumi-GAN, Asokan & Seelamantula 2020); None when the batch
        carries none."""
        return batch.get("negative")

    def discriminator_view(self, factors: tf.Tensor, batch: Batch, real: bool) -> tf.Tensor:
        """What the discriminator sees of real (``real=True``: from the prior) or predicted factors (default:
        all of them). A task may restrict it to the part the generator is responsible for."""
        return factors

    @abc.abstractmethod
    def metrics(self, batch: Batch, factors: tf.Tensor) -> dict[str, tf.Tensor]:
        """Scalar training metrics for TensorBoard (e.g. consistency PSNR)."""

    @abc.abstractmethod
    def sample_images(self, batch: Batch, factors: tf.Tensor) -> tf.Tensor:
        """An image grid [1, H, W, 3] in [0, 1] for TensorBoard (e.g. input | output | rendered | prior)."""

    @abc.abstractmethod
    def evaluate(self, generator: keras.Model, out_dir: str) -> dict:
        """Held-out evaluation: returns a JSON-serialisable dict of results and writes any figures to
        ``out_dir``."""

    @abc.abstractmethod
    def serving_signature(self) -> dict[str, tf.TensorSpec]:
        """Named, typed, shaped inputs of the exported model."""

    @abc.abstractmethod
    def serve(self, generator: keras.Model, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """The exported computation: named inputs -> named float32 outputs."""

    def extra_serving_signatures(self) -> dict:
        """More exported signatures beside ``serving_default``: name -> (fn(generator, **inputs) -> dict of
        tensors, named input specs)."""
        return {}

    def export_metadata(self) -> dict:
        """Facts written beside the SavedModel (task, bias, sizes)."""
        return {"task": self.name}
