"""Losses: known values, symmetry, patch-shaped logits, dtypes, tf.function, weighting, gradient penalty."""

import math

import numpy as np
import pytest
import tensorflow as tf

from aign_tf import losses

PAIRS = sorted(losses.ADVERSARIAL_LOSSES.items())
DISC_FNS = [disc for _, (_, disc) in PAIRS]
GEN_FNS = [gen for _, (gen, _) in PAIRS]
RNG = np.random.default_rng(0)
REAL = RNG.normal(size=(4, 3, 3, 1)).astype(np.float32)
FAKE = RNG.normal(size=(4, 3, 3, 1)).astype(np.float32)


def _softplus(x):
    return np.logaddexp(0.0, x)


# --- known values ----------------------------------------------------------------------------------------


def test_adversarial_registry_names():
    assert set(losses.ADVERSARIAL_LOSSES) == {"non_saturating", "least_squares", "hinge", "wgan_gp"}
    assert losses.ADVERSARIAL_LOSSES["wgan_gp"] == (losses.wasserstein_generator_loss,
                                                    losses.wasserstein_discriminator_loss)


def test_non_saturating_at_zero_logits_is_log_two():
    zeros = tf.zeros([5, 1])
    assert float(losses.non_saturating_generator_loss(zeros)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(losses.non_saturating_discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2),
                                                                                          rel=1e-6)


def test_non_saturating_matches_numpy_and_is_stable_for_large_logits():
    real, fake = np.array([3.0, -1.0, 200.0]), np.array([-2.0, 0.5, -200.0])
    expected = np.mean(_softplus(-real)) + np.mean(_softplus(fake))
    assert float(losses.non_saturating_discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.non_saturating_generator_loss(fake)) == pytest.approx(np.mean(_softplus(-fake)),
                                                                              rel=1e-5)
    assert np.isfinite(float(losses.non_saturating_generator_loss(tf.constant([-1e4]))))


def test_non_saturating_one_sided_label_smoothing():
    real, fake, s = np.array([2.0]), np.array([-1.0]), 0.1
    expected = (1 - s) * _softplus(-2.0) + s * _softplus(2.0) + _softplus(-1.0)
    got = float(losses.non_saturating_discriminator_loss(real, fake, label_smoothing=s))
    assert got == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.non_saturating_discriminator_loss(real, fake, label_smoothing=1.0)


def test_least_squares_targets():
    ones, zeros = tf.ones([3]), tf.zeros([3])
    assert float(losses.least_squares_generator_loss(ones)) == 0.0
    assert float(losses.least_squares_generator_loss(zeros)) == pytest.approx(0.5)
    assert float(losses.least_squares_discriminator_loss(ones, zeros)) == 0.0
    assert float(losses.least_squares_discriminator_loss(zeros, ones)) == pytest.approx(1.0)
    assert float(losses.least_squares_discriminator_loss([3.0], [2.0])) == pytest.approx(0.5 * 4 + 0.5 * 4)


def test_hinge_margins():
    real, fake = tf.constant([2.0, 0.5]), tf.constant([-2.0, 0.0])
    # real: relu(1 - 2) = 0, relu(1 - 0.5) = 0.5; fake: relu(1 - 2) = 0, relu(1 + 0) = 1.
    assert float(losses.hinge_discriminator_loss(real, fake)) == pytest.approx(0.25 + 0.5)
    assert float(losses.hinge_discriminator_loss([1.0, 5.0], [-1.0, -3.0])) == 0.0  # beyond the margins
    assert float(losses.hinge_generator_loss(fake)) == pytest.approx(1.0)


def test_wasserstein_values():
    real, fake = tf.constant([1.0, 3.0]), tf.constant([0.0, 2.0])
    assert float(losses.wasserstein_discriminator_loss(real, fake)) == pytest.approx(1.0 - 2.0)
    assert float(losses.wasserstein_generator_loss(fake)) == pytest.approx(-1.0)


# --- generic properties ----------------------------------------------------------------------------------


