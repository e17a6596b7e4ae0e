"""``gatys figure 1|2|3``: the paper's three figures, cell by cell, resumable.

Fig. 1: content reconstructions from conv1_1 … conv5_1 (top) and style reconstructions from
{conv1_1}, {conv1_1, conv2_1}, … (bottom). Fig. 2: the photograph and one transfer per painting,
the painting inset. Fig. 3: style layers (rows A-E) against alpha/beta (columns).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gatys.batch.cells import Cell, check_outputs, default_jobs, ensure_workdir, run_cells
from gatys.batch.executors import choose
from gatys.errors import InputError
from gatys.io.compose import Panel, compose
from gatys.io.images import check_distinct, check_output_path, load_image, read_image, save_picture
from gatys.io.plot import check_plot_path, save_loss_plot
from gatys.run.checks import non_negative
from gatys.run.declarations import declared, options_of
from gatys.run.fitting import plan
from gatys.run.loading import device_of
from gatys.run.options import (
    DEFAULT_CONTENT_LAYER,
    DEFAULT_STYLE_LAYERS,
    FigureOptions,
    RunOptions,
)
from gatys.run.records import device_settings

FIGURES = (1, 2, 3)
FIG2_RATIOS = (1e-3, 1e-3, 1e-3, 1e-4, 1e-4)  # the paper's B-D and E-F
FIG3_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class FigureResult:
    """A finished figure: where it was written, every cell's record (parameters, final
    content/style losses, seconds, loss history) and which cells were computed in this call."""

    output: Path
    workdir: Path
    records: dict[str, dict[str, Any]]
    computed: list[str] = field(default_factory=list)

    @property
    def reused(self) -> list[str]:
        return [k for k in self.records if k not in self.computed]


@dataclass
class _Layout:
    """Cells and how they sit in the picture: ``grid[row][column]`` is a cell key or a fixed
    picture (a Panel)."""

    cells: list[Cell]
    grid: list[list[str | Panel]]
    row_labels: list[str] | None = None
    column_labels: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)  # label under a cell's panel
    insets: dict[str, np.ndarray] = field(default_factory=dict)


def ratio_text(r: float) -> str:
    """1e-3 rather than 0.001 or 1e-03; any other ratio in as many digits as tell it apart
    from every other float (a cell's key is made of it: two ratios never share one)."""
    mantissa, exponent = f"{r:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{r:.0e}") == r else repr(float(r))


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem)[:40] or "image"


def _up_to(k: int) -> str:
    """Label of the style layers conv1_1 … conv{k}_1."""
    names = DEFAULT_STYLE_LAYERS[:k]
    return names[0] if k == 1 else " + ".join(names) if k == 2 else f"{names[0]} … {names[-1]}"


def _fig1(content: str, style: str, run: dict[str, Any], photo: np.ndarray,
          painting: np.ndarray) -> _Layout:
    cells, labels = [], {}
    top: list[str | Panel] = []
    bottom: list[str | Panel] = []
    for name in DEFAULT_STYLE_LAYERS:
        key = f"fig1_content_{name}"
        cells.append(Cell(key, "content", {"image": content, "layer": name, **run}))
        top.append(key)
        labels[key] = name
    for k in range(1, len(DEFAULT_STYLE_LAYERS) + 1):
        key = f"fig1_style_conv1_1-{DEFAULT_STYLE_LAYERS[k - 1]}"
        cells.append(Cell(key, "style", {"image": style,
                                         "layers": list(DEFAULT_STYLE_LAYERS[:k]), **run}))
        bottom.append(key)
        labels[key] = _up_to(k)
    grid: list[list[str | Panel]] = [[Panel(photo, "photograph"), *top],
                                     [Panel(painting, "painting"), *bottom]]
    return _Layout(cells, grid, ["content", "style"], None, labels)


def _fig2(content: str, styles: list[str], ratios: list[float], run: dict[str, Any],
          photo: np.ndarray, paintings: list[np.ndarray]) -> _Layout:
    places: list[str | Panel] = [Panel(photo, "A")]
    cells, labels, insets = [], {}, {}
    for i, (style, r, art) in enumerate(zip(styles, ratios, paintings)):
        letter = LETTERS[i + 1]
        key = f"fig2_{letter}_{_stem(style)}_{ratio_text(r)}"
        cells.append(Cell(key, "transfer", {"content": content, "style": style, "ratio": r,
                                            "content_layer": DEFAULT_CONTENT_LAYER,
                                            "style_layers": list(DEFAULT_STYLE_LAYERS),
                                            **PAPER_TRANSFER, **run}))
        places.append(key)
        labels[key] = f"{letter}   {Path(style).stem}, alpha/beta {ratio_text(r)}"
        insets[key] = art.transpose(1, 2, 0)
    columns = math.ceil(math.sqrt(len(places)))
    grid = [places[i:i + columns] for i in range(0, len(places), columns)]
    return _Layout(cells, grid, None, None, labels, insets)


