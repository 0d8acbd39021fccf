"""The face layout (aign_tf/data/layout.py): CelebA's mean landmarks, cut by the CelebA loader's crop or by
predict's, fall where the built-in faces have their features, with the nose tip and the mouth corners inside the
mouth_nose hole and the eyes clear of it. No real data: the landmarks are the published means."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from aign_tf.data import crops, layout
from aign_tf.data import synthetic_faces as sf

SIZE = 64
MARGIN_PX = 2.0  # at 64x64: how far inside the hole a hidden landmark, and how far outside it an eye, must be
HIDDEN = ("nose", "left_mouth", "right_mouth")
VISIBLE = ("left_eye", "right_eye")


def _landmarks_at(height: int, width: int) -> dict[str, np.ndarray]:
    """CelebA's mean landmarks in a height x width photo of the aligned picture: (x, y) continuous coordinates
    (pixel k spans [k, k+1))."""
    scale = np.array([width / crops.ALIGNED_WIDTH_PX, height / crops.ALIGNED_HEIGHT_PX])
    return {name: (np.asarray(xy, np.float64) + 0.5) * scale for name, xy in layout.CELEBA_MEAN_LANDMARKS.items()}


def _in_model_input(points: dict[str, np.ndarray], box) -> dict[str, np.ndarray]:
    """Continuous (x, y) of the points in the SIZE x SIZE model input, for a crop box (top, left, height, width)
    in the photo's pixels, as crops.crop_and_resize cuts and resizes."""
    top, left, height, width = (float(v) for v in box)
    return {name: np.array([(x - left) * SIZE / width, (y - top) * SIZE / height]) for name, (x, y) in points.items()}


def _depth_inside_hole(xy: np.ndarray) -> float:
    """Pixels from (x, y) to the nearest edge of the mouth_nose hole at SIZE: positive inside, negative outside."""
    top, left, bottom, right = sf.mouth_nose_pixels(SIZE)
    x, y = xy
    return float(min(y - top, bottom - y, x - left, right - x))


def _check_hole(points: dict[str, np.ndarray]) -> None:
    top, left, bottom, right = sf.mouth_nose_pixels(SIZE)
    assert 0 <= top < bottom <= SIZE and 0 <= left < right <= SIZE, "the hole lies inside the image"
    for name in HIDDEN:
        assert _depth_inside_hole(points[name]) >= MARGIN_PX, (name, points[name], sf.mouth_nose_pixels(SIZE))
    for name in VISIBLE:
        assert _depth_inside_hole(points[name]) <= -MARGIN_PX, (name, points[name], sf.mouth_nose_pixels(SIZE))


def _dot_photos(height: int, width: int) -> np.ndarray:
    """uint8 [5, height, width, 3]: black photos of the aligned picture, each with one white 5x5-pixel dot (in
    218x178 pixels) on a mean landmark, resized to height x width like a photo of another resolution."""
    import tensorflow as tf

    photos = np.zeros((len(layout.CELEBA_MEAN_LANDMARKS), crops.ALIGNED_HEIGHT_PX, crops.ALIGNED_WIDTH_PX, 3),
                      np.float32)
    for k, (x, y) in enumerate(layout.CELEBA_MEAN_LANDMARKS.values()):
        photos[k, y - 2:y + 3, x - 2:x + 3] = 1.0
    if (height, width) != photos.shape[1:3]:
        photos = tf.image.resize(photos, [height, width], antialias=True).numpy()
    return np.round(np.clip(photos, 0, 1) * 255).astype(np.uint8)


def _dot_centres(images: np.ndarray) -> np.ndarray:
    """[K, S, S, C] -> [K, 2]: the brightness-weighted centre (x, y) of each image, continuous coordinates."""
    weight = images.astype(np.float64).sum(-1)
    rows, cols = np.mgrid[0:weight.shape[1], 0:weight.shape[2]] + 0.5
    total = weight.sum((1, 2))
    return np.stack([(weight * cols).sum((1, 2)) / total, (weight * rows).sum((1, 2)) / total], -1)


# --- (a) the loader's crop --------------------------------------------------------------------------------------
def test_loader_crop_hides_nose_and_mouth_and_shows_the_eyes():
    box = crops.crop_box(crops.ALIGNED_HEIGHT_PX, crops.ALIGNED_WIDTH_PX).numpy()  # the loader's default crop
    assert box.tolist() == list(crops.CELEBA_CROP)
    points = _in_model_input(_landmarks_at(crops.ALIGNED_HEIGHT_PX, crops.ALIGNED_WIDTH_PX), box)
    _check_hole(points)
    # layout.crop_fractions is the same arithmetic.
    for name, xy in layout.CELEBA_MEAN_LANDMARKS.items():
        np.testing.assert_allclose(layout.crop_fractions(xy) * SIZE, points[name], atol=1e-9)


