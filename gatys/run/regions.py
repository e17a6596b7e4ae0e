"""The regions of a spatial-control transfer as the user gives them: ``--region MASK:PAINTING``
text, :class:`Region` objects or tuples; their greyscale masks read, checked and resized to a
stage's size. The mask maths on the network's layers is :mod:`gatys.model.guidance`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from gatys.errors import InputError
from gatys.io.arrays import WIDE_GREY_MODES, grey_levels
from gatys.io.images import ImageLike, decoded, resize, source_shape


@dataclass(frozen=True)
class Region:
    """One region of a transfer: ``mask`` over the output (the content image's shape or a scaled
    copy of it), the ``painting`` whose style fills it, and optionally ``painting_mask`` over the
    painting (its shape or a scaled copy) selecting the part of it that defines the style."""

    mask: ImageLike
    painting: ImageLike
    painting_mask: ImageLike | None = None

    @classmethod
    def parse(cls, text: str) -> "Region":
        """``MASK:PAINTING`` or ``MASK:PAINTING:PAINTING_MASK`` (as ``--region`` takes it)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise InputError(f"region {text!r}: write MASK:PAINTING or "
                             "MASK:PAINTING:PAINTING_MASK (three image files at most, separated "
                             "by colons)")
        return cls(*parts)

    def describe(self) -> str:
        parts = (self.mask, self.painting) + (
            (self.painting_mask,) if self.painting_mask is not None else ())
        return ":".join(str(p) if isinstance(p, (str, os.PathLike)) else f"<{type(p).__name__}>"
                        for p in parts)


def regions_option(name: str, value: Any) -> list[Region] | None:
    """The ``regions`` option: None, or Regions given as Region, "MASK:PAINTING[:PMASK]" text or
    (mask, painting[, painting_mask]) tuples, one or a list of them."""
    if value is None:
        return None
    if isinstance(value, (Region, str)) or (isinstance(value, tuple) and value
                                            and not isinstance(value[0], (Region, tuple, str))):
        value = [value]
    regions = []
    for item in value:
        if isinstance(item, Region):
            regions.append(item)
        elif isinstance(item, str):
            regions.append(Region.parse(item))
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            regions.append(Region(*item))
        else:
            raise InputError(f"{name}: each region is a Region, 'MASK:PAINTING[:PAINTING_MASK]' "
                             f"or a (mask, painting[, painting_mask]) tuple, got {item!r}")
    if not regions:
        raise InputError(f"{name} is empty: give at least one region, or leave it out")
    return regions


def check_mask_shape(mask: ImageLike, what: str, of: str, shape: tuple[int, int]) -> None:
    """InputError unless ``mask`` (from its header, for a file) has the shape (H, W) of the image
    it covers, or a scaled copy's (one pixel of rounding allowed)."""
    hm, wm = source_shape(mask, what)
    h, w = shape
    if abs(hm * w - wm * h) > max(h, w, hm, wm):
        raise InputError(f"{what} is {wm}x{hm} px but {of} is {w}x{h}: a mask must have the shape "
                         f"of the picture it covers (or be a scaled copy of it)")


def _grey_of(im: Image.Image, what: str) -> np.ndarray:
    """A Pillow image as a greyscale (H, W) float64 array in [0, 1], or InputError for a mode
    that is not a mask: colour, or transparency."""
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            raise InputError(f"{what} has transparent pixels: a mask is read from its grey "
                             "levels, not its transparency; flatten it onto black first")
        im = im.convert("RGB") if im.mode.startswith("RGB") else im.convert("L")
    if im.mode == "RGB":
        rgb = np.asarray(im)
        if (rgb != rgb[:, :, :1]).any():
            raise InputError(f"{what} is a colour image: a mask is greyscale (white: in the "
                             "region, black: outside); save it in greyscale")
        return rgb[:, :, 0] / 255.0
    if im.mode not in ("1", "L", *WIDE_GREY_MODES):
        raise InputError(f"{what} is a {im.mode} image: a mask is greyscale (white: in the "
                         "region, black: outside); save it in greyscale")
    return grey_levels(im)


def _grey_array(a: Any, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 3 and (a == a[:, :, :1]).all():
        a = a[:, :, 0]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise InputError(f"the {what} array must have shape (H, W) (greyscale), got {a.shape}")
    if a.dtype == np.uint8:
        return a / 255.0
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise InputError(f"the {what} array must hold values in [0, 1] (or uint8)")
    return a


def read_mask(mask: ImageLike, what: str, shape: tuple[int, int]) -> np.ndarray:
    """A mask (a greyscale file, PIL image or (H, W) array) as float32 (H, W) in [0, 1],
    resized to ``shape`` by area averaging (soft edges stay soft)."""
    if isinstance(mask, (str, os.PathLike)):
        with decoded(mask, what) as im:
            grey = _grey_of(im, what)
    elif isinstance(mask, Image.Image):
        grey = _grey_of(mask, what)
    else:
        grey = _grey_array(mask, what)
    return resize_mask(grey, shape)


def resize_mask(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask resized to ``shape`` = (H, W): box filter (area averaging) when shrinking,
    bilinear when growing; values stay in [0, 1]."""
    shrink = shape[0] <= m.shape[0] and shape[1] <= m.shape[1]
    return resize(np.asarray(m)[None], shape=(shape[0], shape[1]),
                  resample=Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)[0]


def check_not_empty(mask: np.ndarray, what: str) -> None:
    if not mask.any():
        raise InputError(f"{what} is black everywhere: it selects nothing; white marks the "
                         "region (grey: partly)")


def describe_regions(regions: Sequence[Region]) -> str:
    return ";".join(r.describe() for r in regions)
