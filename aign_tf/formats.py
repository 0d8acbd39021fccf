"""Reading and writing the files users have: photos, inpainting masks, image grids, JSON results, 2D keypoints.

Shared by ``--mode=predict``, the evaluation figures and the serving client. Pure NumPy + Pillow (no
TensorFlow), so it imports fast. Images in memory are float32 ``[H, W, 3]`` in ``[0, 1]``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


# --- atomic writes --------------------------------------------------------------------------------
def current_umask() -> int:
    """The process's umask (e.g. 0o022). Read from /proc/self/status where Linux has it (no side effect);
    elsewhere by setting and restoring it, with 0o077 in between, so a file another thread creates in that
    instant is at worst private, never more open than asked."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o077)
    os.umask(old)
    return old


def default_mode(directory: bool = False) -> int:
    """The permission bits a plain ``open()`` (0o666) or ``os.makedirs`` (0o777) would give under the current
    umask: what files made by ``tempfile.mkstemp`` (0o600) / ``mkdtemp`` (0o700) get before they are renamed
    into place, so every file the package writes respects the user's umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write(path: str, write) -> None:
    """Calls ``write(file_object)`` on a temporary sibling of ``path``, then renames it onto ``path``, so
    a reader never sees a half-written file. Creates missing parent directories. The file gets the
    permissions of the user's umask (``default_mode``), not mkstemp's 0o600."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_npz(path: str, **arrays) -> None:
    """Writes ``arrays`` to an uncompressed ``.npz`` at ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


# --- reading images -------------------------------------------------------------------------------
def _open(path: str) -> Image.Image:
    """Opens and fully decodes an image file with EXIF orientation applied."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file not found: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"expected an image file, got a directory: {path!r}")
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        expected = "/".join(IMAGE_EXTENSIONS)
        raise ValueError(f"cannot read {path!r} as an image (expected {expected}): {e}") from e


def _center_square(im: Image.Image, image_size: int | None, resample: int, path: str) -> Image.Image:
    """Crops the central square of ``im`` and resizes it to ``image_size`` (no-op when None)."""
    if image_size is None:
        return im
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r} "
                         f"(reading {path!r})")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    if side != image_size:
        im = im.resize((int(image_size), int(image_size)), resample=resample)
    return im


def _to_rgb(im: Image.Image, background: int) -> np.ndarray:
    """Any Pillow mode -> float32 [H, W, 3] in [0, 1]; transparency is composited over a grey level
    ``background`` (0-255)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNG (Pillow opens it as I;16, older Pillow as I): scale by 65535, not clip at 255.
        grey = np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (background, background, background, 255))
        im = Image.alpha_composite(base, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def read_image(path: str, image_size: int | None = None) -> np.ndarray:
    """Reads a photo as float32 ``[H, W, 3]`` in ``[0, 1]``.

    EXIF orientation is applied; greyscale, palette and 16-bit images become RGB; transparent pixels are
    composited over white. With ``image_size`` the central square is cropped and resized (Lanczos) to
    ``[image_size, image_size, 3]``. Raises FileNotFoundError for a missing file and ValueError for a file
    that is not a readable image, both naming the path."""
    im = _open(path)
    im = _center_square(im, image_size, Image.Resampling.LANCZOS, path)
    return np.clip(_to_rgb(im, background=255), 0.0, 1.0)


def read_mask(path: str, image_size: int | None = None) -> np.ndarray:
    """Reads an inpainting mask as float32 ``[H, W, 1]`` with values in ``{0, 1}``.

    File convention (the usual one of inpainting tools and datasets): **white = hole to fill, black =
    keep**. A pixel is a hole when its luminance is >= 0.5; transparent pixels count as black (keep).
    Returned convention (the one the ``inpaint`` task and its SavedModel take): **1 = visible, 0 = hidden**,
    i.e. ``1 - hole``. With ``image_size`` the central square is cropped and resized (nearest neighbour).
    Raises FileNotFoundError / ValueError naming the path like :func:`read_image`."""
    im = _open(path)
    im = _center_square(im, image_size, Image.Resampling.NEAREST, path)
    luminance = _to_rgb(im, background=0) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (luminance < 0.5).astype(np.float32)[..., None]


# --- writing images -------------------------------------------------------------------------------
def _as_rgb(image: np.ndarray, what: str) -> np.ndarray:
    """Validates an image: [h, w], [h, w, 1] or [h, w, 3], uint8 or float/bool -> [h, w, 3], uint8 kept,
    anything else float32 clipped to [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3) or 0 in image.shape:
        raise ValueError(f"{what}: expected an image of shape [H, W, 3] or [H, W, 1], got {image.shape}")
    if image.dtype != np.uint8:
        if not (np.issubdtype(image.dtype, np.floating) or image.dtype == np.bool_):
            raise ValueError(f"{what}: expected a float image in [0, 1] or uint8, got dtype {image.dtype}")
        image = image.astype(np.float32)
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{what}: the image contains NaN or infinite values")
        image = np.clip(image, 0.0, 1.0)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def _to_uint8(image: np.ndarray, what: str) -> np.ndarray:
    """Any image :func:`_as_rgb` accepts -> uint8 [H, W, 3]."""
    image = _as_rgb(image, what)
    return image if image.dtype == np.uint8 else np.round(image * 255.0).astype(np.uint8)


