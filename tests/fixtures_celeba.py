"""Writes a tiny CelebA copy in the published layout, quirks included, for tests.

Reproduced quirks of the real files: list_attr_celeba.txt starts with the image count, then the 40 names
with a trailing space, then rows ``000001.jpg -1  1 ...`` whose values are right-aligned in two columns
(so one or two spaces apart); list_eval_partition.txt rows are ``000001.jpg 0``; identity_CelebA.txt (no
header) rows are ``000001.jpg 2880``, beside the attribute file (Anno/ in the Google Drive tree; the Kaggle copy
has none).
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from aign_tf.data.celeba import ALIGNED_HEIGHT_PX, ALIGNED_WIDTH_PX, CELEBA_ATTRIBUTES

LAYOUTS = ("flat", "anno_eval", "kaggle")


def _face_like_jpeg(rng: np.random.Generator) -> bytes:
    """A 178x218 JPEG with a coloured background gradient and an elliptical 'face' blob."""
    h, w = ALIGNED_HEIGHT_PX, ALIGNED_WIDTH_PX
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    background = rng.uniform(0, 255, 3) * (yy / h)[..., None] + rng.uniform(0, 255, 3) * (1 - yy / h)[..., None]
    inside = ((yy - h * 0.5) / (h * 0.3)) ** 2 + ((xx - w * 0.5) / (w * 0.28)) ** 2 < 1.0
    image = np.where(inside[..., None], rng.uniform(60, 255, 3), background)
    image = image + rng.normal(0, 8, image.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _paths(root: str, layout: str) -> tuple[str, str, str]:
    """-> (image dir, attribute file, partition file) for a layout."""
    if layout == "flat":
        return (os.path.join(root, "img_align_celeba"), os.path.join(root, "list_attr_celeba.txt"),
                os.path.join(root, "list_eval_partition.txt"))
    if layout == "anno_eval":
        return (os.path.join(root, "Img", "img_align_celeba"), os.path.join(root, "Anno", "list_attr_celeba.txt"),
                os.path.join(root, "Eval", "list_eval_partition.txt"))
    if layout == "kaggle":
        return (os.path.join(root, "img_align_celeba", "img_align_celeba"),
                os.path.join(root, "list_attr_celeba.csv"), os.path.join(root, "list_eval_partition.csv"))
    raise ValueError(f"unknown fixture layout {layout!r}; expected one of {LAYOUTS}")


def _write_attributes(path: str, filenames: list[str], labels: np.ndarray, layout: str) -> None:
    signed = labels.astype(np.int64) * 2 - 1
    with open(path, "w", newline="\n") as f:
        if layout == "kaggle":
            f.write(",".join(("image_id", *CELEBA_ATTRIBUTES)) + "\n")
            for name, row in zip(filenames, signed, strict=True):
                f.write(",".join([name, *(str(v) for v in row)]) + "\n")
            return
        f.write(f"{len(filenames)}\n")
        f.write(" ".join(CELEBA_ATTRIBUTES) + " \n")  # the real file has a trailing space here
        for name, row in zip(filenames, signed, strict=True):
            f.write(name + "".join(f" {v:2d}" for v in row) + "\n")  # right-aligned: ' -1', '  1'


def _write_partition(path: str, filenames: list[str], partition: list[int], layout: str) -> None:
    with open(path, "w", newline="\n") as f:
        if layout == "kaggle":
            f.write("image_id,partition\n")
        sep = "," if layout == "kaggle" else " "
        for name, part in zip(filenames, partition, strict=True):
            f.write(f"{name}{sep}{part}\n")


def _write_identities(path: str, filenames: list[str], identities: np.ndarray) -> None:
    with open(path, "w", newline="\n") as f:
        for name, identity in zip(filenames, identities, strict=True):
            f.write(f"{name} {identity}\n")


def write_celeba_fixture(root, n_images: int = 24, corrupt: int = 2, seed: int = 0, layout: str = "flat",
                         identities: bool = True) -> dict:
    """Writes ``n_images`` readable JPEGs plus ``corrupt`` broken files (alternately a truncated JPEG and a
    text file named .jpg), all listed in the annotation files, under ``root`` in ``layout`` ('flat': files
    at the root; 'anno_eval': Img/, Anno/, Eval/ subfolders as on the official Google Drive; 'kaggle': CSV
    annotations and the nested img_align_celeba/img_align_celeba/).

    Images are listed as 000001.jpg ... in order; about 60 / 20 / 20 % go to train / valid / test (each
    split non-empty, every broken file in train). Labels are random, but Male and Young take both values.
    With ``identities`` (not for 'kaggle', whose copy has no identity file) identity_CelebA.txt lists every file:
    consecutive pairs of files of one split share an identity (a 4-digit number), no identity is in two splits.

    Returns a dict: root, image_dir, attr_path, partition_path, identity_path (None when not written),
    filenames (all listed, [n_images + corrupt]), labels uint8 [n_images + corrupt, 40], identities int64
    [n_images + corrupt], partition (list of 0/1/2 per filename), corrupt (the broken filenames), readable
    (split -> readable filenames), names (the 40 attribute names).
    """
    if n_images < 3:
        raise ValueError(f"n_images must be >= 3 so every split gets an image, got {n_images}")
    root = str(root)
    rng = np.random.default_rng(seed)
    image_dir, attr_path, partition_path = _paths(root, layout)
    for directory in (image_dir, os.path.dirname(attr_path), os.path.dirname(partition_path)):
        os.makedirs(directory, exist_ok=True)
    total = n_images + corrupt
    filenames = [f"{i + 1:06d}.jpg" for i in range(total)]
    n_valid = n_test = max(1, int(round(0.2 * total)))
    n_train = total - n_valid - n_test
    if n_train < corrupt + 1:
        raise ValueError(f"corrupt={corrupt} broken files need more train images; raise n_images={n_images}")
    partition = [0] * n_train + [1] * n_valid + [2] * n_test
    broken = set(np.round(np.linspace(1, n_train - 1, corrupt)).astype(int).tolist())
    labels = (rng.random((total, len(CELEBA_ATTRIBUTES))) < 0.4).astype(np.uint8)
    labels[:, CELEBA_ATTRIBUTES.index("Male")] = np.arange(total) % 2
    labels[:, CELEBA_ATTRIBUTES.index("Young")] = (np.arange(total) // 2) % 2
    corrupt_names, readable = [], {"train": [], "valid": [], "test": []}
    for i, name in enumerate(filenames):
        path = os.path.join(image_dir, name)
        if i in broken:
            jpeg = _face_like_jpeg(rng)
            truncated = len(corrupt_names) % 2 == 0
            data = jpeg[: len(jpeg) // 2] if truncated else b"this is not an image, just text named .jpg\n"
            corrupt_names.append(name)
        else:
            data = _face_like_jpeg(rng)
            readable[("train", "valid", "test")[partition[i]]].append(name)
        with open(path, "wb") as f:
            f.write(data)
    _write_attributes(attr_path, filenames, labels, layout)
    _write_partition(partition_path, filenames, partition, layout)
    # Identity numbers 1000 * (split + 1) + pair index within the split: pairs of one person, split-disjoint.
    starts = {p: partition.index(p) for p in (0, 1, 2)}
    person = np.array([1000 * (p + 1) + (i - starts[p]) // 2 for i, p in enumerate(partition)], np.int64)
    identity_path = None
    if identities and layout != "kaggle":
        identity_path = os.path.join(os.path.dirname(attr_path), "identity_CelebA.txt")
        _write_identities(identity_path, filenames, person)
    return {"root": root, "image_dir": image_dir, "attr_path": attr_path, "partition_path": partition_path,
            "identity_path": identity_path, "filenames": filenames, "labels": labels, "identities": person,
            "partition": partition, "corrupt": corrupt_names, "readable": readable, "names": CELEBA_ATTRIBUTES}
