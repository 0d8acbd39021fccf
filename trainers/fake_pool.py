"""A history of generated samples for the discriminator (Shrivastava et al. 2017, "Learning from Simulated and
Unsupervised Images through Adversarial Training", section 2.3; CycleGAN's image pool, Zhu et al. 2017)."""

from __future__ import annotations

import tensorflow as tf


class FakePool(tf.Module):
    """Keeps ``size`` earlier generated samples. ``query(fakes, step)`` returns the batch the discriminator
    trains on: while the pool fills, the current fakes; afterwards each fake is, with probability 1/2, swapped
    for a stored one (which it replaces in the pool). A discriminator that must keep rejecting old fakes
    cannot be escaped by a generator that cycles through artefacts it has forgotten.

    Random choices are stateless in (seed, step), and the pool is a checkpointed variable, so a resumed
    ``--deterministic`` run draws the same samples as an uninterrupted one.
    """

    def __init__(self, size: int, sample_shape, seed: int, name: str = "fake_pool"):
        super().__init__(name=name)
        self.size = size
        self.seed = seed
        self.items = tf.Variable(tf.zeros([size, *sample_shape], tf.float32), trainable=False, name="items")
        self.filled = tf.Variable(0, dtype=tf.int32, trainable=False, name="filled")

    def query(self, fakes: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        """fakes float32 [B, *sample_shape] (B <= size, static) -> float32 [B, *sample_shape]."""
        batch = fakes.shape[0]
        if batch is None or batch > self.size:
            raise ValueError(f"fake pool of {self.size} samples needs a static batch of at most that many; got "
                             f"{batch}")
        fakes = tf.cast(fakes, tf.float32)
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        full = self.filled >= self.size
        swap = tf.logical_and(full, tf.random.stateless_uniform([batch], seed) < 0.5)
        # Distinct pool slots for the swaps once full; the next free slots while filling.
        shuffled = tf.argsort(tf.random.stateless_uniform([self.size], seed + [0, 1]))[:batch]
        slots = tf.where(full, shuffled, (self.filled + tf.range(batch)) % self.size)
        stored = tf.gather(self.items, slots)
        expand = [-1] + [1] * (fakes.shape.rank - 1)
        out = tf.where(tf.reshape(swap, expand), stored, fakes)
        keep_stored = tf.logical_and(full, tf.logical_not(swap))
        self.items.scatter_nd_update(slots[:, None], tf.where(tf.reshape(keep_stored, expand), stored, fakes))
        self.filled.assign(tf.minimum(self.filled + batch, self.size))
        return out
