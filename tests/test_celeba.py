"""CelebA in its published layouts: annotation parsing, splits, decoding, corrupt files, clear errors."""

import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_celeba import write_celeba_fixture
from PIL import Image

from aign_tf.data import celeba

SIZE = 16


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return write_celeba_fixture(tmp_path_factory.mktemp("celeba_flat"), n_images=24, corrupt=2, seed=0)


def _rows(info, split):
    part = celeba.SPLITS[split]
    return [i for i, p in enumerate(info["partition"]) if p == part]


# --- annotation files ---------------------------------------------------------------------------------
def test_read_attributes_values_names_and_double_spaces(flat):
    text = Path(flat["attr_path"]).read_text().split("\n")
    assert text[1].endswith(" ") and "  1" in text[2]  # the quirks are really in the fixture
    filenames, names, labels = celeba.read_attributes(flat["attr_path"])
    assert names == celeba.CELEBA_ATTRIBUTES and len(names) == 40
    assert filenames == flat["filenames"]
    assert labels.dtype == np.uint8 and labels.shape == (26, 40)
    np.testing.assert_array_equal(labels, flat["labels"])


def test_read_attributes_hand_written_row(tmp_path):
    values = [1] + [-1] * 38 + [1]
    row = "000007.jpg" + "".join(f" {v:2d}" for v in values)
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("1\r\n" + " ".join(celeba.CELEBA_ATTRIBUTES) + " \r\n" + row + "\r\n")
    filenames, _, labels = celeba.read_attributes(str(path))
    assert filenames == ["000007.jpg"]
    assert labels.tolist() == [[1] + [0] * 38 + [1]]


@pytest.mark.parametrize("body,match", [
    ("2\nA B \nx.jpg -1  1\n", r"declares 2 images but 1"),
    ("1\nA B \nx.jpg -1\n", r"line 3: expected a filename and 2 values"),
    ("1\nA B \nx.jpg  1  0\n", r"must be -1 or 1, got 0 for x.jpg"),
    ("A B\nx.jpg 1 1\n", r"line 1 to be the number of images"),
])
def test_malformed_attribute_files_name_the_path(tmp_path, body, match):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(body)
    with pytest.raises(ValueError, match=match) as info:
        celeba.read_attributes(str(path))
    assert str(path) in str(info.value)


def test_read_partition(flat):
    partition = celeba.read_partition(flat["partition_path"])
    assert partition == dict(zip(flat["filenames"], flat["partition"], strict=True))
    assert set(partition.values()) == {0, 1, 2}


def test_read_partition_rejects_unknown_split_id(tmp_path):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(ValueError, match=r"0=train, 1=valid, 2=test.*000002.jpg 3"):
        celeba.read_partition(str(path))


# --- splits -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_split_selection(flat, split):
    paths, labels, names = celeba.celeba_split(flat["root"], split)
    rows = _rows(flat, split)
    assert [os.path.basename(p) for p in paths] == [flat["filenames"][i] for i in rows]
    assert all(os.path.isabs(p) and os.path.dirname(p) == flat["image_dir"] for p in paths)
    np.testing.assert_array_equal(labels, flat["labels"][rows])
    assert names == celeba.CELEBA_ATTRIBUTES


def test_unknown_split_name(flat):
    with pytest.raises(ValueError, match=r"'validation'.*train, valid, test"):
        celeba.celeba_split(flat["root"], "validation")


# --- decoding -----------------------------------------------------------------------------------------
def test_images_shapes_range_and_corrupt_files_skipped_and_counted(flat):
    paths, labels, _ = celeba.celeba_split(flat["root"], "train")
    assert {os.path.basename(p) for p in paths} >= set(flat["corrupt"])
    images, out_labels, skipped = celeba.materialize(celeba.make_image_dataset(paths, labels, SIZE),
                                                     expected=len(paths))
    assert skipped == 2
    assert images.shape == (len(flat["readable"]["train"]), SIZE, SIZE, 3) and images.dtype == np.uint8
    assert out_labels.dtype == np.uint8
    keep = [i for i, p in enumerate(paths) if os.path.basename(p) not in flat["corrupt"]]
    np.testing.assert_array_equal(out_labels, labels[keep])  # order kept, the right rows dropped
    assert images.max() > 100 and images.std() > 10  # real content, not blank


