"""Evaluation metrics: image quality (PSNR, SSIM), attribute-probe bias figures and 3D pose errors
(MPJPE, PA-MPJPE).

The image and pose metrics are TensorFlow functions (eager, ``tf.function``, any float input dtype, float32
outputs, one value per example). The attribute figures are NumPy functions on probe probabilities.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# PSNR reported for identical images (MSE 0), instead of +inf.
PSNR_CAP_DB = 100.0
# The Gaussian window side of standard SSIM (Wang et al. 2004); reduced for images smaller than this.
SSIM_FILTER_SIZE = 11

# --- image quality ---------------------------------------------------------------------------------------


def _image_pair(a, b) -> tuple[tf.Tensor, tf.Tensor]:
    a = tf.cast(tf.convert_to_tensor(a), tf.float32)
    b = tf.cast(tf.convert_to_tensor(b), tf.float32)
    for name, t in (("a", a), ("b", b)):
        if t.shape.rank is not None and t.shape.rank != 4:
            raise ValueError(f"{name} must have shape [B, H, W, C] (rank 4); got shape {t.shape}")
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(f"image shapes differ: a {a.shape} vs b {b.shape}")
    return a, b


def _positive_max_val(max_val) -> float:
    if not float(max_val) > 0.0:
        raise ValueError(f"max_val must be > 0 (the dynamic range, e.g. 1.0 or 255); got {max_val!r}")
    return float(max_val)


def psnr(a, b, max_val: float = 1.0, weights=None) -> tf.Tensor:
    """Peak signal-to-noise ratio per image, in dB: ``10 * log10(max_val^2 / MSE)``.

    Args:
      a, b: `[B, H, W, C]` images in ``[0, max_val]`` (any float dtype).
      max_val: the dynamic range of the images (1.0 for [0, 1] floats, 255 for 8-bit values).
      weights: optional `[B, H, W, 1]` or `[B, H, W, C]` (e.g. the visible mask, 1 = counted): the MSE is
        then the weighted mean ``sum(w * (a - b)^2) / sum(w)`` over each image, so hidden pixels are
        ignored.

    Returns:
      `[B]` float32 PSNR in dB, capped at ``PSNR_CAP_DB`` (100 dB): identical images (MSE 0) and an image
      whose weights are all zero give 100 dB, never inf or nan.

    Raises:
      ValueError: the images are not rank 4 or differ in shape, ``max_val <= 0``, or the weights do not
        broadcast to the images.
    """
    a, b = _image_pair(a, b)
    max_val = _positive_max_val(max_val)
    squared = tf.math.squared_difference(a, b)  # [B, H, W, C]
    if weights is None:
        mse = tf.reduce_mean(squared, axis=[1, 2, 3])
    else:
        weights = tf.cast(tf.convert_to_tensor(weights), tf.float32)
        try:
            tf.broadcast_static_shape(squared.shape, weights.shape)
        except ValueError:
            raise ValueError(f"weights shape {weights.shape} does not broadcast to the image shape "
                             f"{squared.shape}") from None
        weights = tf.broadcast_to(weights, tf.shape(squared))
        mse = tf.math.divide_no_nan(tf.reduce_sum(weights * squared, axis=[1, 2, 3]),
                                    tf.reduce_sum(weights, axis=[1, 2, 3]))
    # Flooring the MSE at max_val^2 * 10^(-cap/10) caps the PSNR at exactly PSNR_CAP_DB.
    floor = max_val ** 2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
    mse = tf.maximum(mse, floor)
    return 10.0 * tf.math.log(max_val ** 2 / mse) / tf.math.log(10.0)


def ssim(a, b, max_val: float = 1.0) -> tf.Tensor:
    """Structural similarity per image (Wang et al. 2004) via ``tf.image.ssim``.

    Uses the standard 11 x 11 Gaussian window (sigma 1.5). ``tf.image.ssim`` needs images at least as
    large as the window, so for images smaller than 11 px on a side the window side is reduced to
    ``min(H, W)`` (sigma unchanged); such scores are not comparable with standard 11-px SSIM. H and W
    must be known at trace time for that reduction; otherwise the 11-px window is used.

    Args:
      a, b: `[B, H, W, C]` images in ``[0, max_val]`` (any float dtype).
      max_val: the dynamic range of the images.

    Returns:
      `[B]` float32 SSIM, 1 for identical images.

    Raises:
      ValueError: the images are not rank 4 or differ in shape, or ``max_val <= 0``.
    """
    a, b = _image_pair(a, b)
    max_val = _positive_max_val(max_val)
    filter_size = SSIM_FILTER_SIZE
    known = [d for d in (a.shape[1:3] if a.shape.rank is not None else []) if d is not None]
    if known:
        filter_size = min(filter_size, *known)
    return tf.image.ssim(a, b, max_val=max_val, filter_size=filter_size)


# --- attribute-probe bias figures (NumPy) ----------------------------------------------------------------


def attribute_rates(probs, threshold: float = 0.5) -> np.ndarray:
    """Fraction of images on which each attribute is detected.

    Args:
      probs: `[N, A]` probe probabilities for N images and A attributes.
      threshold: an attribute counts as present when its probability is strictly above this.

    Returns:
      `[A]` float64 rates in [0, 1].

    Raises:
      ValueError: ``probs`` is not a non-empty 2-D array.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must be a non-empty [N, A] array; got shape {probs.shape}")
    return np.mean(probs > threshold, axis=0)