def _to_float(image: np.ndarray, what: str) -> np.ndarray:
    """Any image :func:`_as_rgb` accepts -> float32 [H, W, 3] in [0, 1]."""
    image = _as_rgb(image, what)
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image


def write_image(path: str, image: np.ndarray) -> None:
    """Writes ``image`` (float ``[H, W, 3]`` in [0, 1], clipped, or uint8; ``[H, W, 1]`` is grey) as PNG or
    JPEG (quality 95) chosen by the suffix of ``path``; creates parent directories; atomic."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _WRITE_FORMATS:
        raise ValueError(f"cannot write {path!r}: expected a file name ending in {', '.join(_WRITE_FORMATS)}")
    im = Image.fromarray(_to_uint8(image, f"writing {path!r}"), mode="RGB")
    fmt = _WRITE_FORMATS[suffix]
    atomic_write(path, lambda f: im.save(f, format=fmt, **({"quality": 95} if fmt == "JPEG" else {})))


def _resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w, C] -> [height, width, C] by nearest-neighbour index mapping (exact repeat for integer
    factors, e.g. a 16x16 low-res input shown beside 64x64 outputs)."""
    h, w = image.shape[:2]
    rows = (np.arange(height) * h) // height
    cols = (np.arange(width) * w) // width
    return image[rows][:, cols]


