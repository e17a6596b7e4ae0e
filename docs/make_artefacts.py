"""Compose docs/artefacts.jpg, the before/after figure of docs/artefacts.md, from the pictures
that ``python -m bench.artefacts --keep DIR`` kept (run from the repository root).

    python docs/make_artefacts.py DIR [--size 512]

Top row: gatys 0.1's defaults, the new start alone (average pooling), the new defaults. Bottom
row: the same skies, a 320x130 px crop at 1.5 times the size, where the grain and the dots show.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.artefacts import VARIANTS, _slug  # noqa: E402
from gatys.io.compose import Panel, compose  # noqa: E402
from gatys.io.images import save_picture  # noqa: E402

LABELS = ("gatys 0.1: uniform start, avg pool", "small start, avg pool", "now: small start, max pool")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", default="docs/artefacts.jpg")
    a = ap.parse_args()
    whole, crops = [], []
    for name, label in zip(VARIANTS, LABELS):
        with Image.open(a.folder / f"{a.size}_{_slug(name)}.png") as im:
            im = im.convert("RGB")
            s = a.size / 512
            box = tuple(round(v * s) for v in (80, 0, 400, 130))
            crop = im.crop(box).resize((480, 195), Image.NEAREST)
            whole.append(Panel(np.asarray(im.resize((crop.width, round(crop.width * im.height
                                                                        / im.width)),
                                                    Image.LANCZOS)) / 255.0, label))
            crops.append(Panel(np.asarray(crop) / 255.0))
    # Two grids, each with its own tile size, stacked.
    top, bottom = compose([whole]), compose([crops])
    picture = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height),
                        "white")
    picture.paste(top, (0, 0))
    picture.paste(bottom, (0, top.height))
    save_picture(a.out, picture, jpeg_quality=85)
    print(f"wrote {a.out} ({picture.width}x{picture.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
