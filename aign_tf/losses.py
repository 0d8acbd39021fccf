"""Losses for AIGN training: reconstruction, adversarial pairs, gradient penalty and the supervised term.

Every function is pure (no variables, no collections) and works eagerly, under ``tf.function`` and with
XLA. Inputs of any float dtype (float16 / bfloat16 under mixed precision) are cast to float32 first, and
every loss is a float32 scalar.

Adversarial losses come in ``xxx_generator_loss(fake_logits)`` /
``xxx_discriminator_loss(real_logits, fake_logits)`` pairs. Logits may be per example `[B]`, `[B, 1]` or
patch-shaped `[B, h, w, 1]` (PatchGAN); each term is the mean over all its elements, so real and fake
logits may even differ in shape.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

# --- helpers --------------------------------------------------------------------------------------------


def _logits_float32(logits, name: str) -> tf.Tensor:
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank == 0:
        raise ValueError(f"{name} must have shape [B, ...] (rank >= 1); got a scalar")
    return tf.cast(logits, tf.float32)


def _same_static_shape(a: tf.Tensor, b: tf.Tensor, name_a: str, name_b: str) -> None:
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(f"{name_a} shape {a.shape} does not match {name_b} shape {b.shape}")


def _weighted_mean(values: tf.Tensor, weights) -> tf.Tensor:
    """Mean of float32 ``values``; with ``weights`` (broadcastable to ``values``) the weighted mean
    ``sum(w * v) / sum(w)`` where the weight sum counts every element the weights broadcast over (a
    `[B, H, W, 1]` mask over `[B, H, W, 3]` values counts each visible pixel 3 times).
    A zero weight sum gives 0."""
    if weights is None:
        return tf.reduce_mean(values)
    weights = tf.cast(tf.convert_to_tensor(weights), tf.float32)
    try:
        tf.broadcast_static_shape(values.shape, weights.shape)
    except ValueError:
        raise ValueError(f"weights shape {weights.shape} does not broadcast to the values shape "
                         f"{values.shape}") from None
    weights = tf.broadcast_to(weights, tf.shape(values))
    return tf.math.divide_no_nan(tf.reduce_sum(weights * values), tf.reduce_sum(weights))


def _pair(predicted, target, name_a: str, name_b: str) -> tuple[tf.Tensor, tf.Tensor]:
    predicted = tf.cast(tf.convert_to_tensor(predicted), tf.float32)
    target = tf.cast(tf.convert_to_tensor(target), tf.float32)
    _same_static_shape(predicted, target, name_a, name_b)
    return predicted, target


# --- reconstruction and supervision ---------------------------------------------------------------------


def l1_reconstruction_loss(rendered, observed, weights=None) -> tf.Tensor:
    """Mean absolute error between render(predicted factors) and the observation.

    Args:
      rendered: `[A1, ..., An]` render of the generator's output, e.g. `[B, H, W, C]`.
      observed: `[A1, ..., An]` the observation (same shape).
      weights: optional, broadcastable to `[A1, ..., An]` (e.g. the visible mask `[B, H, W, 1]`); the mean
        is then normalised by the weight sum so hidden pixels do not dilute it.

    Returns:
      float32 scalar.

    Raises:
      ValueError: the shapes of ``rendered`` and ``observed`` differ, or ``weights`` does not broadcast.
    """
    rendered, observed = _pair(rendered, observed, "rendered", "observed")
    return _weighted_mean(tf.abs(rendered - observed), weights)


def l2_reconstruction_loss(rendered, observed, weights=None) -> tf.Tensor:
    """Mean squared error between render(predicted factors) and the observation.

    Same arguments and weighting as ``l1_reconstruction_loss``; returns a float32 scalar.
    """
    rendered, observed = _pair(rendered, observed, "rendered", "observed")
    return _weighted_mean(tf.math.squared_difference(rendered, observed), weights)


def supervised_loss(pred, target, weights=None) -> tf.Tensor:
    """L1 loss between predicted and true factors for the optional paired term.

    Args:
      pred: `[A1, ..., An]` predicted factors.
      target: `[A1, ..., An]` paired ground-truth factors.
      weights: optional, broadcastable to `[A1, ..., An]` (e.g. `[B, 1, 1, 1]` with 1 for paired examples);
        normalised by the weight sum as in ``l1_reconstruction_loss``.

    Returns:
      float32 scalar.
    """
    pred, target = _pair(pred, target, "pred", "target")
    return _weighted_mean(tf.abs(pred - target), weights)


# --- non-saturating GAN (Goodfellow et al. 2014, "Generative Adversarial Nets") -------------------------


def non_saturating_generator_loss(fake_logits) -> tf.Tensor:
    """Non-saturating generator loss -log(sigmoid(D(G(z)))) (Goodfellow et al. 2014, section 3).

    Args:
      fake_logits: `[B, ...]` discriminator logits on generated factors.

    Returns:
      float32 scalar ``mean(softplus(-fake_logits))``; log 2 at zero logits.
    """
    fake = _logits_float32(fake_logits, "fake_logits")
    return tf.reduce_mean(tf.nn.softplus(-fake))


def non_saturating_discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0) -> tf.Tensor:
    """Binary cross-entropy discriminator loss (Goodfellow et al. 2014).

    Args:
      real_logits: `[B, ...]` logits on real (prior) factors.
      fake_logits: `[B, ...]` logits on generated factors.
      label_smoothing: one-sided smoothing (Salimans et al. 2016): real targets are
        ``1 - label_smoothing``, fake targets stay 0. In [0, 1).

    Returns:
      float32 scalar ``mean(BCE(real, 1 - s)) + mean(BCE(fake, 0))``; 2 log 2 at zero logits.

    Raises:
      ValueError: ``label_smoothing`` outside [0, 1), or scalar logits.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")
    real = _logits_float32(real_logits, "real_logits")
    fake = _logits_float32(fake_logits, "fake_logits")
    real_term = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(real), 1.0 - float(label_smoothing)), logits=real)
    fake_term = tf.nn.softplus(fake)  # = BCE with label 0
    return tf.reduce_mean(real_term) + tf.reduce_mean(fake_term)


