"""What scipy's L-BFGS-B costs on the host per iteration, apart from any network.

    python -m bench.lbfgsb [--pixels 525312] [--iterations 30] [--history 5 10 20]
        [--threads 1 [N ...]] [--json]

On a GPU the evaluations are cheap and the optimizer on the host is most of a transfer's time
(docs/cuda.md). This times scipy's L-BFGS-B as gatys calls it (``fmin_l_bfgs_b``, float64,
``m`` = ``--history``, BLAS on each of the ``--threads`` counts in turn), with the [0, 1]
bounds and the fixed variables that gatys appends after the pixels (``lbfgsb_padding``), with
the bounds alone, and without either, on a cheap smooth function of as many variables as a
picture has values (the default: 3 x 342 x 512, the demo's rocket at 512 px). Its minimum lies
partly outside [0, 1], so the bounds are active. The time per iteration is counted from the first
callback to the last, so scipy's one-time set-up is left out.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Sequence

import numpy as np
from scipy.optimize import fmin_l_bfgs_b
from threadpoolctl import threadpool_limits

from gatys.model.optimize import lbfgsb_bounds, lbfgsb_padding, lbfgsb_vector


def chained(target: np.ndarray):
    """f(x) = sum (x[i+1] - x[i]^2)^2 + 0.01 |x - target|^2 and its gradient: cheap, smooth,
    coupled, so L-BFGS-B needs many iterations."""
    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        d = x[1:] - x[:-1] ** 2
        e = x - target
        g = 0.02 * e
        g[1:] += 2 * d
        g[:-1] -= 4 * d * x[:-1]
        return float(np.dot(d, d) + 0.01 * np.dot(e, e)), g
    return f


def padded(f: Callable[[np.ndarray], tuple[float, np.ndarray]], n: int):
    """``f`` of the first ``n`` variables, its gradient zero past them (gatys' fixed padding)."""
    def g(z: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = f(z[:n])
        return value, lbfgsb_vector(grad, z.size)
    return g


def seconds_per_iteration(n: int, history: int, bounded: bool, iterations: int, threads: int,
                          seed: int = 0, padding: bool = True) -> dict[str, Any]:
    """One run's time per iteration; bounded runs with ``padding`` append the fixed variables
    that gatys appends (``lbfgsb_padding``), as a transfer calls L-BFGS-B."""
    rng = np.random.default_rng(seed)
    f = chained(rng.uniform(-0.5, 1.5, n))
    pad = lbfgsb_padding(n) if bounded and padding else 0
    x0 = lbfgsb_vector(rng.random(n), n + pad)
    bounds = lbfgsb_bounds(n, n + pad) if bounded else None
    stamps: list[float] = []
    with threadpool_limits(threads):
        x, _, info = fmin_l_bfgs_b(padded(f, n), x0, bounds=bounds,
                                   m=history, factr=0.0, pgtol=0.0, maxiter=iterations,
                                   callback=lambda *_: stamps.append(time.perf_counter()))
    x = x[:n]
    return {"variables": n, "history": history, "bounds": bounded, "padding": pad,
            "threads": threads, "iterations": int(info["nit"]),
            "evaluations_per_iteration": info["funcalls"] / info["nit"],
            "seconds_per_iteration": (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1),
            "at_a_bound": float(np.mean((x == 0) | (x == 1))) if bounded else 0.0}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lbfgsb", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pixels", type=int, default=3 * 342 * 512,
                   help="variables (default %(default)s)")
    p.add_argument("--iterations", type=int, default=30, help="L-BFGS-B iterations per run")
    p.add_argument("--history", type=int, nargs="+", default=[5, 10, 20],
                   help="correction pairs kept (maxcor), one run each")
    p.add_argument("--threads", type=int, nargs="+", default=[1],
                   help="BLAS threads, one run each (gatys holds BLAS to 1 during a transfer)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    if a.pixels < 2 or a.iterations < 2 or min(a.history) < 1 or min(a.threads) < 1:
        p.error("--pixels and --iterations must be at least 2, --history and --threads at least 1")
    rows = [seconds_per_iteration(a.pixels, m, bounded, a.iterations, threads, padding=pad)
            for threads in a.threads for m in a.history
            for bounded, pad in ((True, True), (True, False), (False, False))]
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"scipy L-BFGS-B, {a.pixels} variables:")
    print(f"{'threads':>7} {'history':>7} {'bounds':>6} {'padding':>7} {'ms/iteration':>13} "
          f"{'calls/it':>9} {'at a bound':>11}")
    for r in rows:
        print(f"{r['threads']:>7} {r['history']:>7} {str(r['bounds']):>6} {r['padding']:>7} "
              f"{1e3 * r['seconds_per_iteration']:>13.1f} "
              f"{r['evaluations_per_iteration']:>9.2f} {r['at_a_bound']:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
