"""The look of a transfer in one fixed metric, whatever made the picture.

For a result (the PNG as written), its photograph and its painting:

- **content distance**: eq. 1 per position (divided by M_l) at conv4_2 against the photo
  resized to the result's shape;
- **E_l** (eq. 4) at conv1_1, conv2_1, conv3_1, conv4_1 and conv5_1 against the painting resized
  to the result's longest side, and the **style distance** sum_l E_l / 5 (eq. 5, w_l = 1/5);
- **grain**, **dots** and **lattice** (dots that ring in every direction, not strokes that ring
  only across themselves) as :mod:`bench.artefacts` measures them, over the photo's sky where
  it has one (``artefacts.sky_mask``), else over its flattest region (:func:`flat_mask`), each
  against the painting (grain 1, ``painting_dots`` and ``painting_lattice`` are the
  painting's own).

The network is the paper's (the normalised VGG-19 under average pooling), in float32 on the
CPU, whatever pooling, ratio, start or tool made the picture, so every picture is judged alike.

``python -m bench.look RESULT.png PHOTO PAINTING`` scores one picture, from anywhere.
``python -m bench.look --run`` renders the variants of :data:`VARIANTS` over the pairs (the
paintings of ``../shared/images`` with Tübingen and two of scikit-image's photos) and scores
each; ``--json`` keeps the rows, and a later run with the same ``--json`` skips the rows it has.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage

from .artefacts import _slug, detail, dots, grain, lattice, luminance, sky_mask
from .command import _fmt

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"
PHOTO = "the photo itself"  # the variant name of the photo's own row
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"
PHOTOS = {"tubingen": "tubingen.jpg", "rocket": "skimage:rocket.jpg",
          "astronaut": "skimage:astronaut.png"}
PAINTINGS = {"shipwreck": "shipwreck.jpg", "starry_night": "starry_night.jpg",
             "the_scream": "the_scream.jpg"}

# Today's default, the paper's setting, and the levers tried (docs/look.md). Each is keywords
# of gatys.transfer on top of size, iterations and seed.
VARIANTS: dict[str, dict[str, Any]] = {
    "0.2 default": dict(pool="max", ratio=7e-3, init="noise", scales=1),
    "paper (avg, 1e-3)": dict(pool="avg", ratio=1e-3, init="noise", scales=1),
    "max, 1e-3": dict(ratio=1e-3, init="noise", scales=1),
    "max, 1e-4": dict(ratio=1e-4, init="noise", scales=1),
    "max, photo start, 1e-3": dict(init="content", ratio=1e-3, scales=1),
    "max, photo start, 1e-4": dict(init="content", ratio=1e-4, scales=1),
    "max, photo start, 1e-5": dict(init="content", ratio=1e-5, scales=1),
    "avg, photo start, 1e-4": dict(pool="avg", init="content", ratio=1e-4, scales=1),
    "max, photo start, 1e-4, style x1.5": dict(init="content", ratio=1e-4, style_scale=1.5,
                                               scales=1),
    "max, photo start, 1e-4, tv 0.3": dict(init="content", ratio=1e-4, tv_weight=0.3, scales=1),
    "max, photo start, 1e-4, style x1.5, tv 0.3": dict(init="content", ratio=1e-4,
                                                       style_scale=1.5, tv_weight=0.3, scales=1),
    "max, photo start, 1e-4, 2 scales": dict(init="content", ratio=1e-4, scales=2),
    # today's default with fewer iterations per stage: whether it reaches the look sooner
    "max, photo start, 1e-4, 2 scales, 200 its": dict(init="content", ratio=1e-4, scales=2,
                                                      iterations=200),
    # three stages (a quarter, half, the size): whether wider strokes at the start ring less
    "max, photo start, 1e-4, 3 scales, 200 its": dict(init="content", ratio=1e-4, scales=3,
                                                      iterations=200),
    "max, photo start, 1e-4, w_l .1 .2 .2 .25 .25": dict(
        init="content", ratio=1e-4, scales=1, style_layer_weights=[0.1, 0.2, 0.2, 0.25, 0.25]),
    "max, photo start, 1e-4, w_l .04 .12 .24 .3 .3": dict(
        init="content", ratio=1e-4, scales=1, style_layer_weights=[0.04, 0.12, 0.24, 0.3, 0.3]),
}


def picture_path(name: str, images: Path) -> Path:
    """A photo or painting named in PHOTOS/PAINTINGS: in ``images``, or ``skimage:NAME`` among
    scikit-image's sample pictures."""
    if name.startswith("skimage:"):
        from gatys.run.demo import example_image
        return example_image(name.split(":", 1)[1])
    return images / name