# --- least squares GAN (Mao et al. 2017, "Least Squares Generative Adversarial Networks") ---------------


def least_squares_generator_loss(fake_logits) -> tf.Tensor:
    """LSGAN generator loss ``0.5 * mean((D(G(z)) - 1)^2)`` (Mao et al. 2017, eq. 2 with c = 1).

    Args:
      fake_logits: `[B, ...]` discriminator outputs on generated factors.

    Returns:
      float32 scalar.
    """
    fake = _logits_float32(fake_logits, "fake_logits")
    return 0.5 * tf.reduce_mean(tf.square(fake - 1.0))


def least_squares_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """LSGAN discriminator loss ``0.5 * mean((D(x) - 1)^2) + 0.5 * mean(D(G(z))^2)`` (Mao et al. 2017,
    eq. 2 with a = 0, b = 1).

    Args:
      real_logits: `[B, ...]` outputs on real factors.
      fake_logits: `[B, ...]` outputs on generated factors.

    Returns:
      float32 scalar.
    """
    real = _logits_float32(real_logits, "real_logits")
    fake = _logits_float32(fake_logits, "fake_logits")
    return 0.5 * tf.reduce_mean(tf.square(real - 1.0)) + 0.5 * tf.reduce_mean(tf.square(fake))


# --- hinge GAN (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization") -----------


def hinge_generator_loss(fake_logits) -> tf.Tensor:
    """Hinge generator loss ``-mean(D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018, eq. 17).

    Args:
      fake_logits: `[B, ...]` discriminator outputs on generated factors.

    Returns:
      float32 scalar.
    """
    fake = _logits_float32(fake_logits, "fake_logits")
    return -tf.reduce_mean(fake)


