"""The built-in procedural faces: determinism, labels, attribute rates, and that the attribute cues are
where the bias experiments need them (facial hair: high-frequency, inside MOUTH_NOSE_BOX)."""

import os

import numpy as np
import pytest

from aign_tf.data import synthetic_faces as sf

NAMES = sf.ATTRIBUTE_NAMES
SIZE = 64


def col(labels: np.ndarray, name: str) -> np.ndarray:
    return labels[:, NAMES.index(name)].astype(bool)


@pytest.fixture(scope="module")
def faces():
    """2000 faces at the default size."""
    return sf.generate_faces(2000, seed=11, image_size=SIZE)


def box_slices(size: int) -> tuple[slice, slice]:
    top, left, bottom, right = sf.MOUTH_NOSE_BOX
    return slice(round(top * size), round(bottom * size)), slice(round(left * size), round(right * size))


def pool_up(images: np.ndarray, k: int = 4) -> np.ndarray:
    """[N, S, S, C] -> k x k average pooled then repeated back to [N, S, S, C]."""
    n, s, _, c = images.shape
    low = images.reshape(n, s // k, k, s // k, k, c).mean((2, 4))
    return low.repeat(k, 1).repeat(k, 2)


def render(params: dict, raw: np.ndarray) -> np.ndarray:
    """float32 [K, S, S, 3] in [0, 1] without pixel noise (so that two renders can be differenced)."""
    raw = raw.copy()
    raw[:, 1] = 128
    return sf._render(params, raw).astype(np.float32) / 255.0


def test_names_and_box():
    assert NAMES[:6] == ("Male", "Young", "Big_Lips", "Big_Nose", "Smiling", "Eyeglasses")
    assert len(set(NAMES)) == len(NAMES)
    for name in ("No_Beard", "Mustache", "Goatee", "5_o_Clock_Shadow", "Wearing_Lipstick", "Gray_Hair",
                 "Bald", "Bangs", "Pale_Skin", "Bushy_Eyebrows", "Chubby"):
        assert name in NAMES
    top, left, bottom, right = sf.MOUTH_NOSE_BOX
    # Roughly the nose / mouth / chin region of a 64x64 centre crop of aligned CelebA.
    assert 0.45 <= top <= 0.55 and 0.85 <= bottom <= 0.95
    assert 0.22 <= left <= 0.34 and 0.66 <= right <= 0.78


def test_shapes_dtypes_and_sizes():
    for size in (32, 48, 64):
        x, y = sf.generate_faces(3, seed=0, image_size=size)
        assert x.shape == (3, size, size, 3) and x.dtype == np.uint8
        assert y.shape == (3, len(NAMES)) and y.dtype == np.uint8
        assert set(np.unique(y)) <= {0, 1}
        assert x.std() > 20  # not blank


def test_deterministic_and_prefix_stable():
    x10, y10 = sf.generate_faces(10, seed=7, image_size=32)
    x300, y300 = sf.generate_faces(300, seed=7, image_size=32)  # crosses a chunk boundary
    np.testing.assert_array_equal(x10, x300[:10])
    np.testing.assert_array_equal(y10, y300[:10])
    x260, y260 = sf.generate_faces(260, seed=7, image_size=32)
    np.testing.assert_array_equal(x260, x300[:260])
    np.testing.assert_array_equal(y260, y300[:260])
    x_other, _ = sf.generate_faces(10, seed=8, image_size=32)
    assert np.abs(x_other.astype(int) - x10).mean() > 10
    assert len({x300[i].tobytes() for i in range(300)}) == 300
    x_mid, y_mid = sf.generate_faces(20, seed=7, image_size=32, start=250)  # a slice across the boundary
    np.testing.assert_array_equal(x_mid, x300[250:270])
    np.testing.assert_array_equal(y_mid, y300[250:270])
    with pytest.raises(ValueError, match="start=-1"):
        sf.generate_faces(2, seed=7, image_size=32, start=-1)


def test_edit_redraws_the_same_faces_with_changed_parameters():
    x, y = sf.generate_faces(40, seed=7, image_size=32)
    stubble = lambda p: dict(p, stubble=np.ones_like(p["stubble"]) & ~p["beard"])  # noqa: E731
    x_edit, y_edit = sf.generate_faces(40, seed=7, image_size=32, edit=stubble)
    names = list(sf.ATTRIBUTE_NAMES)
    women = y[:, names.index("Male")] == 0
    assert y_edit[women, names.index("5_o_Clock_Shadow")].all()
    changed = np.abs(x_edit.astype(int) - x).sum((1, 2, 3)) > 0
    assert changed[women].all()
    rows, cols = box_slices(32)
    outside = np.abs(x_edit.astype(int) - x)
    outside[:, rows, cols] = 0
    assert outside[women].sum() < 0.1 * np.abs(x_edit.astype(int) - x)[women].sum()


@pytest.mark.parametrize("size", [32, 64])
def test_drawing_windows_hold_their_shapes(size, monkeypatch):
    """Each layer is drawn only inside a window; drawing every layer over the whole image instead must
    give the same faces (up to rounding), so no window cuts a shape off."""
    params, raw = sf._chunk_inputs(seed=2, chunk=0, image_size=size)
    params = {k: v[:64] for k, v in params.items()}
    windowed = sf._render(params, raw[:64]).astype(int)
    monkeypatch.setattr(sf._Canvas, "_span", lambda self, lo, hi, even: slice(0, self.size))
    whole = sf._render(params, raw[:64]).astype(int)
    assert np.abs(windowed - whole).max() <= 1


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n": 0, "seed": 0}, "n=0"),
    ({"n": 4, "seed": -1}, "seed=-1"),
    ({"n": 4, "seed": 0, "image_size": 30}, "image_size=30"),
    ({"n": 4, "seed": 0, "image_size": 34}, "image_size=34"),
    ({"n": 4, "seed": 0, "image_size": 28}, "image_size=28"),
])
def test_invalid_arguments(kwargs, fragment, tmp_path):
    with pytest.raises(ValueError, match=fragment):
        sf.generate_faces(**kwargs)
    with pytest.raises(ValueError, match=fragment):
        sf.load_or_generate(str(tmp_path), **kwargs)
    assert not os.listdir(tmp_path)