def test_float_dataset_is_in_unit_range(flat):
    paths, labels, _ = celeba.celeba_split(flat["root"], "valid")
    ds = celeba.make_image_dataset(paths, labels, image_size=SIZE)
    assert ds.element_spec[0].shape == (SIZE, SIZE, 3)
    for image, label in ds.take(2):
        assert image.dtype.name == "float32" and 0.0 <= float(image.numpy().min()) <= float(image.numpy().max()) <= 1.0
        assert label.shape == (40,) and label.dtype.name == "uint8"


@pytest.mark.parametrize("kind", [0, 1])  # 0: the truncated JPEG, 1: the text file named .jpg
def test_each_corrupt_kind_is_skipped(flat, kind):
    good = os.path.join(flat["image_dir"], flat["readable"]["test"][0])
    bad = os.path.join(flat["image_dir"], flat["corrupt"][kind])
    assert os.path.getsize(bad) > 0
    labels = np.array([[1] * 40, [0] * 40], np.uint8)
    images, out_labels, skipped = celeba.materialize(celeba.make_image_dataset([bad, good], labels, SIZE),
                                                     expected=2)
    assert skipped == 1 and images.shape == (1, SIZE, SIZE, 3)
    assert out_labels.tolist() == [[0] * 40]


def test_all_images_unreadable_is_a_clear_error(flat):
    bad = [os.path.join(flat["image_dir"], name) for name in flat["corrupt"]]
    with pytest.raises(ValueError, match="none of the 2 images could be read"):
        celeba.materialize(celeba.make_image_dataset(bad, np.zeros((2, 40), np.uint8), SIZE), expected=2)


def test_listed_but_missing_image_is_skipped_and_counted(tmp_path):
    info = write_celeba_fixture(tmp_path, n_images=6, corrupt=0)
    missing = info["readable"]["train"][0]
    os.remove(os.path.join(info["image_dir"], missing))
    paths, labels, _ = celeba.celeba_split(str(tmp_path), "train")
    assert missing in {os.path.basename(p) for p in paths}
    images, _, skipped = celeba.materialize(celeba.make_image_dataset(paths, labels, SIZE), expected=len(paths))
    assert skipped == 1 and len(images) == len(paths) - 1


def test_crop_box_is_the_celeba_crop(tmp_path):
    """Inside the crop box a flat colour, outside black: the output must be that colour everywhere, also
    for an image twice the aligned size (the box scales with the image); a 1.5x image is not skipped. (Where the
    box puts the face: tests/test_layout.py.)"""
    top, left, height, width = celeba.CELEBA_CROP
    assert (top, left, height, width) == (52, 17, 144, 144)
    paths = []
    for scale in (1, 2):
        image = np.zeros((218 * scale, 178 * scale, 3), np.uint8)
        image[top * scale:(top + height) * scale, left * scale:(left + width) * scale] = (200, 40, 90)
        paths.append(str(tmp_path / f"x{scale}.png"))
        Image.fromarray(image).save(paths[-1])
    odd = np.zeros((327, 267, 3), np.uint8)  # 1.5x: the scaled box has fractional edges (26 + 0.5 on the left)
    odd[78:294, 26:242] = (200, 40, 90)
    paths.append(str(tmp_path / "odd.png"))
    Image.fromarray(odd).save(paths[-1])
    images, _, skipped = celeba.materialize(celeba.make_image_dataset(paths, np.zeros((3, 40), np.uint8), 8),
                                            expected=3)
    assert skipped == 0 and images.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(images[:2].reshape(-1, 3), np.tile([[200, 40, 90]], (128, 1)))
    np.testing.assert_allclose(images[2, 2:6, 2:6].reshape(-1, 3), np.tile([[200, 40, 90]], (16, 1)), atol=2)


