"""The built-in procedural face generator: aligned, frontal, labelled faces with CelebA attribute names.

It needs no download. Every face is drawn from per-face parameters with vectorised NumPy over a batch
(coordinate grids, ellipse / curve signed distances, a one-pixel linear edge ramp for anti-aliasing),
each layer only inside its own window and only for the faces that have it: about 1500 faces of 64x64 per
second on one core.

Layout (fractions of the image): :mod:`aign_tf.data.layout`'s, CelebA's mean landmarks in the CelebA loader's
crop, so the built-in faces and real aligned faces put their features at the same places: eyes at row 0.413
and columns 0.365 / 0.635, nose tip at row 0.580, mouth at row 0.698, chin near row 0.88; each face jittered
by up to +-2 px (at 64 px) and +-4 % in scale. Only the mouth's width does not follow the landmarks: its
corners are at columns 0.42 / 0.58 (0.39 / 0.61 with Big_Lips) where real ones average 0.385 / 0.615, since
the width is part of the Big_Lips cue.

The attribute cues are designed for the bias experiments, not for realism:
  * ``Male``: every male has facial hair in the lower face, mostly inside ``MOUTH_NOSE_BOX``:
    ``5_o_Clock_Shadow`` stubble is two dark pixels in every 2x2 cell with the skin between them
    brightened, so its 4x4-block mean darkening stays below ~0.05 (it barely survives 4x average
    pooling); ``Mustache``, ``Goatee`` and full beards (``No_Beard`` = 0) are dark and visible at low
    resolution. Females never have facial hair. Weak male cues outside the box: short hair (0.55 of
    males, 0.45 of females), bushier eyebrows (0.25 / 0.20), ``Bald`` (0.10 of males). Facial hair is
    the deciding cue by design: it is what inpainting hides and super-resolution must redraw, so a
    strong visible cue elsewhere would cap the bias any prediction can show (GENERATOR_VERSION 1 had
    short hair for 0.75 / 0.25, and its attribute probe called only 54 % of women with stubble drawn in
    male).
  * ``Wearing_Lipstick`` (0.3 of females, none of the males), ``Big_Lips``, ``Big_Nose``, ``Smiling``
    (upturned open mouth with teeth) live inside the box; ``Young`` = 0 adds pixel-thin wrinkles, age spots
    and more gray hair; ``Eyeglasses`` draws frames round both eyes with a bridge (outside the box).
Attributes are otherwise independent, so a biased subset differs from the whole mainly in that attribute.

Determinism: faces come in chunks of ``CHUNK_SIZE``, chunk ``c`` drawn from
``np.random.SeedSequence([seed, c])``, so face ``i`` of a seed is the same whatever ``n`` is.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from aign_tf import formats
from aign_tf.data import layout

# Bump whenever the drawing or the sampling changes: it keys the cache. 3: eyes, nose tip and mouth line at
# layout.LAYOUT (CelebA's mean landmarks in crops.CELEBA_CROP) instead of hand-placed rows 0.415 / 0.575 / 0.70
# and eye columns 0.35 / 0.65: at 64 px the eyes are 0.9 px closer to the centre each, the nose tip 0.3 px lower,
# eyes and mouth about 0.1 px higher; brows, glasses and eye wrinkles move with the eyes. 2: short hair for 0.55 of
# males and 0.45 of females (1: 0.75 / 0.25).
GENERATOR_VERSION = 3
CHUNK_SIZE = 256
_RENDER_BATCH = 64  # faces drawn at once: small enough for the working arrays to stay in cache

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Male", "Young", "Big_Lips", "Big_Nose", "Smiling", "Eyeglasses",
    "No_Beard", "Mustache", "Goatee", "5_o_Clock_Shadow", "Wearing_Lipstick",
    "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald", "Bangs",
    "Pale_Skin", "Bushy_Eyebrows", "Chubby",
)

# (top, left, bottom, right) as fractions of the image: the default inpainting hole, placed on the face layout
# by layout.mouth_nose_box (the same box on real CelebA crops). It covers nose tip, nostrils, mouth, mustache,
# chin and most of the stubble / beard area, and none of eyes, eyebrows, eyeglasses, hair or forehead.
MOUTH_NOSE_BOX: tuple[float, float, float, float] = layout.MOUTH_NOSE_BOX


def mouth_nose_pixels(size: int) -> tuple[int, int, int, int]:
    """MOUTH_NOSE_BOX in pixels of a size x size image: (top, left, bottom, right), bottom/right exclusive
    (the same pixels as ``renderers.box_mask``, whose test is pixel centres inside the box)."""
    return tuple(round(f * size) for f in MOUTH_NOSE_BOX)

_JITTER = 2.0 / 64.0  # max face offset, fraction of the image
_SCALE_RANGE = (0.96, 1.04)

_HAIR_COLOURS = {  # RGB in [0, 1]
    "Black_Hair": (0.09, 0.07, 0.06),
    "Brown_Hair": (0.36, 0.22, 0.12),
    "Blond_Hair": (0.86, 0.72, 0.44),
    "Gray_Hair": (0.66, 0.65, 0.63),
}
_IRIS_COLOURS = np.array([(0.32, 0.19, 0.09), (0.14, 0.09, 0.06), (0.30, 0.46, 0.66), (0.30, 0.45, 0.30),
                          (0.45, 0.35, 0.18)], np.float32)


# ----------------------------------------------------------------------------------------------- params

def _sample_params(rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """Per-face parameters, all arrays of length ``count``. Any change to these draws (order, number,
    distribution) changes every face: bump GENERATOR_VERSION with it."""
    def unif(lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        return rng.uniform(lo, hi, count).astype(np.float32)

    def coin(prob) -> np.ndarray:
        return rng.random(count) < prob

    p: dict[str, np.ndarray] = {}
    male = coin(0.5)
    p["male"] = male
    p["young"] = coin(0.6)
    p["big_lips"] = coin(0.4)
    p["big_nose"] = coin(0.4)
    p["smiling"] = coin(0.5)
    p["eyeglasses"] = coin(0.25)
    # Facial hair: males only, at least one kind each. Stubble is not drawn under a full beard.
    beard = male & coin(0.25)
    stubble = male & ~beard & coin(0.8)
    mustache = male & coin(0.35)
    goatee = male & ~beard & coin(0.3)
    stubble |= male & ~(beard | stubble | mustache | goatee)
    p["beard"], p["stubble"], p["mustache"], p["goatee"] = beard, stubble, mustache, goatee
    p["lipstick"] = ~male & coin(0.3)
    # Hair: bald only for males; long hair only slightly more often for females (a strong visible gender
    # cue outside the box would cap the bias any prediction inside it can show).
    bald = male & coin(0.1)
    p["bald"] = bald
    p["long_hair"] = ~bald & coin(np.where(male, 0.45, 0.55))
    p["bangs"] = ~bald & coin(0.3)
    gray = ~bald & coin(np.where(p["young"], 0.04, 0.45))
    colour_pick = rng.choice(3, size=count, p=[0.4, 0.35, 0.25])  # black, brown, blond
    p["black_hair"] = ~bald & ~gray & (colour_pick == 0)
    p["brown_hair"] = ~bald & ~gray & (colour_pick == 1)
    p["blond_hair"] = ~bald & ~gray & (colour_pick == 2)
    p["gray_hair"] = gray
    p["pale"] = coin(0.12)
    p["bushy"] = coin(np.where(male, 0.25, 0.2))
    p["chubby"] = coin(0.15)
    # Continuous parameters.
    p["dx"] = unif(-_JITTER, _JITTER)
    p["dy"] = unif(-_JITTER, _JITTER)
    p["scale"] = unif(*_SCALE_RANGE)
    p["skin_tone"] = unif(0.0, 0.85)
    p["pale_jitter"] = unif()
    p["bg_rgb"] = rng.uniform(0.08, 0.95, (count, 3)).astype(np.float32)
    p["bg_grey"] = unif(0.0, 0.7)
    p["bg_angle"] = unif(0.0, 2 * np.pi)
    p["bg_gradient"] = unif(0.0, 0.5)
    p["bg_freq"] = rng.uniform(4.0, 14.0, (count, 2)).astype(np.float32)
    p["bg_phase"] = rng.uniform(0.0, 2 * np.pi, (count, 2)).astype(np.float32)
    p["bg_pattern"] = unif(0.0, 0.12)
    p["light_angle"] = unif(0.0, 2 * np.pi)
    p["light_strength"] = unif(0.0, 0.35)
    p["face_width"] = unif(-0.012, 0.012)
    p["jaw_width"] = unif(-0.02, 0.02)
    p["face_height"] = unif(-0.01, 0.01)
    p["hair_jitter"] = unif(0.8, 1.15)
    p["hair_tint"] = rng.uniform(0.96, 1.04, (count, 3)).astype(np.float32)
    p["hair_length"] = unif(0.2, 0.5)
    p["hair_phase"] = unif(0.0, 2 * np.pi)
    p["hair_freq"] = unif(50.0, 90.0)
    p["hairline"] = unif(-0.015, 0.015)
    p["iris"] = rng.integers(0, len(_IRIS_COLOURS), count)
    p["gaze"] = unif(-0.008, 0.008)
    p["eye_open"] = unif(0.85, 1.15)
    p["brow_arch"] = unif(0.006, 0.016)
    p["mouth_curve"] = unif(-0.006, 0.01)
    p["mouth_y"] = unif(-0.006, 0.006)
    p["lip_jitter"] = rng.uniform(0.9, 1.1, (count, 3)).astype(np.float32)
    p["stubble_strength"] = unif(0.45, 0.6)
    p["glasses_round"] = coin(0.5)
    p["glasses_dark"] = coin(0.75)
    p["glasses_rgb"] = rng.uniform(0.0, 0.45, (count, 3)).astype(np.float32)
    p["wrinkle_phase"] = unif(-0.006, 0.006)
    p["spots"] = rng.uniform(-1.0, 1.0, (count, 4, 2)).astype(np.float32)
    p["blush"] = unif(0.0, 0.18)
    p["noise_std"] = unif(0.008, 0.025)
    p["clothes_rgb"] = rng.uniform(0.05, 0.9, (count, 3)).astype(np.float32)
    return p


def _labels(p: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 {0, 1} [N, len(ATTRIBUTE_NAMES)] exactly as drawn."""
    columns = {
        "Male": p["male"], "Young": p["young"], "Big_Lips": p["big_lips"], "Big_Nose": p["big_nose"],
        "Smiling": p["smiling"], "Eyeglasses": p["eyeglasses"], "No_Beard": ~p["beard"],
        "Mustache": p["mustache"], "Goatee": p["goatee"], "5_o_Clock_Shadow": p["stubble"],
        "Wearing_Lipstick": p["lipstick"], "Black_Hair": p["black_hair"], "Blond_Hair": p["blond_hair"],
        "Brown_Hair": p["brown_hair"], "Gray_Hair": p["gray_hair"], "Bald": p["bald"], "Bangs": p["bangs"],
        "Pale_Skin": p["pale"], "Bushy_Eyebrows": p["bushy"], "Chubby": p["chubby"],
    }
    return np.stack([columns[name] for name in ATTRIBUTE_NAMES], axis=1).astype(np.uint8)


