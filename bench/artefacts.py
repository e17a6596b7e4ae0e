"""Measures of two defects of a transfer over a flat region of the photo (Tübingen's sky):
grain and a lattice of dots.

- **Grain**: the high-frequency energy (luminance minus its Gaussian blur, sigma 1 px) per pixel
  of the result inside the flat region, relative to that of the painting itself (at the size
  the transfer used it). Pixel noise left from the start raises it; 1 is "as busy as the
  painting's own brushwork".
- **Dots**: how strongly the region's detail (luminance minus its blur, sigma 4 px) rings: the
  depth of the first negative lobe of its autocovariance within 6 px, over the painting's own
  detail energy per pixel. Each dot has a halo of the opposite sign, so a field of dots is
  anti-correlated with itself about 2 px away; brush strokes (correlated along their length),
  swirls and noise are not, and faint texture rings faintly. No strict periodicity is needed.
  The same lobe normalised by the detail's own energy (not the painting's) was tried first: it
  ignored how visible the ringing is, and at 512 px scored the faint texture of a max-pooling
  sky like a dotted one. Other measures tried that did not separate the dotted result from the
  max-pooling one are not kept: the share of the detail locked to the 8- or 16-px pooling grid
  (the dots
  are not tied to its phase), the mean determinant of the Hessian, the kurtosis of a band-pass
  (a nearly flat sky with a few features is as heavy-tailed as the dots), counts of round
  band-pass peaks, and the coherence of the structure tensor (it moved, 0.38 against 0.44, but
  less than between seeds of the same run could).

- **Lattice** (:func:`lattice`, in ``bench.look``'s rows): the dots measure made to tell a dot
  from a stroke. A dot's halo rings in every direction, a stroke only across itself, so in
  small windows (where strokes keep one orientation) the autocovariance is read along eight
  directions and a window counts only the ring of its weakest direction. The dots measure
  above counts any ringing a few pixels across, painted strokes included.

``python -m bench.artefacts`` runs the transfers it compares (gatys 0.1's defaults, the new
start alone, the new defaults; ``--locate`` adds, at the smallest size, the runs that locate
the dots) on the paper's
Tübingen photograph and The Starry Night from ``../shared/images``, prints a table, and with
``--json`` writes the figures; ``--keep DIR`` keeps the pictures.
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

LUMA = np.array([0.299, 0.587, 0.114])


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] to (H, W) luma (ITU-R 601)."""
    return np.asarray(image, dtype=np.float64) @ LUMA


def detail(y: np.ndarray, sigma: float) -> np.ndarray:
    return y - ndimage.gaussian_filter(y, sigma, mode="reflect")


def sky_mask(photo: np.ndarray, margin: float = 0.03) -> np.ndarray:
    """The flat sky of a photograph (H, W, 3): blue, bright pixels connected to the top edge,
    holes filled, then shrunk by ``margin`` of the longest side so that no edge of a roof or
    a branch falls inside."""
    r, b = photo[..., 0], photo[..., 2]
    sky = (b > r + 0.15) & (b > 0.45)
    sky = ndimage.binary_opening(sky, iterations=2)
    labels, _ = ndimage.label(sky)
    top = np.unique(labels[0][labels[0] > 0])
    sky = ndimage.binary_fill_holes(np.isin(labels, top))
    shrink = round(margin * max(sky.shape))
    return ndimage.binary_erosion(sky, iterations=shrink, border_value=1) if shrink else sky


def grain(image: np.ndarray, region: np.ndarray, painting: np.ndarray) -> float:
    """High-frequency energy per pixel of ``image`` in ``region``, over the painting's."""
    e_image = float((detail(luminance(image), 1.0)[region] ** 2).mean())
    e_painting = float((detail(luminance(painting), 1.0) ** 2).mean())
    return e_image / e_painting


def _ringing_reference(painting: np.ndarray) -> float:
    """What :func:`dots` and :func:`lattice` are measured against: the painting's detail
    (sigma 4 px) energy per pixel."""
    return float((detail(luminance(painting), 4.0) ** 2).mean())


def dots(image: np.ndarray, region: np.ndarray, painting: np.ndarray, reach: int = 6) -> float:
    """How strongly the region's detail (luminance minus its blur, sigma 4 px) rings like a
    field of dots: the depth of the first negative lobe of its autocovariance within ``reach``
    px, over the detail energy per pixel of the whole painting. A dot with a dark (or light)
    halo, repeated at a spacing, makes the detail anti-correlated a couple of pixels away;
    strokes, swirls and noise do not (a stroke is correlated along itself), and faint texture
    rings faintly. 0 means no ring at all."""
    d = np.where(region, detail(luminance(image), 4.0), 0.0)
    d -= region * d[region].mean()
    shape = (2 * d.shape[0], 2 * d.shape[1])  # zero padding: no wrap-around
    ac = np.fft.irfft2(np.abs(np.fft.rfft2(d, shape)) ** 2, shape)
    pairs = np.fft.irfft2(np.abs(np.fft.rfft2(region.astype(float), shape)) ** 2, shape)
    ac = ac / np.maximum(pairs, 1)  # the mean over the pairs of region pixels at each offset
    dy = np.minimum(np.arange(shape[0]), shape[0] - np.arange(shape[0]))[:, None]
    dx = np.minimum(np.arange(shape[1]), shape[1] - np.arange(shape[1]))[None, :]
    r = np.rint(np.hypot(dy, dx)).astype(int)
    near = r <= reach
    radial = np.bincount(r[near], weights=ac[near]) / np.bincount(r[near])
    return float(max(0.0, -radial[1:].min()) / _ringing_reference(painting))