def flat_mask(photo: np.ndarray, level: float = 2 / 255, margin: float = 0.03) -> np.ndarray:
    """The flattest part of a photograph (H, W, 3): where the rms of its luminance's detail
    (minus a blur of sigma 2 px), averaged over sigma 4 px, is under ``level`` (2 grey levels),
    in pieces of at least 1 % of the picture, shrunk by ``margin`` of the longest side."""
    energy = ndimage.gaussian_filter(detail(luminance(photo), 2.0) ** 2, 4.0)
    flat = ndimage.binary_opening(energy < level ** 2, iterations=2)
    labels, n = ndimage.label(flat)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.flatnonzero(sizes >= 0.01 * flat.size)
    flat = np.isin(labels, keep[keep > 0])
    shrink = round(margin * max(flat.shape))
    return ndimage.binary_erosion(flat, iterations=shrink, border_value=1) if shrink else flat


def region_of(photo: np.ndarray) -> tuple[str, np.ndarray]:
    """Where grain and dots are measured: the sky where it covers 5 % of the photo, else its
    flattest region (either may be empty)."""
    sky = sky_mask(photo)
    return ("sky", sky) if sky.mean() >= 0.05 else ("flat", flat_mask(photo))


def score(result: np.ndarray, photo: np.ndarray, painting: np.ndarray) -> dict[str, Any]:
    """The fixed-metric figures of ``result`` (3, H, W) against ``photo`` and ``painting``
    (3, h, w each, any size; RGB in [0, 1]), as a dict (see the module's docstring)."""
    from gatys.io.images import resize
    from gatys.model.objective import paper_objective
    from gatys.run.loading import load_network

    shape = result.shape[1:]
    photo = resize(photo, shape=shape)
    painting = resize(painting, size=max(shape))
    net = load_network(pool="avg", device="cpu")
    b = net.backend
    objective = paper_objective(net, b.asarray(photo), b.asarray(painting), alpha=1.0,
                                beta=1.0, content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS)
    ev = objective.evaluate(b.asarray(np.ascontiguousarray(result, dtype=np.float32)))
    E = {name: ev.layers[f"style:{name}"] for name in STYLE_LAYERS}
    row: dict[str, Any] = {"content": ev.layers[f"content:{CONTENT_LAYER}"],
                           "style": sum(E.values()) / len(E), **{f"E_{k}": v for k, v in E.items()}}
    image, photo_hwc, painting_hwc = (a.transpose(1, 2, 0) for a in (result, photo, painting))
    name, region = region_of(photo_hwc)
    whole = np.ones(painting_hwc.shape[:2], bool)
    row.update(region=name, region_share=float(region.mean()),
               painting_dots=dots(painting_hwc, whole, painting_hwc),
               painting_lattice=lattice(painting_hwc, whole, painting_hwc))
    if region.any():
        row.update(grain=grain(image, region, painting_hwc),
                   dots=dots(image, region, painting_hwc),
                   lattice=lattice(image, region, painting_hwc))
    else:
        row.update(grain=None, dots=None, lattice=None)
    return row


def score_files(result: Path, photo: Path, painting: Path) -> dict[str, Any]:
    from gatys.io.images import load_image
    return score(load_image(result), load_image(photo), load_image(painting))


