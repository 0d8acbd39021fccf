"""baselines: the untrained face baselines read the observation only, keep it, and choose bank faces as documented."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf import baselines, metrics, renderers

S, N, K = 16, 6, 8


def _smooth(rng, count, low=0.2, high=0.8):
    """[count, S, S, 3] smooth random images in [low, high] (a coarse grid upsampled bilinearly)."""
    coarse = rng.uniform(low, high, [count, 4, 4, 3]).astype(np.float32)
    return tf.image.resize(coarse, [S, S], method="bilinear").numpy()


def _masks():
    """Different boxes, one touching the top edge and one a corner."""
    mask = renderers.random_box_masks(tf.constant([5, 6]), N, S, S).numpy()
    mask[1] = 1.0
    mask[1, :6, 4:11] = 0.0
    mask[4] = 1.0
    mask[4, 9:, 10:] = 0.0
    return mask


def _far(image):
    return (image < 0.5).astype(np.float32)  # at least 0.2 from image where it is in [0.2, 0.8]


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    images, bank = _smooth(rng, N), _smooth(rng, K)
    mask = _masks()
    hidden = mask[..., 0] < 0.5
    # bank[5] is images[2] on its visible pixels with a far hole; bank[6] is images[2]'s hole with visible pixels
    # close to images[2]'s: the nearest on visible pixels is 5, and 6 would win if the hidden truth were read.
    bank[5] = np.where(hidden[2, ..., None], _far(images[2]), images[2])
    bank[6] = np.where(hidden[2, ..., None], images[2], images[2] + 0.05)
    return images, mask, bank


def test_inpainting_baselines_keep_the_visible_pixels_and_paste_the_chosen_face(case):
    images, mask, bank = case
    outputs, chosen = baselines.inpaint_baselines(images, mask, bank, seed=3)
    assert list(outputs) == list(baselines.INPAINT_BASELINES)
    assert set(chosen) == set(baselines.INPAINT_BASELINES) - {"pull_push"}
    visible = np.broadcast_to(mask > 0.5, images.shape)
    for name, out in outputs.items():
        assert out.shape == images.shape and out.dtype == np.float32, name
        np.testing.assert_array_equal(out[visible], images[visible], err_msg=name)
        assert out.min() >= 0.0 and out.max() <= 1.0, name
    for name in ("random_paste", "nearest_paste"):
        np.testing.assert_array_equal(outputs[name][~visible], bank[chosen[name]][~visible])
    for kind in ("random", "nearest"):
        np.testing.assert_array_equal(chosen[f"{kind}_paste"], chosen[f"{kind}_seamless"])
        assert np.abs(outputs[f"{kind}_seamless"] - outputs[f"{kind}_paste"])[~visible].max() > 0.01
    assert chosen["nearest_paste"][2] == 5
    np.testing.assert_array_equal(outputs["nearest_paste"][2], np.where(visible[2], images[2], _far(images[2])))


def test_the_hidden_truth_is_never_read(case):
    images, mask, bank = case
    outputs, chosen = baselines.inpaint_baselines(images, mask, bank, seed=3)
    changed = np.where(mask > 0.5, images, np.random.default_rng(9).random(images.shape).astype(np.float32))
    outputs2, chosen2 = baselines.inpaint_baselines(changed, mask, bank, seed=3)
    for name in outputs:
        np.testing.assert_array_equal(outputs2[name], outputs[name], err_msg=name)
    for name in chosen:
        np.testing.assert_array_equal(chosen2[name], chosen[name], err_msg=name)


def test_the_seamless_paste_hides_a_brightness_step_the_hard_paste_shows():
    rng = np.random.default_rng(1)
    images = _smooth(rng, N, 0.1, 0.4)
    bank = _smooth(rng, K, 0.6, 0.9)  # brighter donors
    mask = _masks()
    outputs, _ = baselines.inpaint_baselines(images, mask, bank, seed=0)
    for kind in ("random", "nearest"):
        paste = metrics.seam_difference(outputs[f"{kind}_paste"], mask)
        seamless = metrics.seam_difference(outputs[f"{kind}_seamless"], mask)
        assert np.all(seamless < 0.5 * paste), (kind, seamless, paste)


def test_the_random_choice_is_reproducible_from_the_seed(case):
    images, mask, bank = case
    first, chosen = baselines.inpaint_baselines(images, mask, bank, seed=11)
    again, chosen_again = baselines.inpaint_baselines(images, mask, bank, seed=11)
    np.testing.assert_array_equal(chosen_again["random_paste"], chosen["random_paste"])
    np.testing.assert_array_equal(again["random_seamless"], first["random_seamless"])
    np.testing.assert_array_equal(chosen["random_paste"], baselines.random_choice(11, N, K))
    assert not np.array_equal(baselines.random_choice(12, N, K), chosen["random_paste"])
    _, sr_chosen = baselines.superres_baselines(images, 4, bank, seed=11)
    np.testing.assert_array_equal(sr_chosen["random_detail"], chosen["random_paste"])


def test_superres_baselines_render_to_the_input_and_use_the_nearest_low_resolution_face(case):
    images, _, bank = case
    factor = 4
    observation = renderers.downsample_render(images, factor).numpy()
    # bank[3]: images[1] at low resolution with another face's detail; bank[4]: images[1]'s detail, another input.
    bank = bank.copy()
    up = lambda x: renderers.block_upsample(renderers.downsample_render(x, factor), factor).numpy()  # noqa: E731
    bank[3] = np.clip(up(images[1:2])[0] + (bank[0] - up(bank[:1])[0]), 0.0, 1.0)
    bank[4] = np.clip(images[1] - up(images[1:2])[0] + up(bank[2:3])[0], 0.0, 1.0)
    outputs, chosen = baselines.superres_baselines(images, factor, bank, seed=0)
    assert list(outputs) == list(baselines.SUPERRES_BASELINES) and set(chosen) == {"random_detail", "nearest_detail"}
    for name, out in outputs.items():
        assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0, name
        np.testing.assert_allclose(renderers.downsample_render(out, factor).numpy(), observation, atol=1e-5,
                                   err_msg=name)
    assert chosen["nearest_detail"][1] == 3
    # The detail baselines are SuperResTask.compose on the block-upsampled input and the chosen face.
    face = bank[chosen["random_detail"]]
    expected = renderers.downsample_consistent(renderers.block_upsample(observation, factor) + face - up(face),
                                               observation, factor).numpy()
    np.testing.assert_allclose(outputs["random_detail"], expected, atol=1e-6)


def test_nearest_faces_matches_a_brute_force_search():
    rng = np.random.default_rng(2)
    obs, cand = rng.random([7, 5, 4, 3]).astype(np.float32), rng.random([9, 5, 4, 3]).astype(np.float32)
    mask = _masks()[:1, :5, :4]
    for weights in (None, np.repeat(mask, 7, axis=0), (rng.random([7, 5, 4, 1]) > 0.4).astype(np.float32)):
        w = np.ones([7, 5, 4, 1], np.float32) if weights is None else weights
        brute = (w[:, None] * np.square(obs[:, None] - cand[None])).sum((2, 3, 4)) / (3 * w.sum((1, 2, 3)))[:, None]
        indices, errors = baselines.nearest_faces(obs, cand, weights, chunk=3)
        np.testing.assert_array_equal(indices, brute.argmin(1))
        np.testing.assert_allclose(errors, brute.min(1), atol=1e-5)
    with pytest.raises(ValueError, match="weights must have shape"):
        baselines.nearest_faces(obs, cand, mask)


def test_shapes_are_checked(case):
    images, mask, bank = case
    with pytest.raises(ValueError, match="bank must have shape"):
        baselines.inpaint_baselines(images, mask, bank[:, :8])
    with pytest.raises(ValueError, match="mask holds 5 examples"):
        baselines.inpaint_baselines(images, mask[:5], bank)
    with pytest.raises(ValueError, match="at least one face"):
        baselines.inpaint_baselines(images, mask, bank[:0])
