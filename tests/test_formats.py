"""aign_tf.formats: photos, masks, grids, folders and JSON."""

import os

import numpy as np
import pytest
from PIL import Image

from aign_tf import formats

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


# --- images ---------------------------------------------------------------------------------------
def test_png_round_trip_is_exact_for_8_bit_values(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (7, 5, 3)).astype(np.float32) / 255.0
    path = str(tmp_path / "sub" / "dir" / "x.png")  # parent dirs are created
    formats.write_image(path, image)
    back = formats.read_image(path)
    assert back.dtype == np.float32 and back.shape == (7, 5, 3)
    np.testing.assert_array_equal(back, image)
    assert os.listdir(tmp_path / "sub" / "dir") == ["x.png"]  # no temporary file left behind


def test_write_image_accepts_uint8_grey_and_clips_floats(tmp_path):
    formats.write_image(tmp_path / "u.png", np.full((2, 3, 3), 51, np.uint8))
    np.testing.assert_allclose(formats.read_image(tmp_path / "u.png"), 0.2, atol=1e-6)
    formats.write_image(tmp_path / "g.png", np.full((2, 3, 1), 1.0, np.float32))
    np.testing.assert_array_equal(formats.read_image(tmp_path / "g.png"), np.ones((2, 3, 3)))
    formats.write_image(tmp_path / "c.png", np.array([[[-3.0, 0.5, 7.0]]]))
    np.testing.assert_allclose(formats.read_image(tmp_path / "c.png")[0, 0], [0, 128 / 255, 1], atol=1e-6)


def test_jpeg_round_trip_is_close(tmp_path):
    image = np.tile(np.linspace(0, 1, 16, dtype=np.float32)[None, :, None], (16, 1, 3))
    formats.write_image(tmp_path / "x.jpg", image)
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    np.testing.assert_allclose(formats.read_image(tmp_path / "x.jpg"), image, atol=0.03)