def test_bad_arguments_are_rejected(flat):
    with pytest.raises(ValueError, match=r"crop=\(0, 0, 300, 10\)"):
        celeba.make_image_dataset(["a.jpg"], np.zeros((1, 40), np.uint8), crop=(0, 0, 300, 10))
    with pytest.raises(ValueError, match="N = len\\(paths\\) = 2"):
        celeba.make_image_dataset(["a.jpg", "b.jpg"], np.zeros((1, 40), np.uint8))


# --- other layouts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["anno_eval", "kaggle"])
def test_other_layouts(tmp_path, layout):
    info = write_celeba_fixture(tmp_path, n_images=6, corrupt=1, seed=1, layout=layout)
    assert not os.path.exists(tmp_path / "list_attr_celeba.txt")
    paths, labels, names = celeba.celeba_split(str(tmp_path), "train")
    rows = _rows(info, "train")
    np.testing.assert_array_equal(labels, info["labels"][rows])
    assert names == celeba.CELEBA_ATTRIBUTES and os.path.dirname(paths[0]) == info["image_dir"]
    images, _, skipped = celeba.materialize(celeba.make_image_dataset(paths, labels, SIZE), expected=len(paths))
    assert skipped == 1 and len(images) == len(rows) - 1


# --- missing files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("remove,expected_name", [
    ("attr_path", "list_attr_celeba.txt"), ("partition_path", "list_eval_partition.txt"),
    ("image_dir", "img_align_celeba"),
])
def test_missing_files_raise_naming_the_expected_path(tmp_path, remove, expected_name):
    info = write_celeba_fixture(tmp_path, n_images=3, corrupt=0)
    target = info[remove]
    if os.path.isdir(target):
        for name in os.listdir(target):
            os.remove(os.path.join(target, name))
        os.rmdir(target)
    else:
        os.remove(target)
    with pytest.raises(FileNotFoundError) as error:
        celeba.celeba_split(str(tmp_path), "train")
    message = str(error.value)
    assert os.path.join(str(tmp_path), expected_name) in message
    assert "datasets/celeba/README.md" in message


def test_no_image_of_the_split_present_is_a_clear_error(tmp_path):
    info = write_celeba_fixture(tmp_path, n_images=3, corrupt=0)
    for name in info["filenames"]:
        os.remove(os.path.join(info["image_dir"], name))
    with pytest.raises(FileNotFoundError, match=r"none of the 1 train images .* is in .*img_align_celeba"):
        celeba.celeba_split(str(tmp_path), "train")


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError) as error:
        celeba.tfds_split("train", SIZE, data_dir=str(tmp_path))
    message = str(error.value)
    assert "celeb_a is not prepared" in message and str(tmp_path) in message
    assert "tfds build celeb_a" in message and "--data_dir=PATH" in message
    with pytest.raises(ValueError, match="unknown CelebA split"):
        celeba.tfds_split("dev", SIZE, data_dir=str(tmp_path))