def test_labels_consistent(faces):
    _, y = faces
    male = col(y, "Male")
    facial_hair = col(y, "Mustache") | col(y, "Goatee") | col(y, "5_o_Clock_Shadow") | ~col(y, "No_Beard")
    assert facial_hair[male].all(), "every male has facial hair of some kind"
    assert not facial_hair[~male].any(), "females never have facial hair"
    assert not col(y, "Wearing_Lipstick")[male].any()
    assert not col(y, "Bald")[~male].any()
    colours = y[:, [NAMES.index(n) for n in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")]]
    assert (colours.sum(1) <= 1).all()
    np.testing.assert_array_equal(colours.sum(1) == 0, col(y, "Bald"))
    assert not col(y, "Bangs")[col(y, "Bald")].any()
    assert not (col(y, "5_o_Clock_Shadow") & ~col(y, "No_Beard")).any()


def test_attribute_rates(faces):
    _, y = faces
    male = col(y, "Male")
    expected = {"Male": 0.5, "Young": 0.6, "Big_Lips": 0.4, "Big_Nose": 0.4, "Smiling": 0.5,
                "Eyeglasses": 0.25, "Pale_Skin": 0.12, "Chubby": 0.15}
    for name, rate in expected.items():
        assert abs(col(y, name).mean() - rate) < 0.04, name
    assert abs(col(y, "Wearing_Lipstick")[~male].mean() - 0.3) < 0.06 and col(y, "Wearing_Lipstick")[male].max() == 0
    assert abs(col(y, "Bald")[male].mean() - 0.1) < 0.04
    assert col(y, "Gray_Hair")[~col(y, "Young")].mean() > 3 * col(y, "Gray_Hair")[col(y, "Young")].mean()
    # Outside the box gender is only a weak cue (facial hair decides it, see the module docstring).
    assert 0.0 < col(y, "Bushy_Eyebrows")[male].mean() - col(y, "Bushy_Eyebrows")[~male].mean() < 0.12
    # Independence where not stated otherwise: the male subset keeps the other rates.
    for name in ("Young", "Big_Lips", "Big_Nose", "Smiling", "Eyeglasses"):
        assert abs(col(y, name)[male].mean() - col(y, name)[~male].mean()) < 0.07, name


def _facial_hair_off(params: dict) -> dict:
    off = dict(params)
    for key in ("stubble", "beard", "goatee", "mustache"):
        off[key] = np.zeros_like(params[key])
    return off


def test_facial_hair_lies_inside_the_box_and_glasses_outside():
    params, raw = sf._chunk_inputs(seed=3, chunk=0, image_size=SIZE)
    params = {k: v[:96] for k, v in params.items()}
    raw = raw[:96]
    male = params["male"]
    rows, cols = box_slices(SIZE)
    diff = np.abs(render(params, raw) - render(_facial_hair_off(params), raw)).sum(-1)
    assert diff[~male].max() == 0
    inside = diff[male][:, rows, cols].sum((1, 2))
    fraction = inside / diff[male].sum((1, 2))
    assert fraction.min() > 0.7 and fraction.mean() > 0.85, "facial hair must lie mostly inside the box"
    no_glasses = dict(params, eyeglasses=np.zeros_like(params["eyeglasses"]))
    diff = np.abs(render(params, raw) - render(no_glasses, raw)).sum(-1)
    assert diff[params["eyeglasses"]].sum() > 0
    assert diff[:, rows, cols].max() == 0, "eyeglasses must not reach into the box"


def test_stubble_is_high_frequency():
    """Stubble changes pixels a lot but 4x4-block means very little (4x pooling nearly removes it)."""
    params, raw = sf._chunk_inputs(seed=4, chunk=0, image_size=SIZE)
    params = {k: v[:128] for k, v in params.items()}
    raw = raw[:128]
    only = params["stubble"]
    assert only.sum() > 10
    no_stubble = dict(params, stubble=np.zeros_like(params["stubble"]))
    diff = (render(params, raw) - render(no_stubble, raw))[only].mean(-1)
    blocks = diff.reshape(len(diff), SIZE // 4, 4, SIZE // 4, 4)
    inside = (blocks != 0).mean((2, 4)) > 0.75  # 4x4 blocks inside the stubble area
    assert inside.sum() > 10 * len(diff)
    pixel_change = np.abs(blocks).mean((2, 4))[inside]
    block_change = blocks.mean((2, 4))[inside]
    assert pixel_change.mean() > 0.05
    assert -0.05 < block_change.mean() < 0.0  # a slight darkening
    assert np.quantile(block_change, 0.05) > -0.07
    assert np.abs(block_change).mean() < 0.4 * pixel_change.mean()


def test_male_high_pass_energy_in_box(faces):
    x, y = faces
    rows, cols = box_slices(SIZE)
    images = x.astype(np.float32) / 255.0
    high = images - pool_up(images)
    energy = (high[:, rows, cols] ** 2).mean((1, 2, 3))
    male = col(y, "Male")
    assert energy[male].mean() > 1.25 * energy[~male].mean()


def _box_features(x: np.ndarray) -> np.ndarray:
    """Per face: mean |high-pass| over 4x4 blocks of the box, and its pixels 2x2-average pooled."""
    rows, cols = box_slices(SIZE)
    images = x.astype(np.float32) / 255.0
    high = np.abs(images - pool_up(images))[:, rows, cols].mean(-1)
    box = images[:, rows, cols]
    n, h, w = high.shape
    high = high[:, :h // 4 * 4, :w // 4 * 4].reshape(n, h // 4, 4, w // 4, 4).mean((2, 4)).reshape(n, -1)
    box = box[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, 3).mean((2, 4)).reshape(n, -1)
    return np.concatenate([high, box], 1)


def _held_out_accuracy(features: np.ndarray, target: np.ndarray, ridge: float = 10.0) -> float:
    """Linear (ridge least-squares) classifier fitted on the first 3/4, accuracy on the last 1/4."""
    n = len(features) * 3 // 4
    mean, std = features[:n].mean(0), features[:n].std(0) + 1e-6
    z = np.concatenate([(features - mean) / std, np.ones((len(features), 1), np.float32)], 1)
    gram = z[:n].T @ z[:n] + ridge * np.eye(z.shape[1], dtype=np.float32)
    weights = np.linalg.solve(gram, z[:n].T @ (2.0 * target[:n] - 1.0))
    return float(((z[n:] @ weights > 0) == target[n:]).mean())


def test_attributes_are_separable_from_box_pixels(faces):
    x, y = faces
    features = _box_features(x)
    assert _held_out_accuracy(features, col(y, "Male")) > 0.9
    for name in ("Smiling", "Big_Lips", "Big_Nose"):
        assert _held_out_accuracy(features, col(y, name)) > 0.8, name
    # A control: nothing in the box tells whether the face wears eyeglasses (no better than guessing the
    # majority class).
    glasses = col(y, "Eyeglasses")
    assert _held_out_accuracy(features, glasses) < max(glasses.mean(), 1 - glasses.mean()) + 0.03


def test_load_or_generate_caches_atomically(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    x, y = sf.load_or_generate(str(cache), n=12, seed=5, image_size=32)
    files = os.listdir(cache)
    assert files == [os.path.basename(sf.cache_path(str(cache), 12, 5, 32))]
    expected_x, expected_y = sf.generate_faces(12, seed=5, image_size=32)
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been read, not regenerated")

    monkeypatch.setattr(sf, "generate_faces", fail)
    x2, y2 = sf.load_or_generate(str(cache), n=12, seed=5, image_size=32)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    assert sf.cache_path(str(cache), 12, 5, 32) != sf.cache_path(str(cache), 12, 6, 32)
    assert sf.cache_path(str(cache), 12, 5, 32) != sf.cache_path(str(cache), 13, 5, 32)


def test_load_or_generate_ignores_leftover_temporary_files(tmp_path):
    final = sf.cache_path(str(tmp_path), 4, 1, 32)
    with open(final + ".999.tmp.npz", "wb") as f:  # what a killed writer could leave behind
        f.write(b"truncated")
    x, _ = sf.load_or_generate(str(tmp_path), n=4, seed=1, image_size=32)
    assert x.shape == (4, 32, 32, 3)
    assert os.path.exists(final)


@pytest.mark.parametrize("size", [32, 48, 64, 128])
def test_mouth_nose_pixels_are_the_box_mask_pixels(size):
    from aign_tf import renderers

    top, left, bottom, right = sf.mouth_nose_pixels(size)
    hidden = renderers.box_mask(1, size, size, sf.MOUTH_NOSE_BOX).numpy()[0, ..., 0] == 0
    expected = np.zeros((size, size), bool)
    expected[top:bottom, left:right] = True
    np.testing.assert_array_equal(hidden, expected)
