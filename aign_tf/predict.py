"""``--mode=predict``: files in, predictions out, with a manifest.

Two steps, so that a wrong argument stops the command before any data is loaded or model restored:

1. :func:`check_request` (cheap, no TensorFlow): the input exists and is an image file, a folder holding at least
   one readable image, or (pose3d) a keypoint file that parses; ``--input_mask`` is a readable image; the output
   folder can be written.
2. :func:`run` with the built task and its restored trainer. Face tasks stream the images through tf.data (list
   the files, decode them in parallel, crop, batch, prefetch): a file that cannot be decoded or is too small is
   skipped, not fatal. Each image is cut by :func:`aign_tf.data.crops.crop_and_resize`, the crop the CelebA
   loader trains with (``--crop``, default ``auto``: the CelebA box for a CelebA-aligned photo, the centre square
   otherwise). The output folder gets ``<name>_<task>.png`` per image, ``skipped.txt`` (one line per skipped file:
   path, a tab, the reason) when files were skipped, and ``predictions.json`` (see :func:`run`). Only when nothing
   could be processed does the command fail.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time

import numpy as np

from aign_tf import formats

MANIFEST = "predictions.json"
SKIPPED = "skipped.txt"
MIN_SIDE = 8  # pixels: a smaller picture (an icon, a tracking pixel) is skipped as the wrong shape
PROGRESS_SECONDS = 2.0  # at most one progress line per this many seconds (and one at the end)


@dataclasses.dataclass
class Request:
    """A checked predict request: every path absolute."""

    task: str
    input: str
    output_dir: str
    files: list[str]  # face tasks: the file, or every file of the folder (sorted); pose3d: the keypoint file
    crop: str = "auto"
    input_mask: str | None = None


def _header_error(path: str) -> str | None:
    """None if ``path`` starts like an image Pillow can read (only the header is read), else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 (the header is parsed on open)
        return None
    except Exception as e:  # any failure means "not an image we can read"
        return _reason(e, path)


def _reason(error: BaseException, path: str) -> str:
    """A one-line reason for a skipped file, without the path the line already shows."""
    cause = error.__cause__ or error
    text = " ".join(str(cause).replace(repr(path), "").replace(path, "").split()) or type(cause).__name__
    return f"not a readable image ({text})" if not isinstance(error, _TooSmall) else text


class _TooSmall(ValueError):
    pass


def list_folder(folder: str) -> list[str]:
    """Every regular, non-hidden file directly inside ``folder``, sorted (the images and whatever else is there:
    the others are reported as skipped, not silently ignored)."""
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if not name.startswith(".") and os.path.isfile(os.path.join(folder, name)))


def _check_output(output_dir: str) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output={output_dir} is a file; expected a folder to write predictions to")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as e:
        raise ValueError(f"--output={output_dir} cannot be written: {e.strerror or e}") from e


def check_request(task: str, input_path: str, output_dir: str, crop: str = "auto",
                  input_mask: str | None = None) -> Request:
    """Checks a predict request without loading TensorFlow or data; creates the output folder.

    Raises FileNotFoundError (input or mask missing) or ValueError (not an image / keypoint file, a folder with no
    readable image, an unreadable mask, an output that cannot be written), each naming the path."""
    from aign_tf.data.crops import check_crop

    crop = check_crop(crop)
    path = os.path.abspath(os.path.expanduser(input_path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"--input={input_path}: no such file or folder")
    if task == "pose3d":
        if os.path.isdir(path):
            raise ValueError(f"--input={input_path} is a folder; pose3d predicts from one keypoint file "
                             "(.json or .npy, see docs/pose3d.md)")
        from aign_tf.data.skeleton import H36M_17

        formats.read_keypoints(path, H36M_17.num_joints)  # raises, naming the path, if it does not parse
        files = [path]
    elif os.path.isdir(path):
        files = list_folder(path)
        if not files:
            raise ValueError(f"--input={input_path} is an empty folder; expected images "
                             f"({' '.join(formats.IMAGE_EXTENSIONS)})")
        reasons = []
        for f in files:  # stops at the first readable one: cheap on a folder of images
            reason = _header_error(f)
            if reason is None:
                break
            reasons.append(f"{os.path.basename(f)}: {reason}")
        else:
            raise ValueError(f"--input={input_path}: none of its {len(files)} files is a readable image ("
                             + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "") + ")")
    else:
        reason = _header_error(path)
        if reason is not None:
            raise ValueError(f"--input={input_path}: {reason}")
        files = [path]
    mask = None
    if input_mask:
        mask = os.path.abspath(os.path.expanduser(input_mask))
        formats.read_mask(mask)  # FileNotFoundError / ValueError naming the path
    output_dir = os.path.abspath(os.path.expanduser(output_dir))
    _check_output(output_dir)
    return Request(task=task, input=path, output_dir=output_dir, files=files, crop=crop, input_mask=mask)


