"""Does coarse-to-fine pay? A multi-scale run against a single-scale run given the same time.

    python -m bench.multiscale CONTENT STYLE [--size 1024] [--scales 3] [--iterations 25|N1,N2,N3]
        [-o OUT] [--json]

Runs ``gatys.transfer`` with ``--scales`` stages, timing it; then a single-scale run at the full
size from white noise, stopped when it has used the same time. Both end on the same full-size
objective, so their final total losses compare directly. Prints both and writes JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Sequence

import gatys


class _OutOfTime(KeyboardInterrupt):
    pass


def compare(content: str, style: str, size: int, scales: int, iterations: int | str, seed: int,
            output: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    multi = gatys.transfer(content, style, output, size=size, scales=scales, iterations=iterations,
                           seed=seed, progress=True)
    budget = time.perf_counter() - start

    began = time.perf_counter()

    def stop_when_out_of_time(step: Any, x: Any) -> None:
        if time.perf_counter() - began >= budget:
            raise _OutOfTime

    try:
        single = gatys.transfer(content, style, size=size, iterations=100_000, seed=seed,
                                scales=1, callback=stop_when_out_of_time)
    except gatys.Interrupted as stopped:
        single = stopped.result
    last_multi, last_single = multi.history[-1], single.history[-1]
    return {
        "size": size, "scales": multi.parameters["scales"],
        "iterations_per_stage": multi.parameters["iterations"],
        "seconds": budget,
        "multi_scale": {"total": last_multi["total"], "content": last_multi["content"],
                        "style": last_multi["style"], "iterations": len(multi.history)},
        "single_scale": {"total": last_single["total"], "content": last_single["content"],
                         "style": last_single["style"], "iterations": len(single.history),
                         "seconds": time.perf_counter() - began},
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.multiscale",
                                description=__doc__.splitlines()[0])
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--scales", type=int, default=3)
    p.add_argument("--iterations", default="25", help="per stage: one count, or one per stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default=None, help="where to write the multi-scale result")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    r = compare(a.content, a.style, a.size, a.scales, a.iterations, a.seed, a.output)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        m, s = r["multi_scale"], r["single_scale"]
        print(f"{r['size']} px, {r['seconds']:.0f} s each")
        print(f"multi-scale  ({r['scales']}, {m['iterations']} iterations): total {m['total']:.5g} "
              f"(content {m['content']:.4g}, style {m['style']:.4g})")
        print(f"single-scale ({s['iterations']} iterations): total {s['total']:.5g} "
              f"(content {s['content']:.4g}, style {s['style']:.4g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