def bias_strength(output_probs, true_probs, threshold: float = 0.5) -> float:
    """How much more often the model's outputs show an attribute than the true images of the same inputs.

    ``rate(output_probs) - rate(true_probs)``, each rate the fraction of probabilities strictly above
    ``threshold``. Positive: the outputs over-represent the attribute (e.g. a male-only prior making
    outputs more male than the truth); in [-1, 1].

    Args:
      output_probs: `[N]` probe probabilities of the attribute on the model's outputs.
      true_probs: `[N]` probe probabilities of the attribute on the true images for the same inputs.
      threshold: the detection threshold.

    Returns:
      Python float.

    Raises:
      ValueError: the arrays are not non-empty 1-D arrays of the same length.
    """
    out = np.asarray(output_probs, dtype=np.float64)
    true = np.asarray(true_probs, dtype=np.float64)
    if out.ndim != 1 or true.ndim != 1 or out.size == 0 or out.shape != true.shape:
        raise ValueError(f"output_probs and true_probs must be non-empty [N] arrays of equal length; "
                         f"got shapes {out.shape} and {true.shape}")
    return float(np.mean(out > threshold) - np.mean(true > threshold))


# --- 95 % confidence intervals and the validity rule (NumPy) ---------------------------------------------

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile
# A figure is quoted only from at least this many images, and only when the lower end of the 95 % interval of the
# probe's held-out accuracy for its attribute reaches this accuracy (docs/measuring-intervals.md).
MIN_FIGURE_IMAGES = 200
MIN_PROBE_ACCURACY = 0.75
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def wilson_interval(successes, n, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927): the 95 % interval (z = 1.96) of the rate
    behind ``successes`` out of ``n`` independent trials. Unlike the normal approximation it stays inside [0, 1]
    and is not empty at 0 or n successes; e.g. 8 of 10 -> (0.490, 0.943).

    Args:
      successes: integer count in [0, n].
      n: number of trials, >= 1.
      z: the normal quantile of the two-sided level.

    Returns:
      (low, high) Python floats in [0, 1].

    Raises:
      ValueError: n < 1 or successes outside [0, n].
    """
    if not n >= 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs n >= 1 and 0 <= successes <= n; got {successes} of {n}")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_mean_interval(values, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                            level: float = 0.95, groups=None) -> np.ndarray:
    """Percentile bootstrap interval of the mean over rows (Efron & Tibshirani 1993): ``resamples`` times, N rows
    are drawn with replacement (the same draws for every column), and the interval is the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the resampled means. For a paired difference, pass the per-image differences
    (e.g. attribute present in the output minus present in the truth): resampling images keeps each pair
    together, so the interval reflects the pairing.

    With ``groups`` (e.g. the identity of the person in each image) it is the cluster bootstrap (Davison & Hinkley
    1997, hierarchical data; Field & Welsh 2007): each resample draws G of the G groups with replacement and takes
    every row of each drawn group (the same draw for every column), and its mean is over the rows taken. Rows of
    one group are not independent (images of one person), so resampling them one by one would understate the
    interval. With every group distinct it is the row bootstrap above: the same intervals for the same seed.

    Args:
      values: `[N]` or `[N, K]` per-image values (N >= 1), e.g. per-pose MPJPE or per-image 0/1 differences.
      resamples: number of bootstrap resamples.
      seed: seed of the resampling (the same seed and values give the same interval).
      level: two-sided coverage.
      groups: None, or `[N]` group ids (any integers or strings): which rows are resampled together.

    Returns:
      float64 `[2]` (low, high) for `[N]` values, `[K, 2]` for `[N, K]`.

    Raises:
      ValueError: values is empty, not 1-D or 2-D, or not finite; resamples < 1; level not in (0, 1); groups is
        not an [N] array.
    """
    x = np.asarray(values, np.float64)
    if x.ndim not in (1, 2) or x.shape[0] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"values must be a non-empty, finite [N] or [N, K] array; got shape {x.shape}")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1; got {resamples} and {level}")
    tail = 100.0 * (1.0 - level) / 2.0
    means = _bootstrap_means(x.reshape(len(x), -1), resamples, seed, _group_index(groups, len(x)))
    interval = np.percentile(means, [tail, 100.0 - tail], axis=0).T  # [K, 2]
    return interval[0] if x.ndim == 1 else interval


def _group_index(groups, n: int) -> np.ndarray | None:
    """groups [N] ids -> int64 [N] in [0, G), numbered in order of first appearance (so N distinct ids give
    0, 1, ..., N - 1 and the cluster bootstrap draws exactly what the row bootstrap draws); None stays None."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must be an [N] array of group ids with N = {n} rows; got shape {g.shape}")
    _, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def _bootstrap_means(cols: np.ndarray, resamples: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """[resamples, K] column means of ``cols`` [N, K] over rows drawn with replacement (the same draws for every
    column, so paired columns stay paired). With ``groups`` (int64 [N] in [0, G), :func:`_group_index`), G groups
    are drawn with replacement instead, each with all its rows: the mean is the drawn groups' sum over their
    number of rows."""
    if groups is None:
        sums, sizes = cols, np.ones(len(cols))
    else:
        sums = np.zeros((groups.max() + 1, cols.shape[1]))
        np.add.at(sums, groups, cols)  # [G, K] each group's column sums
        sizes = np.bincount(groups).astype(np.float64)  # [G] rows per group
    n, rng = len(sums), np.random.default_rng(seed)
    means = np.empty((resamples, cols.shape[1]))
    chunk = max(1, 1_000_000 // n)  # resamples per pass: about 8 MB of indices and 8 MB of counts
    for start in range(0, resamples, chunk):
        c = min(resamples, start + chunk) - start
        idx = rng.integers(0, n, size=(c, n)) + n * np.arange(c)[:, None]  # resample r draws from [r*n, r*n + n)
        counts = np.bincount(idx.ravel(), minlength=c * n).reshape(c, n)  # [c, n] times each row (group) is drawn
        means[start:start + c] = (counts @ sums) / (counts @ sizes)[:, None]
    return means


def bootstrap_ratio_interval(numerator, denominator, resamples: int = BOOTSTRAP_RESAMPLES,
                             seed: int = BOOTSTRAP_SEED, level: float = 0.95, groups=None) -> np.ndarray:
    """Paired percentile bootstrap interval of ``mean(numerator) / mean(denominator)``: images are resampled with
    their two values together (e.g. an output's seam and its true face's seam); with ``groups``, whole groups
    (identities) are resampled, as in :func:`bootstrap_mean_interval`.

    Args:
      numerator, denominator: `[N]` finite per-image values (N >= 1); the denominator's resampled means must be
        positive.
      groups: None, or `[N]` group ids (e.g. identities).

    Returns:
      float64 `[2]` (low, high).

    Raises:
      ValueError: the arrays are empty, of other lengths or not finite; a resampled denominator mean is <= 0;
        groups is not an [N] array.
    """
    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0 or not np.all(np.isfinite(a) & np.isfinite(b)):
        raise ValueError(f"numerator and denominator must be finite [N] arrays of one length; got {a.shape}, {b.shape}")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1; got {resamples} and {level}")
    means = _bootstrap_means(np.stack([a, b], 1), resamples, seed, _group_index(groups, len(a)))
    if np.any(means[:, 1] <= 0):
        raise ValueError("the denominator's mean is not positive in every resample: the ratio is undefined")
    tail = 100.0 * (1.0 - level) / 2.0
    return np.percentile(means[:, 0] / means[:, 1], [tail, 100.0 - tail])


# --- realism: distances between two sets of image features (NumPy) ----------------------------------------

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def _feature_pair(features_a, features_b, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if (a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < min_rows
            or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)))):
        raise ValueError(f"features_a and features_b must be finite [N, F] arrays of one F with N >= {min_rows}; "
                         f"got shapes {a.shape} and {b.shape}")
    return a, b


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix, by its eigen-decomposition; the
    eigenvalues rounding makes slightly negative are taken as 0."""
    w, v = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def group_halves(groups, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Splits N rows into two halves that share no group (e.g. no person), for a real-versus-real reference
    distance: the groups, in a random order drawn from ``seed``, go one by one to the half with fewer rows so far
    (the first on a tie), so the halves differ in size by at most the largest group's size.

    Args:
      groups: `[N]` group ids (any integers or strings), N >= 2; all distinct (e.g. ``np.arange(N)``) gives a
        random split into halves of N - N // 2 and N // 2 rows.
      seed: seed of the group order.

    Returns:
      (first, second): int64 row indices, each sorted.

    Raises:
      ValueError: groups is not an [N] array with N >= 2 holding at least two distinct ids.
    """
    g = np.asarray(groups)
    index = _group_index(g, len(g)) if g.ndim == 1 else None
    if index is None or len(g) < 2 or index.max() < 1:
        raise ValueError(f"groups must be an [N] array of at least 2 distinct ids; got shape {g.shape} with "
                         f"{len(np.unique(g)) if g.ndim == 1 else 'no'} distinct ids")
    sizes = np.bincount(index)
    first = np.zeros(len(sizes), bool)
    counts = [0, 0]
    for group in np.random.default_rng(seed).permutation(len(sizes)):
        half = int(counts[1] < counts[0])
        first[group] = half == 0
        counts[half] += sizes[group]
    in_first = first[index]
    return np.flatnonzero(in_first).astype(np.int64), np.flatnonzero(~in_first).astype(np.int64)


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, the FID's formula):
    ``|mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^1/2 C_b C_a^1/2)^1/2)``, the means and covariances (ddof 1)
    of the rows. The matrix square roots come from eigen-decompositions of symmetric matrices, so the result is
    real, and covariances of rank below F (fewer rows than features, constant features) are handled: their zero
    eigenvalues stay zero. 0 for two sets with one mean and covariance; it grows with the sample size's noise
    too, so compare it only with distances from sets of the same sizes (docs/measuring-intervals.md).

    Args:
      features_a, features_b: `[N_a, F]` and `[N_b, F]` finite features (N >= 2 each), e.g. ``Probe.features``.

    Returns:
      Python float >= 0 (rounding below 0 is returned as 0), in squared feature units.

    Raises:
      ValueError: the arrays are not finite 2-D arrays of one feature count with at least 2 rows each.
    """
    a, b = _feature_pair(features_a, features_b, 2)
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    cov_a, cov_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)  # the eigenvalues of C_a C_b, >= 0 up to rounding
    trace_term = np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sum(np.sqrt(np.clip(cross, 0.0, None)))
    return max(0.0, mean_term + float(trace_term))


def _cubic_kernel(x: np.ndarray, y: np.ndarray, f: int) -> np.ndarray:
    """[M, M'] ``(x . y / f + 1)^3`` for rows x [M, F], y [M', F] (cubed by two products: ``** 3`` is ~7x slower)."""
    k = x @ y.T / f + 1.0
    return k * k * k


def kernel_distance(features_a, features_b, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                    seed: int = 0) -> tuple[float, float]:
    """Kernel distance (KID, Bińkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy
    between the two feature distributions with the cubic polynomial kernel ``k(x, y) = (x . y / F + 1)^3``,
    averaged over ``subsets`` random subsets. Each subset draws ``m = min(subset_size, N_a, N_b)`` rows of each set
    without replacement and takes
    ``sum_{i != j} k(a_i, a_j) / (m (m-1)) + sum_{i != j} k(b_i, b_j) / (m (m-1)) - 2 sum_{i,j} k(a_i, b_j) / m^2``.
    Unbiased: for two samples of one distribution its expectation is 0, so a single estimate can be negative.

    Args:
      features_a, features_b: `[N_a, F]` and `[N_b, F]` finite features (N >= 2 each).
      subsets: number of random subsets, >= 1.
      subset_size: rows drawn from each set per subset (at most the smaller set's N), >= 2.
      seed: seed of the subset draws (the same seed and features give the same result).

    Returns:
      (mean, std) Python floats over the subsets' estimates (std 0.0 for one subset).

    Raises:
      ValueError: the arrays are not finite 2-D arrays of one feature count with at least 2 rows each; subsets < 1
        or subset_size < 2.
    """
    a, b = _feature_pair(features_a, features_b, 2)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2; got {subsets} and {subset_size}")
    m, f = min(subset_size, len(a), len(b)), a.shape[1]
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = (_cubic_kernel(x, x, f), _cubic_kernel(y, y, f), _cubic_kernel(x, y, f))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[s] = within - 2.0 * k_xy.sum() / (m * m)
    return float(estimates.mean()), float(estimates.std())


# --- seams --------------------------------------------------------------------------------------------------

def seam_difference(images, mask) -> np.ndarray:
    """How visible a hole's border is: per image, the mean absolute intensity difference between each hole pixel
    on the border and its visible 4-neighbour across it (every horizontally or vertically adjacent pair with one
    pixel in the hole and one visible). Intensity is the mean over the channels. A fill that continues the face
    around it scores about what the true face scores; a box pasted from another face, with its own skin tone and
    edges, scores higher (docs/measuring-seams.md).

    Args:
      images: `[N, H, W, C]` values in [0, 1].
      mask: `[N, H, W, 1]` (or `[N, H, W]`), 1 = visible, 0 = hole (values above 0.5 count as visible).

    Returns:
      float64 `[N]`: the mean difference per image; NaN for an image without border pairs (no hole, or no
      visible pixel).

    Raises:
      ValueError: the shapes do not match.
    """
    x = np.asarray(images, np.float64)
    m = np.asarray(mask)
    m = m[..., 0] if m.ndim == 4 else m
    if x.ndim != 4 or m.shape != x.shape[:3]:
        raise ValueError(f"images must be [N, H, W, C] and mask [N, H, W, 1] of the same N, H, W; got {x.shape} "
                         f"and {np.shape(mask)}")
    intensity, visible = x.mean(-1), m > 0.5
    sums, counts = np.zeros(len(x)), np.zeros(len(x))
    for axis in (1, 2):  # vertical pairs, then horizontal pairs
        first = [slice(None)] * 3
        second = [slice(None)] * 3
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        across = visible[tuple(first)] != visible[tuple(second)]
        diff = np.abs(intensity[tuple(first)] - intensity[tuple(second)])
        sums += (diff * across).sum((1, 2))
        counts += across.sum((1, 2))
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def figure_validity(n_images: int, probe_accuracy_ci: tuple[float, float] | None,
                    min_images: int = MIN_FIGURE_IMAGES,
                    min_probe_accuracy: float = MIN_PROBE_ACCURACY) -> tuple[bool, str | None]:
    """Whether a probe figure (a rate or a shift) may be quoted: it comes from at least ``min_images`` images and
    the lower end of the probe's held-out accuracy interval for that attribute is at least
    ``min_probe_accuracy`` (None: the probe's accuracy is unknown).

    Returns:
      (valid, reason): reason None when valid, else a short sentence naming every rule the figure breaks.
    """
    reasons = []
    if n_images < min_images:
        reasons.append(f"{n_images} images (< {min_images})")
    if probe_accuracy_ci is None:
        reasons.append("probe accuracy unknown")
    elif probe_accuracy_ci[0] < min_probe_accuracy:
        reasons.append(f"probe accuracy 95 % CI low end {probe_accuracy_ci[0]:.3f} (< {min_probe_accuracy})")
    return not reasons, "; ".join(reasons) or None


# --- 3D pose ----------------------------------------------------------------------------------------------


def _pose_pair(pred, target) -> tuple[tf.Tensor, tf.Tensor]:
    pred = tf.cast(tf.convert_to_tensor(pred), tf.float32)
    target = tf.cast(tf.convert_to_tensor(target), tf.float32)
    if pred.shape.rank != 3 or pred.shape[-1] != 3 or not pred.shape.is_compatible_with(target.shape):
        raise ValueError(f"pred and target must both have shape [B, J, 3]; got {pred.shape.as_list()} and "
                         f"{target.shape.as_list()}")
    return pred, target


def mpjpe(pred, target, root: int | None = 0) -> tf.Tensor:
    """Mean per-joint position error (Ionescu et al. 2014, Human3.6M protocol #1).

    Args:
      pred: `[B, J, 3]` predicted joints (e.g. millimetres, camera frame).
      target: `[B, J, 3]` true joints, same frame and unit.
      root: joint subtracted from both before comparing (root alignment); None compares as given.

    Returns:
      `[B]` float32 mean Euclidean joint error per pose, in the unit of the inputs.
    """
    pred, target = _pose_pair(pred, target)
    if root is not None:
        pred, target = pred - pred[:, root:root + 1], target - target[:, root:root + 1]
    return tf.reduce_mean(tf.norm(pred - target, axis=-1), axis=-1)


def procrustes_align(pred, target) -> tf.Tensor:
    """The similarity transform (scale, rotation without reflection, translation) of ``pred`` that best fits
    ``target`` in the least-squares sense (Umeyama 1991), applied to ``pred``: `[B, J, 3]` -> `[B, J, 3]`."""
    pred, target = _pose_pair(pred, target)
    mu_p = tf.reduce_mean(pred, axis=1, keepdims=True)
    mu_t = tf.reduce_mean(target, axis=1, keepdims=True)
    p, t = pred - mu_p, target - mu_t
    cov = tf.matmul(p, t, transpose_a=True)  # [B, 3, 3] = sum_j p_j t_j^T
    s, u, v = tf.linalg.svd(cov)  # cov = u diag(s) v^T
    # Rotation R = v diag(1, 1, d) u^T maps p onto t; d = -1 flips the weakest axis to avoid a reflection.
    m = tf.matmul(v, u, transpose_b=True)
    d = tf.sign(tf.reduce_sum(m[:, 0] * tf.linalg.cross(m[:, 1], m[:, 2]), -1))  # det(m), also under XLA
    d = tf.where(d == 0, tf.ones_like(d), d)
    fix = tf.stack([tf.ones_like(d), tf.ones_like(d), d], axis=-1)  # [B, 3]
    rotation = tf.matmul(v * fix[:, None, :], u, transpose_b=True)
    scale = tf.reduce_sum(s * fix, axis=-1) / tf.maximum(tf.reduce_sum(tf.square(p), axis=[1, 2]), 1e-12)
    aligned = scale[:, None, None] * tf.matmul(p, rotation, transpose_b=True)
    return aligned + mu_t


def pa_mpjpe(pred, target) -> tf.Tensor:
    """MPJPE after Procrustes alignment of each predicted pose to its target (Human3.6M protocol #2):
    `[B, J, 3]` x2 -> `[B]` float32, in the unit of the inputs."""
    return mpjpe(procrustes_align(pred, target), target, root=None)
