"""The engine's evaluation under settings of its constants, in turns with PyTorch's.

    python -m bench.settings [--size 512 ...] [--threads 8,16] [--rounds 5] [--pending]
                             [--variant "workers.WAKE_FANOUT=1" ...] [--no-torch] [--out FILE]

A variant sets module constants of ``gatys.kernels`` (``module.NAME=value``, a Python literal;
several joined by ``;``) for its own evaluations only; the engine as it is ("as is") always
runs beside them. At each size, in a warm-up round and then ``--rounds`` timed rounds, each
thread count evaluates once untimed (its buffers back in the caches after the other's), then
once under each variant, in an order turned by one each round; then PyTorch on all the CPUs
evaluates once. The table gives each setting's median seconds per evaluation, the median of
each variant's ratios to the engine as it is in the same round [quartiles], and the median of
its ratios to PyTorch's evaluation of the same round [min–max], so that a machine whose speed
drifts moves both sides of each ratio alike. The variant and the engine as it is run seconds
apart, PyTorch up to a round later: the first ratio is the finer, a few tenths of a percent
where the second spreads by several percent. It is for the constants that only a many-core
host can decide, in one call of a lent GPU machine (docs/performance.md); ``--pending`` adds
the variants that wait for one (PENDING, docs/cuda.md), so that the call needs no list typed
out.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import json
import sys
from typing import Any, Callable, Sequence

import numpy as np

from gatys.errors import GatysError
from gatys.io.images import check_writable
from gatys.kernels.workers import Workers, cpus

from . import torch_peer
from .harness import (
    _timed,
    add_output_options,
    cpu_objective,
    evaluation,
    machine,
    make_peer,
    pictures,
    report,
    spread,
)
from .scaling import _counts, limited

AS_IS = "as is"
Assignments = dict[tuple[str, str], Any]  # (module under gatys.kernels, constant) -> value
# The settings that two cores could not decide, each beside what it would change: what
# ``--pending`` runs on a many-core host or an Intel machine (docs/cuda.md has each one's case).
# One the engine takes up leaves this list.
PENDING = {
    "winograd.WINOGRAD_PART_U={1: 4}": "parts of tile rows moving four times U on 8 threads "
                                       "too, not twice",
    "winograd.WINOGRAD_CACHED_PART_BYTES=4194304; winograd.CACHED_PARTS_STACK_COLUMNS=65536":
        "the cached parts and transform stacks before the 8-thread cut's fewer GIL takes",
    "winograd.WINOGRAD_TWO_PASS_FROM_PART_BYTES=16777216; "
    "winograd.WINOGRAD_TWO_PASS_BLOCK_BYTES=524288": "the rule before: conv2_2 in tile rows, "
                                                      "blocks of 512 KB",
    "winograd.WINOGRAD_MASK_IN_BLOCKS=False": "the two passes' ReLU masks in a map of their own",
    "winograd.WINOGRAD_POOL_IN_BLOCKS=False": "the pools after two-pass layers, and their "
                                              "backward passes, in maps of their own",
}


def parse_variant(text: str) -> Assignments:
    """``module.NAME=value[; ...]`` as assignments; ValueError naming what is wrong."""
    out: Assignments = {}
    for item in (t.strip() for t in text.split(";")):
        target, sep, value = item.partition("=")
        module, dot, name = target.strip().rpartition(".")
        if not (sep and dot and module and name):
            raise ValueError(f"not module.NAME=value: {item!r}")
        try:
            constants = importlib.import_module(f"gatys.kernels.{module}")
        except ImportError:
            raise ValueError(f"no module gatys.kernels.{module}: {item!r}") from None
        if not name.isupper() or not hasattr(constants, name):
            raise ValueError(f"gatys.kernels.{module} has no constant {name}: {item!r}")
        try:
            out[module, name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"not a Python literal: {value.strip()!r} in {item!r}") from None
    return out


def _set(assignments: Assignments) -> Assignments:
    """Set ``assignments``; returns the values they replaced."""
    before = {}
    for (module, name), value in assignments.items():
        constants = importlib.import_module(f"gatys.kernels.{module}")
        before[module, name] = getattr(constants, name)
        setattr(constants, name, value)
    return before


def _under(assignments: Assignments, once: Callable[[], None]) -> float:
    """Seconds of ``once()`` with ``assignments`` set, restored after."""
    before = _set(assignments)
    try:
        return _timed(once)
    finally:
        _set(before)


def _in_turns(onces: dict[int, Callable[[], None]], variants: dict[str, Assignments],
              theirs: Callable[[], Any] | None, rounds: int) -> dict[Any, list[float]]:
    """A warm-up round, then ``rounds`` timed rounds: per thread count an evaluation untimed
    (its own buffers back in the caches and in malloc's free lists, after the other thread
    count's), then each variant's, in an order turned by one each round so that no variant
    always comes first; PyTorch's last. Ours runs with BLAS held to the thread count. Each
    setting's seconds: ``runs[threads, variant]``, ``runs["torch"]``."""
    names = list(variants)
    runs: dict[Any, list[float]] = {(t, n): [] for t in onces for n in names}
    if theirs is not None:
        runs["torch"] = []
    for r in range(rounds + 1):
        for t, once in onces.items():
            with limited(t, None):  # BLAS on t threads too: Workers(1) leaves it on all
                once()
                for name in names[r % len(names):] + names[: r % len(names)]:
                    seconds = _under(variants[name], once)
                    if r:
                        runs[t, name].append(seconds)
        if theirs is not None:
            seconds = _timed(theirs)
            if r:
                runs["torch"].append(seconds)
    return runs


def measure(sizes: Sequence[int], threads: Sequence[int], variants: dict[str, Assignments],
            rounds: int, with_torch: bool,
            log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Per size, each (threads, variant)'s and PyTorch's seconds per evaluation in turns, and
    each setting's median ratio to PyTorch's of the same round (where PyTorch ran)."""
    from gatys.store import weights as weights_store

    vgg = weights_store.load()
    torch: Any = None
    peer = None
    if with_torch and torch_peer.available():
        import torch

        peer = make_peer(vgg, "cpu", False)
    variants = {AS_IS: {}, **variants}
    result: dict[str, Any] = {"machine": machine(), "torch": getattr(torch, "__version__", None),
                              "torch_threads": cpus() if peer is not None else None,
                              "variants": {k: {f"{m}.{n}": v for (m, n), v in a.items()}
                                           for k, a in variants.items()},
                              "rounds": rounds, "sizes": []}
    for size in sizes:
        log(f"{size}^2: {len(threads) * len(variants)} settings"
            f"{' and PyTorch' if peer is not None else ''}, {rounds} rounds")
        onces = {t: evaluation(*cpu_objective(vgg, Workers(t), size)) for t in threads}
        theirs_once = None
        if peer is not None:
            content, style, x = pictures(size)
            peer.targets(content, style)
            theirs_once = functools.partial(peer.evaluate, x)
        with limited(cpus(), torch):
            runs = _in_turns(onces, variants, theirs_once, rounds)
        theirs = np.array(runs.pop("torch", []))
        result["sizes"].append({"size": size, "rows": rows_of(runs, theirs),
                                "torch_seconds": float(np.median(theirs)) if len(theirs) else None,
                                "torch_seconds_all": theirs.tolist() or None})
    return result


def rows_of(runs: dict[tuple[int, str], list[float]], theirs: np.ndarray) -> list[dict[str, Any]]:
    """Each (threads, variant)'s row from its seconds per round (``runs``, as
    :func:`_in_turns` leaves them) and PyTorch's (``theirs``, empty where it did not run): the
    median seconds; the median of the ratios to the engine as it is, round by round, with their
    spread [min, quartiles, max] (None for the engine as it is); the median of the ratios to
    PyTorch's, round by round, with their [min, max]."""
    rows = []
    for (t, name), r in runs.items():
        ratios = np.array(r) / theirs if len(theirs) else None
        over, over_spread = (None, None) if name == AS_IS else \
            spread(np.array(r) / np.array(runs[t, AS_IS]))
        rows.append({"threads": t, "variant": name, "seconds": float(np.median(r)),
                     "seconds_all": r, "over_as_is": over, "over_as_is_spread": over_spread,
                     "ratio": float(np.median(ratios)) if ratios is not None else None,
                     "ratio_range": [float(ratios.min()), float(ratios.max())]
                     if ratios is not None else None})
    return rows


def format_table(result: dict[str, Any]) -> str:
    lines = [f"variants: {json.dumps(result['variants'])}",
             *(f"  {v}: {PENDING[v]}" for v in result["variants"] if v in PENDING)]
    for s in result["sizes"]:
        torch = s["torch_seconds"]
        lines.append(f"{s['size']}^2, median of {result['rounds']} rounds in turns"
                     + (f"; PyTorch on {result['torch_threads']} threads {torch:.3f} s"
                        if torch else ""))
        width = max([40, *(len(r["variant"]) for r in s["rows"])])  # long ones kept aligned
        lines.append(f"{'threads':>7}  {'variant':<{width}} {'seconds':>8}  "
                     f"{'over as is [quartiles]':<23}  ours/PyTorch [min-max]")
        for r in s["rows"]:
            q = r["over_as_is_spread"]
            over = f"{r['over_as_is']:.3f} [{q[1]:.3f}-{q[2]:.3f}]" if q else "-"
            ratio = (f"{r['ratio']:.2f} [{r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}]"
                     if r["ratio"] is not None else "-")
            lines.append(f"{r['threads']:>7}  {r['variant']:<{width}} {r['seconds']:8.3f}  "
                         f"{over:<23}  {ratio}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.settings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, action="append", default=None,
                   help="image side, repeatable (default 512)")
    p.add_argument("--threads", type=_counts, default=None,
                   help="thread counts, comma-separated (default: all the CPUs)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--variant", action="append", default=[], metavar="MODULE.NAME=VALUE[;...]",
                   help="constants of gatys.kernels set for one variant, repeatable")
    p.add_argument("--pending", action="store_true",
                   help=f"also the {len(PENDING)} variants that wait for a many-core host or "
                        "an Intel machine (PENDING in bench/settings.py, docs/cuda.md)")
    p.add_argument("--no-torch", action="store_true", help="time ours alone")
    add_output_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    sizes, threads = a.size or [512], a.threads or [cpus()]
    try:
        if min(sizes) < 32 or a.rounds < 1:
            raise ValueError("--size must be >= 32 and --rounds >= 1")
        if max(threads) > cpus():
            raise ValueError(f"{max(threads)} threads asked for, {cpus()} CPUs here: time at "
                             f"most {cpus()}")
        variants = {v: parse_variant(v) for v in [*(PENDING if a.pending else ()), *a.variant]}
        if a.out:
            check_writable(a.out)
        log = (lambda s: None) if a.json else (lambda s: print(f"settings: {s}", file=sys.stderr))
        result = measure(sizes, threads, variants, a.rounds, not a.no_torch, log)
    except (ValueError, GatysError) as e:
        print(f"settings: error: {e}", file=sys.stderr)
        return 2
    report(result, a, format_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
