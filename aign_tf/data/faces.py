"""Face data for the face tasks: one place that turns a source (built-in, CelebA folder, TFDS) into
in-memory uint8 arrays split into train / test, and the step-indexed tf.data pipeline over them.

Sources (``data_dir``):
  ``None`` or ``"builtin"``: the procedural faces of :mod:`aign_tf.data.synthetic_faces` (no download).
  ``"tfds"`` or ``"tfds:<dir>"``: TFDS ``celeb_a``, only if already prepared locally.
  any other path: CelebA in its published layout (see datasets/celeba/README.md).
Decoded splits are cached as ``.npz`` under ``cache_dir`` so a re-run does not decode again.

Identities travel with the images (``FaceArrays.identities``): from identity_CelebA.txt when a CelebA folder has
one, one per face for the built-in faces (every built-in face is a distinct person), None otherwise (TFDS, a
folder without the file). The identity bootstrap resamples them (``metrics.bootstrap_mean_interval(groups=)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import tensorflow as tf

from aign_tf import formats
from aign_tf.data import synthetic_faces
from aign_tf.data.crops import CELEBA_CROP
from aign_tf.data.stream import step_indexed

BUILTIN = "builtin"


@dataclasses.dataclass(frozen=True)
class FaceArrays:
    """images uint8 [N, S, S, 3]; labels uint8 {0, 1} [N, A]; attribute_names (A,); identities int64 [N], the
    person in each image (None: unknown). Identities of a length other than N -> ValueError."""

    images: np.ndarray
    labels: np.ndarray
    attribute_names: tuple[str, ...]
    identities: np.ndarray | None = None

    def __post_init__(self):
        if self.identities is not None:
            identities = np.asarray(self.identities)
            if identities.ndim != 1 or len(identities) != len(self.images):
                raise ValueError(f"identities must be an [N] array with N = {len(self.images)} images; got shape "
                                 f"{identities.shape}")
            object.__setattr__(self, "identities", identities.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: np.ndarray) -> FaceArrays:
        """The images at ``indices`` (an index array, a boolean mask or a slice), with their labels and identities."""
        identities = None if self.identities is None else self.identities[indices]
        return FaceArrays(self.images[indices], self.labels[indices], self.attribute_names, identities)


@dataclasses.dataclass(frozen=True)
class FaceSplits:
    train: FaceArrays
    test: FaceArrays
    source: str
    skipped_images: int  # corrupt / unreadable files skipped while decoding (0 for built-in data)
    valid: FaceArrays | None = None  # CelebA's partition 1, only when asked for (load_face_splits(with_valid=True))


def _cache_path(cache_dir: str, *key) -> str:
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f"faces_{digest}.npz")


def _load_celeba_like(data_dir: str, image_size: int, cache_dir: str, max_images: int | None,
                      with_valid: bool = False) -> FaceSplits:
    from aign_tf.data import celeba

    splits = ("train", "valid", "test") if with_valid else ("train", "test")
    identity_path = None
    if not data_dir.startswith("tfds"):
        identity_path = celeba.check_identities_disjoint(data_dir, splits)  # None without identity_CelebA.txt
    # The crop is part of the key: a changed crops.CELEBA_CROP never reuses arrays decoded with the old one. The
    # key names the identity file, so a cache decoded before identities were stored (or before the file was
    # there) is not reused without them.
    key = (("celeba", os.path.abspath(data_dir), image_size, max_images, ("crop", CELEBA_CROP))
           + (("valid",) if with_valid else ()) + ("identities", identity_path))
    path = _cache_path(cache_dir, *key)
    if os.path.exists(path):
        with np.load(path) as z:
            names = tuple(str(n) for n in z["names"])
            parts = {split: FaceArrays(z[f"{split}_x"], z[f"{split}_y"], names,
                                       z[f"{split}_ids"] if f"{split}_ids" in z.files else None) for split in splits}
            skipped = int(z["skipped"])
        return FaceSplits(parts["train"], parts["test"], source=f"celeba:{data_dir}", skipped_images=skipped,
                          valid=parts.get("valid"))
    parts, skipped = {}, 0
    for split in splits:
        ids = None
        if data_dir.startswith("tfds"):
            tfds_dir = data_dir.split(":", 1)[1] if ":" in data_dir else None
            ds, names = celeba.tfds_split(split, image_size, data_dir=tfds_dir)
            if max_images:
                ds = ds.take(max_images)
            x, y, n_skip = celeba.materialize(ds, expected=None)
        else:
            paths, labels, names = celeba.celeba_split(data_dir, split)
            if max_images:
                paths, labels = paths[:max_images], labels[:max_images]
            if identity_path is None:
                ds = celeba.make_image_dataset(paths, labels, image_size=image_size)
                x, y, n_skip = celeba.materialize(ds, expected=len(paths))
            else:  # the identities ride with the images, so they stay aligned when unreadable files are dropped
                keys = celeba.identities_of(identity_path, paths)
                ds = celeba.make_image_dataset(paths, labels, image_size=image_size, keys=keys)
                x, y, n_skip, ids = celeba.materialize(ds, expected=len(paths))
        parts[split] = FaceArrays(x, y, tuple(names), ids)
        skipped += n_skip
    arrays = {}
    for split in splits:
        arrays[f"{split}_x"], arrays[f"{split}_y"] = parts[split].images, parts[split].labels
        if parts[split].identities is not None:
            arrays[f"{split}_ids"] = parts[split].identities
    formats.write_npz(path, **arrays, names=np.array(parts["train"].attribute_names), skipped=skipped)
    return FaceSplits(parts["train"], parts["test"], source=f"celeba:{data_dir}", skipped_images=skipped,
                      valid=parts.get("valid"))


def load_face_splits(data_dir: str | None, image_size: int, cache_dir: str, data_seed: int = 0,
                     num_train: int = 12000, num_test: int = 1000, max_images: int | None = None,
                     with_valid: bool = False) -> FaceSplits:
    """Loads (or generates) the train and test face arrays; see the module docstring for sources.

    CelebA (a folder or TFDS): train = partition 0, test = partition 2; ``with_valid=True`` also loads
    partition 1 into ``valid`` (cached separately), otherwise ``valid`` is None. A CelebA folder holding
    identity_CelebA.txt is checked first: an identity in two of the loaded partitions -> ValueError naming
    it; its identities fill ``identities`` of every split (an image it does not list -> ValueError naming it).
    Without the file (and from TFDS) ``identities`` is None. The built-in faces get one identity per face,
    distinct across train and test (``np.arange``). The built-in faces have no validation partition:
    ``with_valid=True`` with them -> ValueError.
    """
    if data_dir in (None, "", BUILTIN):
        if with_valid:
            raise ValueError("the built-in faces have no validation split (with_valid=True needs a CelebA "
                             "--data_dir, see datasets/celeba/README.md); carve one from train instead")
        x, y = synthetic_faces.load_or_generate(cache_dir, num_train + num_test, data_seed, image_size)
        names = tuple(synthetic_faces.ATTRIBUTE_NAMES)
        identities = np.arange(len(x), dtype=np.int64)  # every built-in face is a distinct person
        return FaceSplits(FaceArrays(x[:num_train], y[:num_train], names, identities[:num_train]),
                          FaceArrays(x[num_train:], y[num_train:], names, identities[num_train:]), source=BUILTIN,
                          skipped_images=0)
    if not data_dir.startswith("tfds") and not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir={data_dir!r} is not a directory; expected a CelebA folder "
                                "(see datasets/celeba/README.md), 'tfds', or 'builtin'")
    return _load_celeba_like(data_dir, image_size, cache_dir, max_images, with_valid)


def step_batches(observations: np.ndarray, prior: np.ndarray, batch_size: int, seed: int, start_step: int,
                 prepare, paired: np.ndarray | None = None, negatives: np.ndarray | None = None) -> tf.data.Dataset:
    """Step-indexed batches: batch k draws ``batch_size`` observation indices and ``batch_size`` prior
    indices (uniformly, with replacement) from stateless RNGs seeded by (seed, k), so the stream depends
    only on (seed, k) and resuming at step k reproduces it exactly.

    observations: uint8 [N, S, S, 3] images the observations are rendered from (the task never trains on
      them directly except through ``paired``).
    prior: uint8 [M, S', S', 3] the real-factor collection (unpaired with ``observations``).
    prepare: ``fn(images float32 [B, S, S, 3], step int64) -> dict`` run in the pipeline (parallel, off the
      training thread), e.g. to render the observation.
    paired: optional bool [N]: which observations carry their ground truth for the supervised term.
    negatives: optional uint8 [K, S', S', 3] images the bias excludes; batches then also hold ``"negative"``
      float32 [B, S', S', 3], drawn like the prior sample.
    Yields dicts with the keys of ``prepare`` plus ``"prior"`` float32 [B, S', S', 3] in [0, 1],
    ``"paired"`` float32 [B] and ``"step"`` int64.
    """
    if len(observations) == 0 or len(prior) == 0:
        raise ValueError(f"need a non-empty observation set and prior collection, got {len(observations)} "
                         f"observations and {len(prior)} prior images")
    obs_t = tf.constant(observations)
    prior_t = tf.constant(prior)
    paired_t = tf.constant(np.zeros(len(observations), np.float32) if paired is None else paired.astype(np.float32))
    n_obs, n_prior = len(observations), len(prior)
    if negatives is not None:
        if len(negatives) == 0:
            raise ValueError("the negative collection is empty: the bias excludes no image")
        negatives_t = tf.constant(negatives)

    def make(step):
        obs_idx = tf.random.stateless_uniform([batch_size], [seed, step], maxval=n_obs, dtype=tf.int64)
        prior_idx = tf.random.stateless_uniform([batch_size], [seed + 1, step], maxval=n_prior, dtype=tf.int64)
        images = tf.cast(tf.gather(obs_t, obs_idx), tf.float32) / 255.0
        batch = dict(prepare(images, step))
        batch["prior"] = tf.cast(tf.gather(prior_t, prior_idx), tf.float32) / 255.0
        batch["paired"] = tf.gather(paired_t, obs_idx)
        if negatives is not None:
            neg_idx = tf.random.stateless_uniform([batch_size], [seed + 4, step], maxval=len(negatives), dtype=tf.int64)
            batch["negative"] = tf.cast(tf.gather(negatives_t, neg_idx), tf.float32) / 255.0
        batch["step"] = step
        return batch

    return step_indexed(make, start_step)