def image_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Lays out rows of images as one float32 ``[H, W, 3]`` picture in [0, 1].

    Each image is float ``[h, w, 3]`` in [0, 1] (or uint8, or grey ``[h, w, 1]`` / ``[h, w]``, broadcast
    to 3 channels). Within a row, images smaller than the row's largest height/width are upsampled by
    nearest neighbour to it. ``pad`` pixels of ``pad_value`` surround every image; rows narrower than the
    widest are filled with ``pad_value`` on the right. Output height = sum of row heights +
    ``pad * (len(rows) + 1)``."""
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    if len(rows) == 0 or any(len(r) == 0 for r in rows):
        raise ValueError(f"image_grid needs at least one image in every row, got row lengths "
                         f"{[len(r) for r in rows]}")
    strips = []
    for i, row in enumerate(rows):
        images = [_to_float(im, f"image_grid row {i} image {j}") for j, im in enumerate(row)]
        height = max(im.shape[0] for im in images)
        width = max(im.shape[1] for im in images)
        strip = np.full((height + 2 * pad, len(images) * (width + pad) + pad, 3), pad_value, np.float32)
        for j, im in enumerate(images):
            x = pad + j * (width + pad)
            strip[pad:pad + height, x:x + width] = _resize_nearest(im, height, width)
        strips.append(strip)
    total_width = max(s.shape[1] for s in strips)
    out = []
    for k, s in enumerate(strips):
        s = s if k == 0 else s[pad:]  # neighbouring rows share one padding band
        fill = np.full((s.shape[0], total_width - s.shape[1], 3), pad_value, np.float32)
        out.append(np.concatenate([s, fill], axis=1))
    return np.concatenate(out, axis=0)


# --- folders and JSON -----------------------------------------------------------------------------
def list_images(folder: str) -> list[str]:
    """Paths of the images directly inside ``folder`` (suffixes .jpg .jpeg .png .bmp .webp, any case;
    hidden files skipped), sorted. Raises FileNotFoundError for a missing folder and ValueError for a
    path that is not a folder or a folder without images."""
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"image folder not found: {folder!r}")
    if not os.path.isdir(folder):
        raise ValueError(f"expected a folder of images, got a file: {folder!r}")
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
                   and os.path.isfile(os.path.join(folder, name)))
    if not paths:
        raise ValueError(f"no images in {folder!r}: expected files ending in {' '.join(IMAGE_EXTENSIONS)}")
    return paths


def _json_default(obj):
    """json.dump hook: NumPy scalars and arrays -> Python numbers and lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def write_json(path: str, obj) -> None:
    """Writes ``obj`` as indented JSON (NumPy scalars/arrays converted); creates parent dirs; atomic."""
    path = os.fspath(path)
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    except TypeError as e:
        raise ValueError(f"cannot write {path!r} as JSON: {e}") from e
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: str):
    """Reads a JSON file. Raises FileNotFoundError / ValueError (not valid JSON) naming the path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"JSON file not found: {path!r}")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r} is not valid JSON: {e}") from e


# --- 2D keypoints ---------------------------------------------------------------------------------


def read_keypoints(path: str, num_joints: int) -> dict[str, np.ndarray]:
    """2D joints for ``--task=pose3d`` predict, from ``.npy`` or ``.json``.

    ``.npy``: float `[N, J, 2]` (x, y) or `[N, J, 3]` (x, y, confidence) in normalised image coordinates
    (principal point at 0, image half-width 1, y down). ``.json``: an object with ``joints_2d`` (`[N, J, 2]`
    or `[N, J, 3]`, or one `[J, 2|3]` pose), optional ``confidence`` `[N, J]` and ``focal`` (one number or
    `[N, 2]`, normalised); with ``"image_width"`` (pixels) the joints and ``focal_px`` are in pixels and
    are normalised here (principal point at the image centre unless ``principal_point_px`` is given).

    Returns float32 arrays ``joints_2d`` `[N, J, 2]`, ``confidence`` `[N, J]` (1 where not given) and, if
    the file gives one, ``focal`` `[N, 2]`. Raises FileNotFoundError / ValueError naming the path.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"keypoint file not found: {path!r}")
    meta: dict = {}
    if path.endswith(".npy"):
        joints = np.load(path, allow_pickle=False)
    elif path.endswith(".json"):
        meta = read_json(path)
        if not isinstance(meta, dict) or "joints_2d" not in meta:
            raise ValueError(f"{path!r}: expected a JSON object with a 'joints_2d' list")
        joints = meta["joints_2d"]
    else:
        raise ValueError(f"{path!r}: keypoints must be a .npy or .json file")
    joints = np.asarray(joints, np.float64)
    if joints.ndim == 2:
        joints = joints[None]
    if joints.ndim != 3 or joints.shape[1] != num_joints or joints.shape[2] not in (2, 3):
        raise ValueError(f"{path!r}: joints must have shape [N, {num_joints}, 2] or [N, {num_joints}, 3]; got "
                         f"{list(joints.shape)}")
    n = len(joints)
    confidence = joints[..., 2] if joints.shape[2] == 3 else np.ones(joints.shape[:2])
    if "confidence" in meta:
        confidence = np.asarray(meta["confidence"], np.float64).reshape(n, num_joints)
    out = {"joints_2d": joints[..., :2], "confidence": confidence}
    if "image_width" in meta:
        half = float(meta["image_width"]) / 2.0
        centre = np.asarray(meta.get("principal_point_px", [half, float(meta.get("image_height", 2 * half)) / 2]))
        out["joints_2d"] = (out["joints_2d"] - centre) / half
        if "focal_px" in meta:
            out["focal"] = np.broadcast_to(np.asarray(meta["focal_px"], np.float64) / half, (n, 2))
    elif "focal" in meta:
        out["focal"] = np.broadcast_to(np.asarray(meta["focal"], np.float64), (n, 2))
    if not np.isfinite(out["joints_2d"]).all():
        raise ValueError(f"{path!r}: joints contain NaN or Inf; give missing joints confidence 0 instead")
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}