# --- the image pipeline ---------------------------------------------------------------------------------------
def _decode(path: bytes) -> tuple[np.ndarray, bytes, bool]:
    """(uint8 [H, W, 3], b"", plain_jpeg) for a readable picture (EXIF rotation applied; grey, palette, alpha over
    white and 16-bit made RGB by :func:`formats.read_image`), else (uint8 [1, 1, 3] zeros, the reason, False).
    ``plain_jpeg``: an RGB or grey JPEG without an EXIF rotation, which TensorFlow decodes exactly as the CelebA
    loader does (its IDCT differs from Pillow's by a few levels): only its header is read here, and the image
    returned is a [1, 1, 3] placeholder. Never raises."""
    from PIL import Image

    name = path.decode("utf-8", errors="surrogateescape")
    placeholder = np.zeros((1, 1, 3), np.uint8)
    try:
        with Image.open(name) as im:
            plain_jpeg = im.format == "JPEG" and im.mode in ("RGB", "L") and im.getexif().get(0x0112, 1) == 1
            width, height = im.size
        if plain_jpeg:
            image = None  # decoded by TensorFlow (image_dataset)
        else:
            image = formats.read_image(name)
            height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise _TooSmall(f"too small: {width}x{height} px (at least {MIN_SIDE}x{MIN_SIDE})")
        return (placeholder if image is None else np.round(image * 255.0).astype(np.uint8)), b"", plain_jpeg
    except Exception as e:  # one unreadable file must not stop the others
        return placeholder, _reason(e, name).encode("utf-8", errors="replace"), False


def image_dataset(paths: list[str], image_size: int, crop: str = "auto", batch_size: int = 16,
                  num_parallel_calls: int | None = None):
    """tf.data pipeline over image files, in order: decoded in parallel (Pillow, in ``tf.numpy_function``; plain
    JPEGs by TensorFlow as in training), cut by :func:`aign_tf.data.crops.crop_and_resize`, batched, prefetched.
    Every file yields one element (but for one Pillow reads and TensorFlow then fails on, which is dropped: compare
    the paths), a file that cannot be used with a non-empty ``reason`` (and a blank image). Batches are dicts:
    ``path`` [B] bytes, ``image`` float32 [B, S, S, 3] in [0, 1], ``reason`` [B] bytes, ``size`` int32 [B, 2]
    (height, width of the picture), ``box`` int32 [B, 4] (top, left, height, width of the part kept), ``aligned``
    bool [B] (the picture has the aligned CelebA shape)."""
    import tensorflow as tf

    from aign_tf.data.crops import crop_and_resize, crop_box, is_aligned_celeba

    def load(path):
        image, reason, plain_jpeg = tf.numpy_function(_decode, [path], [tf.uint8, tf.string, tf.bool],
                                                      stateful=False)
        image = tf.cond(plain_jpeg, lambda: tf.io.decode_jpeg(tf.io.read_file(path), channels=3), lambda: image)
        image.set_shape([None, None, 3])
        reason.set_shape([])
        shape = tf.shape(image)
        return {"path": path, "image": crop_and_resize(image, image_size, crop), "reason": reason,
                "size": shape[:2], "box": crop_box(shape[0], shape[1], crop),
                "aligned": is_aligned_celeba(shape[0], shape[1])}

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
    ds = ds.map(load, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE, deterministic=True)
    return ds.ignore_errors().batch(batch_size).prefetch(2)