def hinge_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """Hinge discriminator loss ``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`` (Lim & Ye 2017;
    Miyato et al. 2018, eq. 16).

    Args:
      real_logits: `[B, ...]` outputs on real factors.
      fake_logits: `[B, ...]` outputs on generated factors.

    Returns:
      float32 scalar; 0 once real outputs are >= 1 and fake outputs <= -1.
    """
    real = _logits_float32(real_logits, "real_logits")
    fake = _logits_float32(fake_logits, "fake_logits")
    return tf.reduce_mean(tf.nn.relu(1.0 - real)) + tf.reduce_mean(tf.nn.relu(1.0 + fake))


# --- Wasserstein GAN (Arjovsky et al. 2017) and WGAN-GP (Gulrajani et al. 2017) ---------------------------


def wasserstein_generator_loss(fake_logits) -> tf.Tensor:
    """Wasserstein generator loss ``-mean(D(G(z)))`` (Arjovsky et al. 2017, "Wasserstein GAN").

    Args:
      fake_logits: `[B, ...]` critic outputs on generated factors.

    Returns:
      float32 scalar.
    """
    fake = _logits_float32(fake_logits, "fake_logits")
    return -tf.reduce_mean(fake)


def wasserstein_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """Wasserstein critic loss ``mean(D(G(z))) - mean(D(x))`` (Arjovsky et al. 2017). For WGAN-GP add
    ``gp_weight * gradient_penalty(...)`` (Gulrajani et al. 2017 use gp_weight = 10).

    Args:
      real_logits: `[B, ...]` critic outputs on real factors.
      fake_logits: `[B, ...]` critic outputs on generated factors.

    Returns:
      float32 scalar (the negative of the critic's Wasserstein estimate).
    """
    real = _logits_float32(real_logits, "real_logits")
    fake = _logits_float32(fake_logits, "fake_logits")
    return tf.reduce_mean(fake) - tf.reduce_mean(real)


def _squared_input_gradient_norms(critic_fn, x: tf.Tensor, reduce_patches) -> tf.Tensor:
    """``||d s_i / d x_i||^2`` per example, float32 [B], where ``s_i`` is ``reduce_patches`` (``tf.reduce_mean`` or
    ``tf.reduce_sum``) of example i's scores from ``critic_fn`` (`[B]` or patch-shaped `[B, h, w, 1]`).
    x: float32 `[B, A1, ..., An]`."""
    if not callable(critic_fn):
        raise ValueError(f"critic_fn must be callable; got {type(critic_fn).__name__}")
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = tf.cast(critic_fn(x), tf.float32)
        per_example = reduce_patches(tf.reshape(scores, tf.stack([tf.shape(scores)[0], -1])), axis=1)  # [B]
    grads = tape.gradient(per_example, x)  # examples are independent: row i holds d s_i / d x_i
    flat = tf.reshape(grads, tf.stack([tf.shape(grads)[0], -1]))
    return tf.reduce_sum(tf.square(flat), axis=1)


