"""Cells per minute of a sweep on each executor: 16 cells at 64 px (2 paintings x 8 ratios) on
local Dask clusters of 1 and 2 workers and on 2 local worker processes (``--jobs 2``), each from
an empty folder, in one run on this machine.

    python -m bench.sweep [--images ../shared/images] [--cells 16] [--size 64]
        [--iterations 30] [--json OUT.json]

Each executor's time includes starting its workers and loading the network in each; the
table says so. No timed tests: this prints figures only.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

EXECUTORS = {"dask, 1 worker": {"dask_workers": 1}, "dask, 2 workers": {"dask_workers": 2},
             "--jobs 2 (local processes)": {"jobs": 2}, "in this process": {"jobs": 1}}


def run(images: Path, cells: int, size: int, iterations: int) -> list[dict[str, Any]]:
    from gatys.batch.sweep import sweep

    ratios = ",".join(f"{r:.3g}" for r in np.logspace(-4, -1, cells // 2))
    grid = {"ratio": ratios, "size": str(size), "iterations": str(iterations), "seed": "0"}
    rows = []
    for name, executor in EXECUTORS.items():
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            result = sweep([images / "tubingen.jpg"],
                           [images / "starry_night.jpg", images / "the_scream.jpg"],
                           folder, grid=grid, progress=False, **executor)
            seconds = time.perf_counter() - start
        computed = len(result.computed)
        rows.append({"executor": name, "cells": computed, "seconds": seconds,
                     "cells_per_minute": 60 * computed / seconds,
                     "cell_seconds": sum(r["seconds"] for r in result.records.values()) / computed})
        r = rows[-1]
        print(f"{name:<28} {r['cells']:>5} {r['seconds']:8.1f} {r['cells_per_minute']:8.2f} "
              f"{r['cell_seconds']:8.2f}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[1].parent
                   / "shared" / "images")
    p.add_argument("--cells", type=int, default=16, help="an even number (default %(default)s)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    a = p.parse_args(argv)
    if a.cells < 2 or a.cells % 2:
        p.error("--cells must be an even number >= 2 (two paintings)")
    for name in ("tubingen.jpg", "starry_night.jpg", "the_scream.jpg"):
        if not (a.images / name).is_file():
            p.error(f"{a.images / name} not found: point --images at ../shared/images")
    from .harness import machine
    print(f"{a.cells} cells at {a.size} px, {a.iterations} iterations each")
    print(f"{'executor':<28} {'cells':>5} {'seconds':>8} {'cells/min':>8} {'s/cell':>8}")
    rows = run(a.images, a.cells, a.size, a.iterations)
    if a.json is not None:
        from gatys.io.atomic import atomic_write_bytes
        atomic_write_bytes(a.json, json.dumps({"machine": machine(), "cells": a.cells,
                                               "size": a.size, "iterations": a.iterations,
                                               "rows": rows}, indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
