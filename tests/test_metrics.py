"""Metrics: PSNR known values, cap and weighting; SSIM on identical and tiny images; bias arithmetic; 95 %
intervals (Wilson, paired and identity bootstrap) and the validity rule; Fréchet and kernel distances."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf import metrics

# --- PSNR ------------------------------------------------------------------------------------------------


def test_psnr_known_value_mse_001_is_20_db():
    a = tf.zeros([2, 4, 4, 3])
    b = tf.fill([2, 4, 4, 3], 0.1)  # MSE 0.01
    got = metrics.psnr(a, b)
    assert got.shape == (2,) and got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), 20.0, rtol=1e-5)
    np.testing.assert_allclose(metrics.psnr(a * 255, b * 255, max_val=255.0).numpy(), 20.0, rtol=1e-5)


def test_psnr_is_per_image():
    a = np.zeros((2, 4, 4, 1), np.float32)
    b = np.stack([np.full((4, 4, 1), 0.1), np.full((4, 4, 1), 0.01)]).astype(np.float32)
    np.testing.assert_allclose(metrics.psnr(a, b).numpy(), [20.0, 40.0], rtol=1e-5)


def test_psnr_of_identical_images_is_capped_not_inf():
    x = tf.random.stateless_uniform([3, 8, 8, 3], seed=[1, 2])
    got = metrics.psnr(x, x).numpy()
    np.testing.assert_allclose(got, metrics.PSNR_CAP_DB, rtol=1e-5)
    assert metrics.PSNR_CAP_DB == 100.0
    # A nearly perfect image stays below the cap and finite too.
    near = metrics.psnr(x, x + 1e-4).numpy()
    assert np.all(np.isfinite(near)) and np.all(near < 100.0) and np.all(near > 70.0)


def test_weighted_psnr_ignores_hidden_pixels():
    a = np.zeros((2, 4, 4, 3), np.float32)
    b = np.full((2, 4, 4, 3), 0.1, np.float32)
    b[:, :, :2] = 1.0  # the hidden left half is completely wrong
    mask = np.ones((2, 4, 4, 1), np.float32)
    mask[:, :, :2] = 0.0
    np.testing.assert_allclose(metrics.psnr(a, b, weights=mask).numpy(), 20.0, rtol=1e-5)
    assert np.all(metrics.psnr(a, b).numpy() < 10.0)
    # An image with nothing visible gets the cap rather than nan.
    np.testing.assert_allclose(metrics.psnr(a, b, weights=np.zeros_like(mask)).numpy(), 100.0, rtol=1e-5)


def test_psnr_low_precision_inputs_and_tf_function():
    a = tf.zeros([1, 4, 4, 3], tf.float16)
    b = tf.fill([1, 4, 4, 3], tf.constant(0.1, tf.bfloat16))
    got = tf.function(metrics.psnr)(a, b)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), 20.0, atol=0.05)  # bfloat16 0.1 is 0.10009765625


@pytest.mark.parametrize("kwargs, needle", [
    ({"b": np.zeros((1, 4, 4, 1))}, "image shapes differ"),
    ({"a": np.zeros((4, 4, 3)), "b": np.zeros((4, 4, 3))}, "rank 4"),
    ({"max_val": 0.0}, "max_val"),
    ({"weights": np.ones((1, 4, 2, 1))}, "weights shape"),
])
def test_psnr_argument_errors(kwargs, needle):
    args = {"a": np.zeros((1, 4, 4, 3)), "b": np.zeros((1, 4, 4, 3)), **kwargs}
    with pytest.raises(ValueError, match=needle):
        metrics.psnr(**args)


# --- SSIM ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 8, 3])
def test_ssim_is_one_on_identical_images_including_tiny_ones(size):
    x = tf.random.stateless_uniform([2, size, size, 3], seed=[3, 4])
    got = metrics.ssim(x, x)
    assert got.shape == (2,) and got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("size", [16, 8])
def test_ssim_drops_for_different_images(size):
    x = tf.random.stateless_uniform([2, size, size, 3], seed=[3, 4])
    noisy = tf.clip_by_value(x + tf.random.stateless_normal(x.shape, seed=[5, 6], stddev=0.2), 0.0, 1.0)
    got = metrics.ssim(x, noisy).numpy()
    assert np.all(got < 0.95) and np.all(got > -1.0)


def test_ssim_low_precision_inputs_under_tf_function():
    x = tf.random.stateless_uniform([1, 12, 12, 3], seed=[7, 8])
    got = tf.function(metrics.ssim)(tf.cast(x, tf.float16), tf.cast(x, tf.bfloat16))
    assert got.dtype == tf.float32 and 0.9 < float(got[0]) <= 1.0


def test_ssim_shape_error():
    with pytest.raises(ValueError, match="image shapes differ"):
        metrics.ssim(tf.zeros([1, 8, 8, 3]), tf.zeros([1, 8, 8, 1]))


# --- attribute rates and bias strength --------------------------------------------------------------------


def test_attribute_rates_threshold_is_strict():
    probs = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.5]]
    np.testing.assert_allclose(metrics.attribute_rates(probs), [2 / 3, 0.0])
    np.testing.assert_allclose(metrics.attribute_rates(probs, threshold=0.3), [2 / 3, 2 / 3])


def test_bias_strength_arithmetic():
    outputs = [0.9, 0.8, 0.7, 0.1]  # rate 0.75
    truth = [0.9, 0.1, 0.2, 0.3]  # rate 0.25
    assert metrics.bias_strength(outputs, truth) == pytest.approx(0.5)
    assert metrics.bias_strength(truth, outputs) == pytest.approx(-0.5)
    assert metrics.bias_strength(truth, truth) == 0.0
    assert isinstance(metrics.bias_strength(outputs, truth), float)


@pytest.mark.parametrize("fn, args", [
    (metrics.attribute_rates, ([0.1, 0.2],)),
    (metrics.attribute_rates, (np.zeros((0, 3)),)),
    (metrics.bias_strength, ([0.1, 0.2], [0.3])),
    (metrics.bias_strength, ([], [])),
    (metrics.bias_strength, ([[0.1]], [[0.2]])),
])
def test_attribute_figures_reject_bad_shapes(fn, args):
    with pytest.raises(ValueError, match="probs"):
        fn(*args)


# --- 95 % intervals and the validity rule -------------------------------------------------------------------


@pytest.mark.parametrize("successes, n, expected", [
    (8, 10, (0.4902, 0.9433)),  # the textbook example
    (0, 10, (0.0, 0.2775)),  # not empty at 0 successes, unlike the normal approximation
    (10, 10, (0.7225, 1.0)),
    (50, 100, (0.4038, 0.5962)),
    (960, 1000, (0.9460, 0.9705)),
])
def test_wilson_interval_known_values(successes, n, expected):
    """Expected values as scipy.stats.binomtest(successes, n).proportion_ci(method="wilson") gives them."""
    lo, hi = metrics.wilson_interval(successes, n)
    assert (lo, hi) == pytest.approx(expected, abs=1e-4)
    assert isinstance(lo, float) and isinstance(hi, float)


@pytest.mark.parametrize("successes, n", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_interval_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="wilson_interval"):
        metrics.wilson_interval(successes, n)


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory_and_is_symmetric():
    x = np.random.default_rng(3).normal(10.0, 2.0, size=1000)
    lo, hi = metrics.bootstrap_mean_interval(x)
    half = 1.96 * x.std() / np.sqrt(len(x))  # the normal-theory half-width, 0.124 here
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.08)
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.1 * half)
    np.testing.assert_array_equal(metrics.bootstrap_mean_interval(x), [lo, hi])  # the fixed seed repeats
    assert not np.array_equal(metrics.bootstrap_mean_interval(x, seed=1), [lo, hi])
    np.testing.assert_array_equal(metrics.bootstrap_mean_interval(np.full(50, 0.25)), [0.25, 0.25])


def test_paired_bootstrap_covers_the_true_shift_about_95_percent_of_the_time():
    """Outputs flip each true 0/1 label to 1 with probability 0.2 (true rate 0.4, so the true shift is
    0.6 * 0.2 = 0.12): the paired interval of mean(out - true) over 200 images should contain 0.12 in about 95 % of
    300 simulated evaluations."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(300):
        truth = rng.random(200) < 0.4
        out = truth | (rng.random(200) < 0.2)
        lo, hi = metrics.bootstrap_mean_interval(out.astype(float) - truth, resamples=500, seed=int(rng.integers(1e9)))
        hits += lo <= 0.12 <= hi
    assert 0.91 <= hits / 300 <= 0.98


