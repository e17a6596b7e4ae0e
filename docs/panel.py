"""Compose the README's picture: photograph | painting | result, side by side, as a JPEG.

    python docs/panel.py PHOTO PAINTING RESULT OUT.jpg [--height 256]
"""
from __future__ import annotations

import argparse

from PIL import Image, ImageOps


def panel(paths: list[str], out: str, height: int) -> None:
    tiles = []
    for p in paths:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            tiles.append(im.resize((round(im.width * height / im.height), height), Image.LANCZOS))
    gap = 6
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width + gap
    canvas.save(out, quality=88, optimize=True, progressive=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("out")
    ap.add_argument("--height", type=int, default=256)
    a = ap.parse_args()
    panel(a.images, a.out, a.height)