@pytest.mark.parametrize("disc", DISC_FNS, ids=[n for n, _ in PAIRS])
def test_discriminator_losses_are_symmetric_under_label_swap(disc):
    """Swapping real and fake (with the sign/target flipped to match) leaves each loss unchanged."""
    swapped = (1.0 - FAKE, 1.0 - REAL) if disc is losses.least_squares_discriminator_loss else (-FAKE, -REAL)
    assert float(disc(REAL, FAKE)) == pytest.approx(float(disc(*swapped)), rel=1e-5)


@pytest.mark.parametrize("name, pair", PAIRS)
def test_patch_logits_equal_flattened_logits(name, pair):
    gen, disc = pair
    flat_real, flat_fake = REAL.reshape(-1), FAKE.reshape(-1)
    assert float(gen(FAKE)) == pytest.approx(float(gen(flat_fake)), rel=1e-5)
    assert float(disc(REAL, FAKE)) == pytest.approx(float(disc(flat_real, flat_fake)), rel=1e-5)
    # Per-example real logits against patch-shaped fake logits.
    assert np.isfinite(float(disc(REAL[:, 0, 0, :], FAKE)))


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("name, pair", PAIRS)
def test_low_precision_logits_give_float32_losses(name, pair, dtype):
    gen, disc = pair
    real, fake = tf.cast(REAL, dtype), tf.cast(FAKE, dtype)
    ref_real, ref_fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
    for got, want in ((gen(fake), gen(ref_fake)), (disc(real, fake), disc(ref_real, ref_fake))):
        assert got.dtype == tf.float32 and got.shape == ()
        assert float(got) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("name, pair", PAIRS)
def test_losses_under_tf_function_match_eager(name, pair):
    gen, disc = pair
    graph_gen, graph_disc = tf.function(gen), tf.function(disc)
    assert float(graph_gen(FAKE)) == pytest.approx(float(gen(FAKE)), rel=1e-6)
    assert float(graph_disc(REAL, FAKE)) == pytest.approx(float(disc(REAL, FAKE)), rel=1e-6)


@pytest.mark.parametrize("fn", GEN_FNS + DISC_FNS)
def test_scalar_logits_are_rejected(fn):
    with pytest.raises(ValueError, match="rank >= 1"):
        fn(tf.constant(0.0)) if fn in GEN_FNS else fn(tf.constant(0.0), tf.zeros([2]))


def test_generator_gradients_push_fake_logits_towards_real():
    fake = tf.Variable(tf.zeros([4, 1]))
    for gen in GEN_FNS:
        with tf.GradientTape() as tape:
            loss = gen(fake)
        assert np.all(tape.gradient(loss, fake).numpy() < 0), gen.__name__


# --- reconstruction and supervised -----------------------------------------------------------------------


def test_l1_and_l2_reconstruction_known_values():
    rendered = tf.fill([2, 4, 4, 3], 0.5)
    observed = tf.fill([2, 4, 4, 3], 0.2)
    assert float(losses.l1_reconstruction_loss(rendered, observed)) == pytest.approx(0.3, rel=1e-6)
    assert float(losses.l2_reconstruction_loss(rendered, observed)) == pytest.approx(0.09, rel=1e-5)
    assert float(losses.l1_reconstruction_loss(observed, observed)) == 0.0


@pytest.mark.parametrize("loss_fn, visible_error", [(losses.l1_reconstruction_loss, 0.1),
                                                    (losses.l2_reconstruction_loss, 0.01)])
def test_weighted_reconstruction_ignores_hidden_pixels(loss_fn, visible_error):
    observed = np.zeros((2, 4, 4, 3), np.float32)
    rendered = np.full((2, 4, 4, 3), 0.1, np.float32)
    mask = np.ones((2, 4, 4, 1), np.float32)
    mask[:, :2] = 0.0  # hide the top half, where the render is far off
    rendered[:, :2] = 5.0
    got = float(loss_fn(rendered, observed, weights=mask))
    assert got == pytest.approx(visible_error, rel=1e-5)  # not diluted by the hidden half, not polluted
    assert float(loss_fn(rendered, observed)) > 10 * visible_error


def test_all_zero_weights_give_zero_not_nan():
    assert float(losses.l1_reconstruction_loss(tf.ones([1, 2, 2, 1]), tf.zeros([1, 2, 2, 1]),
                                               weights=tf.zeros([1, 2, 2, 1]))) == 0.0