def lattice(image: np.ndarray, region: np.ndarray, painting: np.ndarray, reach: int = 6,
            window: int = 24, directions: int = 8) -> float:
    """:func:`dots` that tells a dot from a stroke: a dot's halo rings in every direction, a
    stroke's only across it (along it the detail stays correlated). In windows of ``window`` px
    inside the region (half-overlapping), the autocovariance of the detail (sigma 4 px) is read
    along ``directions`` rays up to ``reach`` px; a window's ring is the shallowest of its rays'
    negative lobes, and the measure is the windows' mean ring over the painting's detail energy
    per pixel. Windows keep the strokes' local orientation, which a whole region's average would
    mix into a ring in every direction."""
    d = np.where(region, detail(luminance(image), 4.0), 0.0)
    step = window // 2
    starts = [(y, x) for y in range(0, d.shape[0] - window + 1, step)
              for x in range(0, d.shape[1] - window + 1, step)
              if region[y : y + window, x : x + window].all()]
    if not starts:
        return 0.0
    tiles = np.stack([d[y : y + window, x : x + window] for y, x in starts])
    tiles -= tiles.mean(axis=(1, 2), keepdims=True)
    shape = (2 * window, 2 * window)  # zero padding: no wrap-around
    ac = np.fft.irfft2(np.abs(np.fft.rfft2(tiles, shape)) ** 2, shape)
    theta = np.pi * np.arange(directions) / directions
    r = np.arange(1, reach + 1)
    dy = np.rint(np.outer(np.sin(theta), r)).astype(int)  # (directions, reach) offsets
    dx = np.rint(np.outer(np.cos(theta), r)).astype(int)
    rays = ac[:, dy % shape[0], dx % shape[1]] / ((window - abs(dy)) * (window - abs(dx)))
    depth = np.maximum(0.0, -rays.min(axis=2))  # (windows, directions)
    return float(depth.min(axis=1).mean() / _ringing_reference(painting))


# What the table compares: gatys 0.1's defaults, the new start alone (same objective, so the
# losses compare), and gatys 0.2's defaults ("new" when this bench was made); ``--locate``
# adds the runs that place the dots.
VARIANTS: dict[str, dict[str, Any]] = {
    "0.1 defaults (uniform start, avg pool, 1e-3)": dict(init="uniform", pool="avg", ratio=1e-3,
                                                         scales=1),
    "new start, avg pool, 1e-3": dict(pool="avg", ratio=1e-3, init="noise", scales=1),
    "new defaults": dict(pool="max", ratio=7e-3, init="noise", scales=1),  # gatys 0.2's
}
LOCATE: dict[str, dict[str, Any]] = {
    "new start, avg, without conv5_1": dict(pool="avg", ratio=1e-3, init="noise", scales=1,
                                            style_layers="conv1_1,conv2_1,conv3_1,conv4_1"),
    "new start, avg, conv1_1..conv3_1": dict(pool="avg", ratio=1e-3, init="noise", scales=1,
                                             style_layers="conv1_1,conv2_1,conv3_1"),
    "new start, max pool, 1e-3": dict(pool="max", ratio=1e-3, init="noise", scales=1),
}