def _colours(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-face colours, each float32 [3, N, 1, 1] (planar, like the canvas)."""
    dark, light = np.array([0.40, 0.25, 0.16], np.float32), np.array([0.92, 0.74, 0.60], np.float32)
    t = p["skin_tone"][:, None]
    skin = dark + (light - dark) * t
    pale = np.array([0.97, 0.86, 0.80], np.float32) - 0.04 * p["pale_jitter"][:, None]
    skin = np.where(p["pale"][:, None], pale, skin)
    hair = np.zeros_like(skin)
    for name, rgb in _HAIR_COLOURS.items():
        key = name.split("_")[0].lower() + "_hair"
        hair = np.where(p[key][:, None], np.array(rgb, np.float32), hair)
    hair = np.clip(hair * p["hair_jitter"][:, None] * p["hair_tint"], 0.0, 1.0)
    # Eyebrows and facial hair of bald faces: dark brown, or grey when old.
    body_hair = np.where(p["young"][:, None], np.array([0.2, 0.13, 0.08], np.float32),
                         np.array([0.45, 0.44, 0.42], np.float32))
    body_hair = np.where(p["bald"][:, None], body_hair, hair)
    brow = np.minimum(body_hair * 0.55, 0.4)
    beard = body_hair * 0.55 + 0.02
    stubble = body_hair * 0.25 + 0.03
    grey_bg = p["bg_rgb"].mean(1, keepdims=True)
    bg = p["bg_rgb"] + (grey_bg - p["bg_rgb"]) * p["bg_grey"][:, None]
    natural_lips = skin * np.array([0.8, 0.52, 0.52], np.float32) + np.array([0.08, 0.0, 0.02], np.float32)
    red = np.array([0.80, 0.08, 0.17], np.float32) * p["lip_jitter"]
    lips = np.clip(np.where(p["lipstick"][:, None], red, natural_lips), 0.0, 1.0)
    frames = np.where(p["glasses_dark"][:, None], np.float32(0.06), p["glasses_rgb"])
    out = {"skin": skin, "hair": hair, "brow": brow, "beard": beard, "stubble": stubble, "bg": bg,
           "lips": lips, "iris": _IRIS_COLOURS[p["iris"]], "frames": frames, "clothes": p["clothes_rgb"]}
    return {k: np.ascontiguousarray(v.astype(np.float32).T[:, :, None, None]) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------- drawing

@dataclasses.dataclass
class _Window:
    """A rectangle of the canvas: face-frame coordinates u [K, 1, W], v [K, H, 1] of its pixel centres and
    the pixel size px [K, 1, 1] in face units."""

    u: np.ndarray
    v: np.ndarray
    px: np.ndarray
    rows: slice
    cols: slice


class _Canvas:
    """A planar float RGB batch [3, K, S, S] in face coordinates: u to the right and v downwards, in
    fractions of the image, origin at the (jittered) face centre. Shapes are drawn inside windows whose
    bounds are worst-case over the jitter, so a face never depends on the other faces of its batch."""

    def __init__(self, size: int, dx: np.ndarray, dy: np.ndarray, scale: np.ndarray):
        self.size = size
        centres = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        s = scale[:, None, None]
        self._u = (centres[None, None, :] - dx[:, None, None]) / s
        self._v = (centres[None, :, None] - dy[:, None, None]) / s
        self._px = (1.0 / size) / s
        self.img = np.zeros((3, len(dx), size, size), np.float32)

    def _span(self, lo: float, hi: float, even: bool) -> slice:
        ends = [0.5 + sign * _JITTER + scale * edge for sign in (-1, 1) for scale in _SCALE_RANGE
                for edge in (lo, hi)]
        first = int(np.floor(min(ends) * self.size)) - 2
        last = int(np.ceil(max(ends) * self.size)) + 2
        first, last = max(first, 0), min(last, self.size)
        if even:  # whole 2x2 cells (the size is a multiple of 4)
            first, last = first - first % 2, last + last % 2
        return slice(first, last)

    def window(self, top: float = -0.6, bottom: float = 0.6, left: float = -0.6, right: float = 0.6,
               even: bool = False) -> _Window:
        """The pixels that may hold face-frame points in [top, bottom] x [left, right] for any jitter;
        even=True rounds it out to whole 2x2 pixel cells."""
        rows, cols = self._span(top, bottom, even), self._span(left, right, even)
        return _Window(self._u[:, :, cols], self._v[:, rows, :], self._px, rows, cols)

    def paint(self, w: _Window, alpha: np.ndarray, colour: np.ndarray) -> None:
        """alpha [K, h, w] (broadcastable) in [0, 1]; colour [3, K, 1, 1] or [3, K, h, w]."""
        view = self.img[:, :, w.rows, w.cols]
        change = colour - view
        change *= alpha
        view += change

    def darken(self, w: _Window, amount: np.ndarray) -> None:
        """Multiplies the window by (1 - amount); amount [K, h, w] (broadcastable)."""
        self.img[:, :, w.rows, w.cols] *= (1.0 - amount)[None]


def _edge(sd: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Coverage from a signed distance (negative inside), a linear ramp one pixel wide."""
    t = sd * (-1.0 / px)
    t += 0.5
    return np.clip(t, 0.0, 1.0, out=t)


def _ellipse_sd(du: np.ndarray, dv: np.ndarray, a, b) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse with half-axes a, b (first-order)."""
    q = (du / a) ** 2 + ((dv / b) ** 2 - 1.0)
    grad = (du / (a * a)) ** 2 + (dv / (b * b)) ** 2
    np.sqrt(grad, out=grad)
    grad *= 2.0
    grad += 1e-6
    q /= grad
    return q


def _segment_distance(u, v, u0, v0, u1, v1) -> np.ndarray:
    """Distance from each pixel to the segment (u0, v0)-(u1, v1)."""
    du, dv = u1 - u0, v1 - v0
    t = np.clip(((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv), 0.0, 1.0)
    return np.sqrt((u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2)


def _col(values) -> np.ndarray:
    """Per-face scalars [K] -> [K, 1, 1]."""
    return np.asarray(values, np.float32)[:, None, None]


def _pick(condition: np.ndarray, if_true, if_false) -> np.ndarray:
    """np.where that stays float32 (np.where of two Python floats would give float64)."""
    return np.where(condition, np.float32(if_true), np.float32(if_false)).astype(np.float32, copy=False)


def _gauss(du: np.ndarray, dv: np.ndarray, su, sv) -> np.ndarray:
    """exp(-(du/su)^2 - (dv/sv)^2) for du [K, 1, W], dv [K, H, 1], computed separably (cheap)."""
    return np.exp(-((du / su) ** 2)) * np.exp(-((dv / sv) ** 2))


def _bump(x: np.ndarray) -> np.ndarray:
    """A smooth bump of x: 1 at 0, falling to 0 at |x| = 1 (a cheap stand-in for a Gaussian)."""
    return np.clip(1.0 - x * x, 0.0, 1.0) ** 2


def _rgb(r: float, g: float, b: float) -> np.ndarray:
    """A colour shared by all faces, shaped [3, 1, 1, 1] to broadcast against the planar canvas."""
    return np.array([r, g, b], np.float32)[:, None, None, None]


def _draw_background(cv: _Canvas, p, c, fields) -> None:
    w = cv.window()
    ang = _col(p["bg_angle"])
    ramp = 1.0 + _col(p["bg_gradient"]) * (w.u * np.cos(ang) + w.v * np.sin(ang))
    fu, fv = _col(p["bg_freq"][:, 0]), _col(p["bg_freq"][:, 1])
    pattern = _col(p["bg_pattern"]) * np.sin(w.u * fu + _col(p["bg_phase"][:, 0])) * np.sin(
        w.v * fv + _col(p["bg_phase"][:, 1]))
    cv.img[:] = c["bg"] * (ramp + pattern)[None]


def _hair_texture(w: _Window, p, field: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Hair colour with strands (a slanted ripple), per-pixel grain and a sheen band."""
    across = w.u * _col(p["hair_freq"]) + _col(p["hair_phase"])
    along = 12.0 * w.v
    # 0.13 sin(across + along), from 1-D factors
    tex = (0.13 * np.sin(across)) * np.cos(along)
    tex += (0.13 * np.cos(across)) * np.sin(along)
    tex += 0.93 + 0.35 * np.exp(-(((w.v + 0.33) / 0.04) ** 2))  # sheen band
    tex += field[:, w.rows, w.cols] * np.float32(0.14 / 255.0)  # grain
    return colour * tex[None]


def _face_shape(p):
    """Half-widths of the face oval: top half a_top, narrowing linearly to a_jaw at the chin; half-height."""
    a_top = 0.265 + 0.035 * p["chubby"] + p["face_width"]
    a_jaw = 0.20 + 0.05 * p["chubby"] + p["jaw_width"]
    b = 0.355 + p["face_height"]
    return _col(a_top), _col(a_jaw), _col(b)


_FACE_CY = 0.03


def _face_sd(w: _Window, p) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the face oval and its normalised radius q (0 centre, 1 edge)."""
    a_top, a_jaw, b = _face_shape(p)
    dv = w.v - _FACE_CY
    a = a_top + (a_jaw - a_top) * np.clip(dv / b, 0.0, 1.0)
    q = (w.u / a) ** 2 + (dv / b) ** 2
    grad = 2.0 * np.sqrt((w.u / (a * a)) ** 2 + (dv / (b * b)) ** 2) + 1e-6
    return (q - 1.0) / grad, q


def _draw_back_hair(cv: _Canvas, p, c, fields) -> None:
    """Long hair: the volume behind the head and the hair falling beside the face."""
    w = cv.window(-0.6, 0.6)
    a_top, _, _ = _face_shape(p)
    head = _ellipse_sd(w.u, w.v + 0.085, a_top + 0.07, 0.40)
    bottom = _col(p["hair_length"])
    half = a_top + 0.075 + 0.12 * np.clip(w.v, 0.0, None)
    curtain = np.maximum(np.abs(w.u) - half, np.maximum(w.v - bottom, -0.1 - w.v))
    alpha = _edge(np.minimum(head, curtain), w.px)
    colour = _hair_texture(w, p, fields["texture"], c["hair"]) * 0.85
    cv.paint(w, alpha, colour)


def _draw_body(cv: _Canvas, p, c, fields) -> None:
    w = cv.window(0.1, 0.6, -0.14, 0.14)
    neck = np.maximum(np.abs(w.u) - 0.115, 0.12 - w.v)
    cv.paint(w, _edge(neck, w.px), c["skin"] * 0.8)
    w = cv.window(0.4, 0.6)
    clothes = _ellipse_sd(w.u, w.v - 0.64, 0.45, 0.22)
    cv.paint(w, _edge(clothes, w.px), c["clothes"])


def _draw_ears(cv: _Canvas, p, c, fields) -> None:
    a_top, _, _ = _face_shape(p)
    for side in (-1.0, 1.0):
        w = cv.window(-0.1, 0.04, side * 0.3 - 0.07, side * 0.3 + 0.07)
        ear = _ellipse_sd(w.u - side * (a_top - 0.005), w.v + 0.03, 0.035, 0.06)
        cv.paint(w, _edge(ear, w.px), c["skin"] * 0.85)


def _draw_scalp(cv: _Canvas, p, c, fields) -> None:
    """The top of the head in skin colour (it fills the temples under the hair), shining when bald."""
    a_top, _, _ = _face_shape(p)
    w = cv.window(-0.5, 0.0, -0.33, 0.33)
    a, b = a_top + 0.01, 0.375
    du, dv = w.u, w.v + 0.085
    scalp = np.maximum(_ellipse_sd(du, dv, a, b), w.v)
    q = (du / a) ** 2 + (dv / b) ** 2
    shade = 1.0 - 0.2 * np.clip((q - 0.5) / 0.5, 0.0, 1.0) ** 2
    shade += 0.25 * _col(p["bald"]) * _gauss(w.u + 0.06, w.v + 0.36, 0.063, 0.063)
    cv.paint(w, _edge(scalp, w.px), np.clip(c["skin"] * shade[None], 0.0, 1.0))


def _draw_face(cv: _Canvas, p, c, fields) -> None:
    """The shaded face oval with a faint blush."""
    w = cv.window(-0.42, 0.45, -0.33, 0.33)
    sd, q = _face_sd(w, p)
    cover = _edge(sd, w.px)
    shade = 1.0 - 0.2 * np.clip((q - 0.5) / 0.5, 0.0, 1.0) ** 2
    cv.paint(w, cover, c["skin"] * shade[None])
    for side in (-1.0, 1.0):
        w = cv.window(-0.05, 0.2, side * 0.15 - 0.12, side * 0.15 + 0.12)
        blush = _gauss(w.u - side * 0.15, w.v - 0.07, 0.055, 0.055)
        cv.paint(w, blush * _col(p["blush"]), _rgb(0.85, 0.3, 0.3))


def _thin_line(d: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Coverage of a line about one pixel wide, from the distance to its centre-line."""
    return np.clip(1.0 - d / px, 0.0, 1.0)


# The face layout in face coordinates (origin at the image centre, before the per-face jitter and scale):
# layout.LAYOUT's fractions minus 0.5. The eyes sit symmetrically about the centre column.
_EYE_Y = layout.EYE_ROW - 0.5
_EYE_X = (layout.EYE_COLUMNS[1] - layout.EYE_COLUMNS[0]) / 2
_NOSE_Y = layout.NOSE_ROW - 0.5  # the nose tip (a big nose's tip a little lower)
_MOUTH_Y = layout.MOUTH_ROW - 0.5  # the line between the lips (through the corners of a closed mouth)

# Wrinkle segments on the right side of the face (mirrored for the left): rows u0, v0, u1, v1, darkness. Crow's
# feet from the outer eye corner and an eye bag, placed relative to the right eye's centre (_EYE_X, _EYE_Y).
_EYE_WRINKLES = (np.array([[0.065, 0.0, 0.1, -0.022, 0.3], [0.065, 0.0, 0.1, 0.0, 0.3], [0.065, 0.0, 0.1, 0.022, 0.3],
                           [-0.05, 0.037, 0.03, 0.035, 0.2]], np.float32)
                 + np.array([_EYE_X, _EYE_Y, _EYE_X, _EYE_Y, 0.0], np.float32))
_MOUTH_WRINKLES = np.array([[0.075, 0.075, 0.115, 0.16, 0.28], [0.115, 0.16, 0.125, 0.22, 0.28],
                            [0.11, 0.235, 0.115, 0.29, 0.28]], np.float32)


def _segments(w: _Window, side: float, segments: np.ndarray) -> np.ndarray:
    """Darkness [K, h, w] of pixel-thin line segments (rows of u0, v0, u1, v1, darkness), mirrored to
    the left for side = -1, all segments at once along a leading axis."""
    u0, v0, u1, v1, dark = (segments * np.array([side, 1, side, 1, 1], np.float32)).T[:, :, None, None, None]
    return (_thin_line(_segment_distance(w.u, w.v, u0, v0, u1, v1), w.px) * dark).max(0)


def _draw_age(cv: _Canvas, p, c, fields) -> None:
    """Not Young: pixel-thin wrinkles on the forehead, at the eye corners and beside nose and mouth, and
    a few faint age spots."""
    w = cv.window(-0.3, -0.17, -0.16, 0.16)
    lines = np.zeros(np.broadcast_shapes(w.u.shape, w.v.shape), np.float32)
    for v0 in (-0.255, -0.228, -0.201):
        centre = v0 + _col(p["wrinkle_phase"]) - 0.5 * w.u ** 2
        lines = np.maximum(lines, _thin_line(np.abs(w.v - centre), w.px))
    cv.darken(w, 0.3 * lines * np.clip((0.14 - np.abs(w.u)) / 0.04, 0.0, 1.0))
    for side in (-1.0, 1.0):
        # Crow's feet and an eye bag, then the nose-to-mouth fold and a line below the mouth corner.
        w = cv.window(_EYE_Y - 0.035, _EYE_Y + 0.05, side * (_EYE_X + 0.025) - 0.09, side * (_EYE_X + 0.025) + 0.09)
        cv.darken(w, _segments(w, side, _EYE_WRINKLES))
        w = cv.window(0.065, 0.3, side * 0.1 - 0.04, side * 0.1 + 0.04)
        cv.darken(w, _segments(w, side, _MOUTH_WRINKLES))
    for k in range(p["spots"].shape[1]):
        w = cv.window(-0.26, 0.02, -0.22, 0.22)
        du = w.u - _col(p["spots"][:, k, 0]) * 0.2
        dv = w.v - (_col(p["spots"][:, k, 1]) * 0.12 - 0.12)
        radius = 0.009
        # Coverage from the squared distance: (r^2 - d^2) / 2r ~ r - d near the rim, no square root.
        spot = np.clip((radius * radius - du * du - dv * dv) / (2.0 * radius * w.px) + 0.5, 0.0, 1.0)
        cv.darken(w, 0.16 * spot)


def _draw_eyes(cv: _Canvas, p, c, fields) -> None:
    a_e, b_e = 0.055, 0.023 * _col(p["eye_open"])
    white = _rgb(0.93, 0.91, 0.88)
    black = _rgb(0.04, 0.03, 0.03)
    for side in (-1.0, 1.0):
        w = cv.window(_EYE_Y - 0.065, _EYE_Y + 0.055, side * _EYE_X - 0.1, side * _EYE_X + 0.1)
        du, dv = w.u - side * _EYE_X, w.v - _EYE_Y
        socket = _gauss(du, dv + 0.012, 0.075, 0.04)
        cv.darken(w, 0.14 * socket)
        sd = _ellipse_sd(du, dv, a_e, b_e)
        inside = _edge(sd, w.px)
        cv.paint(w, inside, white)
        iris_du = du - _col(p["gaze"])
        iris = _edge(np.sqrt(iris_du ** 2 + (dv - 0.002) ** 2) - 0.021, w.px) * inside
        cv.paint(w, iris, c["iris"])
        pupil = _edge(np.sqrt(iris_du ** 2 + (dv - 0.002) ** 2) - 0.009, w.px) * inside
        cv.paint(w, pupil, black)
        glint = _edge(np.sqrt((iris_du + 0.007) ** 2 + (dv + 0.006) ** 2) - 0.005, w.px) * inside
        cv.paint(w, glint, white)
        rim = _thin_line(np.abs(sd), w.px)
        upper = (dv < 0.004).astype(np.float32)
        cv.paint(w, rim * (0.9 * upper + 0.35 * (1.0 - upper)), black)
        lash = _segment_distance(w.u, w.v, side * (_EYE_X + a_e - 0.005), _EYE_Y - 0.004,
                                 side * (_EYE_X + a_e + 0.015), _EYE_Y - 0.014)
        cv.paint(w, 0.8 * _thin_line(lash, w.px), black)


def _draw_brows(cv: _Canvas, p, c, fields) -> None:
    w = cv.window(_EYE_Y - 0.115, _EYE_Y - 0.015, -0.3, 0.3)
    half_len = 0.07
    thick = _pick(_col(p["bushy"]), 0.0185, 0.0105)
    strength = _pick(_col(p["bushy"]), 1.0, 0.9)
    for side in (-1.0, 1.0):
        x = (w.u - side * (_EYE_X + 0.005)) / half_len  # -1 .. 1 along the brow, inner end at side * -1
        centre = _EYE_Y - 0.052 - _col(p["brow_arch"]) * (1.0 - x ** 2) + 0.004 * side * x
        inner = np.clip(1.0 - 0.45 * (side * x + 1.0) / 2.0, 0.0, 1.0)  # thicker at the inner end
        sd = np.maximum(np.abs(w.v - centre) - thick * inner, (np.abs(x) - 1.0) * half_len)
        cv.paint(w, _edge(sd, w.px) * strength, c["brow"])


def _draw_nose(cv: _Canvas, p, c, fields) -> None:
    w = cv.window(-0.07, 0.15, -0.15, 0.15)
    big = _col(p["big_nose"])
    half = _pick(big, 0.062, 0.04)
    tip_y = _NOSE_Y + _pick(big, 0.014, 0.0)
    tip_b = _pick(big, 0.036, 0.027)
    light = np.cos(_col(p["light_angle"]))
    # Shadow along the bridge on the side away from the light, highlight on the tip.
    for side in (-1.0, 1.0):
        ridge = np.exp(-(((w.u - side * 0.032) / 0.012) ** 2)) * np.clip((w.v + 0.05) / 0.04, 0, 1) \
            * np.clip((tip_y - w.v) / 0.02, 0, 1)
        cv.darken(w, ridge * (0.12 + 0.1 * side * light))
    for side in (-1.0, 1.0):
        wing = _ellipse_sd(w.u - side * half * 0.95, w.v - tip_y - 0.01, half * 0.45, tip_b * 0.7)
        cv.darken(w, 0.22 * _thin_line(np.abs(wing), w.px) * (w.v > tip_y - 0.01))
    under = _gauss(w.u, w.v - tip_y - tip_b, half * 1.2, 0.01)
    cv.darken(w, 0.25 * under)
    tip = _gauss(w.u, w.v - tip_y + 0.008, half * 0.6, tip_b * 0.5)
    cv.paint(w, 0.35 * tip, np.clip(c["skin"] * 1.15, 0, 1))
    nostril_a = _pick(big, 0.019, 0.012)
    for side in (-1.0, 1.0):
        nostril = _ellipse_sd(w.u - side * half * 0.45, w.v - tip_y - tip_b * 0.72, nostril_a, 0.0065)
        cv.paint(w, 0.85 * _edge(nostril, w.px), c["skin"] * 0.25)


def _mouth_geometry(w: _Window, p):
    """Mouth centre-line and lip outlines as functions of u: (centre, top, bottom, gap_top, gap_bottom,
    half_width, profile)."""
    big = _col(p["big_lips"])
    smile = _col(p["smiling"])
    half_width = _pick(big, 0.108, 0.078) + 0.01 * smile
    up = _pick(big, 0.032, 0.013) * (1.0 - 0.15 * smile)
    lo = _pick(big, 0.04, 0.017) * (1.0 - 0.15 * smile)
    curve = _pick(smile > 0, 0.03, _col(p["mouth_curve"]))
    gap = 0.024 * smile
    x = w.u / half_width
    profile = np.sqrt(np.clip(1.0 - x ** 2, 0.0, 1.0))
    centre = _MOUTH_Y + _col(p["mouth_y"]) - curve * x ** 2
    bow = 1.0 - 0.3 * np.exp(-((w.u / 0.018) ** 2))
    gap_top = centre - 0.5 * gap * profile
    gap_bottom = centre + 0.5 * gap * profile
    top = gap_top - up * profile * bow
    bottom = gap_bottom + lo * profile
    return centre, top, bottom, gap_top, gap_bottom, half_width, profile


def _draw_mouth(cv: _Canvas, p, c, fields) -> None:
    w = cv.window(0.1, 0.3, -0.2, 0.2)
    centre, top, bottom, gap_top, gap_bottom, half_width, profile = _mouth_geometry(w, p)
    side_sd = np.abs(w.u) - half_width
    lips = _edge(np.maximum(np.maximum(top - w.v, w.v - bottom), side_sd), w.px)
    lower = np.clip((w.v - centre) / w.px + 0.5, 0.0, 1.0)
    highlight = _bump((w.v - (gap_bottom + bottom) / 2 + 0.003) / 0.01) * lower
    lip_colour = c["lips"] * (0.86 + 0.14 * lower + 0.18 * highlight)[None]
    cv.paint(w, lips, np.clip(lip_colour, 0.0, 1.0))
    smile = _col(p["smiling"])
    opening = _edge(np.maximum(np.maximum(gap_top - w.v, w.v - gap_bottom), side_sd), w.px) * smile
    cv.paint(w, opening, _rgb(0.28, 0.07, 0.07))
    teeth_bottom = gap_top + 0.65 * (gap_bottom - gap_top)
    teeth = _edge(np.maximum(np.maximum(gap_top - w.v, w.v - teeth_bottom), np.abs(w.u) - 0.8 * half_width),
                  w.px) * smile
    seams = 1.0 - 0.25 * np.clip(np.cos(w.u * np.pi / 0.016) * 4.0 - 3.0, 0.0, 1.0)
    cv.paint(w, teeth, _rgb(0.95, 0.93, 0.87) * seams[None])
    closed_line = _thin_line(np.abs(w.v - centre), w.px) * np.clip(-side_sd / w.px, 0.0, 1.0) * (1.0 - smile)
    cv.darken(w, 0.6 * closed_line)
    for side in (-1.0, 1.0):  # dimples at the corners of a smile
        corner_v = _MOUTH_Y + _col(p["mouth_y"]) - 0.03
        d = _segment_distance(w.u, w.v, side * (half_width + 0.01), corner_v - 0.012,
                              side * (half_width + 0.014), corner_v + 0.01)
        cv.darken(w, 0.3 * _thin_line(d, w.px) * smile)


def _lower_face_region(w: _Window, p, face_sd: np.ndarray) -> np.ndarray:
    """Where a man's stubble grows: the face below the nose (upper lip, chin, jaw), soft-edged."""
    top = 0.115 - 0.55 * np.clip(np.abs(w.u) - 0.06, 0.0, None)
    top = np.maximum(top, 0.035)
    return np.clip((w.v - top) / 0.02, 0.0, 1.0) * np.clip(-face_sd / 0.012, 0.0, 1.0)


def _draw_stubble(cv: _Canvas, p, c, fields) -> None:
    """5 o'clock shadow: pixel-sized dark dots over the lower face, exactly two in every 2x2 pixel cell,
    with the skin between them brightened, so that the 4x4-block mean barely changes (darkening about
    strength / 8 of the skin-to-stubble contrast): a high-frequency cue that 4x pooling removes."""
    w = cv.window(0.0, 0.42, -0.3, 0.3, even=True)
    face_sd, _ = _face_sd(w, p)
    region = _lower_face_region(w, p, face_sd)
    dots = _two_per_cell(fields["texture"][:, w.rows, w.cols])
    weight = region * _col(p["stubble_strength"]) * (dots - 0.375)  # the dots' cell mean is 0.5
    view = cv.img[:, :, w.rows, w.cols]
    view += weight[None] * (c["stubble"] - view)


# The six ways to darken two of the four pixels of a 2x2 cell (order: top-left, top-right, bottom-left,
# bottom-right).
_TWO_OF_FOUR = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1]],
                        np.float32)


