"""The identity split (aign_tf.data.identity_split) and scripts/layout_celeba_subset.py on tiny fake git repos."""

import hashlib
import importlib.util
import io
import os
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aign_tf.data import celeba
from aign_tf.data.identity_split import TEST, TRAIN, VALID, identity_sex, split_by_identity, summarize

ROOT = Path(__file__).resolve().parents[1]


def _people(n_identities=60, n_male=20, per_identity=3):
    """file -> identity, file -> Male: men have 2 of 3 images labelled Male, women 1 of 3 (the majority decides)."""
    identities, male = {}, {}
    for i in range(n_identities):
        for k in range(per_identity):
            name = f"{i * per_identity + k + 1:06d}.jpg"
            identities[name] = str(1000 + i)
            male[name] = (k < 2) if i < n_male else (k == 0)
    return identities, male


def _split_identities(identities, split):
    by_split = {TRAIN: set(), VALID: set(), TEST: set()}
    for name, code in split.items():
        by_split[code].add(identities[name])
    return by_split


def test_identity_sex_is_the_strict_majority():
    identities = {"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3"}
    male = {"a": True, "b": True, "c": False, "d": True, "e": False, "f": False}
    assert identity_sex(identities, male) == {"1": True, "2": False, "3": False}
    with pytest.raises(ValueError, match=r"g \(identity 4\) has no Male label"):
        identity_sex({**identities, "g": "4"}, male)


def test_split_is_identity_disjoint_with_the_counts_and_enough_men():
    identities, male = _people()
    split = split_by_identity(identities, male, n_test=12, n_valid=9, min_male_fraction=0.4, seed=3)
    assert set(split) == set(identities) and set(split.values()) == {TRAIN, VALID, TEST}
    by_split = _split_identities(identities, split)
    assert not (by_split[TRAIN] & by_split[VALID]) and not (by_split[TRAIN] & by_split[TEST])
    assert not (by_split[VALID] & by_split[TEST])
    assert (len(by_split[TEST]), len(by_split[VALID]), len(by_split[TRAIN])) == (12, 9, 39)
    sex = identity_sex(identities, male)
    men = {code: sum(sex[i] for i in ids) for code, ids in by_split.items()}
    # overall 1/3 male, but the minimum 40 % wins in the held-out splits: ceil(4.8) = 5, ceil(3.6) = 4
    assert men == {TEST: 5, VALID: 4, TRAIN: 11}
    summary = summarize(identities, male, split)
    assert summary[TEST] == {"identities": 12, "images": 36, "male_identities": 5, "male_images": 5 * 2 + 7}


def test_split_is_stratified_when_the_minimum_is_lower():
    identities, male = _people(n_identities=60, n_male=30)
    split = split_by_identity(identities, male, n_test=20, n_valid=10, min_male_fraction=0.25, seed=0)
    sex = identity_sex(identities, male)
    by_split = _split_identities(identities, split)
    assert [sum(sex[i] for i in by_split[code]) for code in (TEST, VALID, TRAIN)] == [10, 5, 15]


def test_split_is_deterministic_per_seed_and_differs_across_seeds():
    identities, male = _people()
    first = split_by_identity(identities, male, 12, 9, 1 / 3, seed=7)
    assert split_by_identity(dict(reversed(list(identities.items()))), male, 12, 9, 1 / 3, seed=7) == first
    assert split_by_identity(identities, male, 12, 9, 1 / 3, seed=8) != first


def test_too_few_men_is_a_clear_error():
    identities, male = _people(n_identities=40, n_male=5)
    with pytest.raises(ValueError, match=r"too few identities to split: 5 male and 35 female.*need at least 7 male"):
        split_by_identity(identities, male, n_test=10, n_valid=6, min_male_fraction=1 / 3, seed=0)
    with pytest.raises(ValueError, match="min_male_fraction must be in"):
        split_by_identity(identities, male, 10, 6, 1.5, seed=0)


# --- scripts/layout_celeba_subset.py on fake repositories ---------------------------------------------------
def _load_script():
    spec = importlib.util.spec_from_file_location("layout_celeba_subset", ROOT / "scripts" / "layout_celeba_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commit_all(repo: Path) -> str:
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                               "-c", "commit.gpgsign=false", *args], check=True, capture_output=True).stdout

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "fixture")
    return git("rev-parse", "HEAD").decode().strip()


def _tiny_jpeg(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((218, 178, 3), value, np.uint8)).save(out, format="JPEG", quality=50)
    return out.getvalue()