def test_paired_bootstrap_is_narrower_than_the_unpaired_difference_of_correlated_rates():
    rng = np.random.default_rng(1)
    truth = (rng.random(400) < 0.5).astype(float)
    out = np.where(rng.random(400) < 0.95, truth, 1 - truth)  # the output agrees with its own truth 95 % of the time
    paired = metrics.bootstrap_mean_interval(out - truth)
    a, b = metrics.bootstrap_mean_interval(out), metrics.bootstrap_mean_interval(truth, seed=1)
    unpaired_half = np.hypot((a[1] - a[0]) / 2, (b[1] - b[0]) / 2)  # independent rates: half-widths add in quadrature
    assert (paired[1] - paired[0]) / 2 < 0.5 * unpaired_half
    # [N, K] values: each column gets the interval its own 1-D call gives (the same resampled images).
    both = metrics.bootstrap_mean_interval(np.stack([out, out - truth], 1))
    np.testing.assert_array_equal(both, [a, paired])


@pytest.mark.parametrize("values", [[], [[[1.0]]], [1.0, np.nan]])
def test_bootstrap_interval_rejects_bad_values(values):
    with pytest.raises(ValueError, match="values"):
        metrics.bootstrap_mean_interval(values)


def test_figure_validity_needs_200_images_and_a_probe_interval_above_075():
    assert metrics.figure_validity(200, (0.75, 0.9)) == (True, None)
    valid, reason = metrics.figure_validity(16, (0.9, 0.95))
    assert not valid and reason == "16 images (< 200)"
    # 0.8 accuracy on 100 held-out images: the interval's low end is 0.711, so the probe does not pass.
    valid, reason = metrics.figure_validity(1000, metrics.wilson_interval(80, 100))
    assert not valid and reason == "probe accuracy 95 % CI low end 0.711 (< 0.75)"
    valid, reason = metrics.figure_validity(4, None)
    assert not valid and reason == "4 images (< 200); probe accuracy unknown"


