"""CelebA aligned faces with their 40 attributes: the published folder layout, and TFDS ``celeb_a``.

Accepted layouts under ``data_dir`` (see datasets/celeba/README.md):

* flat: ``img_align_celeba/000001.jpg ...``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``;
* the official Google Drive tree: ``Img/img_align_celeba/``, ``Anno/list_attr_celeba.txt``,
  ``Eval/list_eval_partition.txt`` (any mix of the flat and subfolder places is accepted);
* the Kaggle copy: ``img_align_celeba/img_align_celeba/``, ``list_attr_celeba.csv``,
  ``list_eval_partition.csv``.

How decoding failures are handled: :func:`make_image_dataset` decodes inside ``Dataset.map`` and drops
every element whose file is missing, truncated or not an image (``ignore_errors``), so it yields only the
readable images. :func:`materialize` reads a whole split once into uint8 arrays and reports how many of
the ``expected`` inputs were skipped: that count is the one place skipped files are counted.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from aign_tf.data.crops import ALIGNED_HEIGHT_PX, ALIGNED_WIDTH_PX, CELEBA_CROP, check_crop, crop_and_resize

# The crop lives in crops.py, shared with --mode=predict; its names stay importable from here.
__all__ = ["ALIGNED_HEIGHT_PX", "ALIGNED_WIDTH_PX", "CELEBA_ATTRIBUTES", "CELEBA_CROP", "SPLITS", "celeba_split",
           "check_identities_disjoint", "crop_and_resize", "identities_of", "make_image_dataset", "materialize",
           "parse_identities", "read_attributes", "read_identities", "read_partition", "tfds_split"]

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
SPLITS = {"train": 0, "valid": 1, "test": 2}

_README = "see datasets/celeba/README.md"
_ATTR_CANDIDATES = ("list_attr_celeba.txt", os.path.join("Anno", "list_attr_celeba.txt"),
                    "list_attr_celeba.csv")
_PARTITION_CANDIDATES = ("list_eval_partition.txt", os.path.join("Eval", "list_eval_partition.txt"),
                         "list_eval_partition.csv")
_IDENTITY_CANDIDATES = ("identity_CelebA.txt", os.path.join("Anno", "identity_CelebA.txt"))
_IMAGE_DIR_CANDIDATES = (os.path.join("img_align_celeba", "img_align_celeba"), "img_align_celeba",
                         os.path.join("Img", "img_align_celeba"))


# --- annotation files ---------------------------------------------------------------------------------
def _read_lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CelebA annotation file not found: {path} ({_README})")
    with open(path, encoding="utf-8-sig") as f:
        return [line for line in (raw.strip() for raw in f) if line]


def _to_binary(values: np.ndarray, path: str, filenames: list[str]) -> np.ndarray:
    """int [N, A] in {-1, 1} -> uint8 [N, A] in {0, 1}; any other value -> ValueError naming the row."""
    bad = np.argwhere((values != 1) & (values != -1))
    if len(bad):
        row, col = bad[0]
        raise ValueError(f"{path}: attribute values must be -1 or 1, got {values[row, col]} for "
                         f"{filenames[row]} (column {col + 1})")
    return (values == 1).astype(np.uint8)


def read_attributes(path: str) -> tuple[list[str], tuple[str, ...], np.ndarray]:
    """Reads list_attr_celeba.txt (or the Kaggle list_attr_celeba.csv).

    The .txt format: line 1 = number of images, line 2 = the attribute names separated by spaces (with a
    trailing space), then one row per image, ``000001.jpg -1  1  1 -1 ...``: values in {-1, 1}
    right-aligned, so separated by one or two spaces. The .csv has a header ``image_id,<names>`` and rows
    ``000001.jpg,-1,1,...``. Returns (filenames [N], attribute names (A,), labels uint8 [N, A] with -1
    mapped to 0). A malformed file -> ValueError naming the path and the offending line.
    """
    lines = _read_lines(path)
    if path.endswith(".csv"):
        lines = [line.replace(",", " ") for line in lines]
        names, first_line, declared = tuple(lines[0].split()[1:]) if lines else (), 2, None
    else:
        if len(lines) < 2 or not lines[0].isdigit():
            raise ValueError(f"{path}: expected line 1 to be the number of images and line 2 the attribute "
                             f"names, got {lines[:1]!r}")
        names, first_line, declared = tuple(lines[1].split()), 3, int(lines[0])
    if not names:
        raise ValueError(f"{path}: no attribute names in the header")
    body = [line.split(None, 1) for line in lines[first_line - 1:]]
    if declared is not None and declared != len(body):
        raise ValueError(f"{path}: line 1 declares {declared} images but {len(body)} are listed "
                         "(incomplete download?)")
    values = _parse_values(body, len(names), path, first_line)
    filenames = [row[0] for row in body]
    return filenames, names, _to_binary(values, path, filenames)


def _parse_values(body: list[list[str]], n_values: int, path: str, first_line: int) -> np.ndarray:
    """[[filename, "v1 v2 ..."]] -> int64 [N, n_values]. Fast path parses all rows in one call; on a
    mismatch the rows are checked one by one to name the offending line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(" ".join(row[-1] for row in body), dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        flat = np.zeros(0, np.int64)
    if all(len(row) == 2 for row in body) and flat.size == len(body) * n_values:
        return flat.reshape(len(body), n_values)
    for k, row in enumerate(body):
        fields = row[1].split() if len(row) == 2 else []
        if len(fields) != n_values or not all(f.lstrip("-").isdigit() for f in fields):
            raise ValueError(f"{path} line {first_line + k}: expected a filename and {n_values} values "
                             f"-1 or 1, got {' '.join(row)!r}")
    raise ValueError(f"{path}: could not parse the attribute values")


def read_partition(path: str) -> dict[str, int]:
    """Reads list_eval_partition.txt (``000001.jpg 0``) or the Kaggle .csv (header ``image_id,partition``):
    filename -> 0 (train), 1 (valid) or 2 (test). Other values -> ValueError naming the line."""
    lines = _read_lines(path)
    rows = list(csv.reader(lines))[1:] if path.endswith(".csv") else [line.split() for line in lines]
    partition = {}
    for k, row in enumerate(rows):
        if len(row) != 2 or row[1].strip() not in ("0", "1", "2"):
            raise ValueError(f"{path}: expected rows 'FILENAME 0|1|2' (0=train, 1=valid, 2=test), got "
                             f"{' '.join(row)!r} (row {k + 1})")
        partition[row[0].strip()] = int(row[1])
    return partition


def parse_identities(lines: Sequence[str], source: str) -> dict[str, str]:
    """Rows of identity_CelebA.txt (``000001.jpg 2880``: file, identity number) -> {file: identity}.
    A row that is not a file and a whole number -> ValueError naming ``source`` and the row."""
    identities = {}
    for k, line in enumerate(lines):
        row = line.split()
        if not row:
            continue
        if len(row) != 2 or not row[1].isdigit():
            raise ValueError(f"{source}: expected rows 'FILENAME IDENTITY' (e.g. '000001.jpg 2880'), got "
                             f"{line.strip()!r} (line {k + 1})")
        identities[row[0]] = row[1]
    return identities


def read_identities(path: str) -> dict[str, str]:
    """Reads identity_CelebA.txt: {file: identity}; see :func:`parse_identities`."""
    return parse_identities(_read_lines(path), path)


def identities_of(identity_path: str, paths: Sequence[str]) -> np.ndarray:
    """The identity number of each image: int64 [N] for ``paths`` [N] (matched by file name) from
    identity_CelebA.txt at ``identity_path``. An image the file does not list -> ValueError naming it (every image
    of a folder with an identity file needs one: the identity bootstrap resamples people, not images)."""
    identities = read_identities(identity_path)
    names = [os.path.basename(p) for p in paths]
    unlisted = [n for n in names if n not in identities]
    if unlisted:
        raise ValueError(f"{identity_path} lists no identity for {len(unlisted)} of {len(names)} images, e.g. "
                         f"{unlisted[0]}; expected one row 'FILENAME IDENTITY' per image")
    return np.array([int(identities[n]) for n in names], np.int64)


def check_identities_disjoint(data_dir: str, splits: Sequence[str] = ("train", "test")) -> str | None:
    """If ``data_dir`` holds identity_CelebA.txt (flat or under Anno/), checks that no identity has images
    in two of ``splits`` according to the partition file; files without a listed identity are not checked.
    Returns the identity file's path, or None if there is none (nothing to check). An identity in two
    splits -> ValueError naming the identity, its files per split and both files. The official partition
    is identity-disjoint; this guards custom partitions."""
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    try:
        identity_path = _find(data_dir, _IDENTITY_CANDIDATES, "identity file")
    except FileNotFoundError:
        return None
    partition_path = _find(data_dir, _PARTITION_CANDIDATES, "partition file")
    identities = read_identities(identity_path)
    partition = read_partition(partition_path)
    codes = {SPLITS[s]: s for s in splits}
    first_split: dict[str, int] = {}
    for name, code in partition.items():
        identity = identities.get(name)
        if code not in codes or identity is None:
            continue
        if first_split.setdefault(identity, code) != code:
            other = first_split[identity]
            files = {c: sorted(f for f, p in partition.items() if p == c and identities.get(f) == identity)
                     for c in (other, code)}
            where = "; ".join(f"{codes[c]}: {', '.join(files[c][:5])}{' ...' if len(files[c]) > 5 else ''}"
                              for c in (other, code))
            raise ValueError(f"identity {identity} of {identity_path} has images in both the {codes[other]} and "
                             f"the {codes[code]} split of {partition_path} ({where}); expected every identity "
                             "in one split only, so that test faces are of people not trained on")
    return identity_path


def _find(data_dir: str, candidates: Sequence[str], what: str, is_dir: bool = False) -> str:
    check = os.path.isdir if is_dir else os.path.isfile
    for relative in candidates:
        path = os.path.join(data_dir, relative)
        if check(path):
            return path
    expected = " or ".join(os.path.join(data_dir, c) for c in candidates)
    raise FileNotFoundError(f"CelebA {what} not found: expected {expected} ({_README})")


def celeba_split(data_dir: str, split: str) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """One CelebA split from the published layout.

    split: 'train', 'valid' or 'test' (list_eval_partition's 0, 1, 2).
    Returns (absolute image paths [N], labels uint8 {0, 1} [N, A], attribute names (A,)), in the order of
    the attribute file. Missing attribute / partition file or image directory -> FileNotFoundError naming
    the expected path(s). A listed image that does not exist stays in the list and is skipped (and
    counted) by :func:`make_image_dataset` / :func:`materialize` like any unreadable file; a warning
    gives the number. If none of the split's images exist -> FileNotFoundError naming the directory.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown CelebA split {split!r}; expected one of {', '.join(SPLITS)}")
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    attr_path = _find(data_dir, _ATTR_CANDIDATES, "attribute file")
    partition_path = _find(data_dir, _PARTITION_CANDIDATES, "partition file")
    image_dir = _find(data_dir, _IMAGE_DIR_CANDIDATES, "image directory", is_dir=True)
    filenames, names, labels = read_attributes(attr_path)
    partition = read_partition(partition_path)
    rows = [i for i, name in enumerate(filenames) if partition.get(name) == SPLITS[split]]
    if not rows:
        raise ValueError(f"{partition_path} assigns none of the {len(filenames)} images of {attr_path} to "
                         f"split {split!r} ({SPLITS[split]})")
    present = set(os.listdir(image_dir))
    missing = sum(filenames[i] not in present for i in rows)
    if missing == len(rows):
        example = os.path.join(image_dir, filenames[rows[0]])
        raise FileNotFoundError(f"none of the {len(rows)} {split} images listed in {attr_path} is in "
                                f"{image_dir} (e.g. {example}); {_README}")
    if missing:
        logging.warning("%d of %d %s images listed in %s are missing from %s; they will be skipped",
                        missing, len(rows), split, attr_path, image_dir)
    paths = [os.path.join(image_dir, filenames[i]) for i in rows]
    return paths, labels[rows], names


# --- decoding -----------------------------------------------------------------------------------------
def make_image_dataset(paths: Sequence[str], labels: np.ndarray, image_size: int = 64,
                       crop: str | Sequence[int] = CELEBA_CROP,
                       num_parallel_calls: int = tf.data.AUTOTUNE, keys: np.ndarray | None = None) -> tf.data.Dataset:
    """Decodes image files in parallel, in input order.

    paths [N] image files (JPEG, PNG, ...); labels [N, A] uint8; crop: the part of each image kept
    (:func:`aign_tf.data.crops.crop_and_resize`, the one ``--mode=predict`` applies too); keys: optional int64
    [N] carried with each image (e.g. its identity), so they stay aligned when unreadable files are dropped.
    Yields (image float32 [S, S, 3] in [0, 1], labels uint8 [A]), with keys (image, labels, key int64 []), for
    every readable image; missing, truncated and non-image files are dropped (``ignore_errors``), never raised.
    Pass the dataset to :func:`materialize` with ``expected=len(paths)`` to learn how many were dropped.
    """
    labels = np.asarray(labels, np.uint8)
    if labels.ndim != 2 or len(labels) != len(paths):
        raise ValueError(f"labels must be [N, A] with N = len(paths) = {len(paths)}, got {labels.shape}")
    if keys is not None and np.shape(keys) != (len(paths),):
        raise ValueError(f"keys must be [N] with N = len(paths) = {len(paths)}, got {np.shape(keys)}")
    if int(image_size) < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    crop = check_crop(crop)

    def load(path, label, *key):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return (crop_and_resize(image, int(image_size), crop), label, *key)

    columns = (tf.constant(list(paths), tf.string), labels)
    if keys is not None:
        columns += (np.asarray(keys, np.int64),)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    return ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True).ignore_errors()


def materialize(dataset: tf.data.Dataset, expected: int | None = None,
                batch_size: int = 256) -> tuple:
    """Reads a whole (image, labels) or (image, labels, key) dataset once into memory.

    dataset: yields (image float32 [S, S, 3] in [0, 1], labels [A]), or (image, labels, key int64 []), e.g. from
    :func:`make_image_dataset` (with ``keys``).
    expected: how many inputs the dataset was built from (None if unknown, e.g. TFDS).
    Returns (images uint8 [M, S, S, 3], labels uint8 [M, A], n_skipped = expected - M, or 0 if expected is
    None), and for a dataset with keys a fourth element, the keys int64 [M] of the images read. If every
    expected input was skipped -> ValueError (nothing readable to train on).
    """
    image_spec, label_spec, *key_spec = dataset.element_spec
    size = tuple(image_spec.shape)
    to_uint8 = dataset.map(lambda x, y, *k: (tf.cast(tf.round(x * 255.0), tf.uint8), tf.cast(y, tf.uint8), *k),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if expected is not None and expected < 0:
        raise ValueError(f"expected must be a number of inputs >= 0 or None, got {expected}")
    # With a known count, fill one preallocated buffer: no second full-size copy from concatenation.
    images = np.empty((expected if expected is not None else 0, *size), np.uint8)
    image_batches, label_batches, key_batches, n = [], [], [], 0
    for x, y, *k in to_uint8.batch(batch_size).prefetch(2).as_numpy_iterator():
        if expected is not None and n + len(x) > expected:
            raise ValueError(f"expected={expected} but the dataset yielded more images")
        if expected is not None:
            images[n:n + len(x)] = x
        else:
            image_batches.append(x)
        label_batches.append(y)
        key_batches.extend(k)
        n += len(x)
    if expected is None:
        images = np.concatenate(image_batches) if image_batches else images
    images = images[:n]
    labels = np.concatenate(label_batches) if label_batches else np.zeros((0, *label_spec.shape), np.uint8)
    keys = (np.concatenate(key_batches).astype(np.int64) if key_batches else np.zeros(0, np.int64),) if key_spec else ()
    if expected is None:
        return images, labels, 0, *keys
    skipped = expected - len(images)
    if expected > 0 and len(images) == 0:
        raise ValueError(f"none of the {expected} images could be read (all missing, truncated or not "
                         "images)")
    if skipped:
        logging.warning("skipped %d of %d images (missing, truncated or not an image)", skipped, expected)
    return images, labels, skipped, *keys


# --- TFDS ---------------------------------------------------------------------------------------------
_TFDS_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


def tfds_split(split: str, image_size: int, data_dir: str | None = None,
               crop: str | Sequence[int] = CELEBA_CROP) -> tuple[tf.data.Dataset, tuple[str, ...]]:
    """TFDS ``celeb_a`` split ('train', 'valid', 'test'), only if already prepared locally (never
    downloads). Returns (dataset of (image float32 [S, S, 3] in [0, 1], labels uint8 [40]), the 40
    attribute names in CelebA file order). Not installed -> ValueError; not prepared under data_dir
    (default ~/tensorflow_datasets) -> FileNotFoundError saying how to prepare it or use --data_dir."""
    if split not in _TFDS_SPLITS:
        raise ValueError(f"unknown CelebA split {split!r}; expected one of {', '.join(_TFDS_SPLITS)}")
    crop = check_crop(crop)
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ValueError("--data_dir=tfds needs the tensorflow-datasets package (pip install "
                         "tensorflow-datasets), or pass --data_dir=PATH to a CelebA folder "
                         f"({_README})") from e
    builder = tfds.builder("celeb_a", data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS celeb_a is not prepared in {builder.data_dir}; prepare it once with "
            f"`tfds build celeb_a{' --data_dir=' + data_dir if data_dir else ''}` (needs the download) "
            f"or pass --data_dir=PATH to a CelebA folder ({_README})")
    ds = builder.as_dataset(split=_TFDS_SPLITS[split], shuffle_files=False)

    def convert(example):
        attributes = example["attributes"]
        labels = tf.stack([tf.cast(attributes[name], tf.uint8) for name in CELEBA_ATTRIBUTES])
        return crop_and_resize(example["image"], int(image_size), crop), labels

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return ds, CELEBA_ATTRIBUTES
