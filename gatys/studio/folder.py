"""The studio's folder: the pictures in it, the names a page may use for them, and what the
studio writes there (uploads, painted masks, runs), always under names it chooses itself.

An upload is checked by the command line's picture rules before it is kept: its header read
first (the pixel cap, the format), then decoded in full, in a private temporary folder; only a
picture that passes is written into the folder, atomically."""
from __future__ import annotations

import contextlib
import json
import re
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from gatys.errors import InputError
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import decoded, save_picture

# What the studio lists, and the formats it accepts as uploads (Pillow's names -> extension).
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
RUN_NAME = re.compile(r"run-(\d{3,})\.png")


def safe_stem(name: str, longest: int = 40) -> str:
    """A file name's stem reduced to letters, digits, '-' and '_' (for a name the server
    chooses that the user still recognises)."""
    stem = Path(name).stem
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:longest] or "picture"


def pictures(folder: Path) -> list[str]:
    """The names of the pictures in ``folder`` (not in its subfolders; hidden files left out),
    newest first."""
    found = [p for p in folder.iterdir()
             if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    found.sort(key=lambda p: (-p.stat().st_mtime, p.name))
    return [p.name for p in found]


def resolve(folder: Path, name: Any, what: str) -> Path:
    """The picture ``name`` in ``folder``; InputError for anything else (a path, a hidden file,
    a name not there)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name \
            or name.startswith(".") or "\x00" in name:
        raise InputError(f"{what}: {json.dumps(name)} is not the name of a picture in the folder")
    path = folder / name
    if path.suffix.lower() not in EXTENSIONS or not path.is_file() \
            or path.resolve().parent != folder.resolve():
        raise InputError(f"{what}: there is no picture named {json.dumps(name)} in the folder")
    return path


@contextlib.contextmanager
def _decoded_upload(data: bytes, name: str, limit: int) -> Iterator[tuple[str, Image.Image]]:
    """The picture ``data`` (uploaded as ``name``) decoded by the command line's rules, with the
    extension of its format; InputError naming the upload otherwise."""
    shown = json.dumps(name)
    if len(data) > limit:
        raise InputError(f"{shown} is {len(data) / 1e6:.1f} MB, more than the "
                         f"{limit / 1e6:g} MB the studio accepts (--max-upload-mb)")
    if not data:
        raise InputError(f"{shown} is empty")
    with tempfile.TemporaryDirectory(prefix="gatys-upload-") as private:
        path = Path(private) / f"upload{Path(name).suffix.lower()[:8]}"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
                with Image.open(path) as im:
                    fmt = im.format
        except Exception:  # not a picture: decoded() below says so in the CLI's words
            fmt = None
        try:
            if fmt is not None and fmt not in UPLOAD_FORMATS:
                raise InputError(f"{shown} is {fmt}: upload a PNG, JPEG, WebP, TIFF or BMP file")
            # the header first (readable, within the pixel cap), then decoded in full
            with decoded(path, shown) as im:
                assert fmt is not None  # Pillow read its header above
                yield UPLOAD_FORMATS[fmt], im
        except InputError as e:
            raise InputError(str(e).replace(str(path), shown)) from None


def store_upload(folder: Path, data: bytes, name: str, limit: int) -> str:
    """Check ``data`` by the command line's picture rules and write it into ``folder`` under a
    new name of the server's; returns that name."""
    with _decoded_upload(data, name, limit) as (extension, _):
        pass
    target = folder / f"upload-{safe_stem(name)}-{secrets.token_hex(3)}{extension}"
    atomic_write_bytes(target, data)
    return target.name


def store_mask(folder: Path, data: bytes, limit: int, stem: str) -> str:
    """A mask painted in the page (a PNG, white in the region, black out of it, grey between)
    written as the greyscale PNG that ``--region`` takes; returns its name."""
    with _decoded_upload(data, "the painted mask", limit) as (_, im):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.int16)
    if (rgba[..., 3] < 255).any():
        raise InputError("the painted mask has transparent pixels: paint it on an opaque black "
                         "background")
    rgb = rgba[..., :3]
    if (np.abs(rgb - rgb[..., :1]).max(initial=0)) > 2:
        raise InputError("the painted mask is in colour: a mask is grey levels, white in the "
                         "region")
    grey = Image.fromarray(rgb[..., 0].astype(np.uint8))  # 2-D uint8: mode L
    target = folder / f"mask-{safe_stem(stem)}-{secrets.token_hex(3)}.png"
    save_picture(target, grey)
    return target.name


def next_run_name(folder: Path) -> str:
    """``run-NNN.png``, NNN one more than the largest run in ``folder``."""
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := RUN_NAME.fullmatch(p.name))]
    return f"run-{max(numbers, default=0) + 1:03d}.png"


def png_parameters(path: Path) -> dict[str, str]:
    """The ``gatys:`` text chunks of a PNG the studio or the command line wrote (empty for
    another picture)."""
    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
    except Exception:
        return {}
    return {k[len("gatys:"):]: v for k, v in text.items() if k.startswith("gatys:")}


def history(folder: Path) -> list[dict[str, Any]]:
    """The finished pictures in ``folder``, newest first: each PNG that carries a transfer's
    parameters, with them and, for a studio run, the request that made it (its JSON record)."""
    out = []
    for name in pictures(folder):
        path = folder / name
        if path.suffix.lower() != ".png":
            continue
        parameters = png_parameters(path)
        if parameters.get("command") != "transfer":
            continue
        record = None
        beside = path.with_suffix(".json")
        if beside.is_file():
            try:
                record = json.loads(beside.read_text())
            except (OSError, ValueError):
                record = None
        out.append({"name": name, "parameters": parameters, "record": record})
    return out