def _fig3(content: str, style: str, ratios: list[float], run: dict[str, Any]) -> _Layout:
    cells = []
    grid: list[list[str | Panel]] = []
    for k in range(1, len(DEFAULT_STYLE_LAYERS) + 1):
        row: list[str | Panel] = []
        for r in ratios:
            key = f"fig3_{LETTERS[k - 1]}_{ratio_text(r)}"
            cells.append(Cell(key, "transfer", {
                "content": content, "style": style, "ratio": r,
                "content_layer": DEFAULT_CONTENT_LAYER,
                "style_layers": list(DEFAULT_STYLE_LAYERS[:k]), **PAPER_TRANSFER, **run}))
            row.append(key)
        grid.append(row)
    row_labels = [f"{LETTERS[k - 1]}  {_up_to(k)}" for k in range(1, len(DEFAULT_STYLE_LAYERS) + 1)]
    return _Layout(cells, grid, row_labels, [f"alpha/beta = {ratio_text(r)}" for r in ratios])


def _ratios(value: Sequence[float] | str | None, count: int | None) -> list[float] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    ratios = [non_negative("ratios", v, strict=True) for v in items if str(v).strip()]
    if not ratios:
        raise InputError("ratios is empty: give alpha/beta values such as 1e-4,1e-3")
    if count is not None and len(ratios) not in (1, count):
        raise InputError(f"ratios has {len(ratios)} values but figure 2 has {count} paintings: "
                         "give one per painting, or one for all")
    return ratios * count if count is not None and len(ratios) == 1 else ratios


