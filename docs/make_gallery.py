"""Render the README's gallery from ../shared/images (run from the repository root).

    python docs/make_gallery.py [--images ../shared/images] [--size 256] [--iterations 200]

Writes docs/gallery_blend.jpg (Tübingen with The Starry Night and The Scream blended 1:0,
0.7:0.3, 0.3:0.7, 0:1) and docs/gallery_colours.jpg (plain, luminance-only, histogram-matched),
and prints each blend result's style loss against either painting alone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import gatys
from gatys.run.api import load_network
from gatys.io.images import load_image
from gatys.model.losses import LossWeights
from gatys.model.objective import Objective, style_targets

sys.path.insert(0, str(Path(__file__).parent))
from panel import panel  # noqa: E402

BLENDS = ((1, 0), (0.7, 0.3), (0.3, 0.7), (0, 1))


def style_loss_against(image_hwc: np.ndarray, painting: Path, size: int) -> float:
    net = load_network()
    layers = list(gatys.DEFAULT_STYLE_LAYERS)
    A = style_targets(net, load_image(painting, size=size), layers)
    objective = Objective(net, LossWeights(0.0, 1.0, {}, {n: 1 / len(layers) for n in layers}), {}, A)
    return objective.evaluate(np.ascontiguousarray(image_hwc.transpose(2, 0, 1))).style


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="../shared/images")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--work", default="/tmp/gatys-gallery")
    a = ap.parse_args()
    images, work = Path(a.images), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    photo, starry, scream = images / "tubingen.jpg", images / "starry_night.jpg", images / "the_scream.jpg"
    common = dict(size=a.size, iterations=a.iterations, seed=0, progress=True)

    blended = []
    for b in BLENDS:
        out = work / f"blend_{b[0]}_{b[1]}.png"
        r = gatys.transfer(photo, [starry, scream], out, style_blend=b, **common)
        blended.append(out)
        print(f"blend {b}: style loss vs Starry Night {style_loss_against(r.image, starry, a.size):.4g}, "
              f"vs The Scream {style_loss_against(r.image, scream, a.size):.4g}")
    panel([str(starry), *map(str, blended), str(scream)], "docs/gallery_blend.jpg", 192)

    coloured = []
    for mode in (None, "luminance", "histogram"):
        out = work / f"colours_{mode}.png"
        gatys.transfer(photo, starry, out, preserve_colors=mode, **common)
        coloured.append(out)
    panel([str(photo), *map(str, coloured)], "docs/gallery_colours.jpg", 192)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