# --- 3D pose -------------------------------------------------------------------------------------------


def _similar(poses, seed=0, scale=1.7):
    from scipy.spatial.transform import Rotation

    rotation = Rotation.random(len(poses), random_state=seed).as_matrix()
    return scale * np.einsum("bij,bkj->bki", rotation, poses) + np.array([40.0, -20.0, 900.0])


def test_mpjpe_known_value_and_root_alignment():
    target = np.zeros((1, 3, 3), np.float32)
    target[0, 1] = [100, 0, 0]
    pred = target.copy()
    pred[0, 2] = [0, 30, 40]  # one joint off by 50 mm
    np.testing.assert_allclose(metrics.mpjpe(pred, target).numpy(), [50 / 3], rtol=1e-6)
    # A global shift disappears after root alignment but not without it.
    np.testing.assert_allclose(metrics.mpjpe(pred + 500.0, target).numpy(), [50 / 3], rtol=1e-5)
    assert metrics.mpjpe(pred + 500.0, target, root=None).numpy()[0] > 800


def test_pa_mpjpe_removes_similarity_transforms_but_not_reflections():
    rng = np.random.default_rng(0)
    target = rng.normal(0, 300, (4, 17, 3))
    pred = _similar(target)
    assert metrics.mpjpe(pred, target).numpy().min() > 100
    np.testing.assert_allclose(metrics.pa_mpjpe(pred, target).numpy(), 0.0, atol=1e-2)
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert metrics.pa_mpjpe(mirrored, target).numpy().min() > 50


