"""Reading pictures into float RGB arrays and writing results, with clear errors."""
from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Union

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from gatys.errors import InputError, OutputError
from gatys.io.arrays import array_shape, check_picture, rgb_of, rgb_of_array
from gatys.io.atomic import atomic_write, temp_prefix

# What the API accepts as a picture: a path, a PIL image, or an array (H, W, 3).
ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]

# Output formats by extension: Pillow format name and save options.
OUTPUT_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}),
                  ".jpeg": ("JPEG", {"quality": 95}), ".webp": ("WEBP", {"quality": 95}),
                  ".tif": ("TIFF", {}), ".tiff": ("TIFF", {}), ".bmp": ("BMP", {})}


# The most pixels a picture may have to be decoded (Pillow's own decompression-bomb threshold):
# a header is read first, and a larger picture is refused before any of it is decoded.
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _readable(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"image not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image")
    if not path.is_file():  # a FIFO would block reading, a device never end
        raise InputError(f"{path} is not a regular file (a pipe, socket or device): save the "
                         "picture to a file first")
    return path


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """Pillow's lazy open of ``path`` (header only), with its errors as InputError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check ourselves
            with Image.open(path) as im:
                yield im
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image Pillow can read (PNG, JPEG, ...)") from None
    except Image.DecompressionBombError:
        raise InputError(f"{path} declares more than {2 * MAX_PIXELS / 1e6:.0f} Mpx: too large "
                         "to read safely; downscale it first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path} is damaged or truncated ({e}): re-export or re-download "
                         "it") from None


def source_shape(image: Any, what: str = "the image") -> tuple[int, int]:
    """(H, W) of a picture as it will be read (upright per EXIF), from its header alone for a
    file; InputError if it has more than MAX_PIXELS (it would not be decoded)."""
    if isinstance(image, (str, os.PathLike)):
        path = _readable(Path(image))
        with _opened(path) as im:
            w, h = im.size
            _check_pixels(h, w, what)  # before reading EXIF, which may decode a PNG
            if im.getexif().get(0x0112, 1) in _ROTATED:
                h, w = w, h
    elif isinstance(image, Image.Image):
        w, h = image.size
        if image.getexif().get(0x0112, 1) in _ROTATED:  # as read_image will turn it
            h, w = w, h
    else:
        check_picture(image, what)
        h, w = array_shape(image, what)
    _check_pixels(h, w, what)
    return h, w


def _check_pixels(h: int, w: int, what: str) -> None:
    if h * w > MAX_PIXELS:
        raise InputError(f"{what} is {w}x{h} px ({h * w / 1e6:.0f} Mpx), more than the "
                         f"{MAX_PIXELS / 1e6:.0f} Mpx gatys decodes: downscale it first")


def load_image(path: str | os.PathLike, size: int | None = None,
               shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a picture as float32 RGB (3, H, W) in [0, 1], upright per its EXIF orientation.

    ``size`` scales the longest side to that many pixels; ``shape`` = (H, W) resizes exactly.
    """
    with decoded(path) as im:
        rgb = rgb_of(im)
    return resize(rgb.transpose(2, 0, 1), size=size, shape=shape)


@contextlib.contextmanager
def decoded(path: str | os.PathLike, what: str | None = None) -> Iterator[Image.Image]:
    """The picture at ``path``, decoded and upright per its EXIF orientation, once its header
    showed it is a regular file of at most MAX_PIXELS; InputError, naming ``what`` (default:
    the path), for anything else."""
    path = _readable(Path(path))
    with _opened(path) as im:
        _check_pixels(im.size[1], im.size[0], what or str(path))  # before decoding
        try:
            im = ImageOps.exif_transpose(im)
            im.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{path} is damaged or truncated ({e}): re-export or re-download "
                             "it") from None
        yield im


def fit_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(H, W) with the longest side ``size`` and the aspect ratio kept."""
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize(x: np.ndarray, size: int | None = None, shape: tuple[int, int] | None = None,
           resample: int = Image.Resampling.LANCZOS) -> np.ndarray:
    """Resize a (C, H, W) float image with Lanczos filtering (or ``resample``), per channel,
    in float, clipped to [0, 1]."""
    if size is None and shape is None:
        return np.ascontiguousarray(x, dtype=np.float32)
    if shape is None:
        assert size is not None  # one of them, checked above
        shape = fit_shape(x.shape[1], x.shape[2], size)
    h, w = shape
    if (h, w) == x.shape[1:]:
        return np.ascontiguousarray(x, dtype=np.float32)
    channels = [np.asarray(Image.fromarray(c.astype(np.float32), "F").resize((w, h), resample))
                for c in x]
    return np.clip(np.stack(channels), 0, 1).astype(np.float32)


def _output_format(path: Path) -> tuple[str, dict]:
    """Pillow's format name and save options for ``path``'s extension."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(f"cannot write {path}: unknown image extension {path.suffix!r}; "
                          f"use one of {', '.join(OUTPUT_FORMATS)}") from None


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, before any work, if ``path`` cannot take a result image."""
    path = Path(path)
    _output_format(path)
    return check_writable(path)


def check_writable(path: Path) -> Path:
    """Fail early if a file cannot be written at ``path`` (folder missing or read-only, name
    too long...)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(os.fsencode(path.name)) > name_max:
        raise OutputError(f"cannot write {path}: its name is {len(os.fsencode(path.name))} bytes "
                          f"and this file system takes at most {name_max}: use a shorter name")
    _check_regular_or_absent(path)
    try:  # the only reliable test of a folder's writability (root, read-only mounts, ACLs)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=temp_prefix(), suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {path}: permission denied")
    return path


