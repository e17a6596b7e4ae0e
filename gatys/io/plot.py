"""Loss curves over the iterations (``--plot``): content, style per layer and total, log scale.

matplotlib is an optional extra (``pip install 'gatys[plot]'``); it is used through its
object-oriented API, so a caller's pyplot backend is left alone.
"""
from __future__ import annotations

import importlib.util
import io
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

from gatys.errors import InputError, OutputError
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import check_writable

PLOT_FORMATS = (".png", ".pdf", ".svg")


def check_plot_path(path: str | os.PathLike) -> Path:
    """Fail before any work if matplotlib is missing or ``path`` cannot take a plot."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InputError("--plot needs matplotlib, which is not installed: "
                         "pip install 'gatys[plot]' (or pip install matplotlib)")
    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise OutputError(f"cannot write the plot {path}: unknown extension {path.suffix!r}; "
                          f"use one of {', '.join(PLOT_FORMATS)}")
    return check_writable(path)


def _curves(history: Sequence[dict[str, Any]]) -> list[tuple[str, list[float], dict]]:
    """(legend, values, line style) of each term present in ``history``."""
    if not history:
        return []
    keys = history[0].keys()
    styles = [k for k in keys if k.startswith("style:")]
    contents = [k for k in keys if k.startswith("content:")]
    out = []
    if contents:
        out.append(("L_content (eq. 1)", "content", dict(color="tab:blue", lw=2)))
        if len(contents) > 1:
            out += [(f"  {k[8:]}", k, dict(color="tab:blue", lw=0.8, ls=":")) for k in contents]
    if styles:
        out.append(("L_style (eq. 5)", "style", dict(color="tab:red", lw=2)))
        shades = ["#f4a582", "#d6604d", "#b2182b", "#67001f", "#3b0011"]
        out += [(f"  E_l {k[6:]} (eq. 4)", k, dict(color=shades[i % len(shades)], lw=0.9, ls="--"))
                for i, k in enumerate(styles)]
    if "tv" in keys:
        out.append(("L_tv", "tv", dict(color="tab:green", lw=1)))
    out.append(("L_total (eq. 7)", "total", dict(color="black", lw=1.5)))
    return [(label, [h[k] for h in history], style) for label, k, style in out]


def _draw(ax: Any, title: str, history: Sequence[dict[str, Any]], legend: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    iterations = [h["iteration"] for h in history]
    for label, values, style in _curves(history):
        positive = [(i, v) for i, v in zip(iterations, values) if v > 0]
        if positive:
            ax.plot(*zip(*positive), label=label, **style)
    for previous, h in zip(history, history[1:]):  # coarse-to-fine: where each stage starts
        if h.get("stage", 1) != previous.get("stage", 1):
            ax.axvline(h["iteration"] - 0.5, color="grey", lw=0.8, ls=":")
            ax.annotate(f"{max(h['width'], h['height'])} px", (h["iteration"], 1),
                        xycoords=("data", "axes fraction"), va="top", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="major", alpha=0.3)
    if legend and history:
        ax.legend(fontsize=7, loc="best", framealpha=0.8)


def save_loss_plot(path: str | os.PathLike, runs: Sequence[tuple[str, Sequence[dict]]],
                   columns: int | None = None) -> Path:
    """Draw each run's ``(title, history)`` in its own axes (a grid of ``columns``) and write
    the plot to ``path`` atomically. ``history`` is a :attr:`gatys.Result.history`."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its font-cache chatter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    columns = columns or min(len(runs), 4) or 1
    rows = max(1, math.ceil(len(runs) / columns))
    single = len(runs) == 1
    fig = Figure(figsize=(7.5, 4.5) if single else (3.2 * columns, 2.5 * rows),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    fullest = max(range(len(runs)), key=lambda k: len(_curves(runs[k][1])), default=0)
    for k, ax in enumerate(axes.flat):
        if k >= len(runs):
            ax.set_visible(False)
            continue
        title, history = runs[k]
        _draw(ax, title, history, legend=k == fullest)
        if k // columns == rows - 1:
            ax.set_xlabel("L-BFGS iteration", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower()[1:], dpi=110)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    return path
