"""A sweep's results as a static page, ``index.html`` beside the cells' pictures (no server, no
CDN: styles, loss curves and the one small script inline), and as a contact sheet PNG.

The page is a table: one column per value of the last swept option, one row per combination of
the pictures and the other swept options. Each cell shows its thumbnail (a link to the full
PNG), its parameters, final losses and time, and its loss curve (total loss per iteration, log
scale, inline SVG). A failed cell shows its message instead of a picture.
"""
from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gatys.batch.cells import Cell
from gatys.batch.grid import Grid
from gatys.io.atomic import atomic_write_bytes
from gatys.io.compose import Panel, compose
from gatys.io.images import load_image, save_picture

THUMBNAIL = 256  # px, the longest side of a thumbnail on the page

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.fixed { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; }
th { background: #f2f2f2; font-weight: 600; padding: 6px; text-align: left; }
td { vertical-align: top; padding: 6px; border-top: 1px solid #ddd; }
figure { margin: 0; width: %dpx; }
figure img { width: 100%%; height: auto; display: block; image-rendering: auto; }
figcaption { font-size: 12px; line-height: 1.35; margin-top: 4px; }
figcaption .losses { color: #555; }
div.failed { width: %dpx; height: 80px; background: #fde8e8; color: #900; padding: 6px;
             font-size: 12px; overflow: auto; box-sizing: border-box; }
svg.curve { display: block; margin-top: 4px; background: #fafafa; }
""" % (THUMBNAIL, THUMBNAIL)

# Marks the page once every picture has loaded or failed: data-loaded / data-broken on <html>,
# for a reader's own checks (and the browser test's).
SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (im) { return !im.complete || im.naturalWidth === 0; });
  document.documentElement.dataset.loaded = images.length - broken.length;
  document.documentElement.dataset.broken = broken.length;
});
"""


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def layout(grid: Grid, cells: Sequence[Cell]) -> tuple[list[str], list[tuple[str, list[Cell]]]]:
    """(column headings, [(row heading, the row's cells)]): columns are the last axis's values
    (one column when nothing is swept), rows the pictures x the other axes. ``cells`` are in
    the order :meth:`Grid.cells` makes them, the last axis varying fastest, so each row is the
    next run of as many cells as there are columns."""
    axes = grid.dimensions()
    *row_axes, columns_axis = axes or [([], [()])]
    headings = [_point_text(columns_axis[0], values) for values in columns_axis[1]] if axes \
        else ["result"]
    row_headings = [", ".join([f"{Path(content).name} / {Path(style).name}"]
                              + [_point_text(names, values)
                                 for (names, _), values in zip(row_axes, point)])
                    for content, style in itertools.product(grid.contents, grid.styles)
                    for point in itertools.product(*(values for _, values in row_axes))]
    width = len(headings)
    return headings, [(h, list(cells[i * width:(i + 1) * width]))
                      for i, h in enumerate(row_headings)]


def _point_text(names: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{n} {_text(v)}" for n, v in zip(names, values))


def curve_svg(history: list[dict[str, Any]], width: int = THUMBNAIL, height: int = 60) -> str:
    """The total loss per iteration as an inline SVG polyline, log scale."""
    totals = [h["total"] for h in history if h.get("total", 0) > 0]
    if len(totals) < 2:
        return ""
    logs = np.log10(totals)
    lo, hi = float(logs.min()), float(logs.max())
    span = hi - lo or 1.0
    points = " ".join(f"{2 + (width - 4) * i / (len(logs) - 1):.1f},"
                      f"{2 + (height - 4) * (hi - v) / span:.1f}" for i, v in enumerate(logs))
    title = (f"total loss, log scale: {totals[0]:.3g} to {totals[-1]:.3g} over {len(totals)} "
             "iterations")
    return (f'<svg class="curve" width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>'
            f'<polyline fill="none" stroke="#c0392b" stroke-width="1.5" points="{points}"/></svg>')


def _cell_html(cell: Cell, record: dict[str, Any], swept: Sequence[str]) -> str:
    params = ", ".join(f"{n} {_text(cell.arguments[n])}" for n in swept) or cell.key
    if record.get("failed"):
        return (f'<div class="failed" data-cell="{html.escape(cell.key)}"><b>failed</b>: '
                f'{html.escape(record.get("message", ""))}</div><figcaption>'
                f'{html.escape(params)}</figcaption>')
    image = html.escape(record["image"])
    losses = (f"content {record['content_loss']:.4g}, style {record['style_loss']:.4g}, "
              f"{record['iterations']} its, {record['seconds']:.0f} s")
    return (f'<figure data-cell="{html.escape(cell.key)}"><a href="{image}"><img src="{image}" '
            f'alt="{html.escape(params)}" loading="eager"></a><figcaption>{html.escape(params)}'
            f'<br><span class="losses">{html.escape(losses)}</span></figcaption>'
            f'{curve_svg(record.get("history", []))}</figure>')


def write_page(folder: Path, grid: Grid, cells: Sequence[Cell], records: dict[str, dict[str, Any]],
               title: str = "gatys sweep") -> Path:
    """``folder/index.html`` for the cells (their pictures already in ``folder``)."""
    headings, rows = layout(grid, cells)
    swept = [n for names, _ in grid.dimensions() for n in names]
    fixed = ", ".join(f"{n} {_text(v)}" for n, v in grid.fixed.items())
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{STYLE}</style>",
             f"<script>{SCRIPT}</script></head><body>",
             f"<h1>{html.escape(title)}: {len(cells)} cells</h1>",
             f'<p class="fixed">{html.escape(fixed) or "defaults"} · contact sheet: '
             f'<a href="contact.png">contact.png</a></p>',
             "<table><thead><tr><th></th>"
             + "".join(f"<th>{html.escape(h)}</th>" for h in headings) + "</tr></thead><tbody>"]
    for heading, row in rows:
        parts.append(f"<tr><th>{html.escape(heading)}</th>"
                     + "".join(f"<td>{_cell_html(c, records[c.key], swept)}</td>" for c in row)
                     + "</tr>")
    parts.append("</tbody></table></body></html>")
    path = folder / "index.html"
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path


def write_contact_sheet(folder: Path, grid: Grid, cells: Sequence[Cell],
                        records: dict[str, dict[str, Any]], tile: int = 192) -> Path:
    """``folder/contact.png``: the page's table as one picture (failed cells left blank)."""
    headings, rows = layout(grid, cells)
    panels = []
    for _, row in rows:
        line = []
        for cell in row:
            record = records[cell.key]
            image = None if record.get("failed") else \
                load_image(folder / record["image"], size=tile).transpose(1, 2, 0)
            line.append(Panel(image, "failed" if record.get("failed") else ""))
        panels.append(line)
    labels = [h if len(h) <= 40 else h[:39] + "…" for h, _ in rows]
    picture = compose(panels, row_labels=labels if len(rows) > 1 else None,
                      column_labels=headings, tile=_tile(panels, tile))
    return save_picture(folder / "contact.png", picture)


def _tile(panels: list[list[Panel]], side: int) -> tuple[int, int]:
    shapes = [p.image.shape[:2] for row in panels for p in row if p.image is not None]
    if not shapes:
        return side, side
    return max(w for _, w in shapes), max(h for h, _ in shapes)