def test_pa_mpjpe_under_xla_and_shape_error():
    rng = np.random.default_rng(1)
    target = rng.normal(0, 300, (3, 17, 3)).astype(np.float32)
    pred = (_similar(target, seed=3) + rng.normal(0, 10, target.shape)).astype(np.float32)
    eager = metrics.pa_mpjpe(pred, target).numpy()
    compiled = tf.function(metrics.pa_mpjpe, jit_compile=True)(pred, target).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-3)
    assert 0 < eager.max() < 20  # only the noise is left
    with pytest.raises(ValueError, match=r"\[B, J, 3\]"):
        metrics.mpjpe(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)))


# --- seams -------------------------------------------------------------------------------------------------
def _square_hole(size=4, top=1, left=1, hole=2):
    mask = np.ones((1, size, size, 1))
    mask[0, top:top + hole, left:left + hole] = 0.0
    return mask


def test_seam_difference_on_hand_made_holes():
    from aign_tf.metrics import seam_difference

    mask = _square_hole()  # a 2x2 hole in the middle of 4x4: 8 border pairs
    pasted = np.zeros((1, 4, 4, 3))
    pasted[0, 1:3, 1:3] = 1.0  # a bright box on a black face: every pair differs by 1
    assert seam_difference(pasted, mask) == pytest.approx([1.0])
    assert seam_difference(np.full((1, 4, 4, 3), 0.3), mask) == pytest.approx([0.0])  # a seamless fill
    # A single channel differing by 0.6 is an intensity difference of 0.2 (the mean over channels).
    tinted = np.zeros((1, 4, 4, 3))
    tinted[0, 1:3, 1:3, 0] = 0.6
    assert seam_difference(tinted, mask) == pytest.approx([0.2])
    # A hole in the corner: only the pairs inside the image (2 vertical + 2 horizontal for a 2x2 corner hole).
    corner = _square_hole(top=0, left=0)
    ramp = np.zeros((1, 4, 4, 3))
    ramp[0, :2, :2] = 1.0
    ramp[0, 2, :2] = 0.5  # the two vertical pairs differ by 0.5, the two horizontal ones by 1
    assert seam_difference(ramp, corner) == pytest.approx([0.75])
    # No hole, or nothing visible: no border, NaN (left out of the aggregate).
    both = np.concatenate([np.ones((1, 4, 4, 1)), np.zeros((1, 4, 4, 1))])
    assert np.all(np.isnan(seam_difference(np.zeros((2, 4, 4, 3)), both)))
    with pytest.raises(ValueError, match="same N, H, W"):
        seam_difference(np.zeros((1, 4, 4, 3)), np.ones((1, 5, 4, 1)))


def test_bootstrap_ratio_interval_is_paired_and_covers_the_ratio():
    from aign_tf.metrics import bootstrap_ratio_interval

    rng = np.random.default_rng(0)
    truth = rng.uniform(0.02, 0.06, 400)
    outputs = 1.5 * truth  # every output's seam 1.5x its true face's: the ratio is 1.5 in every resample
    assert bootstrap_ratio_interval(outputs, truth) == pytest.approx([1.5, 1.5])
    noisy = outputs + rng.normal(0, 0.01, 400)
    lo, hi = bootstrap_ratio_interval(noisy, truth)
    assert lo < noisy.mean() / truth.mean() < hi and hi - lo < 0.2
    np.testing.assert_array_equal(bootstrap_ratio_interval(noisy, truth), bootstrap_ratio_interval(noisy, truth))
    with pytest.raises(ValueError, match="not positive"):
        bootstrap_ratio_interval(outputs, np.zeros(400))
    with pytest.raises(ValueError, match="one length"):
        bootstrap_ratio_interval(outputs, truth[:10])


# --- the identity (cluster) bootstrap --------------------------------------------------------------------------


