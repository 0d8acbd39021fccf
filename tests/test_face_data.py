"""The step-indexed batch pipeline and the face tasks' data plumbing."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf.data.faces import step_batches
from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask, SuperResTask


def _prepare(images, step):
    return {"observation": images}


def test_batches_depend_only_on_seed_and_step():
    obs = np.random.default_rng(0).integers(0, 255, (50, 8, 8, 3), dtype=np.uint8)
    prior = obs[:10]
    negatives = obs[10:20]
    full = list(step_batches(obs, prior, 4, seed=7, start_step=0, prepare=_prepare, negatives=negatives).take(6))
    resumed = list(step_batches(obs, prior, 4, seed=7, start_step=3, prepare=_prepare, negatives=negatives).take(3))
    for a, b in zip(full[3:], resumed, strict=True):
        for key in ("observation", "prior", "negative", "step"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    other = next(iter(step_batches(obs, prior, 4, seed=8, start_step=0, prepare=_prepare)))
    assert not np.array_equal(other["observation"].numpy(), full[0]["observation"].numpy())


def test_empty_prior_is_a_clear_error():
    obs = np.zeros((5, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="0 prior images"):
        step_batches(obs, obs[:0], 2, 0, 0, _prepare)
    with pytest.raises(ValueError, match="the negative collection is empty"):
        step_batches(obs, obs, 2, 0, 0, _prepare, negatives=obs[:0])


def test_observation_and_prior_halves_are_disjoint_and_biased(tiny_splits):
    task = InpaintTask(FaceTaskConfig(image_size=32, bias="male", g_filters=4, d_filters=4), tiny_splits,
                       log=lambda *_: None)
    male = list(tiny_splits.train.attribute_names).index("Male")
    assert len(task.observations) == 40
    # Every prior image is male; none of them is one of the observations.
    prior_set = {p.tobytes() for p in task.prior}
    assert not prior_set & {o.tobytes() for o in task.observations.images}
    male_images = {x.tobytes() for x, y in zip(tiny_splits.train.images, tiny_splits.train.labels, strict=True)
                   if y[male]}
    assert prior_set <= male_images


def test_inpaint_batch_hides_the_mouth_nose_box(tiny_splits):
    task = InpaintTask(FaceTaskConfig(image_size=32, bias="none", g_filters=4, d_filters=4), tiny_splits,
                       log=lambda *_: None)
    batch = next(iter(task.train_dataset(3, 0, 0)))
    mask = batch["mask"].numpy()
    assert mask.shape == (3, 32, 32, 1) and 0 < mask.mean() < 1
    np.testing.assert_allclose(batch["observation"].numpy(), (batch["truth"] * batch["mask"]).numpy())
    terms = task.losses(batch, batch["truth"])
    assert float(terms["reconstruction"]) < 1e-6  # the true face renders exactly to the observation

    # The generator sees the masked face, the mask and the pixel coordinates, which tell hole pixels apart.
    cond = task.generator_inputs(batch)["condition"].numpy()
    assert cond.shape == (3, 32, 32, task.in_channels) == (3, 32, 32, 6)
    np.testing.assert_array_equal(cond[..., :3], batch["observation"].numpy())
    np.testing.assert_array_equal(cond[..., 3:4], mask)
    centres = (np.arange(32) + 0.5) / 32
    np.testing.assert_allclose(cond[1, :, 7, 4], centres)  # y down the rows
    np.testing.assert_allclose(cond[2, 5, :, 5], centres)  # x along the columns
    hole = mask[0, ..., 0] == 0
    assert len({tuple(v) for v in cond[0][hole]}) == hole.sum()  # every hole pixel's input is distinct


def test_pull_push_fill_keeps_visible_pixels_and_fills_the_hole_from_its_surroundings():
    from aign_tf.blending import pull_push_fill

    # Left half red, right half blue; a hole straddling the border, wider than it is tall.
    image = np.zeros([1, 16, 16, 3], np.float32)
    image[..., :8, 0], image[..., 8:, 2] = 1.0, 1.0
    mask = np.ones([1, 16, 16, 1], np.float32)
    mask[:, 4:12, 2:14] = 0.0
    filled = pull_push_fill(tf.constant(image * mask), tf.constant(mask)).numpy()
    np.testing.assert_array_equal(filled[mask[..., 0] == 1], image[mask[..., 0] == 1])
    assert filled[0, 8, 3, 0] > 0.8 and filled[0, 8, 3, 2] < 0.2  # near the red side: red
    assert filled[0, 8, 12, 2] > 0.8 and filled[0, 8, 12, 0] < 0.2  # near the blue side: blue
    assert np.all(np.diff(filled[0, 8, 2:14, 0]) <= 1e-6)  # a smooth, monotone blend across the hole
    # Any size (here 24x40, not powers of two): a hole in a flat image is filled with that colour.
    flat, mask = np.full([2, 24, 40, 3], 0.3, np.float32), np.ones([2, 24, 40, 1], np.float32)
    mask[:, 5:20, 10:30] = 0.0
    np.testing.assert_allclose(pull_push_fill(tf.constant(flat * mask), tf.constant(mask)).numpy(), flat,
                               rtol=1e-5)


def test_superres_renders_truth_to_observation_and_paired_term(tiny_splits):
    task = SuperResTask(FaceTaskConfig(image_size=32, bias="none", g_filters=4, d_filters=4, paired_fraction=0.5),
                        tiny_splits, log=lambda *_: None)
    assert task.paired.sum() == 20
    batch = next(iter(task.train_dataset(4, 0, 0)))
    assert batch["observation"].shape == (4, 8, 8, 3)
    terms = task.losses(batch, batch["truth"])
    assert float(terms["reconstruction"]) < 1e-6 and float(terms["supervised"]) == 0.0
    wrong = task.losses(batch, batch["truth"] + 0.25)
    if float(tf.reduce_sum(batch["paired"])) > 0:
        assert abs(float(wrong["supervised"]) - 0.25) < 1e-5


def test_bad_task_flags_are_clear(tiny_splits):
    with pytest.raises(ValueError, match="factor=3"):
        SuperResTask(FaceTaskConfig(image_size=32, factor=3), tiny_splits)
    with pytest.raises(ValueError, match="mask='ring'"):
        InpaintTask(FaceTaskConfig(image_size=32, mask="ring"), tiny_splits)


def test_inpaint_discriminator_judges_only_the_hole(tiny_splits):
    task = InpaintTask(FaceTaskConfig(image_size=32, bias="none", g_filters=4, d_filters=4), tiny_splits,
                       log=lambda *_: None)
    batch = next(iter(task.train_dataset(2, 0, 0)))
    top, left, side = task.discriminator_window()
    hole = 1.0 - batch["mask"].numpy()[0, :, :, 0]
    rows, cols = np.nonzero(hole)
    assert top <= rows.min() and rows.max() < top + side and left <= cols.min() and cols.max() < left + side
    prediction = tf.random.uniform([2, 32, 32, 3], seed=1)
    view = task.discriminator_view(prediction, batch, real=False)
    assert view.shape == (2, side, side, 3) and task.discriminator(view).shape[1] == side // 8
    # Changing the prediction's visible pixels cannot change what the discriminator sees of it.
    changed = prediction + 0.5 * batch["mask"]
    np.testing.assert_allclose(task.discriminator_view(changed, batch, real=False).numpy(), view.numpy())
    real_view = task.discriminator_view(batch["prior"], batch, real=True).numpy()
    np.testing.assert_allclose(real_view, batch["prior"].numpy()[:, top:top + side, left:left + side])
    random_box = InpaintTask(FaceTaskConfig(image_size=32, mask="random_box", g_filters=4, d_filters=4),
                             tiny_splits, log=lambda *_: None)
    assert random_box.discriminator_window() is None


def test_prior_dir_replaces_the_biased_collection(tmp_path, tiny_splits):
    from aign_tf import formats

    rng = np.random.default_rng(0)
    for i in range(3):
        formats.write_image(str(tmp_path / f"person_{i}.png"), rng.random((48, 40, 3)))
    task = InpaintTask(FaceTaskConfig(image_size=32, prior_dir=str(tmp_path), g_filters=4, d_filters=4),
                       tiny_splits, log=lambda *_: None)
    assert task.prior.shape == (3, 32, 32, 3) and task.prior.dtype == np.uint8
    assert "3 images from --prior_dir" in task.prior_description
    with pytest.raises((ValueError, FileNotFoundError), match="empty_dir|no image"):
        (tmp_path / "empty_dir").mkdir()
        InpaintTask(FaceTaskConfig(image_size=32, prior_dir=str(tmp_path / "empty_dir")), tiny_splits)


def test_face_arrays_carry_identities_aligned_through_subset():
    from aign_tf.data.faces import FaceArrays

    images = np.arange(5)[:, None, None, None] * np.ones((5, 2, 2, 3), np.uint8)
    faces = FaceArrays(images, np.zeros((5, 1), np.uint8), ("Male",), np.array([7, 7, 3, 9, 3], np.int32))
    assert faces.identities.dtype == np.int64
    part = faces.subset(np.array([4, 0, 3]))
    assert part.identities.tolist() == [3, 7, 9] and part.images[:, 0, 0, 0].tolist() == [4, 0, 3]
    assert faces.subset(slice(1, 3)).identities.tolist() == [7, 3]
    assert faces.subset(np.array([True, False, True, False, False])).identities.tolist() == [7, 3]
    assert FaceArrays(images, np.zeros((5, 1), np.uint8), ("Male",)).subset([1]).identities is None
    with pytest.raises(ValueError, match=r"identities must be an \[N\] array with N = 5 images; got shape \(4,\)"):
        FaceArrays(images, np.zeros((5, 1), np.uint8), ("Male",), np.arange(4))


def test_every_builtin_face_is_its_own_identity(tmp_path):
    from aign_tf.data.faces import load_face_splits

    splits = load_face_splits(None, 32, str(tmp_path), num_train=12, num_test=5)
    assert splits.train.identities.tolist() == list(range(12))
    assert splits.test.identities.tolist() == list(range(12, 17))  # distinct from every training face