@functools.lru_cache(maxsize=4)
def pictures(images: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photograph and the painting at ``size``, (3, H, W), and the photo's sky mask."""
    from gatys.io.images import load_image

    photo = load_image(images / "tubingen.jpg", size=size)
    painting = load_image(images / "starry_night.jpg", size=size)
    return photo, painting, sky_mask(photo.transpose(1, 2, 0))


def measure(image: np.ndarray, sky: np.ndarray, painting: np.ndarray) -> dict[str, float]:
    """Grain and dots of ``image`` (H, W, 3) over ``sky``, against ``painting`` (3, H, W)."""
    painting = painting.transpose(1, 2, 0)
    return {"grain": grain(image, sky, painting), "dots": dots(image, sky, painting)}


def painting_row(images: Path, size: int) -> dict[str, Any]:
    painting = pictures(images, size)[1].transpose(1, 2, 0)
    return {"variant": "the painting itself (whole)", "size": size, "grain": 1.0,
            "dots": dots(painting, np.ones(painting.shape[:2], bool), painting)}


def run(images: Path, sizes: Sequence[int], iterations: int, seed: int, locate: bool,
        keep: Path | None) -> list[dict[str, Any]]:
    import gatys

    rows = []
    for size in sizes:
        _, painting, sky = pictures(images, size)
        rows.append(painting_row(images, size))
        print(_line(rows[-1]), flush=True)
        extra = LOCATE if locate and size == min(sizes) else {}  # at the smallest size only
        for name, kwargs in {**VARIANTS, **extra}.items():
            out = None if keep is None else keep / f"{size}_{_slug(name)}.png"
            start = time.perf_counter()
            result = gatys.transfer(images / "tubingen.jpg", images / "starry_night.jpg", out,
                                    size=size, iterations=iterations, seed=seed, **kwargs)
            last = result.history[-1]
            rows.append({"variant": name, "size": size, "options": kwargs,
                         **measure(result.image, sky, painting),
                         **left_of_start(result, images, size),
                         "total": last["total"], "content": last["content"],
                         "style": last["style"], "iterations": len(result.history),
                         "seconds": time.perf_counter() - start,
                         "pool": result.parameters["pool"], "ratio": result.parameters["ratio"],
                         "init": result.parameters["init"],
                         "sky_pixels": int(sky.sum())})
            print(_line(rows[-1]), flush=True)
    return rows


def left_of_start(result: Any, images: Path, size: int) -> dict[str, float]:
    """The share of the start's content and style losses left at the end, each under the run's
    own objective (its pooling): how far the run moved towards the photo and the painting,
    comparable across poolings where the losses themselves are not."""
    from gatys.model.objective import paper_objective
    from gatys.run.api import load_network
    from gatys.run.synthesis import initial_image

    p = result.parameters
    photo, painting, _ = pictures(images, size)
    net = load_network(pool=p["pool"], device="cpu")
    objective = paper_objective(net, net.backend.asarray(photo), net.backend.asarray(painting))
    x0 = initial_image(p["init"], photo.shape[1:], p["seed"], {"content": photo},
                       p.get("noise_std", 0.0), p.get("noise_mean", "image"))
    start, end = objective.evaluate(x0), result.history[-1]
    return {"content_left": end["content"] / start.content,
            "style_left": end["style"] / start.style}


def remeasure(rows: list[dict[str, Any]], images: Path, keep: Path) -> list[dict[str, Any]]:
    """``rows`` (a previous run's JSON) with grain and dots measured again on the pictures that
    run kept in ``keep``, the losses and times as they were."""
    from gatys.io.images import load_image

    for row in rows:
        size = row["size"]
        if "total" not in row:  # the painting's own row
            row.update(painting_row(images, size))
        else:
            _, painting, sky = pictures(images, size)
            image = load_image(keep / f"{size}_{_slug(row['variant'])}.png").transpose(1, 2, 0)
            row.update(measure(image, sky, painting))
        print(_line(row), flush=True)
    return rows


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _line(r: dict[str, Any]) -> str:
    losses = (f"{r['total']:10.4g} {r['content_left']:8.3f} {r['style_left']:8.3f} "
              f"{r['seconds']:7.0f}" if "total" in r else "")
    return f"{r['variant']:<46} {r['size']:5d} {r['grain']:7.3f} {r['dots']:7.4f} {losses}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.artefacts",
                                description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[1].parent
                   / "shared" / "images", help="folder with tubingen.jpg and starry_night.jpg")
    p.add_argument("--sizes", default="256,512", help="comma-separated (default %(default)s)")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--locate", action="store_true",
                   help="also the runs that locate the dots (at the smallest size)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep the pictures")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    p.add_argument("--remeasure", type=Path, default=None, metavar="RUN.json",
                   help="measure again the pictures a run kept (--keep DIR) instead of running "
                        "the transfers; losses and times stay the run's")
    a = p.parse_args(argv)
    for name in ("tubingen.jpg", "starry_night.jpg"):
        if not (a.images / name).is_file():
            p.error(f"{a.images / name} not found: point --images at ../shared/images")
    if a.keep is not None:
        a.keep.mkdir(parents=True, exist_ok=True)
    from .harness import machine
    print(f"{'variant':<46} {'size':>5} {'grain':>7} {'dots':>7} {'total':>10} "
          f"{'content left':>8} {'style left':>8} {'seconds':>7}")
    if a.remeasure is not None:
        if a.keep is None:
            p.error("--remeasure needs --keep DIR, the folder of the run's pictures")
        report = json.loads(a.remeasure.read_text())
        report["rows"] = remeasure(report["rows"], a.images, a.keep)
        report["remeasured_with"] = machine()
    else:
        rows = run(a.images, [int(s) for s in a.sizes.split(",")], a.iterations, a.seed,
                   a.locate, a.keep)
        report = {"machine": machine(), "iterations": a.iterations, "seed": a.seed,
                  "rows": rows}
    if a.json is not None:
        from gatys.io.atomic import atomic_write_bytes
        atomic_write_bytes(a.json, json.dumps(report, indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