def gradient_penalty(critic_fn: Callable[[tf.Tensor], tf.Tensor], real, fake, seed) -> tf.Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", eq. 3).

    Draws one ``eps ~ U[0, 1)`` per example (stateless, from ``seed``), evaluates the critic at
    ``x_hat = eps * real + (1 - eps) * fake`` and penalises ``(||d critic(x_hat) / d x_hat||_2 - 1)^2``,
    the norm taken over all non-batch axes of each example. A patch critic (outputs `[B, h, w, 1]`) is
    reduced to one score per example by its mean over the patches, matching the mean in
    ``wasserstein_discriminator_loss``.

    Args:
      critic_fn: callable mapping `[B, ...]` factors to `[B, ...]` scores; gradients must flow through it.
      real: `[B, A1, ..., An]` real factors.
      fake: `[B, A1, ..., An]` generated factors (same shape); any float dtype, interpolated in float32.
      seed: `[2]` integer tensor for ``tf.random.stateless_uniform``.

    Returns:
      float32 scalar, the mean penalty over the batch.

    Raises:
      ValueError: ``critic_fn`` is not callable, or the shapes of ``real`` and ``fake`` differ.
    """
    real, fake = _pair(real, fake, "real", "fake")
    if real.shape.rank == 0:
        raise ValueError("real and fake must have shape [B, ...] (rank >= 1); got scalars")
    eps_shape = tf.concat([tf.shape(real)[:1], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
    eps = tf.random.stateless_uniform(eps_shape, seed=seed, dtype=tf.float32)
    interpolated = eps * real + (1.0 - eps) * fake
    squared = _squared_input_gradient_norms(critic_fn, interpolated, tf.reduce_mean)
    norms = tf.sqrt(squared + 1e-12)  # [B], eps keeps the sqrt gradient finite
    return tf.reduce_mean(tf.square(norms - 1.0))


def feature_matching_loss(real_features, fake_features) -> tf.Tensor:
    """Feature matching (Salimans et al. 2016, "Improved Techniques for Training GANs", section 3.1): squared
    distance between the batch means of the discriminator's hidden features on real and generated samples,
    averaged over features. The generator matches statistics of the real collection instead of chasing the
    discriminator's per-sample gradient. The real features carry no gradient.

    Args:
      real_features: `[B, ...]` features of real samples.
      fake_features: `[B', ...]` features of generated samples (same trailing shape).

    Returns:
      float32 scalar.
    """
    real_mean, fake_mean = _pair(tf.reduce_mean(tf.cast(tf.stop_gradient(real_features), tf.float32), 0),
                                 tf.reduce_mean(tf.cast(fake_features, tf.float32), 0),
                                 "real_features (after the batch axis)", "fake_features (after the batch axis)")
    return tf.reduce_mean(tf.square(real_mean - fake_mean))


def r1_penalty(critic_fn: Callable[[tf.Tensor], tf.Tensor], real) -> tf.Tensor:
    """R1 regulariser (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", eq. 9):
    ``0.5 * E ||d D(x) / d x||^2`` on real samples only, which keeps the discriminator flat on the data and
    the adversarial game from oscillating. A patch discriminator (outputs `[B, h, w, 1]`) is differentiated
    through the sum of its patch logits per example.

    Args:
      critic_fn: callable mapping `[B, ...]` factors to `[B, ...]` logits; gradients must flow through it.
      real: `[B, A1, ..., An]` real factors (any float dtype; differentiated in float32).

    Returns:
      float32 scalar, the mean penalty over the batch (to be multiplied by a weight gamma).
    """
    real = tf.cast(tf.convert_to_tensor(real), tf.float32)
    return 0.5 * tf.reduce_mean(_squared_input_gradient_norms(critic_fn, real, tf.reduce_sum))

# Adversarial loss name -> (generator_loss(fake_logits), discriminator_loss(real_logits, fake_logits)).
ADVERSARIAL_LOSSES: dict[str, tuple[Callable[..., tf.Tensor], Callable[..., tf.Tensor]]] = {
    "non_saturating": (non_saturating_generator_loss, non_saturating_discriminator_loss),
    "least_squares": (least_squares_generator_loss, least_squares_discriminator_loss),
    "hinge": (hinge_generator_loss, hinge_discriminator_loss),
    # The trainer adds gp_weight * gradient_penalty(...) to the critic loss.
    "wgan_gp": (wasserstein_generator_loss, wasserstein_discriminator_loss),
}


def load_balancing_loss(logits, chosen) -> tf.Tensor:
    """Load-balancing term of a hard choice among K options (Switch Transformer, Fedus et al. 2022, eq. 4):
    ``K * sum_k f_k * P_k``, with f_k the fraction of the batch that chose option k (no gradient) and P_k the
    batch mean of softmax(logits)[k]. It is 1 when the choices are spread evenly and up to K when every example
    takes one option; its gradient lowers the probability of the options chosen most often.

    Args:
      logits: `[B, K]` choice logits.
      chosen: `[B]` integer index of each example's choice.

    Returns:
      Scalar float32.
    """
    logits = _logits_float32(logits, "logits")
    k = logits.shape[-1]
    fraction = tf.reduce_mean(tf.one_hot(chosen, k, dtype=tf.float32), axis=0)
    probability = tf.reduce_mean(tf.nn.softmax(logits, axis=-1), axis=0)
    return float(k) * tf.reduce_sum(tf.stop_gradient(fraction) * probability)
