"""Pictures as numbers: any Pillow mode as RGB in [0, 1], and arrays read by the same rules as
files of the same mode, so that an array and the same picture saved as a PNG read alike."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from gatys.errors import InputError

# Single-channel modes wider than 8 bits: 16-bit and 32-bit integers, and floats.
WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# How far outside [0, 1] a float array may stray (rounding) and be clipped: half an 8-bit step.
FLOAT_SLACK = 0.5 / 255
EXPECTED = ("give (H, W, 3) RGB, (H, W) grey or (H, W, 4) RGBA, as uint8 (0-255), uint16 "
            "(0-65535), bool, or floats in [0, 1]")


def grey_levels(im: Image.Image) -> np.ndarray:
    """A single-channel picture (L, 1 or a WIDE_GREY_MODES mode) as float64 (H, W) in [0, 1]:
    16-bit modes (and 32-bit ones holding values over 255) over 65535, floats as they are."""
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "1":
        return a
    if im.mode == "F":
        top = 1.0
    elif im.mode.startswith("I;16") or (im.mode == "I" and a.max() > 255):
        top = 65535.0
    else:
        top = 255.0
    return np.clip(a / top, 0, 1)


def rgb_of(im: Image.Image) -> np.ndarray:
    """Any Pillow mode as float32 RGB in [0, 1], (H, W, 3). Alpha is composited on white."""
    if im.mode in WIDE_GREY_MODES:
        return np.repeat(grey_levels(im)[:, :, None], 3, axis=2).astype(np.float32)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(im, dtype=np.float32) / 255.0


def check_picture(image: Any, what: str) -> None:
    """InputError, naming ``what``, unless ``image`` is a path, a PIL image or an array."""
    if isinstance(image, (str, os.PathLike, Image.Image, np.ndarray)):
        return
    kind = type(image).__name__
    if isinstance(image, (bytes, bytearray, memoryview)) or hasattr(image, "read"):
        raise InputError(f"{what} is given as {kind}, the contents of a file: give the file's "
                         "path, or open it first (PIL.Image.open)")
    if not isinstance(image, (list, tuple)):
        raise InputError(f"{what} is of type {kind}: give a path, a PIL image or an array")


def array_shape(a: Any, what: str) -> tuple[int, int]:
    """(H, W) of an array picture, checked as :func:`rgb_of_array` reads it."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{what} is an array of {a.dtype} values: {EXPECTED}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise InputError(f"{what} is an array of shape {a.shape}: {EXPECTED}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{what} is an empty array ({a.shape}): it holds no picture")
    return int(a.shape[0]), int(a.shape[1])


def rgb_of_array(a: Any, what: str) -> np.ndarray:
    """An array picture as float32 RGB (H, W, 3) in [0, 1], as a file of the same mode reads:
    uint8 over 255, uint16 over 65535, bool as 0 or 1, floats as they are (clipped within half
    an 8-bit step of [0, 1]); grey repeated, alpha composited on white. Other integers, floats
    further outside [0, 1] or not finite are refused, saying what is expected."""
    array_shape(a, what)
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    if a.dtype == np.uint8 or (a.dtype == np.uint16 and a.ndim == 2):
        return rgb_of(Image.fromarray(np.ascontiguousarray(a)))  # exactly as the file reads
    if a.dtype == np.uint16:
        a = a / 65535.0
    elif a.dtype.kind in "iu":
        raise InputError(f"{what} is an array of {a.dtype}: {EXPECTED} (divide 0-255 values "
                         "by 255, or give them as uint8)")
    else:
        a = np.asarray(a, dtype=np.float64)
        if not np.isfinite(a).all():
            raise InputError(f"{what} holds values that are not finite: {EXPECTED}")
        low, high = float(a.min()), float(a.max())
        if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
            raise InputError(f"{what} holds floats from {low:g} to {high:g}: floats must be in "
                             "[0, 1] (divide 0-255 values by 255)")
        a = np.clip(a, 0, 1)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        alpha = a[:, :, 3:]
        a = a[:, :, :3] * alpha + (1 - alpha)
    return a.astype(np.float32)
