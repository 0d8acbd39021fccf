"""The step-indexed input stream every task's ``train_dataset`` is built on."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def step_indexed(make, start_step: int) -> tf.data.Dataset:
    """``make(step int64 scalar) -> batch`` mapped over steps ``start_step, start_step + 1, ...`` in order
    (parallel, deterministic, prefetched). When ``make`` draws only from stateless RNGs seeded by the step,
    batch k depends on k alone, so a resumed run sees the batches an uninterrupted one would."""
    ds = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
    return ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