def test_tfds_prepared_split_yields_images_and_labels_in_celeba_order(tmp_path, monkeypatch):
    """With TFDS' own mock of a prepared celeb_a: the conversion to (image [S, S, 3], labels uint8 [40])."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=3):
        ds, names = celeba.tfds_split("valid", SIZE, data_dir=str(tmp_path))
        images, labels, skipped = celeba.materialize(ds)
    assert names == celeba.CELEBA_ATTRIBUTES and skipped == 0
    assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert labels.shape == (3, 40) and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}


# --- identities and the validation partition -----------------------------------------------------------
def _write_identities(info, overlap: bool) -> str:
    """identity_CelebA.txt beside the fixture's annotations: one identity per (split, image pair), or, with
    ``overlap``, the first valid image given the identity of the first train image."""
    identity = {name: str(100 * part + i // 2) for i, (name, part) in enumerate(zip(info["filenames"],
                                                                                   info["partition"], strict=True))}
    if overlap:
        first_valid = info["filenames"][info["partition"].index(1)]
        identity[first_valid] = identity[info["filenames"][0]]
    path = os.path.join(info["root"], "identity_CelebA.txt")
    Path(path).write_text("".join(f"{name} {identity[name]}\n" for name in info["filenames"]))
    return path


def test_read_identities_published_format_and_errors(tmp_path):
    path = tmp_path / "identity_CelebA.txt"
    path.write_text("000001.jpg 2880\r\n000002.jpg 2937\r\n")
    assert celeba.read_identities(str(path)) == {"000001.jpg": "2880", "000002.jpg": "2937"}
    path.write_text("000001.jpg 2880\n000002.jpg\n")
    expected = r"identity_CelebA.txt: expected rows 'FILENAME IDENTITY'.*'000002.jpg'.*line 2"
    with pytest.raises(ValueError, match=expected):
        celeba.read_identities(str(path))


def test_identity_check_passes_on_disjoint_splits_and_loads_the_valid_split(tmp_path):
    from aign_tf.data.faces import load_face_splits

    info = write_celeba_fixture(tmp_path / "celeba", n_images=10, corrupt=0, seed=2)
    identity_path = _write_identities(info, overlap=False)
    assert celeba.check_identities_disjoint(info["root"], ("train", "valid", "test")) == identity_path
    splits = load_face_splits(info["root"], SIZE, str(tmp_path / "cache"), with_valid=True)
    assert splits.valid is not None and len(splits.valid) == len(info["readable"]["valid"]) > 0
    np.testing.assert_array_equal(splits.valid.labels, info["labels"][_rows(info, "valid")])
    assert (len(splits.train), len(splits.test)) == (len(info["readable"]["train"]), len(info["readable"]["test"]))
    cached = load_face_splits(info["root"], SIZE, str(tmp_path / "cache"), with_valid=True)
    np.testing.assert_array_equal(cached.valid.images, splits.valid.images)
    default = load_face_splits(info["root"], SIZE, str(tmp_path / "cache"))
    assert default.valid is None and len(default.train) == len(splits.train)  # the default is unchanged
    np.testing.assert_array_equal(default.test.images, splits.test.images)


def test_identity_in_two_splits_stops_the_loader_naming_it(tmp_path):
    from aign_tf.data.faces import load_face_splits

    info = write_celeba_fixture(tmp_path / "celeba", n_images=10, corrupt=0, seed=2)
    identity_path = _write_identities(info, overlap=True)
    first_valid = info["filenames"][info["partition"].index(1)]
    # train and test alone do not share the identity: the default load passes
    assert celeba.check_identities_disjoint(info["root"]) == identity_path
    with pytest.raises(ValueError) as error:
        load_face_splits(info["root"], SIZE, str(tmp_path / "cache"), with_valid=True)
    message = str(error.value)
    assert "identity 0 of " + identity_path in message and "both the train and the valid split" in message
    assert f"train: {info['filenames'][0]}, {info['filenames'][1]}; valid: {first_valid}" in message
    assert not os.path.exists(tmp_path / "cache")  # stopped before decoding anything


def test_decoded_cache_is_keyed_by_the_crop(tmp_path, monkeypatch):
    """Arrays decoded with one crops.CELEBA_CROP are never read back for another."""
    from aign_tf.data import faces

    info = write_celeba_fixture(tmp_path / "celeba", n_images=6, corrupt=0, seed=3)
    cache = tmp_path / "cache"
    faces.load_face_splits(info["root"], SIZE, str(cache))
    first = sorted(os.listdir(cache))
    faces.load_face_splits(info["root"], SIZE, str(cache))
    assert sorted(os.listdir(cache)) == first  # the same crop: read back
    monkeypatch.setattr(faces, "CELEBA_CROP", (55, 35, 108, 108))
    faces.load_face_splits(info["root"], SIZE, str(cache))
    assert len(os.listdir(cache)) == len(first) + 1  # another crop: decoded again into another file


def test_builtin_faces_have_no_valid_split(tmp_path):
    from aign_tf.data.faces import load_face_splits

    with pytest.raises(ValueError, match="built-in faces have no validation split"):
        load_face_splits(None, SIZE, str(tmp_path), with_valid=True)