def test_loader_crop_and_resize_puts_landmark_dots_where_the_layout_says():
    """End to end through crops.crop_and_resize (what the loader decodes with): a dot on each mean landmark of a
    218x178 photo lands at the layout's fractions."""
    import tensorflow as tf

    photos = _dot_photos(crops.ALIGNED_HEIGHT_PX, crops.ALIGNED_WIDTH_PX)
    images = np.stack([crops.crop_and_resize(tf.constant(p), SIZE).numpy() for p in photos])
    centres = _dot_centres(images)
    expected = layout.crop_fractions(np.array(list(layout.CELEBA_MEAN_LANDMARKS.values()))) * SIZE
    np.testing.assert_allclose(centres, expected, atol=0.15)
    _check_hole(dict(zip(layout.CELEBA_MEAN_LANDMARKS, centres, strict=True)))


# --- (b) predict's crop of a photo of another resolution ---------------------------------------------------------
@pytest.mark.parametrize("height, width", [(109, 89), (436, 356), (327, 267)])
def test_predict_crop_of_another_resolution_hides_nose_and_mouth_and_shows_the_eyes(height, width):
    import tensorflow as tf

    box = crops.crop_box(height, width, "auto").numpy()  # predict's default: the CelebA box, scaled
    assert bool(crops.is_aligned_celeba(height, width))
    np.testing.assert_allclose(box[2:], np.array(crops.CELEBA_CROP[2:]) * height / crops.ALIGNED_HEIGHT_PX, atol=1)
    _check_hole(_in_model_input(_landmarks_at(height, width), box))
    # End to end: dots on the landmarks of a photo resized to this resolution, cut by predict's crop.
    photos = _dot_photos(height, width)
    images = np.stack([crops.crop_and_resize(tf.constant(p), SIZE, "auto").numpy() for p in photos])
    centres = _dot_centres(images)
    np.testing.assert_allclose(centres, np.array(list(_in_model_input(_landmarks_at(height, width), box).values())),
                               atol=0.3)
    _check_hole(dict(zip(layout.CELEBA_MEAN_LANDMARKS, centres, strict=True)))


# --- (c) the built-in faces have the same layout ------------------------------------------------------------------
def _recording(changes: dict, seen: list):
    """An edit for synthetic_faces.generate_faces: sets the given parameters on every face and records the
    per-face parameters it drew with."""
    def edit(params):
        params = dict(params)
        for name, value in changes.items():
            params[name] = np.full_like(params[name], value)
        seen.append(params)
        return params
    return edit