def test_identity_bootstrap_with_every_identity_distinct_is_the_image_bootstrap():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 2))
    plain = metrics.bootstrap_mean_interval(x)
    ids = rng.permutation(10_000)[:300]  # any distinct ids, in any order, even strings
    np.testing.assert_allclose(metrics.bootstrap_mean_interval(x, groups=ids), plain, rtol=1e-12)
    np.testing.assert_allclose(metrics.bootstrap_mean_interval(x, groups=[f"p{i}" for i in ids]), plain, rtol=1e-12)
    num, den = rng.uniform(1, 2, 300), rng.uniform(1, 2, 300)
    np.testing.assert_allclose(metrics.bootstrap_ratio_interval(num, den, groups=ids),
                               metrics.bootstrap_ratio_interval(num, den), rtol=1e-12)


def test_identity_bootstrap_of_identical_images_of_four_people_is_much_wider():
    """4 identities x 50 identical images: the image bootstrap treats them as 200 independent values (a narrow
    interval); resampling the 4 people gives the spread of 4 values."""
    person = np.array([0.1, 0.9, 0.3, 0.6])
    x, ids = np.repeat(person, 50), np.repeat([17, 4, 99, 5], 50)
    lo, hi = metrics.bootstrap_mean_interval(x)
    c_lo, c_hi = metrics.bootstrap_mean_interval(x, groups=ids)
    assert c_hi - c_lo > 4 * (hi - lo)
    assert c_lo <= x.mean() <= c_hi and person.min() <= c_lo and c_hi <= person.max()
    paired = metrics.bootstrap_mean_interval(np.stack([x, 2 * x], 1), groups=ids)  # one draw for both columns
    np.testing.assert_allclose(paired, [[c_lo, c_hi], [2 * c_lo, 2 * c_hi]])
    r_lo, r_hi = metrics.bootstrap_ratio_interval(x + 1, np.repeat([1.0, 2.0, 1.0, 2.0], 50), groups=ids)
    i_lo, i_hi = metrics.bootstrap_ratio_interval(x + 1, np.repeat([1.0, 2.0, 1.0, 2.0], 50))
    assert r_hi - r_lo > 4 * (i_hi - i_lo)


def test_identity_bootstrap_covers_the_mean_of_clustered_data_where_the_image_bootstrap_does_not():
    """40 people x 5 images, a person effect (std 1) much larger than the image noise (std 0.5), true mean 0: over
    300 simulated evaluations the identity interval covers 0 about 92 % of the time (60 % for the image one)."""
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(40), 5)
    cluster = image = 0
    for _ in range(300):
        x = rng.normal(0, 1, 40)[ids] + rng.normal(0, 0.5, 200)
        seed = int(rng.integers(1e9))
        lo, hi = metrics.bootstrap_mean_interval(x, resamples=500, seed=seed, groups=ids)
        cluster += lo <= 0 <= hi
        lo, hi = metrics.bootstrap_mean_interval(x, resamples=500, seed=seed)
        image += lo <= 0 <= hi
    assert cluster / 300 >= 0.88 and image / 300 <= 0.75


def test_identity_bootstrap_rejects_groups_of_another_length():
    with pytest.raises(ValueError, match=r"groups must be an \[N\] array .* N = 3 rows; got shape \(2,\)"):
        metrics.bootstrap_mean_interval([1.0, 2.0, 3.0], groups=[0, 1])
    with pytest.raises(ValueError, match="groups"):
        metrics.bootstrap_ratio_interval([1.0, 2.0], [1.0, 2.0], groups=[[0, 1]])


# --- realism: Fréchet and kernel distances ----------------------------------------------------------------------


def _white(n: int, f: int, seed: int) -> np.ndarray:
    """[n, f] rows whose sample mean is exactly 0 and sample covariance (ddof 1) exactly the identity."""
    x = np.random.default_rng(seed).normal(size=(n, f))
    x -= x.mean(0)
    return x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T


def test_frechet_distance_known_values():
    x, shift = _white(400, 8, 0), np.arange(8) / 4.0
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # Equal covariances: only the means differ, FD = |shift|^2.
    assert metrics.frechet_distance(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-9)
    # Covariances I and 4 I: tr(I) + tr(4I) - 2 tr(2I) = F, plus |shift|^2.
    assert metrics.frechet_distance(x, 2 * x + shift) == pytest.approx(np.sum(shift**2) + 8, rel=1e-9)
    assert metrics.frechet_distance(2 * x + shift, x) == pytest.approx(np.sum(shift**2) + 8, rel=1e-9)


