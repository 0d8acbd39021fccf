"""The pose3d task: camera parameterisation, batches, renderer conventions against the data, losses, a short
training run, evaluation figures and serving."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf import metrics
from aign_tf.data import synthetic_poses
from aign_tf.tasks.pose import PoseTask, PoseTaskConfig, rotation_from_6d
from trainers.loop import TrainConfig, Trainer

B = 8


@pytest.fixture(scope="module")
def pose_splits(tmp_path_factory):
    return synthetic_poses.load_or_generate(256, 64, 256, seed=0, cache_dir=str(tmp_path_factory.mktemp("poses")),
                                            log=None)


def _task(splits, **overrides):
    config = dict(width=32, blocks=1, d_width=16, eval_images=64)
    config.update(overrides)
    return PoseTask(PoseTaskConfig(**config), splits, log=lambda *_: None)


def _truth(batch):
    return {"pose": batch["poses"], "rotation": batch["rotation"], "translation": batch["translation"]}


def test_rotation_from_6d_is_a_rotation_and_its_start_faces_the_camera():
    r = rotation_from_6d(tf.random.normal([16, 6], seed=1)).numpy()
    np.testing.assert_allclose(r @ np.transpose(r, (0, 2, 1)), np.tile(np.eye(3), (16, 1, 1)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    # The generator's initial 6D output: canonical +y up maps to camera -y (up in the image), +z to -z.
    np.testing.assert_allclose(rotation_from_6d(tf.constant([[1.0, 0, 0, 0, -1, 0]])).numpy()[0],
                               np.diag([1.0, -1.0, -1.0]), atol=1e-7)


def test_batches_are_step_indexed_and_paired_rows_are_flagged(pose_splits):
    task = _task(pose_splits, paired_fraction=0.25)
    assert len(task.paired_index) == 64
    first = next(iter(task.train_dataset(B, seed=4, start_step=7)))
    again = next(iter(task.train_dataset(B, seed=4, start_step=7)))
    for k in first:
        np.testing.assert_array_equal(first[k].numpy(), again[k].numpy(), err_msg=k)
    assert first["joints_2d"].shape == (2 * B, 17, 2) and first["prior"].shape == (2 * B, 17, 3)
    np.testing.assert_array_equal(first["paired"].numpy(), [0.0] * B + [1.0] * B)
    unpaired = next(iter(_task(pose_splits).train_dataset(B, seed=4, start_step=7)))
    assert unpaired["joints_2d"].shape == (B, 17, 2) and float(tf.reduce_sum(unpaired["paired"])) == 0


def test_renderer_reproduces_the_data_and_the_losses_vanish_at_the_truth(pose_splits):
    task = _task(pose_splits, paired_fraction=0.25)
    batch = next(iter(task.train_dataset(B, seed=0, start_step=0)))
    truth = _truth(batch)
    # The observations are the truth rendered plus 2D noise of std 0.004.
    err = np.abs(task.render(truth, batch).numpy() - batch["joints_2d"].numpy())
    assert err.max() < 0.03 and 0.001 < err.mean() < 0.006
    terms = task.losses(batch, truth)
    assert float(terms["supervised"]) < 1e-6
    assert float(terms["reconstruction"]) < 0.02
    moved = dict(truth, pose=truth["pose"] * 1.2)
    assert float(task.losses(batch, moved)["supervised"]) > 0.01
    assert "supervised" not in _task(pose_splits).losses(batch, truth)
    errors = task.metrics(batch, truth)
    assert float(errors["mpjpe_mm"]) < 1e-3 and float(errors["pa_mpjpe_mm"]) < 1e-2


def test_discriminator_sees_canonical_poses_in_metres(pose_splits):
    task = _task(pose_splits)
    batch = next(iter(task.train_dataset(B, seed=0, start_step=0)))
    real = task.discriminator_view(task.real_factors(batch), batch, real=True)
    np.testing.assert_allclose(real.numpy(), batch["prior"].numpy() / 1000.0, rtol=1e-6)
    fake = task.discriminator_view(task.generate(task.generator, batch, training=False), batch, real=False)
    assert fake.shape == (B, 17, 3)
    assert task.discriminator(fake).shape == (B, 1)


def test_generator_starts_in_front_of_the_camera(pose_splits):
    task = _task(pose_splits)
    batch = next(iter(task.train_dataset(B, seed=0, start_step=0)))
    factors = task.generate(task.generator, batch, training=False)
    np.testing.assert_allclose(factors["translation"][:, 2].numpy(), 5000.0, rtol=0.05)
    # The root lands exactly on its observed 2D position, whatever the pose.
    np.testing.assert_allclose(task.render(factors, batch)[:, 0].numpy(), batch["joints_2d"][:, 0].numpy(),
                               atol=1e-5)


def test_short_training_evaluate_and_serve(pose_splits, tmp_path):
    task = _task(pose_splits, paired_fraction=0.1)
    trainer = Trainer(task, TrainConfig(steps=6, batch_size=B, log_every=3, checkpoint_every=3, image_every=3,
                                        jit_compile=False), str(tmp_path / "run"), log=lambda *_: None)
    assert trainer.train() == 6
    result = task.evaluate(trainer.eval_generator, str(tmp_path / "run"))
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "reprojection_px"):
        assert np.isfinite(result[key]) and result[key] > 0
    assert result["pa_mpjpe_mm"] <= result["mpjpe_mm"] and result["eval_poses"] == 64
    # Each mean carries the 95 % percentile-bootstrap interval of the mean over the 64 held-out poses.
    batch = task._batch(pose_splits.test.subset(slice(0, 64)))
    per_pose = task._errors(batch, task.generate(trainer.eval_generator, batch, training=False))
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "reprojection_px"):
        lo, hi = result[f"{key}_ci95"]
        assert lo < result[key] < hi
        np.testing.assert_allclose([lo, hi], metrics.bootstrap_mean_interval(per_pose[key].numpy()), rtol=1e-5)
    assert f"{result['mpjpe_mm']:.1f} mm, 95% CI [{result['mpjpe_mm_ci95'][0]:.1f}, " in task.format_eval(result)
    from PIL import Image

    figure = np.asarray(Image.open(result["samples_png"]))
    assert figure.shape[0] == 6 * 128 and figure.shape[1] == 3 * 128 and figure.std() > 10
    assert "MPJPE" in task.format_eval(result)

    test = pose_splits.test
    out = task.serve_with_camera(trainer.eval_generator, joints_2d=test.joints_2d[:3],
                                 confidence=test.confidence[:3], focal=test.focal[:3])
    assert out["pose_3d"].shape == (3, 17, 3) and out["rotation"].shape == (3, 3, 3)
    assert out["translation"].shape == (3, 3)
    default = task.serve(trainer.eval_generator, joints_2d=test.joints_2d[:3])
    with pytest.raises(ValueError, match="--diff_augment=cutout: task 'pose3d' has no image discriminator"):
        Trainer(task, TrainConfig(diff_augment="cutout"), str(tmp_path / "augmented"))
    assert set(default) == set(out) and default["pose_3d"].shape == (3, 17, 3)
    inputs = {"joints_2d": test.joints_2d[:3], "confidence": test.confidence[:3], "focal": test.focal[:3]}
    assert task.prediction_figure(inputs, {k: v.numpy() for k, v in out.items()}).shape == (3 * 128, 2 * 128, 3)


def test_empty_sets_are_a_clear_error(pose_splits):
    import dataclasses

    empty = dataclasses.replace(pose_splits, prior=pose_splits.prior[:0])
    with pytest.raises(ValueError, match="0 prior poses"):
        _task(empty)
