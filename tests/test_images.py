"""Reading every kind of picture users have, and writing results atomically."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gatys.errors import InputError, OutputError
from gatys.io.images import check_output_path, load_image, save_image


def _gradient_rgb(w=40, h=30):
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                           np.full((h, w, 1), 128, np.float32)], axis=2).astype(np.uint8)


def test_rgb_png_round_trip(tmp_path):
    a = _gradient_rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (3, 30, 40) and x.dtype == np.float32
    np.testing.assert_allclose(x.transpose(1, 2, 0), a / 255.0, atol=1e-6)


def test_resize_keeps_aspect(tmp_path):
    Image.fromarray(_gradient_rgb(40, 30)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", size=20).shape == (3, 15, 20)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I;16"])
def test_other_modes_become_rgb(mode, tmp_path):
    base = Image.fromarray(_gradient_rgb())
    if mode == "I;16":
        a = (np.linspace(0, 65535, 40)[None, :] * np.ones((30, 1))).astype(np.uint16)
        im = Image.fromarray(a)
    elif mode == "P":
        im = base.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        im = base.convert(mode)
    path = tmp_path / ("a.tif" if mode == "CMYK" else "a.png")
    im.save(path)
    x = load_image(path)
    assert x.shape == (3, 30, 40)
    assert x.min() >= 0 and x.max() <= 1
    rgb = _gradient_rgb().astype(np.float32) / 255
    gray = np.asarray(base.convert("L"), np.float32) / 255
    if mode in ("L", "LA"):  # the gray level in all three channels
        np.testing.assert_allclose(x, np.broadcast_to(gray, x.shape), atol=0.5 / 255)
    elif mode == "1":  # black and white only, dithered from the gray level
        assert set(np.unique(x)) <= {0.0, 1.0}
        assert abs(x.mean() - gray.mean()) < 0.05
    elif mode in ("RGBA", "CMYK"):  # colours kept (CMYK through its own round trip)
        np.testing.assert_allclose(x.transpose(1, 2, 0), rgb, atol=2.5 / 255)
    elif mode == "P":  # an adaptive palette of 256 colours: close, not exact
        assert np.abs(x.transpose(1, 2, 0) - rgb).mean() < 0.02
    if mode == "I;16":  # full 16-bit range, not clipped at 255
        assert x[0, 0, 0] == 0 and x[0, 0, -1] == pytest.approx(1.0)
        assert 0.4 < x[0, 0, 20] < 0.6


def test_transparent_pixels_become_white(tmp_path):
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., 0] = 255
    a[:, :5, 3] = 255  # left half opaque red, right half fully transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    np.testing.assert_allclose(x[:, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(x[:, 0, 9], [1, 1, 1])


def test_exif_rotation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white, landscape 40x20
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    im.save(tmp_path / "a.jpg", exif=exif, quality=95)
    x = load_image(tmp_path / "a.jpg")
    assert x.shape == (3, 40, 20)  # shown upright: portrait
    assert x[:, :20].mean() > 0.9 and x[:, 20:].mean() < 0.1  # white half now on top


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_reads_the_shape_its_header_says(tmp_path, orientation):
    """The plan before decoding (source_shape, from the header) and the decoded picture agree
    for every EXIF orientation: 5 to 8 swap width and height, 1 to 4 do not."""
    from gatys.io.images import source_shape

    im = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "a.jpg", exif=exif, quality=95)
    decoded = load_image(tmp_path / "a.jpg").shape[1:]
    assert source_shape(tmp_path / "a.jpg") == decoded
    assert decoded == ((40, 20) if orientation >= 5 else (20, 40))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="image not found"):
        load_image(tmp_path / "nope.jpg")


def test_not_an_image(tmp_path):
    (tmp_path / "a.jpg").write_text("this is text")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "a.jpg")


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
    (tmp_path / "a.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match="damaged or truncated"):
        load_image(tmp_path / "a.jpg")


def test_png_carries_parameters_and_write_is_atomic(tmp_path):
    x = np.random.default_rng(0).random((3, 8, 9)).astype(np.float32)
    out = save_image(tmp_path / "out.png", x, {"gatys:seed": "5", "Software": "gatys"})
    with Image.open(out) as im:
        assert im.text["gatys:seed"] == "5" and im.size == (9, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_failed_write_leaves_old_file_alone(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="No space left"):
        save_image(out, np.zeros((3, 4, 4), np.float32))
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.parametrize("name,message", [("out.xyz", "unknown image extension"),
                                          ("missing/out.png", "does not exist")])
def test_bad_output_paths(tmp_path, name, message):
    with pytest.raises(OutputError, match=message):
        check_output_path(tmp_path / name)


def test_unwritable_folder():
    # /proc refuses new files even to root, unlike a chmod-ed folder.
    with pytest.raises(OutputError, match="cannot write /proc/out.png"):
        check_output_path("/proc/out.png")
