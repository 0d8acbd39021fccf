"""Lays out a real CelebA subset, read from two git repositories, in the loader's flat layout, split by identity.

    python scripts/layout_celeba_subset.py --celeba_git DIR --attr_git DIR [--out datasets/celeba_subset]

--celeba_git: a git dir (or work tree) of github.com/Nikhil4902/CelebA_Dataset: 6,000 img_align_celeba JPEGs
  (178x218, CelebA's file names, 200 identities x 30) under ``Datasets/{train,validation,test}_dataset/
  celeb_<k>/NNNNNN.jpg`` and CelebA's ``identity_CelebA.txt`` at the root. Its own folders put every identity
  in all three of them, so they are not used as the split.
--attr_git: a git dir of github.com/awol-rwal/Effects-of-Face-Alignment-on-Facial-Attribute-Classification,
  whose ``list_attr_celeba.zip`` holds the complete published list_attr_celeba.txt (its md5 is checked).

Writes under --out: ``img_align_celeba/NNNNNN.jpg`` (the JPEG bytes unchanged), ``list_attr_celeba.txt`` (the
published format, the subset's rows only, in file order), ``identity_CelebA.txt`` (the subset's rows) and
``list_eval_partition.txt``: a split BY IDENTITY (aign_tf.data.identity_split.split_by_identity), stratified
by sex, deterministic for --seed. Prints identities / images / men per split. CelebA is licensed for
non-commercial research only; the output is git-ignored, never commit it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import subprocess
import zipfile

from aign_tf import formats
from aign_tf.data import celeba, identity_split

CELEBA_COMMIT = "a578f90f4ccc360198eca936376a9c1691ed09be"
ATTR_COMMIT = "2adb6a88b482850b13da1306e4b7d9da74de4813"
ATTR_MD5 = "75e246fa4810816ffd6ee81facbd244c"  # the published list_attr_celeba.txt, 202,599 rows
_IMAGE_PATH = re.compile(r"^Datasets/[^/]+/celeb_[^/]+/(\d{6}\.jpg)$")
SPLIT_NAMES = {identity_split.TRAIN: "train", identity_split.VALID: "valid", identity_split.TEST: "test"}


def _git(git_dir: str, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["git", "--git-dir", git_dir, *args], input=stdin, capture_output=True)
    if result.returncode:
        raise SystemExit(f"git --git-dir {git_dir} {' '.join(args)} failed: "
                         f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _git_dir(path: str) -> str:
    """A bare git dir, or a work tree's .git: the directory to pass as --git-dir."""
    for candidate in (path, os.path.join(path, ".git")):
        if os.path.isfile(os.path.join(candidate, "HEAD")) and os.path.isdir(os.path.join(candidate, "objects")):
            return candidate
    raise SystemExit(f"{path} is not a git directory (expected HEAD and objects/ in it or in {path}/.git)")


def list_images(git_dir: str, commit: str) -> dict[str, str]:
    """file name -> blob id of every ``Datasets/*/celeb_*/NNNNNN.jpg`` at ``commit``."""
    blobs: dict[str, str] = {}
    for line in _git(git_dir, "ls-tree", "-r", commit, "--", "Datasets").decode().splitlines():
        meta, path = line.split("\t", 1)
        match = _IMAGE_PATH.match(path)
        if not match:
            continue
        blob = meta.split()[2]
        name = match.group(1)
        if blobs.setdefault(name, blob) != blob:
            raise SystemExit(f"{git_dir} {commit}: {name} appears twice with different contents")
    if not blobs:
        raise SystemExit(f"{git_dir} {commit}: no images at Datasets/<split>/celeb_<k>/NNNNNN.jpg")
    return blobs


def read_attribute_zip(git_dir: str, commit: str, expected_md5: str) -> bytes:
    """The bytes of list_attr_celeba.txt inside ``commit:list_attr_celeba.zip``, after checking their md5."""
    data = _git(git_dir, "show", f"{commit}:list_attr_celeba.zip")
    where = f"{git_dir} {commit}:list_attr_celeba.zip"
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise SystemExit(f"{where} is not a zip archive ({e})") from e
    members = [m for m in archive.namelist() if os.path.basename(m) == "list_attr_celeba.txt"]
    if len(members) != 1:
        raise SystemExit(f"{where}: expected one list_attr_celeba.txt in it, found {archive.namelist()}")
    text = archive.read(members[0])
    digest = hashlib.md5(text).hexdigest()
    if digest != expected_md5:
        raise SystemExit(f"{where}: {members[0]} has md5 {digest}, expected {expected_md5} (the published "
                         "list_attr_celeba.txt); a different or damaged file, not used")
    return text


def _lines(text: bytes) -> tuple[list[str], str]:
    """-> (non-empty lines without their ending, the file's line ending)."""
    decoded = text.decode("utf-8-sig")
    newline = "\r\n" if "\r\n" in decoded else "\n"
    return [line for line in decoded.splitlines() if line.strip()], newline