def test_frechet_distance_is_symmetric_and_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(500, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 1.0
    fd = metrics.frechet_distance(a, b)
    assert isinstance(fd, float) and fd == pytest.approx(metrics.frechet_distance(b, a), rel=1e-9)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca) + np.trace(cb)
                - 2 * np.trace(linalg.sqrtm(ca @ cb).real))
    assert fd == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_with_rank_deficient_covariances_is_real_and_finite():
    rng = np.random.default_rng(3)
    few = rng.normal(size=(10, 32))  # 10 rows, 32 features: covariance of rank 9
    few[:, 5] = 0.7  # and a constant feature
    assert metrics.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
    assert metrics.frechet_distance(few, few + 0.5) == pytest.approx(32 * 0.25, rel=1e-6)
    other = rng.normal(size=(12, 32))
    fd = metrics.frechet_distance(few, other)
    assert np.isfinite(fd) and fd > 0 and fd == pytest.approx(metrics.frechet_distance(other, few), rel=1e-6)
    with pytest.raises(ValueError, match=r"one F with N >= 2; got shapes \(10, 32\) and \(10, 31\)"):
        metrics.frechet_distance(few, few[:, 1:])
    with pytest.raises(ValueError, match=r"N >= 2; got shapes \(1, 32\)"):
        metrics.frechet_distance(few[:1], few)


def _mmd_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of the cubic kernel, written out pair by pair."""
    k = lambda u, v: (u @ v / x.shape[1] + 1.0) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kernel_distance_is_the_unbiased_mmd_of_the_cubic_kernel():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 3)), rng.normal(0.3, 1.2, size=(12, 3))
    mean, std = metrics.kernel_distance(x, y, subsets=1, subset_size=12)  # one subset: all rows, in some order
    assert mean == pytest.approx(_mmd_unbiased(x, y), rel=1e-9) and std == 0.0
    assert metrics.kernel_distance(x, y, subsets=5, subset_size=6) == metrics.kernel_distance(x, y, subsets=5,
                                                                                              subset_size=6)
    with pytest.raises(ValueError, match="subset_size >= 2"):
        metrics.kernel_distance(x, y, subset_size=1)


def test_kernel_distance_is_unbiased_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(6)
    same = [metrics.kernel_distance(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), subsets=20,
                                    subset_size=100, seed=s)[0] for s in range(12)]
    shifted, shifted_std = metrics.kernel_distance(rng.normal(size=(300, 8)), rng.normal(0.5, 1, size=(300, 8)),
                                                   subsets=20, subset_size=100)
    assert min(same) < 0 < max(same)  # unbiased: estimates of 0 fall on both sides
    assert abs(np.mean(same)) < 0.1 * shifted and shifted - 3 * shifted_std > 0
    x = rng.normal(size=(300, 8))
    assert abs(metrics.kernel_distance(x, x, subsets=20, subset_size=100)[0]) < 0.1 * shifted


def test_group_halves_share_no_person_and_are_balanced():
    rng = np.random.default_rng(7)
    ids = np.repeat(rng.permutation(60), rng.integers(1, 6, 60))  # 60 people with 1-5 images each
    first, second = metrics.group_halves(ids)
    assert not set(ids[first]) & set(ids[second])
    np.testing.assert_array_equal(np.sort(np.concatenate([first, second])), np.arange(len(ids)))
    assert abs(len(first) - len(second)) <= 5 and first.dtype == np.int64
    np.testing.assert_array_equal(metrics.group_halves(ids)[0], first)  # the seed repeats
    assert not np.array_equal(metrics.group_halves(ids, seed=1)[0], first)
    a, b = metrics.group_halves(np.arange(7))
    assert (len(a), len(b)) == (4, 3)
    with pytest.raises(ValueError, match="at least 2 distinct ids; got shape \\(3,\\) with 1 distinct"):
        metrics.group_halves([5, 5, 5])
