"""Timing the training step as the loop runs it: the benchmark (``aign_tf.bench``) and the compile-mode trial
(``trainers.compile_choice``) measure with the same code."""

from __future__ import annotations

import time

import numpy as np


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile of ``seconds``, in milliseconds."""
    return float(np.percentile(np.asarray(seconds), q) * 1e3)


def read_back(outputs: dict) -> dict:
    """Every output tensor as NumPy, so the timed work has finished (as the training loop's float())."""
    return {k: v.numpy() for k, v in outputs.items()}


def time_train_steps(train_step, data, batch_size: int, steps: int, warmup_steps: int) -> dict:
    """Times ``steps`` iterations of the training loop's inner body (``next(data)``, the step, reading its
    values back as the loop does) after ``warmup_steps`` untimed ones.

    Returns steps/s and images/s over the timed wall time, the median and p90 step time excluding the input
    wait, the input-wait fraction (time blocked in ``next(data)`` / wall time) and the warm-up time."""
    t = time.perf_counter()
    for _ in range(warmup_steps):
        read_back(train_step(next(data)))
    warmup_s = time.perf_counter() - t
    wait_s, step_s = 0.0, []
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(data)
        t1 = time.perf_counter()
        values = read_back(train_step(batch))
        step_s.append(time.perf_counter() - t1)
        wait_s += t1 - t0
        if not all(np.all(np.isfinite(v)) for v in values.values()):
            raise ValueError(f"non-finite training values while timing the step: {values}; "
                             "try --mixed_precision=float32")
    total_s = time.perf_counter() - start
    return {"steps_per_s": steps / total_s, "images_per_s": steps * batch_size / total_s,
            "step_ms_median": percentile_ms(step_s, 50), "step_ms_p90": percentile_ms(step_s, 90),
            "input_wait_fraction": wait_s / total_s, "warmup_s": warmup_s, "timed_steps": steps}