def subset_attributes(text: bytes, files: set[str], source: str) -> tuple[str, dict[str, bool], list[str]]:
    """list_attr_celeba.txt bytes -> (the same file with only ``files``' rows, in file order, and the count
    line matching; file -> Male label; the kept files in order). Files not listed -> SystemExit naming one."""
    lines, newline = _lines(text)
    if len(lines) < 2 or not lines[0].strip().isdigit() or "Male" not in lines[1].split():
        raise SystemExit(f"{source}: expected the count, then the attribute names (with Male), then rows")
    male_column = lines[1].split().index("Male") + 1
    kept, male = [], {}
    for line in lines[2:]:
        fields = line.split()
        if fields[0] in files:
            kept.append(line)
            male[fields[0]] = fields[male_column] == "1"
    missing = sorted(files - set(male))
    if missing:
        raise SystemExit(f"{source}: {len(missing)} subset images have no attribute row (e.g. {missing[0]})")
    body = [str(len(kept)), lines[1], *kept]
    return newline.join(body) + newline, male, [line.split()[0] for line in kept]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba_git", required=True, help="git dir of Nikhil4902/CelebA_Dataset")
    parser.add_argument("--celeba_commit", default=CELEBA_COMMIT)
    parser.add_argument("--attr_git", required=True,
                        help="git dir of awol-rwal/Effects-of-Face-Alignment-on-Facial-Attribute-Classification")
    parser.add_argument("--attr_commit", default=ATTR_COMMIT)
    parser.add_argument("--attr_md5", default=ATTR_MD5, help="md5 list_attr_celeba.txt must have")
    parser.add_argument("--out", default=os.path.join("datasets", "celeba_subset"))
    parser.add_argument("--n_test", type=int, default=40, help="test identities")
    parser.add_argument("--n_valid", type=int, default=40, help="validation identities")
    parser.add_argument("--min_male_fraction", type=float, default=1 / 3,
                        help="least fraction of men among the test and among the validation identities")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    celeba_git, attr_git = _git_dir(args.celeba_git), _git_dir(args.attr_git)
    blobs = list_images(celeba_git, args.celeba_commit)
    identity_source = f"{celeba_git} {args.celeba_commit}:identity_CelebA.txt"
    identity_text, identity_newline = _lines(_git(celeba_git, "show", f"{args.celeba_commit}:identity_CelebA.txt"))
    all_identities = celeba.parse_identities(identity_text, identity_source)
    missing = sorted(set(blobs) - set(all_identities))
    if missing:
        raise SystemExit(f"{identity_source}: {len(missing)} subset images have no identity (e.g. {missing[0]})")
    attr_source = f"{attr_git} {args.attr_commit}:list_attr_celeba.zip"
    attr_text, male, order = subset_attributes(read_attribute_zip(attr_git, args.attr_commit, args.attr_md5),
                                               set(blobs), attr_source)
    identities = {name: all_identities[name] for name in order}
    try:
        split = identity_split.split_by_identity(identities, male, args.n_test, args.n_valid,
                                                 args.min_male_fraction, args.seed)
    except ValueError as e:
        raise SystemExit(f"cannot split the {len(identities)} images of {celeba_git}: {e}") from e

    image_dir = os.path.join(args.out, "img_align_celeba")
    os.makedirs(image_dir, exist_ok=True)
    batch = _git(celeba_git, "cat-file", "--batch", stdin="".join(f"{blobs[n]}\n" for n in order).encode())
    offset = 0
    for name in order:
        header_end = batch.index(b"\n", offset)
        blob, kind, size = batch[offset:header_end].decode().split()
        if blob != blobs[name] or kind != "blob":
            raise SystemExit(f"{celeba_git}: unexpected object {blob} {kind} for {name}")
        data = batch[header_end + 1:header_end + 1 + int(size)]
        offset = header_end + 1 + int(size) + 1
        formats.atomic_write(os.path.join(image_dir, name), lambda f, data=data: f.write(data))

    def write_text(filename: str, text: str) -> None:
        formats.atomic_write(os.path.join(args.out, filename), lambda f: f.write(text.encode()))

    write_text("list_attr_celeba.txt", attr_text)
    write_text("identity_CelebA.txt", "".join(f"{n} {identities[n]}{identity_newline}" for n in order))
    newline = attr_text[-2:] if attr_text.endswith("\r\n") else "\n"
    write_text("list_eval_partition.txt", "".join(f"{n} {split[n]}{newline}" for n in order))

    summary = identity_split.summarize(identities, male, split)
    print(f"wrote {len(order)} images of {len(set(identities.values()))} identities to {args.out} "
          f"(seed {args.seed}); split by identity:")
    for code, name in SPLIT_NAMES.items():
        s = summary[code]
        print(f"  {name:5s}  {s['identities']:4d} identities ({s['male_identities']} male)  {s['images']:5d} images "
              f"({s['male_images']} labelled Male)")
    return summary


if __name__ == "__main__":
    main()
