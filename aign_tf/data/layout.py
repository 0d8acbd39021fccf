"""The face layout: where the eyes, the nose tip and the mouth of an aligned face fall in the model's square
input, measured on real CelebA faces, and the inpainting hole (``mouth_nose``) placed on it.

Source: :data:`CELEBA_MEAN_LANDMARKS`, the means of CelebA's ``Anno/list_landmarks_align_celeba.txt`` (five
points per ``img_align_celeba`` image, x right and y down in the 178x218 aligned image; CelebA's "left" eye
is the one on the image's left), rounded to whole pixels. The alignment keeps each face's landmarks near
these means, so their place in :data:`~aign_tf.data.crops.CELEBA_CROP` is where a real face's features fall,
on average, in what the CelebA loader and ``--mode=predict`` feed the model:

==================  ===============  ================================
feature             landmark (x, y)  fraction of the crop (row, col)
==================  ===============  ================================
eyes                (69, 111),       row 0.413, columns 0.365 / 0.635
                    (108, 111)
nose tip            (88, 135)        row 0.580
mouth corners       (72, 152),       row 0.698, columns 0.385 / 0.615
                    (105, 152)
==================  ===============  ================================

The built-in procedural faces (:mod:`aign_tf.data.synthetic_faces`) draw their eyes, nose tip and mouth
line at these fractions (before their per-face jitter), so a model trained on them puts its hole over the
nose and mouth of a real aligned face too.

Pure Python / NumPy; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from aign_tf.data.crops import CELEBA_CROP

# (x, y) in pixels of the 178x218 aligned image: the means of list_landmarks_align_celeba.txt (all 202,599
# images), rounded to whole pixels as quoted in issue 24; not recomputed here (the landmark file is not part of
# the development subset, datasets/celeba/README.md). Integer landmark coordinates are pixel indices: the point is the
# centre of that pixel, (x + 0.5, y + 0.5) in continuous image coordinates (the convention of
# tf.image.resize's half-pixel centres, which crops.crop_and_resize uses).
CELEBA_MEAN_LANDMARKS: dict[str, tuple[float, float]] = {
    "left_eye": (69, 111),
    "right_eye": (108, 111),
    "nose": (88, 135),
    "left_mouth": (72, 152),
    "right_mouth": (105, 152),
}


def crop_fractions(points_xy, box: Sequence[float] = CELEBA_CROP) -> np.ndarray:
    """Points of the aligned image -> where they fall in a crop, as fractions of the crop.

    points_xy: array-like [..., 2] of (x, y) pixel indices in the 178x218 aligned image (pixel centres, see
    :data:`CELEBA_MEAN_LANDMARKS`); box: (top, left, height, width) in the same pixels, e.g.
    :data:`~aign_tf.data.crops.CELEBA_CROP`. Returns float64 [..., 2] of (column, row) fractions: 0 at the
    crop's left / top edge, 1 at its right / bottom edge, outside [0, 1] for a point outside the crop.
    Multiply by the output size for pixel coordinates after the resize (continuous: pixel k spans [k, k+1)).
    """
    top, left, height, width = (float(v) for v in box)
    xy = np.asarray(points_xy, np.float64) + 0.5
    return np.stack([(xy[..., 0] - left) / width, (xy[..., 1] - top) / height], axis=-1)


@dataclasses.dataclass(frozen=True)
class FaceLayout:
    """Mean feature positions as fractions of the square model input (0 = top / left edge, 1 = bottom /
    right edge). Columns are (image-left, image-right)."""

    eye_row: float
    eye_columns: tuple[float, float]
    nose_row: float  # the nose tip
    mouth_row: float  # the line through the mouth corners
    mouth_columns: tuple[float, float]  # the mouth corners


def face_layout(box: Sequence[float] = CELEBA_CROP,
                landmarks: dict[str, tuple[float, float]] = CELEBA_MEAN_LANDMARKS) -> FaceLayout:
    """The layout of ``landmarks`` (default: CelebA's means) in the crop ``box`` of the aligned image."""
    f = {name: crop_fractions(xy, box) for name, xy in landmarks.items()}
    return FaceLayout(
        eye_row=float((f["left_eye"][1] + f["right_eye"][1]) / 2),
        eye_columns=(float(f["left_eye"][0]), float(f["right_eye"][0])),
        nose_row=float(f["nose"][1]),
        mouth_row=float((f["left_mouth"][1] + f["right_mouth"][1]) / 2),
        mouth_columns=(float(f["left_mouth"][0]), float(f["right_mouth"][0])),
    )


LAYOUT = face_layout()
EYE_ROW = LAYOUT.eye_row
EYE_COLUMNS = LAYOUT.eye_columns
NOSE_ROW = LAYOUT.nose_row
MOUTH_ROW = LAYOUT.mouth_row
MOUTH_COLUMNS = LAYOUT.mouth_columns

# The mouth_nose hole, from the layout (fractions of the image):
#  * top: HOLE_BELOW_EYES below the eye row, so that no eye pixel is hidden. A built-in eye reaches at most 0.028
#    below its centre (the widest eye at the largest scale) and a built-in face is shifted by up to 2/64 = 0.031,
#    so even the lowest eye ends in row 31 at 64x64 (only the faint shading of its socket reaches the hole, which
#    starts at row 32); a real eye reaches roughly 4 px of the 144 (0.03) below its landmark. The mean eye is
#    0.087 (5.6 px at 64x64) above the hole;
#  * bottom: HOLE_BELOW_MOUTH below the mouth row, down to the chin (row ~0.89 on the built-in faces): the hole
#    hides the lips, the chin and the goatee / beard / stubble, the Male cue of the built-in faces;
#  * left / right: HOLE_BESIDE_MOUTH beyond the mouth corners: room for wide smiles, mustache ends and the
#    stubble beside the mouth;
# each edge rounded to hundredths of the image, so that sub-pixel changes of the landmark means do not move it.
# The margins were chosen so that the box on the layout of CELEBA_CROP is the hole the package has always
# used, (0.50, 0.28, 0.90, 0.72): 0.40 high, 0.44 wide, so models and experiments stay comparable.
HOLE_BELOW_EYES = 0.085
HOLE_BELOW_MOUTH = 0.20
HOLE_BESIDE_MOUTH = 0.105


def mouth_nose_box(layout: FaceLayout = LAYOUT) -> tuple[float, float, float, float]:
    """The mouth_nose inpainting hole on ``layout``: (top, left, bottom, right) as fractions of the image
    (see the rule above HOLE_BELOW_EYES). It hides the nose tip and both mouth corners and none of the eyes."""
    return (round(layout.eye_row + HOLE_BELOW_EYES, 2), round(layout.mouth_columns[0] - HOLE_BESIDE_MOUTH, 2),
            round(layout.mouth_row + HOLE_BELOW_MOUTH, 2), round(layout.mouth_columns[1] + HOLE_BESIDE_MOUTH, 2))


MOUTH_NOSE_BOX: tuple[float, float, float, float] = mouth_nose_box()