def _style_paths(style: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The paintings: a path, a list of paths, or paths joined by commas. A name that exists
    as a file is taken whole, commas and all (``--style "a,b.jpg"``)."""
    items = [style] if isinstance(style, (str, os.PathLike)) else list(style)
    paths = []
    for item in map(str, items):
        paths += [item] if os.path.isfile(item) else item.split(",")
    paths = [p.strip() for p in paths if p.strip()]
    if not paths:
        raise InputError("no style image given: name the painting(s)")
    return paths


@declared(FigureOptions)
def figure(number: int, content: str | os.PathLike, style: str | os.PathLike | Sequence[str],
           output: str | os.PathLike, **keywords: Any) -> FigureResult:
    """Make the paper's Fig. ``number`` (1, 2 or 3) from the photograph ``content`` and the
    painting(s) ``style`` and write it to ``output``.

    Each panel is an independent run ("cell") from white noise with ``seed``, computed here one
    at a time, with ``jobs`` > 1 in that many worker processes, or on a Dask cluster
    (``scheduler`` or ``dask_workers``), and kept in ``workdir`` as
    an image and a JSON record (parameters, final content and style losses, seconds, loss
    history); a cell already there with the same parameters and input pictures is reused, so an
    interrupted figure resumes. ``plot`` writes every cell's loss curves. On CUDA, ``jobs``
    defaults to 1 (one GPU runs one cell at a time best). Ctrl-C raises
    :class:`gatys.batch.cells.CellsInterrupted`.
    """
    o = options_of(FigureOptions, "figure", keywords)
    device = device_of(o)
    executor = choose(o.jobs, o.scheduler, o.dask_workers,
                      1 if device == "cuda" else default_jobs())
    styles, ratio_list = _paintings_and_ratios(number, style, o.ratios)
    output = check_output_path(output)
    plot_path = check_plot_path(o.plot) if o.plot is not None else None
    check_distinct({"the figure": output, "the loss plot (plot)": plot_path},
                   {"the content image": content, "the weights file": o.weights,
                    **{f"painting {s}": s for s in styles}})
    content = str(content)
    layers = [DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS]
    plan(content, "the content image", o.size, layers, o.history, device,
         runs=executor.runs_here, threads=o.threads)
    for s in styles:
        plan(s, f"style image {s}", o.size, layers, 1, device, threads=o.threads)
    photo = read_image(content, "content", size=o.size)
    paintings = [load_image(s, size=o.size) for s in styles]
    workdir = ensure_workdir(o.workdir if o.workdir is not None
                             else output.with_name(f"{output.stem}_cells"))
    run = _cell_arguments(o, device)
    if number == 1:
        layout = _fig1(content, styles[0], run, photo.transpose(1, 2, 0),
                       paintings[0].transpose(1, 2, 0))
    elif number == 2:
        layout = _fig2(content, styles, ratio_list or _fig2_default(len(styles)), run,
                       photo.transpose(1, 2, 0), paintings)
    else:
        layout = _fig3(content, styles[0], ratio_list or list(FIG3_RATIOS), run)
    check_outputs(layout.cells, workdir, {"the figure": output, "the loss plot (plot)": plot_path})
    records, computed = run_cells(layout.cells, workdir, executor, o.progress, f"figure {number}")
    for cell in layout.cells:
        if records[cell.key].get("failed"):
            raise InputError(f"cell {cell.key}: {records[cell.key]['message']}")
    picture = compose([[_panel(place, layout, records, workdir) for place in row]
                       for row in layout.grid], layout.row_labels, layout.column_labels,
                      tile=(photo.shape[2], photo.shape[1]))
    # README-sized JPEG: a 20-panel figure at 256 px stays well under 500 KB
    save_picture(output, picture, jpeg_quality=90)
    if plot_path is not None:
        save_loss_plot(plot_path, [(layout.labels.get(c.key) or c.key.split("_", 1)[1],
                                    records[c.key]["history"]) for c in layout.cells],
                       columns=len(layout.grid[0]) - (1 if number == 1 else 0))
    return FigureResult(output, workdir, {c.key: records[c.key] for c in layout.cells}, computed)


# A figure's transfers run in one stage, as the paper's, whatever the pooling (a transfer's
# default under max pooling is two: options.POOL_DEFAULTS).
PAPER_TRANSFER = {"scales": 1}
# The options every cell of a figure takes from the figure's, under the same names.
SHARED = ("size", "iterations", "seed", "pool", "history", "preprocess")


def _cell_arguments(o: FigureOptions, device: str) -> dict[str, Any]:
    """The arguments every cell shares: the figure's options in :data:`SHARED`, its device
    and weights (by absolute path), and the synthesis's default start. The start is part of
    every cell's identity, so a change of the default start (as from uniform noise to gatys
    0.2's small Gaussian noise) recomputes the cells."""
    start = {name: getattr(RunOptions, name) for name in ("init", "noise_std", "noise_mean")}
    return {**{name: getattr(o, name) for name in SHARED}, **start, "device": device,
            "weights": None if o.weights is None else str(Path(o.weights).resolve()),
            **device_settings(o)}


def _paintings_and_ratios(number: int, style: Any, ratios: Any) -> tuple[list[str],
                                                                         list[float] | None]:
    """The painting paths and the ratios given, checked against what figure ``number`` takes."""
    if number not in FIGURES:
        raise InputError(f"there is no figure {number!r}: the paper has figures 1, 2 and 3")
    styles = _style_paths(style)
    if number != 2 and len(styles) != 1:
        raise InputError(f"figure {number} takes one painting, got {len(styles)}")
    if len(styles) >= len(LETTERS):
        raise InputError(f"figure 2 labels its panels A-Z: give at most {len(LETTERS) - 1} "
                         f"paintings, not {len(styles)}")
    if number == 1 and ratios is not None:
        raise InputError("figure 1 has no alpha/beta: its rows are reconstructions, not transfers")
    return styles, _ratios(ratios, len(styles) if number == 2 else None)


def _fig2_default(count: int) -> list[float]:
    return [FIG2_RATIOS[min(i, len(FIG2_RATIOS) - 1)] for i in range(count)]


def _panel(place: str | Panel, layout: _Layout, records: dict[str, dict],
           workdir: Path) -> Panel:
    if isinstance(place, Panel):
        return place
    image = load_image(workdir / records[place]["image"]).transpose(1, 2, 0)
    return Panel(image, layout.labels.get(place, ""), layout.insets.get(place))


def print_summary(result: FigureResult) -> None:
    """One line per cell (final losses, iterations, seconds, computed or reused), then where
    the figure went."""
    width = max(len(k) for k in result.records)
    print(f"{'cell':<{width}}  {'content loss':>12}  {'style loss':>12}  {'its':>4}  "
          f"{'seconds':>8}")
    for key, r in result.records.items():
        losses = [f"{v:12.4g}" if v is not None else f"{'-':>12}"
                  for v in (r["content_loss"], r["style_loss"])]
        state = "" if key in result.computed else "  (reused)"
        print(f"{key:<{width}}  {losses[0]}  {losses[1]}  {r['iterations']:>4}  "
              f"{r['seconds']:8.1f}{state}")
    print(f"wrote {result.output} ({len(result.computed)} cells computed, {len(result.reused)} "
          f"reused; cells kept in {result.workdir})")