def test_reconstruction_low_precision_inputs_give_float32():
    got = losses.l1_reconstruction_loss(tf.fill([1, 2, 2, 3], tf.constant(0.5, tf.float16)),
                                        tf.zeros([1, 2, 2, 3], tf.bfloat16), weights=tf.ones([1, 2, 2, 1]))
    assert got.dtype == tf.float32 and float(got) == pytest.approx(0.5)


def test_reconstruction_shape_errors():
    with pytest.raises(ValueError, match="rendered shape .* does not match observed shape"):
        losses.l1_reconstruction_loss(tf.zeros([1, 4, 4, 3]), tf.zeros([1, 8, 8, 3]))
    with pytest.raises(ValueError, match="weights shape .* does not broadcast"):
        losses.l2_reconstruction_loss(tf.zeros([1, 4, 4, 3]), tf.zeros([1, 4, 4, 3]),
                                      weights=tf.ones([1, 4, 2, 1]))


def test_supervised_loss_is_l1():
    pred, target = tf.constant([[1.0, 2.0], [3.0, 4.0]]), tf.constant([[0.0, 2.0], [3.0, 2.0]])
    assert float(losses.supervised_loss(pred, target)) == pytest.approx(3.0 / 4)
    only_first = tf.constant([[1.0], [0.0]])
    assert float(losses.supervised_loss(pred, target, weights=only_first)) == pytest.approx(0.5)


# --- gradient penalty ------------------------------------------------------------------------------------


def _linear_critic(scale):
    u = tf.random.stateless_normal([4, 4, 3], seed=[9, 9])
    u = scale * u / tf.norm(u)
    return lambda x: tf.reduce_sum(x * u, axis=[1, 2, 3])


def _images(seed):
    return tf.random.stateless_uniform([3, 4, 4, 3], seed=seed)


def test_gradient_penalty_is_zero_for_a_unit_norm_critic():
    gp = losses.gradient_penalty(_linear_critic(1.0), _images([1, 1]), _images([2, 2]), seed=[0, 1])
    assert gp.dtype == tf.float32 and float(gp) == pytest.approx(0.0, abs=1e-8)


def test_gradient_penalty_known_value_for_a_scaled_critic():
    gp = losses.gradient_penalty(_linear_critic(3.0), _images([1, 1]), _images([2, 2]), seed=[0, 1])
    assert float(gp) == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)


def test_gradient_penalty_interpolates_with_a_stateless_epsilon_per_example():
    real, fake, seed = _images([1, 1]), _images([2, 2]), tf.constant([4, 5], tf.int64)
    # critic 0.5 * ||x||^2 has gradient x_hat, so the penalty reveals where it was evaluated.
    critic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])
    eps = tf.random.stateless_uniform([3, 1, 1, 1], seed=seed).numpy()
    x_hat = eps * real.numpy() + (1 - eps) * fake.numpy()
    expected = np.mean((np.linalg.norm(x_hat.reshape(3, -1), axis=1) - 1.0) ** 2)
    got = losses.gradient_penalty(critic, real, fake, seed)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(losses.gradient_penalty(critic, real, fake, seed)) == float(got)  # deterministic
    assert float(losses.gradient_penalty(critic, real, fake, [4, 6])) != pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_averages_patch_scores():
    base = _linear_critic(1.0)
    patch_critic = lambda x: tf.stack([base(x), base(x)], axis=1)[:, :, None, None]  # [B, 2, 1, 1]
    gp = losses.gradient_penalty(patch_critic, _images([1, 1]), _images([2, 2]), seed=[0, 1])
    assert float(gp) == pytest.approx(0.0, abs=1e-8)


def test_gradient_penalty_is_differentiable_wrt_critic_weights_under_tf_function():
    scale = tf.Variable(3.0)
    u = tf.random.stateless_normal([4, 4, 3], seed=[9, 9])
    u = u / tf.norm(u)
    critic = lambda x: tf.reduce_sum(tf.cast(x, tf.float32) * u * scale, axis=[1, 2, 3])

    @tf.function
    def penalty_and_grad(real, fake):
        with tf.GradientTape() as tape:
            gp = losses.gradient_penalty(critic, real, fake, tf.constant([0, 1], tf.int64))
        return gp, tape.gradient(gp, scale)

    gp, grad = penalty_and_grad(tf.cast(_images([1, 1]), tf.float16), tf.cast(_images([2, 2]), tf.float16))
    assert gp.dtype == tf.float32
    assert float(gp) == pytest.approx(4.0, rel=1e-4)
    assert float(grad) == pytest.approx(2 * (3.0 - 1.0), rel=1e-4)  # d/ds (s - 1)^2