def _difference_centres(n: int, size: int, first: dict, second: dict, split_columns: bool):
    """Renders the same n built-in faces twice, differing only in the parameters ``first`` vs ``second``; returns
    the per-face parameters and the centres (x, y) as image fractions of where the two renders differ: [n, 2, 2]
    for the left and right half of the image when split_columns, else [n, 1, 2]."""
    seen = []
    x1, _ = sf.generate_faces(n, seed=21, image_size=size, edit=_recording(first, seen))
    x2, _ = sf.generate_faces(n, seed=21, image_size=size, edit=_recording(second, seen))
    diff = np.abs(x1.astype(np.float64) - x2).sum(-1)
    halves = (slice(0, size // 2), slice(size // 2, size)) if split_columns else (slice(0, size),)
    centres = []
    for cols in halves:
        part = np.zeros_like(diff)
        part[:, :, cols] = diff[:, :, cols]
        centres.append(_dot_centres(part[..., None]) / size)
    params = {name: np.concatenate([p[name] for p in seen[:len(seen) // 2]]) for name in seen[0]}
    return params, np.stack(centres, 1), diff


def test_builtin_faces_have_the_landmark_layout():
    n, size = 48, 128
    plain = {"eyeglasses": False, "mustache": False, "beard": False, "goatee": False, "smiling": False}
    # Eyes: the irises, found as what changes when only the iris colour does (brown vs blue).
    params, eyes, diff = _difference_centres(n, size, dict(plain, iris=0), dict(plain, iris=2), split_columns=True)
    dx, dy, scale = params["dx"], params["dy"], params["scale"]
    for side, column in enumerate(layout.EYE_COLUMNS):
        # Each face: its layout position moved by its own jitter and scale (the iris is drawn 0.002 low, +-0.008
        # for the gaze).
        np.testing.assert_allclose(eyes[:, side, 1], 0.5 + dy + scale * (layout.EYE_ROW - 0.5), atol=0.006)
        np.testing.assert_allclose(eyes[:, side, 0], 0.5 + dx + scale * (column - 0.5), atol=0.012)
        # On average over the faces: the layout itself.
        assert abs(eyes[:, side, 1].mean() - layout.EYE_ROW) < 0.01
        assert abs(eyes[:, side, 0].mean() - column) < 0.01
    top, _, _, _ = sf.mouth_nose_pixels(size)
    assert not diff[:, top:].any(), "no iris pixel inside the hole's rows"
    # Mouth: the lips, found as what changes when only lipstick does.
    params, mouth, _ = _difference_centres(n, size, dict(plain, lipstick=False), dict(plain, lipstick=True),
                                           split_columns=False)
    dy, scale = params["dy"], params["scale"]
    np.testing.assert_allclose(mouth[:, 0, 1], 0.5 + dy + scale * (layout.MOUTH_ROW - 0.5), atol=0.02)
    assert abs(mouth[:, 0, 1].mean() - layout.MOUTH_ROW) < 0.01
    np.testing.assert_allclose(mouth[:, 0, 0], 0.5 + params["dx"], atol=0.005)
    # The drawing's constants are the layout's (the nose tip has no clean colour switch to find it by).
    np.testing.assert_allclose([sf._EYE_Y + 0.5, 0.5 - sf._EYE_X, 0.5 + sf._EYE_X, sf._NOSE_Y + 0.5, sf._MOUTH_Y + 0.5],
                               [layout.EYE_ROW, *layout.EYE_COLUMNS, layout.NOSE_ROW, layout.MOUTH_ROW], atol=1e-12)


def test_builtin_face_layout_is_pinned_to_the_generator_version():
    """The built-in faces are drawn at layout.LAYOUT, which follows crops.CELEBA_CROP: a changed crop changes every
    face, so it must come with a new GENERATOR_VERSION (the cache key). Update both together."""
    current = (sf.GENERATOR_VERSION, round(layout.EYE_ROW, 4), tuple(round(c, 4) for c in layout.EYE_COLUMNS),
               round(layout.NOSE_ROW, 4), round(layout.MOUTH_ROW, 4))
    assert current == (3, 0.4132, (0.3646, 0.6354), 0.5799, 0.6979)


# --- (d) the crop and the hole ------------------------------------------------------------------------------------
def test_celeba_crop_is_a_square_inside_the_aligned_image_holding_the_whole_face():
    top, left, height, width = crops.CELEBA_CROP
    assert crops.check_crop(crops.CELEBA_CROP) == crops.CELEBA_CROP
    assert height == width
    assert top >= 0 and left >= 0 and top + height <= crops.ALIGNED_HEIGHT_PX and left + width <= crops.ALIGNED_WIDTH_PX
    # Room for the brows above the eyes, the chin below the mouth and the cheeks beside them: every mean landmark
    # at least a quarter of the side from every edge.
    fractions = layout.crop_fractions(np.array(list(layout.CELEBA_MEAN_LANDMARKS.values())))
    assert fractions.min() >= 0.25 and fractions.max() <= 0.75


def test_hole_is_the_rule_on_the_layout_and_keeps_its_size():
    top, left, bottom, right = sf.MOUTH_NOSE_BOX
    assert sf.MOUTH_NOSE_BOX == layout.MOUTH_NOSE_BOX == layout.mouth_nose_box(layout.LAYOUT)
    assert 0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0
    assert bottom - top == pytest.approx(0.40, abs=0.02) and right - left == pytest.approx(0.44, abs=0.02)
    assert layout.EYE_ROW + 0.06 <= top <= layout.NOSE_ROW - 0.04  # below the eyes, above the nose tip
    assert bottom >= layout.MOUTH_ROW + 0.15  # down to the chin: lips, chin and facial hair
    assert left <= layout.MOUTH_COLUMNS[0] - 0.08 and right >= layout.MOUTH_COLUMNS[1] + 0.08
    assert (left + right) / 2 == pytest.approx(np.mean(layout.EYE_COLUMNS), abs=0.01)  # centred on the face


def test_layout_imports_without_tensorflow():
    code = "import sys, aign_tf.data.layout; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})


def test_crop_fractions():
    np.testing.assert_allclose(layout.crop_fractions([(9.5, 19.5)], (10, 0, 20, 40)), [[0.25, 0.5]])
    np.testing.assert_allclose(layout.crop_fractions(np.zeros((3, 4, 2)), (0, 0, 1, 1)), np.full((3, 4, 2), 0.5))
    old = layout.face_layout((55, 35, 108, 108))  # the DCGAN box used before: the hole hid the eyes' lower half
    assert old.eye_row > 0.5 and layout.mouth_nose_box(old)[2] > 1.0
