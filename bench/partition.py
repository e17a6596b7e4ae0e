"""The work of a many-thread partition, measured on the cores here.

    python -m bench.partition [--like 16] [--size 512] [--repeats 3] [--json] [--out FILE]

An Amdahl fit from 1 and 2 threads cannot see what a 16-thread split adds: every layer cut into
16 parts instead of 2, each part of tile rows reading the layer's whole Winograd U again, its
products a few tiles wide, eight times as many NumPy calls. This bench cuts every layer as
``--like`` threads would and runs the parts on this machine's threads, so that work shows as
time. Per layer, forward and backward, outside the layers (the losses' products, eqs. 1-6),
and for a whole evaluation: the seconds with the machine's own partition, with ``--like``'s
as the engine chooses it (by tile rows, or in two passes, ``kernels.winograd._blocks``) and
with ``--like``'s by tile rows only. The ratio of
the last two to the first is the work a ``--like``-thread split costs over the machine's own;
what it cannot show is 16 threads' contention (memory bandwidth, the GIL: see ``bench.gil``).
The partitions take turns on one network, an evaluation each (A B C A B C ...), so that drift
moves them alike.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

import numpy as np

from gatys.errors import GatysError
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import check_writable
from gatys.kernels import winograd
from gatys.kernels.workers import Workers, cpus
from gatys.model.network import LayerTimer

from .harness import add_output_options, cpu_objective, machine


class Partitioned(Workers):
    """Workers that cut every job as ``like`` threads would, run on ``threads`` threads."""

    def __init__(self, threads: int, like: int) -> None:
        super().__init__(threads)
        self.threads = like  # what split, per_thread and the layers' choices read


def variants(threads: int, like: int) -> list[tuple[str, int, str | None]]:
    """(name, the partition's threads, WINOGRAD_SPLIT) of each measured partition."""
    own = [(f"own ({threads})", threads, None)]
    return own + ([(f"like {like}", like, None)] if like != threads else []) + [
        (f"like {like}, by rows", like, "rows")]


def partitioned_objective(threads: int, like: int, size: int) -> tuple[Partitioned, Any, Any]:
    """The workers (``threads`` of them, cutting jobs as ``like`` would), the paper's objective
    on the real weights under average pooling, and an image of ``size``."""
    from gatys.store import weights as weights_store

    workers = Partitioned(threads, like)
    return (workers, *cpu_objective(weights_store.load(), workers, size))


def measure(size: int, like: int, repeats: int, threads: int) -> dict[str, Any]:
    """Every partition of :func:`variants` on one network, evaluated in turn (A B C A B C ...,
    after a warm-up of each) so that a machine whose speed drifts moves them alike: the median
    seconds of each, per evaluation and per layer."""
    workers, objective, x = partitioned_objective(threads, like, size)
    backend = objective.network.backend
    chosen = variants(threads, like)
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in chosen}
    timers: dict[str, list[LayerTimer]] = {name: [] for name, _, _ in chosen}
    saved = winograd.WINOGRAD_SPLIT
    try:
        for lap in range(repeats + 1):  # the first a warm-up
            for name, parts, split in chosen:
                workers.threads, winograd.WINOGRAD_SPLIT = parts, split
                timer = LayerTimer(backend.synchronize)
                start = time.perf_counter()
                backend.to_numpy(objective.evaluate(x, timer=timer).grad)
                if lap:
                    seconds[name].append(time.perf_counter() - start)
                    timers[name].append(timer)
    finally:
        workers.threads, winograd.WINOGRAD_SPLIT = like, saved
    result: dict[str, Any] = {"size": size, "like": like, "threads": threads,
                              "repeats": repeats, "machine": machine(), "variants": []}
    for name, parts, split in chosen:
        layers = [{"layer": layer,
                   "forward_seconds": float(np.median([t.forward[layer] for t in timers[name]])),
                   "backward_seconds": float(np.median([t.backward.get(layer, 0.0)
                                                        for t in timers[name]]))}
                  for layer in timers[name][0].forward]
        result["variants"].append({"name": name, "partition_threads": parts, "split": split,
                                   "seconds": float(np.median(seconds[name])),
                                   "outside_layers_seconds": float(np.median(
                                       [s - sum(t.forward.values()) - sum(t.backward.values())
                                        for s, t in zip(seconds[name], timers[name])])),
                                   "seconds_all": seconds[name], "layers": layers})
    return result


def format_table(r: dict[str, Any]) -> str:
    names = [v["name"] for v in r["variants"]]
    head = "".join(f"{n[:18]:>20}" for n in names)
    lines = [f"{r['size']}^2, {r['threads']} threads here, parts cut as for {r['like']} "
             f"(ms, forward/backward; x: over the first)", f"{'layer':<10}{head}"]
    own = r["variants"][0]
    for i, row in enumerate(own["layers"]):
        cells = []
        for v in r["variants"]:
            f, b = v["layers"][i]["forward_seconds"], v["layers"][i]["backward_seconds"]
            cell = f"{f * 1e3:.1f}/{b * 1e3:.1f}"
            if v is not own and row["forward_seconds"] + row["backward_seconds"] > 0:
                cell += f" {(f + b) / (row['forward_seconds'] + row['backward_seconds']):.2f}x"
            cells.append(f"{cell:>20}")
        lines.append(f"{row['layer']:<10}{''.join(cells)}")
    lines.append(f"{'losses':<10}" + "".join(  # and the rest outside the layers
        f"{v['outside_layers_seconds'] * 1e3:.1f}".rjust(20) for v in r["variants"]))
    lines.append(f"{'evaluation':<10}" + "".join(
        f"{v['seconds']:.3f} s".rjust(20) if v is own else
        f"{v['seconds']:.3f} s {v['seconds'] / own['seconds']:.2f}x".rjust(20)
        for v in r["variants"]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.partition", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--like", type=int, default=16, help="threads whose partition is measured")
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--repeats", type=int, default=3, help="evaluations timed per partition")
    add_output_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.like < 1 or a.size < 32 or a.repeats < 1:
        print("partition: error: --like and --repeats must be >= 1, --size >= 32",
              file=sys.stderr)
        return 2
    try:
        if a.out is not None:
            check_writable(a.out)
        r = measure(a.size, a.like, a.repeats, cpus())
        r["table"] = format_table(r)
        if a.out is not None:
            atomic_write_bytes(a.out, (json.dumps(r, indent=2) + "\n").encode())
    except GatysError as e:
        print(f"partition: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2) if a.json else r["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