@pytest.fixture(scope="module")
def fake_repos(tmp_path_factory):
    """6 identities x 2 images (identities 0-3 male, 4-5 female), spread over the three folders as in the real
    repository (each identity in several of them); an identity file and an attribute file with extra rows."""
    root = tmp_path_factory.mktemp("fake_git")
    images_repo, attr_repo = root / "images", root / "attrs"
    images, identity_rows, attr_rows = {}, [], []
    male_column = celeba.CELEBA_ATTRIBUTES.index("Male")
    for n in range(1, 15):  # 000001 ... 000014; 13 and 14 are listed but not in the subset
        name, identity = f"{n:06d}.jpg", (n - 1) // 2
        identity_rows.append(f"{name} {700 + identity}")
        values = [-1] * 40
        values[male_column] = 1 if identity < 4 else -1
        attr_rows.append(name + "".join(f" {v:2d}" for v in values))
        if n <= 12:
            folder = ("train_dataset", "validation_dataset", "test_dataset")[n % 3]
            path = images_repo / "Datasets" / folder / f"celeb_{identity}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            images[name] = _tiny_jpeg(20 * n)
            path.write_bytes(images[name])
    (images_repo / "Datasets" / "README.txt").write_text("not an image\n")
    (images_repo / "identity_CelebA.txt").write_text("\n".join(identity_rows) + "\n")
    attr_text = ("14\r\n" + " ".join(celeba.CELEBA_ATTRIBUTES) + " \r\n" + "\r\n".join(attr_rows) + "\r\n").encode()
    attr_repo.mkdir()
    with zipfile.ZipFile(attr_repo / "list_attr_celeba.zip", "w") as archive:
        archive.writestr("list_attr_celeba.txt", attr_text)
    return {"images_repo": str(images_repo), "images_commit": _commit_all(images_repo),
            "attr_repo": str(attr_repo), "attr_commit": _commit_all(attr_repo),
            "md5": hashlib.md5(attr_text).hexdigest(), "images": images, "root": root}


def _argv(fake, out, md5=None):
    return ["--celeba_git", fake["images_repo"], "--celeba_commit", fake["images_commit"],
            "--attr_git", fake["attr_repo"], "--attr_commit", fake["attr_commit"], "--attr_md5", md5 or fake["md5"],
            "--out", str(out), "--n_test", "2", "--n_valid", "1", "--min_male_fraction", "0.5", "--seed", "1"]


def test_script_lays_out_the_subset_split_by_identity(fake_repos, capsys):
    script = _load_script()
    out = fake_repos["root"] / "out"
    summary = script.main(_argv(fake_repos, out))
    printed = capsys.readouterr().out
    assert "wrote 12 images of 6 identities" in printed
    assert re.search(r"test\s+2 identities \(1 male\)\s+4 images \(2 labelled Male\)", printed)
    assert sorted(os.listdir(out / "img_align_celeba")) == sorted(fake_repos["images"])
    for name, data in fake_repos["images"].items():
        assert (out / "img_align_celeba" / name).read_bytes() == data  # the JPEG bytes unchanged
    text = (out / "list_attr_celeba.txt").read_bytes()
    assert text.startswith(b"12\r\n") and text.count(b"\r\n") == 14
    filenames, names, labels = celeba.read_attributes(str(out / "list_attr_celeba.txt"))
    assert filenames == sorted(fake_repos["images"]) and names == celeba.CELEBA_ATTRIBUTES
    assert labels[:, names.index("Male")].tolist() == [1] * 8 + [0] * 4
    assert celeba.read_identities(str(out / "identity_CelebA.txt")) == {
        f"{n:06d}.jpg": str(700 + (n - 1) // 2) for n in range(1, 13)}
    partition = celeba.read_partition(str(out / "list_eval_partition.txt"))
    assert list(partition) == filenames
    assert celeba.check_identities_disjoint(str(out), ("train", "valid", "test")) == str(out / "identity_CelebA.txt")
    assert summary[TEST]["identities"] == 2 and summary[VALID]["identities"] == 1 and summary[TRAIN]["images"] == 6
    assert summary[TEST]["male_identities"] == 1 and summary[VALID]["male_identities"] == 1


def test_script_refuses_an_attribute_file_with_another_md5(fake_repos):
    script = _load_script()
    with pytest.raises(SystemExit) as error:
        script.main(_argv(fake_repos, fake_repos["root"] / "bad", md5="0" * 32))
    message = str(error.value)
    assert fake_repos["attr_repo"] in message and f"md5 {fake_repos['md5']}, expected {'0' * 32}" in message
    assert not (fake_repos["root"] / "bad").exists()