def _two_per_cell(field: np.ndarray) -> np.ndarray:
    """float32 [K, H, W] in {0, 1} with exactly two ones in every 2x2 cell, the pattern of each cell picked
    by the random byte at its top-left pixel; field uint8 [K, H, W], H and W even."""
    k, h, w = field.shape
    choice = (field[:, ::2, ::2].astype(np.uint16) * 6) >> 8  # 0..5, near uniform
    dots = _TWO_OF_FOUR[choice].reshape(k, h // 2, w // 2, 2, 2).transpose(0, 1, 3, 2, 4)
    return dots.reshape(k, h, w)


def _beard_texture(w: _Window, fields, c) -> np.ndarray:
    """Dense facial hair: the grain averaged with its lower neighbour gives short vertical strokes."""
    grain = fields["texture"][:, w.rows, w.cols] * np.float32(1.0 / 255.0)
    strokes = 0.5 * (grain + np.concatenate([grain[:, 1:], grain[:, -1:]], axis=1))
    return c["beard"] * (0.55 + 0.9 * strokes)[None]


def _draw_beard(cv: _Canvas, p, c, fields) -> None:
    """Full beard: jaw, chin and cheeks below the mouth line, hanging a little below the chin."""
    w = cv.window(0.0, 0.48, -0.35, 0.35)
    face_sd, _ = _face_sd(w, p)
    below_mouth = np.maximum(_MOUTH_Y + 0.035 - 1.3 * np.clip(np.abs(w.u) - 0.1, 0.0, None), 0.09)
    full = np.maximum(np.minimum(face_sd, _ellipse_sd(w.u, w.v - 0.34, 0.16, 0.07)), below_mouth - w.v)
    cv.paint(w, 0.95 * _edge(full, w.px), _beard_texture(w, fields, c))


def _draw_goatee(cv: _Canvas, p, c, fields) -> None:
    """Goatee: the chin and a patch under the lower lip."""
    w = cv.window(0.2, 0.42, -0.1, 0.1)
    face_sd, _ = _face_sd(w, p)
    patch_v = _MOUTH_Y + _col(p["mouth_y"]) + 0.055
    chin = np.minimum(_ellipse_sd(w.u, w.v - 0.305, 0.055, 0.07),
                      _ellipse_sd(w.u, w.v - patch_v, 0.022, 0.03))
    cv.paint(w, 0.95 * _edge(np.maximum(chin, face_sd), w.px), _beard_texture(w, fields, c))


def _draw_mustache(cv: _Canvas, p, c, fields) -> None:
    """Mustache: a band over the upper lip, drooping at its ends."""
    w = cv.window(0.1, 0.26, -0.16, 0.16)
    _, top, _, _, _, half_width, _ = _mouth_geometry(w, p)
    reach = half_width + 0.018
    mid = top - 0.015 + 0.6 * np.clip(np.abs(w.u) - 0.6 * reach, 0.0, None)
    half_thick = 0.016 * np.clip(1.0 - (w.u / reach) ** 4, 0.0, 1.0) + 1e-4
    stache = np.maximum(np.abs(w.v - mid) - half_thick, np.abs(w.u) - reach)
    cv.paint(w, 0.95 * _edge(stache, w.px), _beard_texture(w, fields, c))


def _draw_front_hair(cv: _Canvas, p, c, fields) -> None:
    """Hair on the head over the face oval: the cap above the hairline, the temples and optional bangs."""
    w = cv.window(-0.6, 0.05, -0.37, 0.37)
    a_top, _, _ = _face_shape(p)
    volume = 0.04 + 0.02 * _col(p["long_hair"])
    head = _ellipse_sd(w.u, w.v + 0.085, a_top + volume, 0.385 + volume * 0.5)
    hairline = -0.245 + _col(p["hairline"]) + 0.9 * w.u ** 2
    fringe = -0.178 + 0.006 * np.sin(w.u * 140.0 + _col(p["hair_phase"])) + 0.2 * w.u ** 2
    line = _pick(_col(p["bangs"]), np.maximum(hairline, fringe), hairline)
    cap = np.maximum(head, w.v - line)
    temples = np.maximum(np.maximum(head, a_top - 0.028 - np.abs(w.u)), w.v + 0.03)
    alpha = _edge(np.minimum(cap, temples), w.px)
    cv.paint(w, alpha, _hair_texture(w, p, fields["texture"], c["hair"]))


def _draw_glasses(cv: _Canvas, p, c, fields) -> None:
    w = cv.window(_EYE_Y - 0.065, _EYE_Y + 0.065, -0.35, 0.35)
    a_top, _, _ = _face_shape(p)
    half_thick = 0.0085
    a_g, b_g, cy = 0.075, 0.045, _EYE_Y - 0.002
    frames = np.full(np.broadcast_shapes(w.u.shape, w.v.shape), np.inf, np.float32)
    lens = np.zeros_like(frames)
    power = _pick(_col(p["glasses_round"]), 2.0, 4.0)
    for side in (-1.0, 1.0):
        du, dv = np.abs(w.u - side * _EYE_X) / a_g, np.abs(w.v - cy) / b_g
        radius = (du ** power + dv ** power) ** (1.0 / power)
        sd = (radius - 1.0) * b_g
        frames = np.minimum(frames, np.abs(sd) - half_thick)
        lens = np.maximum(lens, _edge(sd, w.px))
        temple = np.maximum(np.abs(w.v - cy + 0.01) - half_thick * 0.8,
                            np.maximum(_EYE_X + a_g - side * w.u, side * w.u - a_top))
        frames = np.minimum(frames, temple)
    bridge = np.maximum(np.abs(w.v - cy + 0.012 + 0.15 * w.u ** 2) - half_thick,
                        np.abs(w.u) - (_EYE_X - a_g + 0.005))
    frames = np.minimum(frames, bridge)
    cv.paint(w, 0.12 * lens, _rgb(0.9, 0.95, 1.0))
    cv.paint(w, _edge(frames, w.px), c["frames"])


def _draw_where(draw, where: np.ndarray | None, cv: _Canvas, p, c, fields) -> None:
    """Runs a layer on the faces where ``where`` holds only, so rare features cost little."""
    if where is None or where.all():
        draw(cv, p, c, fields)
        return
    idx = np.flatnonzero(where)
    if idx.size == 0:
        return
    sub_p = {name: value[idx] for name, value in p.items()}
    sub = _Canvas(cv.size, sub_p["dx"], sub_p["dy"], sub_p["scale"])
    sub.img = cv.img[:, idx]
    draw(sub, sub_p, {name: value[:, idx] for name, value in c.items()},
         {name: value[idx] for name, value in fields.items()})
    cv.img[:, idx] = sub.img


def _render(p: dict[str, np.ndarray], raw: np.ndarray) -> np.ndarray:
    """Draws the faces of parameters p from the uniform random bytes raw uint8 [K, 2, S, S] (a texture
    field for hair, stubble and beards; pixel noise): uint8 [K, S, S, 3]."""
    image_size = raw.shape[-1]
    fields = {"texture": raw[:, 0]}
    cv = _Canvas(image_size, p["dx"], p["dy"], p["scale"])
    c = _colours(p)
    _draw_background(cv, p, c, fields)
    # Layers in painting order, each with the faces it applies to (None: all).
    layers = (
        (_draw_back_hair, p["long_hair"]),
        (_draw_body, None),
        (_draw_ears, ~p["long_hair"]),
        (_draw_scalp, None),
        (_draw_face, None),
        (_draw_age, ~p["young"]),
        (_draw_eyes, None),
        (_draw_brows, None),
        (_draw_stubble, p["stubble"]),
        (_draw_beard, p["beard"]),
        (_draw_goatee, p["goatee"]),
        (_draw_mustache, p["mustache"]),
        (_draw_nose, None),
        (_draw_mouth, None),
        (_draw_front_hair, ~p["bald"]),
        (_draw_glasses, p["eyeglasses"]),
    )
    for draw, where in layers:
        _draw_where(draw, where, cv, p, c, fields)
    w = cv.window()
    ang = _col(p["light_angle"])
    # A lighting ramp and uniform grey pixel noise of standard deviation noise_std (raw bytes are uniform
    # on 0..255), all in 0..255 units, in place.
    light = (255.0 * (1.0 + _col(p["light_strength"]) * (w.u * np.cos(ang) + w.v * np.sin(ang))))
    img = cv.img
    img *= light[None]
    noise = raw[:, 1].astype(np.float32)
    noise -= 127.5
    noise *= _col(p["noise_std"]) * np.float32(np.sqrt(12.0))
    noise += 0.5  # rounding
    img += noise[None]
    np.clip(img, 0.0, 255.0, out=img)
    return np.moveaxis(img.astype(np.uint8), 0, -1)


# ----------------------------------------------------------------------------------------------- public

def _validate(n: int, seed: int, image_size: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r}: expected a positive integer number of faces")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    if not isinstance(image_size, (int, np.integer)) or image_size < 32 or image_size % 4:
        raise ValueError(f"image_size={image_size!r}: expected an integer >= 32 divisible by 4")


def _chunk_inputs(seed: int, chunk: int, image_size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parameters and random bytes uint8 [CHUNK_SIZE, 2, S, S] of the faces of one chunk."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(chunk)]))
    params = _sample_params(rng, CHUNK_SIZE)
    raw = rng.integers(0, 256, (CHUNK_SIZE, 2, image_size, image_size), dtype=np.uint8)
    return params, raw


def generate_faces(n: int, seed: int, image_size: int = 64, start: int = 0,
                   edit=None) -> tuple[np.ndarray, np.ndarray]:
    """Draws faces start .. start+n-1: images uint8 [n, S, S, 3] RGB, labels uint8 {0,1} [n, len(ATTRIBUTE_NAMES)].

    Face i depends only on (seed, i, image_size), so generate_faces(10, s) == generate_faces(1000, s)[:10] and
    generate_faces(10, s, start=990) == generate_faces(1000, s)[990:]. ``edit`` (optional) maps a dict of
    per-face parameter arrays to an edited copy before drawing, e.g. to redraw the same faces with stubble;
    the labels then describe the edited faces.
    """
    _validate(n, seed, image_size)
    if not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"start={start!r}: expected a non-negative integer face index")
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    labels = np.empty((n, len(ATTRIBUTE_NAMES)), np.uint8)
    for chunk in range(start // CHUNK_SIZE, (start + n - 1) // CHUNK_SIZE + 1):
        params, raw = _chunk_inputs(seed, chunk, image_size)
        lo = max(start - chunk * CHUNK_SIZE, 0)
        hi = min(start + n - chunk * CHUNK_SIZE, CHUNK_SIZE)
        for first in range(lo, hi, _RENDER_BATCH):
            last = min(first + _RENDER_BATCH, hi)
            part = {name: value[first:last] for name, value in params.items()}
            if edit is not None:
                part = edit(part)
            out = slice(chunk * CHUNK_SIZE + first - start, chunk * CHUNK_SIZE + last - start)
            images[out] = _render(part, raw[first:last])
            labels[out] = _labels(part)
    return images, labels


def cache_path(cache_dir: str, n: int, seed: int, image_size: int = 64) -> str:
    """The .npz file that load_or_generate uses for these arguments."""
    return os.path.join(cache_dir, f"synthetic_faces_v{GENERATOR_VERSION}_n{n}_seed{seed}_s{image_size}.npz")


def load_or_generate(cache_dir: str, n: int, seed: int,
                     image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """generate_faces(n, seed, image_size), cached as one .npz in cache_dir keyed by (n, seed, image_size,
    GENERATOR_VERSION). The file is written to a temporary name and renamed, so an interrupted run never
    leaves a corrupt cache."""
    _validate(n, seed, image_size)
    path = cache_path(cache_dir, n, seed, image_size)
    if os.path.exists(path):
        with np.load(path) as z:
            return z["images"], z["labels"]
    images, labels = generate_faces(n, seed, image_size)
    formats.write_npz(path, images=images, labels=labels, names=np.array(ATTRIBUTE_NAMES))
    return images, labels
