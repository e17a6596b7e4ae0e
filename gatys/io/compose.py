"""Lay out a figure: a grid of equally sized panels with labels, and insets, on white."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GAP = 8  # pixels between panels


@dataclass
class Panel:
    """One picture of the grid: (H, W, 3) float in [0, 1] (None leaves the place blank), a
    label under it and an optional inset drawn into its bottom-left corner."""

    image: np.ndarray | None
    label: str = ""
    inset: np.ndarray | None = None


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _picture(a: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


def _fit(im: Image.Image, box: tuple[int, int]) -> Image.Image:
    """``im`` scaled to fit ``box`` (W, H) with its aspect ratio kept."""
    s = min(box[0] / im.width, box[1] / im.height)
    size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return round(right - left), round(bottom - top)


def compose(panels: list[list[Panel]], row_labels: list[str] | None = None,
            column_labels: list[str] | None = None, tile: tuple[int, int] | None = None,
            inset_fraction: float = 0.3) -> Image.Image:
    """The grid ``panels[row][column]``: every picture centred in a tile of one size (W, H;
    default the largest picture), its label under it, ``row_labels`` left of the rows and
    ``column_labels`` above the columns."""
    rows, columns = len(panels), max(len(r) for r in panels)
    pictures = [[_picture(p.image) if p.image is not None else None for p in r] for r in panels]
    if tile is None:
        tile = (max(im.width for r in pictures for im in r if im is not None),
                max(im.height for r in pictures for im in r if im is not None))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = [p.label for r in panels for p in r] + list(column_labels or [])
    points = max(11, tile[1] // 14)
    font = _font(points)
    while points > 7 and max(_text_size(probe, t, font)[0] for t in texts) > tile[0] - 4:
        points -= 1  # labels must not run into the next panel
        font = _font(points)
    line = _text_size(probe, "Ag", font)[1] + 6
    has_labels = any(p.label for r in panels for p in r)
    label_h = line if has_labels else 0
    left = (max(_text_size(probe, t, font)[0] for t in row_labels) + 2 * GAP) if row_labels else 0
    top = line + GAP // 2 if column_labels else 0
    cell_w, cell_h = tile[0] + GAP, tile[1] + label_h + GAP
    canvas = Image.new("RGB", (left + columns * cell_w + GAP, top + rows * cell_h + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(panels):
        y0 = top + GAP + i * cell_h
        if row_labels:
            w, h = _text_size(draw, row_labels[i], font)
            draw.text((GAP, y0 + (tile[1] - h) // 2), row_labels[i], fill="black", font=font)
        for j, panel in enumerate(row):
            x0 = left + GAP + j * cell_w
            im = pictures[i][j]
            if im is not None:
                im = _fit(im, tile)
                ox, oy = x0 + (tile[0] - im.width) // 2, y0 + (tile[1] - im.height) // 2
                canvas.paste(im, (ox, oy))
                if panel.inset is not None:
                    _paste_inset(canvas, _picture(panel.inset), (ox, oy, im.width, im.height),
                                 inset_fraction)
            if panel.label:
                w, _ = _text_size(draw, panel.label, font)
                draw.text((x0 + (tile[0] - w) // 2, y0 + tile[1] + 3), panel.label,
                          fill="black", font=font)
    for j, text in enumerate(column_labels or []):
        w, _ = _text_size(draw, text, font)
        draw.text((left + GAP + j * cell_w + (tile[0] - w) // 2, GAP // 2), text, fill="black",
                  font=font)
    return canvas


def _paste_inset(canvas: Image.Image, inset: Image.Image, box: tuple[int, int, int, int],
                 fraction: float) -> None:
    """``inset`` in the bottom-left corner of ``box`` (x, y, W, H), at most ``fraction`` of its
    width or height, with a white frame (as the paintings in the paper's Fig. 2)."""
    x, y, w, h = box
    small = _fit(inset, (max(1, round(w * fraction)), max(1, round(h * fraction))))
    frame = max(1, min(w, h) // 100)
    framed = Image.new("RGB", (small.width + 2 * frame, small.height + 2 * frame), "white")
    framed.paste(small, (frame, frame))
    canvas.paste(framed, (x, y + h - framed.height))