def _check_regular_or_absent(path: Path) -> None:
    """OutputError unless ``path`` names a regular file or nothing: never rename a result over
    a folder, a device, a FIFO or a socket, nor follow a loop of symbolic links."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # nothing there yet (or a link to nothing, which the rename replaces)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OutputError(f"cannot write {path}: it is a loop of symbolic links; remove "
                              "it or choose another name") from None
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise OutputError(f"cannot write {path}: it is a folder")
    if not stat.S_ISREG(mode):
        kind = ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
                "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise OutputError(f"cannot write {path}: it is {kind}, not a regular file; choose a "
                          "file name")


def check_distinct(outputs: dict[str, Path | None], inputs: dict[str, Any]) -> None:
    """OutputError if an output would be the same file as an input or as another output (a
    photograph overwritten by its own transfer, a plot written over the result). ``outputs``
    and ``inputs`` map a description ("--plot", "the content image") to a path (inputs that
    are not paths are skipped)."""
    seen: dict[str, str] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        key = _identity(Path(path))
        if key in seen:
            raise OutputError(f"{what} and {seen[key]} are the same file ({path}): give each "
                              "output its own name")
        seen[key] = what
    for what, source in inputs.items():
        if isinstance(source, (str, os.PathLike)) and _identity(Path(source)) in seen:
            raise OutputError(f"{seen[_identity(Path(source))]} ({source}) is {what}: writing "
                              "there would destroy an input; choose another output name")


def _identity(path: Path) -> str:
    """What makes two paths the same file: device and inode where it exists, else the
    resolved path."""
    try:
        st = path.stat()
        return f"{st.st_dev}:{st.st_ino}"
    except OSError:
        pass
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a loop of symbolic links: the name is all there is
        return str(path.absolute())


def to_uint8(x: Any) -> np.ndarray:
    """(3, H, W) float in [0, 1] to (H, W, 3) uint8."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1).transpose(1, 2, 0)
    return (x * 255 + 0.5).astype(np.uint8)


def save_image(path: str | os.PathLike, x: Any, text: Mapping[str, str] | None = None) -> Path:
    """Write (3, H, W) in [0, 1] atomically; PNG files carry ``text`` as tEXt chunks."""
    return save_picture(path, Image.fromarray(to_uint8(x)), text)


def _png_info(text: Mapping[str, str]) -> PngImagePlugin.PngInfo:
    """``text`` as a PNG file's tEXt chunks."""
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():  # a name that is not UTF-8 (lone surrogates) kept as its escape
        info.add_text(str(k), str(v).encode("utf-8", "backslashreplace").decode("utf-8"))
    return info


def png_bytes(x: Any, text: Mapping[str, str] | None = None) -> bytes:
    """(3, H, W) in [0, 1] as the bytes of a PNG file carrying ``text`` as tEXt chunks."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buffer, format="PNG", pnginfo=_png_info(text or {}))
    return buffer.getvalue()


def save_picture(path: str | os.PathLike, im: Image.Image, text: Mapping[str, str] | None = None,
                 jpeg_quality: int | None = None) -> Path:
    """Write a Pillow image atomically in the format of ``path``'s extension; PNG files carry
    ``text`` as tEXt chunks; ``jpeg_quality`` makes JPEGs smaller (optimised, progressive)."""
    path = Path(path)
    fmt, options = _output_format(path)
    if fmt == "JPEG" and jpeg_quality is not None:
        options = {**options, "quality": jpeg_quality, "optimize": True, "progressive": True}
    if fmt == "PNG" and text:
        options = {**options, "pnginfo": _png_info(text)}

    def write(tmp: Path) -> None:
        im.save(tmp, format=fmt, **options)

    try:
        atomic_write(path, write)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def read_image(image: ImageLike, what: str, size: int | None = None,
          shape: tuple[int, int] | None = None) -> np.ndarray:
    """A path, PIL image or array as (3, H, W) float32 in [0, 1], each read alike: a PIL image
    as its file would be (any mode, upright per EXIF), an array by :func:`rgb_of_array`'s
    rules for the same mode."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, size=size, shape=shape)
    if isinstance(image, Image.Image):
        a = rgb_of(ImageOps.exif_transpose(image))
    else:
        check_picture(image, f"the {what} image")
        a = rgb_of_array(image, f"the {what} image")
    return resize(a.transpose(2, 0, 1), size=size, shape=shape)