def run(pairs: Sequence[tuple[str, str]], variants: dict[str, dict[str, Any]], size: int,
        iterations: int, seed: int, images: Path, keep: Path, rows: list[dict[str, Any]],
        save: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    """Render and score every variant on every pair, skipping the rows already in ``rows``;
    ``save(rows)`` after each."""
    import gatys

    from .harness import machine

    cpu = machine()["cpu"]  # per row: a resumed run may be on another machine
    done = {(r["photo"], r["painting"], r["variant"], r["size"], r.get("iterations"), r.get("seed"))
            for r in rows}
    for photo, painting in pairs:
        p, a = picture_path(PHOTOS[photo], images), picture_path(PAINTINGS[painting], images)
        for name, kwargs in variants.items():
            its = kwargs.get("iterations", iterations)  # a variant may set its own
            key = (photo, painting, name, size, its, seed)
            if key in done:
                continue
            out = keep / f"{size}_{photo}_{painting}_{_slug(name)}.png"
            start = time.perf_counter()
            result = gatys.transfer(p, a, out, **{"size": size, "iterations": iterations,
                                                  "seed": seed, "progress": False, **kwargs})
            seconds = time.perf_counter() - start
            row = {"photo": photo, "painting": painting, "variant": name, "size": size,
                   "iterations": its, "seed": seed, "options": kwargs,
                   "seconds": seconds, "iterations_run": len(result.history), "cpu": cpu,
                   "file": out.name, **score_files(out, p, a)}
            rows.append(row)
            save(rows)
            print(_line(row), flush=True)
    return rows


def rescore(rows: list[dict[str, Any]], keep: Path, images: Path) -> list[str]:
    """Every rendered row of ``rows`` scored again, in place, from its picture in ``keep`` (after
    the metric changed), its run's own fields kept; returns the pictures not found (their rows
    are left as they were)."""
    missing = []
    for row in rows:
        if "file" not in row:
            continue
        picture = keep / row["file"]
        if not picture.is_file():
            missing.append(str(picture))
            continue
        row.update(score_files(picture, picture_path(PHOTOS[row["photo"]], images),
                               picture_path(PAINTINGS[row["painting"]], images)))
        print(_line(row), flush=True)
    return missing


def photo_rows(pairs: Sequence[tuple[str, str]], size: int, images: Path) -> list[dict[str, Any]]:
    """The photo itself scored against each painting: where every run's distances start from."""
    from gatys.io.images import load_image

    rows = []
    for photo, painting in pairs:
        p, a = picture_path(PHOTOS[photo], images), picture_path(PAINTINGS[painting], images)
        rows.append({"photo": photo, "painting": painting, "variant": PHOTO,
                     "size": size, **score(load_image(p, size=size), load_image(p),
                                           load_image(a))})
    return rows


HEADER = (f"{'photo':<10} {'painting':<12} {'variant':<34} {'content':>8} {'style':>8} "
          f"{'E1_1':>7} {'E4_1':>7} {'E5_1':>7} {'grain':>6} {'dots':>7} {'lattice':>7} "
          f"{'s':>5}")


def _line(r: dict[str, Any]) -> str:
    return (f"{r.get('photo', '-'):<10} {r.get('painting', '-'):<12} {r['variant']:<34} "
            f"{r['content']:8.3g} {r['style']:8.4f} {r['E_conv1_1']:7.4f} {r['E_conv4_1']:7.4f} "
            f"{r['E_conv5_1']:7.4f} {_fmt(r['grain'], '6.3f')} {_fmt(r['dots'], '7.4f')} "
            f"{_fmt(r.get('lattice'), '7.4f')} {_fmt(r.get('seconds'), '5.0f')}")


def _pairs(photos: str, paintings: str) -> list[tuple[str, str]]:
    return [(p, a) for p in photos.split(",") for a in paintings.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.look", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path, metavar="RESULT PHOTO PAINTING",
                   help="score one picture (three files)")
    p.add_argument("--run", action="store_true", help="render and score the variants")
    p.add_argument("--rescore", action="store_true",
                   help="score the rows of --json again from their pictures in --keep")
    p.add_argument("--images", type=Path, default=SHARED, help="folder of the paper's pictures")
    p.add_argument("--photos", default=",".join(PHOTOS), help="comma-separated, of %(default)s")
    p.add_argument("--paintings", default=",".join(PAINTINGS),
                   help="comma-separated, of %(default)s")
    p.add_argument("--variants", default=None, help="names separated by ; (default: all)")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, default=Path("look"), metavar="DIR",
                   help="where the pictures go (default %(default)s)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    a = p.parse_args(argv)
    if a.rescore and (a.run or a.files or a.json is None or not a.json.is_file()):
        p.error("--rescore takes the rows of an existing --json and their --keep folder alone")
    if not a.run and not a.rescore and len(a.files) != 3:
        p.error("give RESULT.png PHOTO PAINTING, or --run, or --rescore")
    for f in a.files:
        if not f.is_file():
            p.error(f"{f} not found")
    names = list(VARIANTS) if a.variants is None else a.variants.split(";")
    unknown = set(a.photos.split(",")) - set(PHOTOS) | set(a.paintings.split(",")) - set(PAINTINGS)
    if unknown:
        p.error(f"unknown photo or painting {sorted(unknown)}: use {list(PHOTOS)} and "
                f"{list(PAINTINGS)}")
    if set(names) - set(VARIANTS):
        p.error(f"unknown variant {sorted(set(names) - set(VARIANTS))}: use {list(VARIANTS)}")
    from gatys.errors import GatysError, InputError

    print(HEADER)
    try:
        if not a.run and not a.rescore:
            row = {"variant": a.files[0].name, **score_files(*a.files)}
            print(_line(row))
            if a.json is not None:
                _write_json(a.json, row)
            return 0
        rows = _rows_of(a.json)
        if a.rescore:
            for photo, painting, size in dict.fromkeys(
                    (r["photo"], r["painting"], r["size"]) for r in rows):
                _put(rows, photo_rows([(photo, painting)], size, a.images)[0])
            missing = rescore(rows, a.keep, a.images)
            _write_json(a.json, {"rows": rows})
            if missing:
                print(f"{p.prog}: not found, left as they were: {', '.join(missing)}",
                      file=sys.stderr)
                return 1
            return 0
        for row in photo_rows(_pairs(a.photos, a.paintings), a.size, a.images):
            print(_line(row), flush=True)
            _put(rows, row)
        a.keep.mkdir(parents=True, exist_ok=True)

        def save(rows: list[dict[str, Any]]) -> None:
            if a.json is not None:
                _write_json(a.json, {"rows": rows})

        run(_pairs(a.photos, a.paintings), {n: VARIANTS[n] for n in names}, a.size,
            a.iterations, a.seed, a.images, a.keep, rows, save)
    except GatysError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, InputError) else 1
    return 0


def _rows_of(path: Path | None) -> list[dict[str, Any]]:
    """The rows a previous run kept in ``path`` (none if it is not there yet)."""
    from gatys.errors import InputError

    if path is None or not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())["rows"]
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
        return rows
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise InputError(f"{path} is not a bench.look --json file ({e or type(e).__name__}): "
                         "give another --json") from None


def _put(rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """``row`` in place of the row of the same photo, painting, size and variant, or last."""
    key = ("photo", "painting", "size", "variant")
    same = [i for i, r in enumerate(rows) if all(r.get(k) == row[k] for k in key)]
    if same:
        rows[same[0]] = row
    else:
        rows.append(row)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    from gatys.io.atomic import atomic_write_bytes
    atomic_write_bytes(path, json.dumps(value, indent=1).encode())


if __name__ == "__main__":
    sys.exit(main())
