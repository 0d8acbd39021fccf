"""The face evaluation's probe figures: 95 % intervals, the validity rule, the prior named in eval.json and in the
table (aign_tf.tasks.faces FaceTask.evaluate / _bias_figures, aign_tf.main.format_eval_table)."""

import keras
import numpy as np
import pytest

from aign_tf import metrics
from aign_tf.main import format_eval_table
from aign_tf.probe import Probe
from aign_tf.tasks.faces import REPORTED_ATTRIBUTES, FaceTaskConfig, InpaintTask

TINY = 32


def _probe(names, accuracy: float, accuracy_images: int | None) -> Probe:
    """A probe with a fixed random linear model (its readings vary from image to image) whose held-out accuracy is
    ``accuracy`` for every attribute, measured on ``accuracy_images`` images."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((TINY, TINY, 3)), keras.layers.Flatten(), keras.layers.Dense(len(names))])
    return Probe(model, names, {a: accuracy for a in names}, {a: 0.5 for a in names}, accuracy_images)


def _task(splits, **kwargs):
    keras.utils.set_random_seed(0)
    config = FaceTaskConfig(image_size=TINY, g_filters=4, d_filters=4, **{"bias": "male", **kwargs})
    return InpaintTask(config, splits, log=lambda *_: None)


def test_figures_from_16_images_are_marked_not_valid_in_eval_results_and_table(tmp_path, tiny_splits):
    names = tiny_splits.train.attribute_names
    task = _task(tiny_splits)
    result = task.evaluate(task.generator, str(tmp_path), probe=_probe(names, 0.95, 1000))
    assert result["eval_images"] == 16
    assert set(result["attributes"]) == set(REPORTED_ATTRIBUTES)
    for a in result["attributes"].values():
        assert a["valid"] is False and a["invalid_reason"] == "16 images (< 200)"
        assert a["probe_reliable"] is True  # the probe is fine: the figure is too small
        for key in ("rate_outputs", "rate_true", "shift"):
            lo, hi = a[f"{key}_ci95"]
            assert lo <= a[key] <= hi
    assert result["bias_attribute"] == "Male" and result["bias_valid"] is False
    assert result["bias_invalid_reason"] == "16 images (< 200)"
    assert result["bias_strength"] == result["attributes"]["Male"]["shift"]
    assert result["bias_strength_ci95"] == result["attributes"]["Male"]["shift_ci95"]
    assert set(result["ci95_methods"]) == {"rate", "shift", "probe_accuracy", "valid"}

    table = format_eval_table(result)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].startswith("evaluation: task=inpaint bias=male on 16 held-out images")
    rows = [line for line in lines if line.startswith(tuple(f"  {a} " for a in REPORTED_ATTRIBUTES))]
    assert len(rows) == len(REPORTED_ATTRIBUTES) and all(row.endswith("  NOT VALID") for row in rows)
    male = result["attributes"]["Male"]
    lo, hi = male["shift_ci95"]
    assert f"{male['shift']:+.3f} [{lo:+.3f}, {hi:+.3f}]" in rows[0]
    assert f"  NOT VALID ({', '.join(REPORTED_ATTRIBUTES)}): 16 images (< 200)" in lines
    assert lines[-1].startswith("  bias strength (Male): ") and lines[-1].endswith("NOT VALID: 16 images (< 200)")


@pytest.mark.parametrize("bias, attribute, sign", [("male", "Male", 1), ("old", "Young", -1)])
def test_figures_carry_wilson_and_paired_bootstrap_intervals_and_are_valid_from_250_images(tiny_splits, bias,
                                                                                            attribute, sign):
    names = tiny_splits.train.attribute_names
    task = _task(tiny_splits, bias=bias)
    rng = np.random.default_rng(0)
    true_images = rng.integers(0, 256, (250, TINY, TINY, 3), dtype=np.uint8)
    outputs = np.clip(true_images / 255.0 + rng.normal(0, 0.2, true_images.shape), 0, 1).astype(np.float32)
    probe = _probe(names, 0.9, 1000)
    result = task._bias_figures(probe, outputs, true_images)

    i = names.index(attribute)
    has_out, has_true = probe.probabilities(outputs)[:, i] > 0.5, probe.probabilities(true_images)[:, i] > 0.5
    a = result["attributes"][attribute]
    assert a["rate_outputs"] == pytest.approx(has_out.mean()) and a["rate_true"] == pytest.approx(has_true.mean())
    assert a["rate_outputs_ci95"] == pytest.approx(metrics.wilson_interval(has_out.sum(), 250))
    assert a["rate_true_ci95"] == pytest.approx(metrics.wilson_interval(has_true.sum(), 250))
    assert a["shift_ci95"] == pytest.approx(metrics.bootstrap_mean_interval(has_out.astype(float) - has_true))
    assert a["probe_accuracy_ci95"] == pytest.approx(metrics.wilson_interval(900, 1000))
    assert a["valid"] is True and a["invalid_reason"] is None and a["probe_images"] == 1000
    assert 0 < has_out.mean() < 1 and a["shift_ci95"][0] < a["shift_ci95"][1]  # not a degenerate case
    lo, hi = a["shift_ci95"]
    assert result["bias_strength"] == pytest.approx(sign * a["shift"])
    assert result["bias_strength_ci95"] == pytest.approx([lo, hi] if sign > 0 else [-hi, -lo])
    assert result["bias_valid"] is True and result["bias_invalid_reason"] is None


def test_a_probe_whose_accuracy_interval_reaches_below_075_makes_figures_not_valid(tiny_splits):
    """0.78 accuracy measured on 100 images (Wilson interval 0.689-0.850): the point estimate passes 0.75, the
    interval does not, so the probe is not reliable and its figures are not valid, however many images."""
    names = tiny_splits.train.attribute_names
    task = _task(tiny_splits)
    images = np.random.default_rng(1).integers(0, 256, (300, TINY, TINY, 3), dtype=np.uint8)
    probe = _probe(names, 0.78, 100)
    assert not probe.reliable("Male") and probe.accuracy_interval("Male") == pytest.approx((0.689, 0.850), abs=1e-3)
    result = task._bias_figures(probe, images / 255.0, images)
    assert result["bias_probe_reliable"] is False and result["bias_valid"] is False
    assert result["bias_invalid_reason"] == "probe accuracy 95 % CI low end 0.689 (< 0.75)"
    unknown = task._bias_figures(_probe(names, 0.9, None), images / 255.0, images)  # how many images: unknown
    assert unknown["bias_valid"] is False and unknown["bias_invalid_reason"] == "probe accuracy unknown"
    assert unknown["bias_probe_accuracy_ci95"] is None
    table = format_eval_table({"task": "inpaint", "bias": "male", "eval_images": 300, "consistency_psnr_db": 1.0,
                               "psnr_vs_truth_db": 1.0, "ssim_vs_truth": 0.5, **unknown})
    (male,) = [line for line in table.splitlines() if line.startswith("  Male ")]
    assert male.endswith(" 0.900  NOT VALID")  # the accuracy without an interval


def test_with_prior_dir_eval_and_export_name_the_prior_dir_not_the_bias(tmp_path, tiny_splits):
    from aign_tf import formats

    prior = tmp_path / "one_person"
    rng = np.random.default_rng(0)
    for i in range(3):
        formats.write_image(str(prior / f"face_{i}.png"), rng.random((40, 40, 3)))
    task = _task(tiny_splits, prior_dir=str(prior))  # --bias keeps its default, male, which the prior ignores
    result = task.evaluate(task.generator, str(tmp_path / "run"))
    assert result["bias"] is None and result["prior_dir"] == str(prior)
    assert "3 images from --prior_dir" in result["prior"]
    header = format_eval_table(result).splitlines()[0]
    assert header == f"evaluation: task=inpaint prior_dir={prior} on 16 held-out images"
    assert task.export_metadata()["bias"] is None and task.export_metadata()["prior_dir"] == str(prior)


def test_inpainting_eval_reports_the_hole_seam_on_outputs_and_truth(tmp_path, tiny_splits):
    from aign_tf.tasks.faces import SuperResTask

    task = _task(tiny_splits)
    result = task.evaluate(task.generator, str(tmp_path))
    assert result["seam_images"] == 16 and result["seam_outputs"] >= 0 and result["seam_true"] > 0
    assert result["seam_ratio"] == pytest.approx(result["seam_outputs"] / result["seam_true"])
    lo, hi = result["seam_ratio_ci95"]
    assert lo <= result["seam_ratio"] <= hi
    line = [row for row in format_eval_table(result).splitlines() if "seam" in row]
    assert len(line) == 1 and f"= {result['seam_ratio']:.3f} [{lo:.3f}, {hi:.3f}]" in line[0]
    keras.utils.set_random_seed(0)
    superres = SuperResTask(FaceTaskConfig(image_size=TINY, g_filters=4, d_filters=4), tiny_splits, log=print)
    assert "seam_images" not in superres.evaluate(superres.generator, str(tmp_path / "sr"))  # no hole
