"""The discriminator's history of generated samples (trainers/fake_pool.py)."""

import numpy as np
import pytest
import tensorflow as tf

from trainers.fake_pool import FakePool


def _batch(value, n=4):
    return tf.fill([n, 2, 2, 1], float(value))


def test_pool_returns_current_fakes_while_filling_then_mixes_in_stored_ones():
    pool = FakePool(8, [2, 2, 1], seed=0)
    for step, value in enumerate((1, 2)):  # fills the 8 slots
        np.testing.assert_array_equal(pool.query(_batch(value), step).numpy(), value)
    assert sorted(np.unique(pool.items.numpy())) == [1.0, 2.0]
    swapped = 0
    for step in range(2, 12):
        out = pool.query(_batch(10 + step), step).numpy()[:, 0, 0, 0]
        assert set(out) <= {1.0, 2.0, 10.0 + step} | {10.0 + s for s in range(2, step)}
        swapped += int(np.sum(out != 10 + step))
        # A sample handed back left the pool; the current one took its place, so nothing is duplicated.
        assert int(np.sum(pool.items.numpy()[:, 0, 0, 0] == 10 + step)) == int(np.sum(out != 10 + step))
    assert 10 <= swapped <= 30  # about half of 40


def test_pool_draws_are_a_function_of_seed_and_step():
    a, b = FakePool(4, [1], seed=3), FakePool(4, [1], seed=3)
    for step in range(5):
        x = tf.fill([4, 1], float(step))
        np.testing.assert_array_equal(a.query(x, step).numpy(), b.query(x, step).numpy())


def test_pool_smaller_than_batch_is_an_error():
    with pytest.raises(ValueError, match="at most that many"):
        FakePool(2, [1], seed=0).query(tf.zeros([4, 1]), 0)