def test_rgba_composited_over_white_and_grey_palette_16bit_become_rgb(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red; the rest fully transparent black
    out = formats.read_image(_save(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(out[0, 0], [1, 0, 0])
    np.testing.assert_array_equal(out[1, 1], [1, 1, 1])

    grey = formats.read_image(_save(tmp_path / "l.png", np.array([[0, 255], [51, 102]], np.uint8)))
    assert grey.shape == (2, 2, 3)
    np.testing.assert_allclose(grey[1], [[0.2] * 3, [0.4] * 3], atol=1e-6)

    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(formats.read_image(tmp_path / "p.png")[0], [[0, 0, 0], [0, 1, 0]])

    deep = formats.read_image(_save(tmp_path / "d.png", np.array([[0, 65535, 32768]], np.uint16)))
    np.testing.assert_allclose(deep[0, :, 0], [0, 1, 0.5], atol=1e-4)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)  # 32 wide, 16 high: left half red, right half blue
    stored[:, :16], stored[:, 16:] = RED, BLUE
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # Orientation 6: display = stored rotated 90 degrees clockwise
    path = str(tmp_path / "phone.jpg")
    im.save(path, exif=exif, quality=100)
    out = formats.read_image(path)
    assert out.shape == (32, 16, 3)  # portrait after rotation
    np.testing.assert_allclose(out[4, 8], [1, 0, 0], atol=0.05)  # the stored left (red) is now on top
    np.testing.assert_allclose(out[28, 8], [0, 0, 1], atol=0.05)


def test_image_size_center_crops_then_resizes(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # the central 10x10 square is white, the sides black
    out = formats.read_image(_save(tmp_path / "w.png", wide), image_size=5)
    assert out.shape == (5, 5, 3)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    assert formats.read_image(tmp_path / "w.png", image_size=40).shape == (40, 40, 3)
    with pytest.raises(ValueError, match="image_size"):
        formats.read_image(tmp_path / "w.png", image_size=0)


# --- masks ----------------------------------------------------------------------------------------
def test_mask_white_is_hole_returned_as_zero(tmp_path):
    drawn = np.zeros((8, 8), np.uint8)
    drawn[2:5, 3:6] = 255  # the user painted the hole white
    mask = formats.read_mask(_save(tmp_path / "m.png", drawn))
    assert mask.shape == (8, 8, 1) and mask.dtype == np.float32
    expected = np.ones((8, 8, 1), np.float32)
    expected[2:5, 3:6] = 0.0  # 0 = hidden, 1 = visible
    np.testing.assert_array_equal(mask, expected)
    small = formats.read_mask(tmp_path / "m.png", image_size=4)
    assert small.shape == (4, 4, 1) and set(np.unique(small)) <= {0.0, 1.0}

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # one opaque white pixel; transparent pixels count as keep
    mask = formats.read_mask(_save(tmp_path / "t.png", rgba))
    np.testing.assert_array_equal(mask[..., 0], [[0, 1], [1, 1]])


# --- grid -----------------------------------------------------------------------------------------
def test_image_grid_mixed_sizes_grey_and_uneven_rows():
    rng = np.random.default_rng(1)
    big = rng.random((8, 8, 3)).astype(np.float32)
    low = rng.random((2, 2, 3)).astype(np.float32)
    grey = rng.random((8, 8, 1)).astype(np.float32)
    grid = formats.image_grid([[low, big, grey], [big]], pad=1, pad_value=0.5)
    assert grid.shape == (1 + 8 + 1 + 8 + 1, 1 + 3 * 9, 3) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[1:9, 1:9], np.repeat(np.repeat(low, 4, 0), 4, 1))  # nearest upsampling
    np.testing.assert_array_equal(grid[1:9, 10:18], big)
    np.testing.assert_array_equal(grid[1:9, 19:27], np.repeat(grey, 3, -1))
    np.testing.assert_array_equal(grid[0], 0.5)  # padding
    np.testing.assert_array_equal(grid[10:18, 10:], 0.5)  # the short second row is filled on the right
    assert formats.image_grid([[np.zeros((4, 4, 3), np.uint8)]], pad=0).max() == 0.0


def test_image_grid_errors():
    with pytest.raises(ValueError, match="at least one image"):
        formats.image_grid([])
    with pytest.raises(ValueError, match=r"row 0 image 1.*\(4, 4, 2\)"):
        formats.image_grid([[np.zeros((4, 4, 3)), np.zeros((4, 4, 2))]])


# --- errors ---------------------------------------------------------------------------------------
def test_missing_and_non_image_files_raise_one_clear_error(tmp_path):
    missing = str(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        formats.read_image(missing)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        formats.read_mask(missing)
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png.*as an image"):
        formats.read_image(str(fake))
    truncated = tmp_path / "cut.png"
    formats.write_image(truncated, np.zeros((32, 32, 3)))
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ValueError, match="cut.png"):
        formats.read_image(str(truncated))
    with pytest.raises(ValueError, match="x.gif"):
        formats.write_image(tmp_path / "x.gif", np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        formats.write_image(tmp_path / "n.png", np.full((2, 2, 3), np.nan))


def test_list_images_sorted_filtered_and_clear_errors(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.webp", "d.jpeg", "e.bmp", "notes.txt", ".hidden.jpg"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    assert [os.path.basename(p) for p in formats.list_images(str(tmp_path))] == \
        ["a.jpg", "b.PNG", "c.webp", "d.jpeg", "e.bmp"]
    with pytest.raises(FileNotFoundError, match="missing"):
        formats.list_images(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in .*empty"):
        formats.list_images(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="notes.txt"):
        formats.list_images(str(tmp_path / "notes.txt"))


# --- JSON -----------------------------------------------------------------------------------------
def test_json_round_trip_converts_numpy(tmp_path):
    path = str(tmp_path / "out" / "r.json")
    formats.write_json(path, {"psnr": np.float32(21.5), "n": np.int64(3), "ok": np.bool_(True),
                              "v": np.arange(3), "nested": [{"x": np.float64(0.25)}]})
    assert formats.read_json(path) == {"psnr": 21.5, "n": 3, "ok": True, "v": [0, 1, 2],
                                       "nested": [{"x": 0.25}]}
    assert os.listdir(tmp_path / "out") == ["r.json"]
    with pytest.raises(ValueError, match="r.json.*object"):
        formats.write_json(path, {"bad": object()})
    assert formats.read_json(path)["n"] == 3  # a failed write leaves the old file intact
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        formats.read_json(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="gone.json"):
        formats.read_json(str(tmp_path / "gone.json"))


# --- permissions ------------------------------------------------------------------------------------
@pytest.fixture
def set_umask():
    """Sets the process umask for one test and restores it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, set_umask, umask, expected):
    """eval.json, eval_samples.png and the data caches go through mkstemp (0o600) and a rename; they must end up
    with the mode a plain open() gives under the user's umask."""
    from aign_tf.data import synthetic_faces

    set_umask(umask)
    assert formats.current_umask() == umask and formats.default_mode() == expected
    assert formats.default_mode(directory=True) == 0o777 & ~umask
    formats.write_json(str(tmp_path / "eval.json"), {"psnr": 1.0})
    formats.write_image(str(tmp_path / "eval_samples.png"), np.zeros((4, 4, 3), np.float32))
    formats.write_npz(str(tmp_path / "cache.npz"), x=np.arange(3))
    synthetic_faces.load_or_generate(str(tmp_path / "cache"), 2, 0, 32)
    written = [tmp_path / "eval.json", tmp_path / "eval_samples.png", tmp_path / "cache.npz",
               *(tmp_path / "cache").glob("synthetic_faces_*.npz")]
    assert len(written) == 4
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: oct(expected) for p in written}


def test_current_umask_without_proc_sets_and_restores_it(set_umask, monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    set_umask(0o027)
    monkeypatch.setattr(formats, "open", no_proc, raising=False)  # the module's open(), not the builtin
    assert formats.current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # left as it was


# --- 2D keypoints -----------------------------------------------------------------------------------------


def test_keypoints_npy_with_and_without_confidence(tmp_path):
    xy = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 17, 2)).astype(np.float32)
    np.save(tmp_path / "a.npy", xy)
    out = formats.read_keypoints(str(tmp_path / "a.npy"), 17)
    np.testing.assert_array_equal(out["joints_2d"], xy)
    np.testing.assert_array_equal(out["confidence"], 1.0)
    assert "focal" not in out
    xyc = np.concatenate([xy, np.full((3, 17, 1), 0.25, np.float32)], -1)
    np.save(tmp_path / "b.npy", xyc)
    np.testing.assert_array_equal(formats.read_keypoints(str(tmp_path / "b.npy"), 17)["confidence"], 0.25)


def test_keypoints_json_in_pixels_are_normalised(tmp_path):
    joints = np.full((17, 2), 500.0)
    joints[1] = [750.0, 250.0]
    formats.write_json(tmp_path / "p.json", {"joints_2d": joints, "image_width": 1000, "image_height": 1000,
                                             "focal_px": 1150.0})
    out = formats.read_keypoints(str(tmp_path / "p.json"), 17)
    assert out["joints_2d"].shape == (1, 17, 2)
    np.testing.assert_allclose(out["joints_2d"][0, 0], [0.0, 0.0])
    np.testing.assert_allclose(out["joints_2d"][0, 1], [0.5, -0.5])
    np.testing.assert_allclose(out["focal"], [[2.3, 2.3]])


@pytest.mark.parametrize("content, needle", [
    ({"joints": []}, "'joints_2d'"),
    ({"joints_2d": np.zeros((2, 16, 2))}, r"\[N, 17, 2\]"),
    ({"joints_2d": np.full((1, 17, 2), np.nan)}, "NaN"),
])
def test_keypoints_errors_name_the_file(tmp_path, content, needle):
    formats.write_json(tmp_path / "bad.json", content)
    with pytest.raises(ValueError, match=needle):
        formats.read_keypoints(str(tmp_path / "bad.json"), 17)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        formats.read_keypoints(str(tmp_path / "missing.npy"), 17)
