"""Render the README's spatial-control example from ../shared/images (run from the repository
root): Tübingen's sky in the style of The Starry Night, the town in the style of The Scream.

    python docs/make_regions.py [--images ../shared/images] [--size 384] [--iterations 300]

The sky mask is made from the photograph (bench.artefacts.sky_mask, without its margin, edges
softened over 2 px); the town's is its complement. Writes docs/regions.jpg (photograph, sky
mask, result) and prints each region's style loss against either painting.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import gatys  # noqa: E402
from bench.artefacts import sky_mask  # noqa: E402
from gatys.model.guidance import GuidedStyle  # noqa: E402
from gatys.run.regions import read_mask  # noqa: E402
from gatys.io.images import load_image  # noqa: E402
from gatys.model.losses import LossWeights  # noqa: E402
from gatys.model.objective import Objective, style_targets  # noqa: E402
from panel import panel  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="../shared/images")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--work", default="/tmp/gatys-regions")
    a = ap.parse_args()
    images, work = Path(a.images), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    photo, starry, scream = (images / n for n in ("tubingen.jpg", "starry_night.jpg",
                                                  "the_scream.jpg"))
    full = load_image(photo).transpose(1, 2, 0)
    sky = ndimage.gaussian_filter(sky_mask(full, margin=0).astype(np.float64), 2.0)
    masks = {"sky": work / "sky.png", "town": work / "town.png"}
    Image.fromarray(np.round(sky * 255).astype(np.uint8), "L").save(masks["sky"])
    Image.fromarray(np.round((1 - sky) * 255).astype(np.uint8), "L").save(masks["town"])
    out = work / "regions.png"
    result = gatys.transfer(photo, output=out, regions=[(masks["sky"], starry),
                                                        (masks["town"], scream)],
                            size=a.size, iterations=a.iterations, seed=0, progress=True)
    print(f"{len(result.history)} iterations in {result.seconds:.0f} s")
    net = gatys.load_network(pool=result.parameters["pool"])
    layers = list(gatys.DEFAULT_STYLE_LAYERS)
    w = LossWeights(0.0, 1.0, {}, {n: 1 / len(layers) for n in layers})
    x = np.ascontiguousarray(result.image.transpose(2, 0, 1))
    for region in ("sky", "town"):
        m = read_mask(masks[region], region, x.shape[1:])
        for name, painting in (("The Starry Night", starry), ("The Scream", scream)):
            A = style_targets(net, load_image(painting, size=a.size), layers)
            E = Objective(net, w, {}, {}, regions=[GuidedStyle(m, A)]).evaluate(x).style
            print(f"{region}: style loss against {name} {E:.4g}")
    panel([str(photo), str(masks["sky"]), str(out)], "docs/regions.jpg", a.size * 3 // 4)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