def batches(paths: list[str], image_size: int, crop: str = "auto", batch_size: int = 16):
    """The batches of :func:`image_dataset` as NumPy, ``path`` and ``reason`` as lists of str; a file the dataset
    dropped (TensorFlow's JPEG decoder failed where Pillow did not) comes in a last batch with its reason."""
    seen = set()
    for batch in image_dataset(paths, image_size, crop, batch_size).as_numpy_iterator():
        batch["path"] = [p.decode("utf-8", errors="surrogateescape") for p in batch["path"]]
        batch["reason"] = [r.decode("utf-8") for r in batch["reason"]]
        seen.update(batch["path"])
        yield batch
    lost = [p for p in paths if p not in seen]
    if lost:
        n = len(lost)
        yield {"path": lost, "reason": ["not a readable image (TensorFlow's JPEG decoder failed)"] * n,
               "image": np.zeros((n, image_size, image_size, 3), np.float32), "size": np.zeros((n, 2), np.int32),
               "box": np.zeros((n, 4), np.int32), "aligned": np.zeros(n, bool)}


def output_names(paths: list[str], task: str) -> list[str]:
    """``<stem>_<task>.png`` per input; inputs sharing a stem (``a.jpg``, ``a.png``) keep their suffix in the
    name (``a_jpg_<task>.png``) so no output overwrites another."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [(s if counts[s] == 1 else os.path.basename(p).replace(".", "_")) + f"_{task}.png"
            for s, p in zip(stems, paths, strict=True)]


class _Progress:
    def __init__(self, total: int, log):
        self.total, self.log, self.start, self.last = total, log, time.perf_counter(), 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if final or now - self.last >= PROGRESS_SECONDS:
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            self.log(f"predict: {done}/{self.total} images, {rate:.1f} images/s")


def _model_info(task, trainer) -> dict:
    info = {"task": task.name, "run_dir": os.path.abspath(trainer.run_dir),
            "checkpoint": os.path.abspath(trainer.manager.latest_checkpoint) if trainer.manager.latest_checkpoint
            else None, "step": int(trainer.step.numpy())}
    meta = task.export_metadata()
    for key in ("bias", "prior_dir", "image_size", "skeleton"):
        if key in meta:
            info[key] = meta[key]
    return info


def _write_reports(request: Request, manifest: dict, skipped: list[tuple[str, str]]) -> None:
    skipped_path = os.path.join(request.output_dir, SKIPPED)
    if skipped:
        text = "".join(f"{path}\t{reason}\n" for path, reason in skipped)
        formats.atomic_write(skipped_path, lambda f: f.write(text.encode("utf-8")))
    elif os.path.exists(skipped_path):
        os.remove(skipped_path)  # from an earlier run into the same folder
    manifest["skipped_file"] = skipped_path if skipped else None
    formats.write_json(os.path.join(request.output_dir, MANIFEST), manifest)


def run(task, trainer, request: Request, batch_size: int = 16, log=print) -> dict:
    """Predicts for every input of ``request`` with ``trainer``'s restored generator; returns the manifest, which
    is also written to ``<output_dir>/predictions.json``::

        {"model": {"task", "run_dir", "checkpoint", "step", and "bias", "prior_dir", "image_size" (faces) or
                   "skeleton" (pose3d)},
         "input", "input_mask", "crop", "output_dir", "command",
         "predictions": [{"input", "outputs": [files], faces: "size": [width, height], "crop" (the crop applied:
                          celeba, center or none), "crop_box": [top, left, height, width] (input pixels);
                          pose3d: "poses": N}],
         "skipped": [{"input", "reason"}], "skipped_file": path of skipped.txt or null}

    Raises ValueError if no input could be processed (after writing skipped.txt and the manifest)."""
    manifest = {"model": _model_info(task, trainer), "input": request.input, "input_mask": request.input_mask,
                "crop": request.crop if task.name != "pose3d" else None, "output_dir": request.output_dir,
                "command": " ".join(sys.argv), "predictions": [], "skipped": []}
    if task.name == "pose3d":
        manifest["predictions"].append(_predict_pose(task, trainer, request, log))
        formats.write_json(os.path.join(request.output_dir, MANIFEST), dict(manifest, skipped_file=None))
        log(f"manifest: {os.path.join(request.output_dir, MANIFEST)}")
        return manifest
    skipped = _predict_faces(task, trainer, request, batch_size, manifest, log)
    manifest["skipped"] = [{"input": p, "reason": r} for p, r in skipped]
    _write_reports(request, manifest, skipped)
    done = len(manifest["predictions"])
    if done:
        log(f"wrote {done} predictions to {request.output_dir}; manifest: "
            f"{os.path.join(request.output_dir, MANIFEST)}")
    if skipped:  # last, where it is seen
        log(f"skipped {len(skipped)} of {len(request.files)} files (listed in {manifest['skipped_file']}):")
        for path, reason in skipped:
            log(f"  {path}: {reason}")
    if not done:
        raise ValueError(f"none of the {len(request.files)} files of --input={request.input} could be used; "
                         f"the reasons are in {manifest['skipped_file']}")
    return manifest


def _mask_for(task, request: Request, size: int) -> np.ndarray:
    """float32 [1, S, S, 1], 1 = visible: ``--input_mask`` cut like the photos (nearest neighbour), or the task's
    own mask."""
    import tensorflow as tf

    from aign_tf.data.crops import crop_and_resize

    if request.input_mask:
        mask = formats.read_mask(request.input_mask)
        return crop_and_resize(tf.constant(mask), size, request.crop, method="nearest").numpy()[None]
    return task.observe(tf.zeros([1, size, size, 3]), 0)["mask"].numpy()[:1]


def _predict_faces(task, trainer, request: Request, batch_size: int, manifest: dict, log) -> list[tuple[str, str]]:
    signature = task.serving_signature()
    size = signature["image"].shape[1]
    mask = _mask_for(task, request, size) if "mask" in signature else None
    names = dict(zip(request.files, output_names(request.files, task.name), strict=True))
    skipped: list[tuple[str, str]] = []
    progress = _Progress(len(request.files), log)
    done = 0
    for batch in batches(request.files, size, request.crop, batch_size):
        paths = batch["path"]
        ok = np.array([not r for r in batch["reason"]], bool)
        skipped += [(p, r) for p, r, good in zip(paths, batch["reason"], ok, strict=True) if not good]
        if ok.any():
            inputs = {"image": batch["image"][ok]}
            if mask is not None:
                inputs["mask"] = np.repeat(mask, int(ok.sum()), 0)
            faces = task.serve(trainer.eval_generator, **inputs)["face"].numpy()
            for k, face in zip(np.flatnonzero(ok), faces, strict=True):
                out = os.path.join(request.output_dir, names[paths[k]])
                formats.write_image(out, face)
                height, width = (int(v) for v in batch["size"][k])
                applied = request.crop if request.crop != "auto" else (
                    "celeba" if batch["aligned"][k] else "center")
                manifest["predictions"].append({"input": paths[k], "outputs": [out], "size": [width, height],
                                                "crop": applied, "crop_box": [int(v) for v in batch["box"][k]]})
        done += len(paths)
        progress.update(done, final=done == len(request.files))
    order = {p: i for i, p in enumerate(request.files)}
    manifest["predictions"].sort(key=lambda p: order[p["input"]])
    skipped.sort(key=lambda item: order[item[0]])
    return skipped


def _predict_pose(task, trainer, request: Request, log) -> dict:
    path = request.files[0]
    inputs = formats.read_keypoints(path, task.skeleton.num_joints)
    n = len(inputs["joints_2d"])
    if "focal" not in inputs:
        inputs["focal"] = np.full((n, 2), task.config.nominal_focal, np.float32)
        log(f"no focal length in {path}: assuming the nominal {task.config.nominal_focal} (normalised)")
    out = {k: v.numpy() for k, v in task.serve_with_camera(trainer.eval_generator, **inputs).items()}
    stem = os.path.join(request.output_dir, os.path.splitext(os.path.basename(path))[0] + f"_{task.name}")
    formats.write_json(stem + ".json", {"units": "mm", "joint_names": list(task.skeleton.joint_names), **out})
    formats.write_image(stem + ".png", task.prediction_figure(inputs, out))
    log(f"wrote {n} 3D poses to {stem}.json and a figure to {stem}.png")
    return {"input": path, "outputs": [stem + ".json", stem + ".png"], "poses": n}