def test_gradient_penalty_argument_errors():
    with pytest.raises(ValueError, match="real shape .* does not match fake shape"):
        losses.gradient_penalty(_linear_critic(1.0), tf.zeros([2, 4, 4, 3]), tf.zeros([2, 4, 4, 1]), [0, 0])
    with pytest.raises(ValueError, match="critic_fn must be callable"):
        losses.gradient_penalty("critic", tf.zeros([2, 1]), tf.zeros([2, 1]), [0, 0])


def test_r1_penalty_known_value_for_a_quadratic_critic():
    # critic 0.5 * ||x||^2 has gradient x, so R1 = 0.5 * mean_i ||x_i||^2.
    real = _images([1, 1])
    critic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])
    expected = 0.5 * np.mean(np.sum(real.numpy().reshape(3, -1) ** 2, axis=1))
    got = losses.r1_penalty(critic, real)
    assert got.dtype == tf.float32 and float(got) == pytest.approx(expected, rel=1e-5)


def test_r1_penalty_sums_patch_logits_and_trains_the_critic():
    scale = tf.Variable(3.0)
    u = tf.random.stateless_normal([4, 4, 3], seed=[9, 9])
    u = u / tf.norm(u)
    critic = lambda x: tf.reduce_sum(x * u * scale, axis=[1, 2, 3])
    patch_critic = lambda x: tf.stack([critic(x), critic(x)], axis=1)[:, :, None, None]  # [B, 2, 1, 1]

    @tf.function
    def penalty_and_grad(real):
        with tf.GradientTape() as tape:
            r1 = losses.r1_penalty(patch_critic, real)
        return r1, tape.gradient(r1, scale)

    r1, grad = penalty_and_grad(tf.cast(_images([1, 1]), tf.float16))
    assert float(r1) == pytest.approx(0.5 * (2 * 3.0) ** 2, rel=1e-4)  # two patches: gradient 2 * s * u
    assert float(grad) == pytest.approx(4 * 3.0, rel=1e-4)  # d/ds 2 s^2
    with pytest.raises(ValueError, match="critic_fn must be callable"):
        losses.r1_penalty("critic", tf.zeros([2, 1]))


def test_feature_matching_compares_batch_means_and_only_moves_the_fakes():
    real = tf.constant([[1.0, 2.0], [3.0, 4.0]])  # means (2, 3)
    fake = tf.Variable([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0]])  # means (1, 1): B may differ
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(real)
        loss = losses.feature_matching_loss(real, fake)
    assert float(loss) == pytest.approx((1.0 + 4.0) / 2)
    assert tape.gradient(loss, real) is None
    np.testing.assert_allclose(tape.gradient(loss, fake).numpy(), [[-1 / 3, -2 / 3]] * 3, rtol=1e-6)


def test_load_balancing_loss_is_one_when_spread_and_k_when_collapsed():
    k = 4
    spread = losses.load_balancing_loss(tf.zeros([k, k]), tf.range(k))
    np.testing.assert_allclose(float(spread), 1.0, rtol=1e-6)
    collapsed = losses.load_balancing_loss(tf.one_hot(tf.zeros([8], tf.int32), k) * 50.0, tf.zeros([8], tf.int64))
    np.testing.assert_allclose(float(collapsed), float(k), rtol=1e-5)
    logits = tf.Variable(tf.zeros([3, k]))
    with tf.GradientTape() as tape:
        value = losses.load_balancing_loss(logits, tf.constant([2, 2, 0]))
    grad = tape.gradient(value, logits).numpy()
    assert np.all(grad[:, 2] > 0) and np.all(grad[:, 2] > grad[:, 0]) and np.all(grad[:, 0] > grad[:, 1])
