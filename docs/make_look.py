"""Draw docs/look.md's plot and print its table from ``python -m bench.look --run --json`` files.

    python docs/make_look.py OUT.png RUN.json [RUN.json ...] [--pictures DIR [--sheet OUT.jpg]
                             [--shown "A;B"]] [--targets VARIANT]

One panel per pair (photo, painting): each variant a point at its content distance (x) and
style distance (y), the photo itself as a line (its style distance; its content distance is 0).
The table (Markdown, on stdout) has a row per variant and pair; ``--targets`` adds the issue's
targets for one variant, per pair.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, from the repository


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """The rows of every file, grouped by pair and size in the order first met, the photo's
    own row first in each group."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows += json.loads(path.read_text())["rows"]
    groups = list(dict.fromkeys(_group(r) for r in rows))
    return sorted(rows, key=lambda r: (groups.index(_group(r)),
                                       r["variant"] != "the photo itself"))


def _group(r: dict[str, Any]) -> tuple[str, str, int]:
    return r["photo"], r["painting"], r["size"]


def table(rows: list[dict[str, Any]]) -> str:
    from bench.look import _fmt as f

    lines = ["| photo | painting | size | iterations | variant | content | style | E conv1_1 | "
             "E conv4_1 | E conv5_1 | grain | dots (painting's) | lattice (painting's) | "
             "seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['photo']} | {r['painting']} | {r['size']} | "
                     f"{r.get('iterations', '-')} | {r['variant']} | {r['content']:.3g} | "
                     f"{r['style']:.4f} | {r['E_conv1_1']:.4f} | {r['E_conv4_1']:.4f} | "
                     f"{r['E_conv5_1']:.4f} | {f(r['grain'], '.3f')} | {f(r['dots'], '.4f')} "
                     f"({r['painting_dots']:.4f}) | {f(r.get('lattice'), '.4f')} "
                     f"({f(r.get('painting_lattice'), '.4f')}) | {f(r.get('seconds'), '.0f')} |")
    return "\n".join(lines)


PAPER, OLD = "paper (avg, 1e-3)", "0.2 default"


def targets(rows: list[dict[str, Any]], variant: str) -> str:
    """The issue's targets for ``variant`` on every pair it has, against the first rows of the
    paper's setting and gatys 0.2's default for that pair and size (Markdown)."""
    lines = ["| pair | style ≤ the paper's setting's | E4_1 + E5_1 ≤ a third of gatys 0.2's "
             "| dots ≤ the painting's | grain ≤ 1 | lattice (painting's) | seconds |",
             "|---|---|---|---|---|---|---|"]

    def within(value: float, limit: float, digits: int = 4) -> str:
        return f"{value:.{digits}f} ≤ {limit:.{digits}f}" if value <= limit else \
            f"**{value:.{digits}f} > {limit:.{digits}f}**"

    for r in rows:
        if r["variant"] != variant:
            continue
        same = [q for q in rows if _group(q) == _group(r)]
        paper = next((q for q in same if q["variant"] == PAPER), None)
        old = next((q for q in same if q["variant"] == OLD), None)
        if paper is None or old is None:
            continue
        deep, old_deep = (q["E_conv4_1"] + q["E_conv5_1"] for q in (r, old))
        dots, grain = r["dots"] or 0.0, r["grain"] or 0.0
        lattice = "-" if r.get("lattice") is None else \
            f"{r['lattice']:.4f} ({r['painting_lattice']:.4f})"
        cells = [f"{r['photo']}, {r['painting']}",
                 within(r["style"], paper["style"]), within(deep, old_deep / 3),
                 within(dots, r["painting_dots"]), within(grain, 1.0, 2), lattice,
                 f"{r.get('seconds', 0):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys((r["photo"], r["painting"], r["size"]) for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows if r["variant"] !=
                                  "the photo itself"))
    columns = min(3, len(pairs))
    lines = -(-len(pairs) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.6 * lines),
                             squeeze=False)
    markers = "osD^v<>pP*Xh"
    colours = plt.get_cmap("tab20")
    from matplotlib.ticker import NullFormatter
    for ax, (photo, painting, size) in zip(axes.ravel(), pairs):
        mine = [r for r in rows if (r["photo"], r["painting"], r["size"]) == (photo, painting,
                                                                              size)]
        for r in mine:
            if r["variant"] == "the photo itself":
                ax.axhline(r["style"], color="grey", lw=0.8, ls="--")
                continue
            i = variants.index(r["variant"])
            ax.scatter(r["content"], r["style"], marker=markers[i % len(markers)],
                       color=colours(i % 20), label=r["variant"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the decades only: no crowded labels
        ax.set_title(f"{photo} / {painting}, {size} px", fontsize=9)
        ax.set_xlabel("content distance (eq. 1 / M, conv4_2)", fontsize=8)
        ax.set_ylabel("style distance (mean E_l)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(pairs):]:
        ax.axis("off")
    handles = {}
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * (len(handles) // 4), 1, 1))
    fig.savefig(out, dpi=90)


SHOWN = ("paper (avg, 1e-3)", "0.2 default", "max, photo start, 1e-4, 2 scales")
LABELS = ("the paper's setting (--pool avg)", "gatys 0.2's default",
          "now: from the photo, 2 stages")


def pictures(rows: list[dict[str, Any]], folder: Path, out: Path, images: Path,
             side: int = 384, shown: tuple[str, ...] = SHOWN,
             labels: tuple[str, ...] = LABELS) -> None:
    """A row per pair: its painting, then the pictures of the ``shown`` variants that
    ``folder`` kept, at ``side`` px, with ``labels``."""
    import numpy as np
    from PIL import Image

    from bench.look import PAINTINGS, picture_path
    from gatys.io.compose import Panel, compose
    from gatys.io.images import save_picture

    def tile(path: Path) -> Panel:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((side, side), Image.LANCZOS)
            return Panel(np.asarray(im) / 255.0)

    grid = []
    for photo, painting, size in dict.fromkeys(_group(r) for r in rows):
        found = {r["variant"]: r for r in rows if _group(r) == (photo, painting, size)}
        if not all(v in found for v in shown):
            continue
        grid.append([tile(picture_path(PAINTINGS[painting], images)),
                     *(tile(folder / found[v]["file"]) for v in shown)])
    save_picture(out, compose(grid, column_labels=["the painting", *labels]), jpeg_quality=85)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plot", type=Path, help="the plot to write (PNG)")
    ap.add_argument("runs", type=Path, nargs="+", help="python -m bench.look --run --json files")
    ap.add_argument("--pictures", type=Path, metavar="DIR", help="also compose the pictures the "
                    "runs kept in DIR (--keep) into --sheet")
    ap.add_argument("--sheet", type=Path, default=Path("docs/look.jpg"))
    ap.add_argument("--images", type=Path, default=Path("../shared/images"))
    ap.add_argument("--side", type=int, default=384, help="the sheet's pictures' longest side")
    ap.add_argument("--shown", default=None, metavar="A;B",
                    help="the variants on the sheet, by name (default: the paper's setting, "
                         "gatys 0.2's default and today's)")
    ap.add_argument("--targets", default=None, metavar="VARIANT",
                    help="also print the issue's targets for this variant on every pair")
    a = ap.parse_args(argv)
    rows = load(a.runs)
    plot(rows, a.plot)
    if a.pictures is not None:
        shown = tuple(a.shown.split(";")) if a.shown else SHOWN
        pictures(rows, a.pictures, a.sheet, a.images, a.side, shown,
                 LABELS if shown == SHOWN else shown)
    print(table(rows))
    if a.targets is not None:
        print()
        print(targets(rows, a.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
