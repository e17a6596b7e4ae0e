"""``gatys sweep``: any grid of transfers (lists of option values over contents and styles), as
resumable cells on an executor (this process, local processes or Dask), with the results as a
static page and a contact sheet."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from gatys.batch.cells import check_outputs, default_jobs, ensure_workdir, run_cells
from gatys.batch.executors import choose
from gatys.batch.grid import Grid, build_grid
from gatys.batch.page import write_contact_sheet, write_page
from gatys.run.declarations import declared, options_of
from gatys.run.options import SweepOptions


@dataclass
class SweepResult:
    """A finished sweep: its folder (cells, ``index.html``, ``contact.png``), the grid, every
    cell's record by key, which were computed in this call and which failed."""

    folder: Path
    grid: Grid
    records: dict[str, dict[str, Any]]
    computed: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [k for k, r in self.records.items() if r.get("failed")]

    @property
    def page(self) -> Path:
        return self.folder / "index.html"

    @property
    def contact_sheet(self) -> Path:
        return self.folder / "contact.png"


@declared(SweepOptions)
def sweep(content: str | os.PathLike | Sequence[str | os.PathLike] = (),
          style: str | os.PathLike | Sequence[str | os.PathLike] = (),
          output: str | os.PathLike = "sweep", **keywords: Any) -> SweepResult:
    """Run every transfer of a grid: ``content`` and ``style`` pictures (files, glob patterns
    or folders) times the lists in ``grid`` (option name -> list of values, or the command
    line's text "1e-4,1e-3"), from ``config`` (a TOML file) too. Cells are kept in ``output``
    as a PNG and a JSON record each; a rerun computes only the missing or changed ones, and a
    cell that fails on a bad input is recorded as failed while the others go on. Writes
    ``output/index.html`` and ``output/contact.png``. Ctrl-C raises
    :class:`gatys.batch.cells.CellsInterrupted` with the finished cells kept."""
    o = options_of(SweepOptions, "sweep", keywords)
    contents = [content] if isinstance(content, (str, os.PathLike)) else list(content)
    styles = [style] if isinstance(style, (str, os.PathLike)) else list(style)
    grid = build_grid(contents, styles, o.grid or {}, o.config, o.zip or (),
                      outside=Path(output))
    cells = grid.cells()
    folder = ensure_workdir(output)
    check_outputs(cells, folder, {"the contact sheet": folder / "contact.png",
                                  "the results page": folder / "index.html"})
    executor = choose(o.jobs, o.scheduler, o.dask_workers,
                      1 if grid.fixed.get("device") == "cuda" else default_jobs())
    records, computed = run_cells(cells, folder, executor, o.progress, "sweep")
    write_contact_sheet(folder, grid, cells, records)
    write_page(folder, grid, cells, records)
    return SweepResult(folder, grid, {c.key: records[c.key] for c in cells}, computed)


def print_table(result: SweepResult) -> None:
    """One line per cell (swept values, final losses, iterations, seconds; failed cells with
    their message), then where the page is."""
    names = [n for ns, _ in result.grid.dimensions() for n in ns]
    print(f"{'cell':<40}  {'content loss':>12}  {'style loss':>12}  {'its':>4}  {'seconds':>8}")
    for key, r in result.records.items():
        label = key if len(key) <= 40 else key[:39] + "…"
        if r.get("failed"):
            print(f"{label:<40}  failed: {r.get('message', '')}")
            continue
        state = "" if key in result.computed else "  (reused)"
        print(f"{label:<40}  {r['content_loss']:12.4g}  {r['style_loss']:12.4g}  "
              f"{r['iterations']:>4}  {r['seconds']:8.1f}{state}")
    swept = f" over {', '.join(names)}" if names else ""
    print(f"{len(result.records)} cells{swept}: {len(result.computed)} computed, "
          f"{len(result.records) - len(result.computed)} reused, {len(result.failed)} failed; "
          f"page {result.page}, contact sheet {result.contact_sheet}")
