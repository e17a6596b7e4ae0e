"""How one evaluation scales with threads, ours against PyTorch's, phase by phase.

    python -m bench.scaling [--threads 1,2] [--size 512] [--pairs 5] [--profiled 3]
                            [--predict 8,16] [--no-torch] [--json] [--out FILE]

For each thread count T (ours: T worker threads, BLAS on one; PyTorch: ``set_num_threads(T)``;
both under a BLAS limit of T):

- **the ratio**: after a warm-up of each, ours and PyTorch's evaluations alternate (A B A B ...)
  and the ratio is the median of the pair-by-pair ratios, with their spread, so that a machine
  whose speed drifts (other work starting, clocks changing) moves both sides of each pair alike;
  the thread counts take turns too (a pair at 1 thread, one at 2, ... each round), so that each
  round also gives ours' speed-up from one thread to T over PyTorch's, and our serial
  remainder, from evaluations seconds apart, not blocks of pairs: their medians and spread;
- **the phases**: in ``--profiled`` further evaluations of ours at each thread count, the
  thread counts taking turns (1 2 1 2 ...), each layer's forward and backward, the loss
  products (eq. 3's Gram matrices and eq. 6's (G - A) F, with the bytes they read and write),
  and the rest outside the layers (the content term, the loss values, feature copies, adding
  the gradients, preprocessing), split into the time inside the worker pool's parallel parts
  (``Workers.map``: the work the threads share) and the time left on the main thread (padding,
  copies, allocation, small products, Python);
- **the serial remainder**: t(T) - t(1)/T, of each phase and of the whole evaluation; in the
  profiled evaluations split exactly into its three causes (:func:`remainder_split`): time on
  the main thread alone, the threads idle in the maps, and the parts' own work taking longer
  than on one thread (what the threads contend for: the memory, the shared cache), with the
  parts' busy time at T over one thread's per phase and per layer, so that a many-core run
  tells waiting threads from slower ones;
- **idle in the maps**: in the same evaluations, the threads' time inside ``Workers.map`` that
  no part used, by cause (:data:`IDLE`): waiting for a first part (a helper's wake-up),
  between parts, after a thread's last part while another's still ran (imbalance), and after
  the last part until ``map`` returned (the calling thread's wake-up), with the maps counted;
  in all and per layer (with the layer's maps and their parts), so that a many-core run names
  the maps whose parts leave threads without work.

From the first two thread counts it predicts the others in ``--predict`` by Amdahl's law, phase
by phase and part by part (t(T) = s + p/T, s and p from the two measurements), with the
memory-bound phases (pools, and the rest outside the layers) sped up no more than a stream copy
is at T threads (measured at the same thread counts and extrapolated the same way), but no
less than they gained themselves on two threads; the loss products, matrix products like the
conv layers', fitted as those are, but never faster than the time their bytes take at one
thread's copy speed (at most their whole time) sped up as the copy is; also without the caps;
PyTorch by Amdahl on its whole evaluation. ``docs/performance.md`` compares the prediction with
a 16-core measurement. Its extrapolation magnifies the noise of the two-thread time (the serial
share s = 2 t(2) - t(1) is a small difference of two large times), so it is also made from each
profiled round alone, the one- and two-thread evaluations taken in turn there, and the range of
those rounds' predictions is given beside it.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from gatys.errors import GatysError
from gatys.io.images import check_writable
from gatys.kernels import products
from gatys.kernels.workers import Workers, cpus, default_threads
from gatys.model.network import LayerTimer

from . import corun, gil, partition, torch_peer
from .command import _fmt, blas_text, python_text
from .harness import (
    _timed,
    add_output_options,
    cpu_objective,
    evaluation,
    machine,
    make_peer,
    paired,
    pictures,
    report,
    spread,
)

OUTSIDE = "the rest"  # the phase of an evaluation outside its layers and its loss products
PRODUCTS = "loss products"  # eq. 3's G = F F^T and eq. 6's (G - A) F, in kernels.products
MEMORY_BOUND = ("pool", OUTSIDE)  # phases whose speed the memory's bandwidth sets
# Why the threads sat idle inside the workers' maps (PhaseTimer.idle): before their first part
# (a helper waking up; a thread that took none, the whole map), between their parts, after
# their last part while another thread's ran, and every thread after the last part ended
# until ``map`` returned (the calling thread waking up to see it).
IDLE = ("before", "between", "imbalance", "after")


def _arrays(values: Sequence[Any]) -> Iterator[Any]:
    """The arrays among ``values``, and those in the lists and tuples among them."""
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _arrays(v)
        elif hasattr(v, "nbytes"):
            yield v


class PhaseTimer(LayerTimer):
    """A LayerTimer that also splits each layer's time into the part inside the workers'
    parallel sections and the part on the main thread alone."""

    def __init__(self, workers: Workers) -> None:
        super().__init__()
        self.workers = workers
        self.parallel: dict[tuple[str, str], float] = {}  # (direction, layer) -> seconds
        self.working: dict[tuple[str, str], float] = {}  # the threads' busy seconds in them
        self.in_map = 0.0  # seconds inside Workers.map since the evaluation began
        self.busy = 0.0  # the parts' own seconds, summed over the threads
        # the loss products: seconds, their parallel part, busy seconds, bytes read and written
        self.products = {"seconds": 0.0, "parallel": 0.0, "busy": 0.0, "bytes": 0.0}
        self.idle = dict.fromkeys(IDLE, 0.0)  # the threads' idle seconds in the maps, by cause
        self.maps = self.parts = 0
        # (direction, layer) or ("-", PRODUCTS) -> their maps, parts and idle (:meth:`_tally`)
        self.tallies: dict[tuple[str, str], dict[str, float]] = {}
        self._tally_mark = self._tally()
        self._mark = self._busy_mark = 0.0
        self._map = workers.map

    def timed_map(self, fn: Callable[[Any], None], parts: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return self._map(fn, parts)  # a part's own parts: counted with the part
        spans: list[tuple[int, float, float]] = []  # (thread, began, ended) of each part

        def timed(part: Any) -> None:
            began = time.perf_counter()
            try:
                fn(part)
            finally:  # list.append is atomic
                spans.append((threading.get_ident(), began, time.perf_counter()))

        start = time.perf_counter()
        try:
            self._map(timed, parts)
        finally:
            end = time.perf_counter()
            self.in_map += end - start
            self.busy += sum(ended - began for _, began, ended in spans)
            self._count_idle(start, end, spans)

    def _count_idle(self, start: float, end: float,
                    spans: Sequence[tuple[int, float, float]]) -> None:
        """Add one map's idle thread-seconds, by cause (:data:`IDLE`), to :attr:`idle`."""
        self.maps += 1
        self.parts += len(spans)
        if not spans:
            return
        by_thread: dict[int, list[tuple[float, float]]] = {}
        for thread, began, ended in spans:
            by_thread.setdefault(thread, []).append((began, ended))
        last = max(ended for _, _, ended in spans)
        for own in by_thread.values():
            own.sort()
            self.idle["before"] += own[0][0] - start
            self.idle["between"] += sum(b[0] - a[1] for a, b in zip(own, own[1:]))
            self.idle["imbalance"] += last - own[-1][1]
        self.idle["before"] += max(0, self.workers.threads - len(by_thread)) * (last - start)
        self.idle["after"] += self.workers.threads * (end - last)

    def timed_product(self, fn: Callable[..., Any], in_place: bool = False) -> Callable[..., Any]:
        """``fn`` (a loss product) timed into :attr:`products`, with the bytes of its operands
        and result (arrays, or lists of them): what it must read and write at least
        (``in_place``: its first operand is read and written)."""
        def timed(*args: Any) -> Any:
            start, mark, busy, tally = time.perf_counter(), self.in_map, self.busy, self._tally()
            out = fn(*args)
            self._add_tally(("-", PRODUCTS), tally)
            self.products["seconds"] += time.perf_counter() - start
            self.products["parallel"] += self.in_map - mark
            self.products["busy"] += self.busy - busy
            self.products["bytes"] += sum(a.nbytes for a in _arrays((*args, out)))
            if in_place:
                self.products["bytes"] += args[0].nbytes
            return out

        return timed

    @contextmanager
    def installed(self) -> Iterator["PhaseTimer"]:
        """Route the workers' ``map`` through :meth:`timed_map`, and the loss products through
        :meth:`timed_product`, inside the block (bench only: the product's stay as they are)."""
        self.workers.map = self.timed_map  # type: ignore[method-assign]
        originals = {name: getattr(products, name)  # ``gram`` is ``grams`` of one
                     for name in ("grams", "matmul_columns", "add_product")}
        for name, fn in originals.items():
            setattr(products, name, self.timed_product(fn, in_place=name == "add_product"))
        try:
            yield self
        finally:
            del self.workers.map
            for name, fn in originals.items():
                setattr(products, name, fn)

    def _tally(self) -> dict[str, float]:
        """The maps, their parts and the idle seconds by cause so far."""
        return {"maps": self.maps, "parts": self.parts, **self.idle}

    def _add_tally(self, key: tuple[str, str], mark: dict[str, float]) -> None:
        """Add what :meth:`_tally` gained since ``mark`` to ``key``'s tally."""
        tally = self.tallies.setdefault(key, dict.fromkeys(mark, 0.0))
        for name, now in self._tally().items():
            tally[name] += now - mark[name]

    def start(self) -> None:
        super().start()
        self._mark, self._busy_mark = self.in_map, self.busy
        self._tally_mark = self._tally()

    def stop(self, table: dict[str, float], name: str) -> None:
        super().stop(table, name)
        key = ("forward" if table is self.forward else "backward", name)
        self.parallel[key] = self.parallel.get(key, 0.0) + self.in_map - self._mark
        self.working[key] = self.working.get(key, 0.0) + self.busy - self._busy_mark
        self._add_tally(key, self._tally_mark)


def phase_of(layer: str) -> str:
    return "conv" if layer.startswith("conv") else "pool"


def profile_once(objective: Any, x: np.ndarray, workers: Workers) -> tuple[float, PhaseTimer]:
    """One evaluation's seconds and its timer (each layer's time, and its parallel part)."""
    timer = PhaseTimer(workers)
    with timer.installed():
        start = time.perf_counter()
        objective.evaluate(x, timer=timer)
        return time.perf_counter() - start, timer


def summarise(runs: Sequence[tuple[float, PhaseTimer]]) -> dict[str, Any]:
    """Median over profiled evaluations (:func:`profile_once`) of each layer's forward and
    backward seconds with their parallel part, and of the time outside the layers; each with
    its maps, their parts and the idle seconds in them by cause."""
    rows = []

    def counted(tallies: list[dict[str, float]]) -> dict[str, Any]:
        """The median maps, parts and idle seconds of one row's tallies, one per evaluation."""
        def of(name: str) -> float:
            return float(np.median([tally.get(name, 0.0) for tally in tallies]))

        return {"maps": round(of("maps")), "parts": round(of("parts")),
                "idle_seconds": {cause: of(cause) for cause in IDLE}}

    def outside(t: PhaseTimer) -> dict[str, float]:
        """What the layers' and the products' tallies leave of the whole evaluation's."""
        return {name: whole - sum(tally[name] for tally in t.tallies.values())
                for name, whole in t._tally().items()}

    for direction in ("forward", "backward"):
        for layer in runs[0][1].forward if direction == "forward" else runs[0][1].backward:
            table = [getattr(t, direction)[layer] for _, t in runs]
            rows.append({"direction": direction, "layer": layer,
                         "seconds": float(np.median(table)),
                         "parallel_seconds": float(np.median(
                             [t.parallel[(direction, layer)] for _, t in runs])),
                         "busy_seconds": float(np.median(
                             [t.working[(direction, layer)] for _, t in runs])),
                         **counted([t.tallies.get((direction, layer), {}) for _, t in runs])})

    def median(of: Callable[[PhaseTimer], float]) -> float:
        return float(np.median([of(t) for _, t in runs]))

    rows.append({"direction": "-", "layer": PRODUCTS,
                 "seconds": median(lambda t: t.products["seconds"]),
                 "parallel_seconds": median(lambda t: t.products["parallel"]),
                 "busy_seconds": median(lambda t: t.products["busy"]),
                 "bytes": median(lambda t: t.products["bytes"]),
                 **counted([t.tallies.get(("-", PRODUCTS), {}) for _, t in runs])})
    idle = {cause: median(lambda t: t.idle[cause]) for cause in IDLE}
    totals = [total for total, _ in runs]
    rows.append({"direction": "-", "layer": OUTSIDE,
                 "seconds": float(np.median([total - sum(t.forward.values())
                                             - sum(t.backward.values()) - t.products["seconds"]
                                             for total, t in runs])),
                 "parallel_seconds": median(lambda t: t.in_map - sum(t.parallel.values())
                                            - t.products["parallel"]),
                 "busy_seconds": median(lambda t: t.busy - sum(t.working.values())
                                        - t.products["busy"]),
                 **counted([outside(t) for _, t in runs])})
    return {"seconds": float(np.median(totals)), "rows": rows,
            "idle_seconds": idle, "maps": int(median(lambda t: t.maps))}


def phases(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The profile's rows summed by phase (conv forward, conv backward, pool forward, ...,
    the loss products with their bytes, the rest) into parallel and main-thread seconds."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        name = r["layer"] if r["direction"] == "-" else \
            f"{phase_of(r['layer'])} {r['direction']}"
        p = out.setdefault(name, {"parallel": 0.0, "main": 0.0, "busy": 0.0})
        p["parallel"] += r["parallel_seconds"]
        p["main"] += r["seconds"] - r["parallel_seconds"]
        p["busy"] += r["busy_seconds"]
        if "bytes" in r:
            p["bytes"] = p.get("bytes", 0.0) + r["bytes"]
    return out


def stream_bandwidth(threads: int, megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s of a copy of ``megabytes`` split over ``threads`` threads (read + write counted)."""
    n = megabytes * 2**20 // 4
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    workers = Workers(threads)
    parts = workers.per_thread(n)

    def copy() -> None:
        workers.map(lambda p: np.copyto(dst[p[0]:p[1]], src[p[0]:p[1]]), parts)

    copy()
    best = min(_timed(copy) for _ in range(repeats))
    return 2 * src.nbytes / best / 1e9


@contextmanager
def limited(threads: int, torch: Any) -> Iterator[None]:
    """BLAS (threadpoolctl) and PyTorch held to ``threads`` inside."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)


def amdahl(t1: float, t2: float, threads: int, cap: float | None = None) -> float:
    """t(T) = s + p/T through t(1) = s + p and t(2) = s + p/2 (p < 0 where two threads were
    slower than one: more threads are then slower still), never faster than t(1)/T, nor than
    t(1)/``cap`` where ``cap`` is given (the memory's own speed-up at T)."""
    p = 2.0 * (t1 - t2)
    t = max((t1 - p) + p / threads, t1 / threads)
    return max(t, t1 / cap) if cap else t


def measure(size: int, threads: Sequence[int], pairs: int, profiled: int, with_torch: bool,
            log: Callable[[str], None]) -> dict[str, Any]:
    from gatys.store import weights as weights_store

    vgg = weights_store.load()
    torch = None
    peer = None
    if with_torch and torch_peer.available():
        import torch  # type: ignore[no-redef]

        peer = make_peer(vgg, "cpu", False)
        peer.targets(*pictures(size)[:2])
    result: dict[str, Any] = {"size": size, "pairs": pairs, "profiled": profiled,
                              "machine": machine(),
                              "torch": getattr(torch, "__version__", None), "runs": []}
    setups = []
    for T in threads:
        workers = Workers(T)
        setups.append((*cpu_objective(vgg, workers, size), workers))
    both = " and PyTorch's" if peer is not None else ""
    log(f"ours{both} evaluations, {pairs} round{'s' * (pairs > 1)} of the thread counts in turn")
    for T, timing in zip(threads, _timed_in_turns(threads, setups, peer, torch, pairs)):
        with limited(T, torch):
            result["runs"].append({"threads": T, **timing,
                                   "bandwidth_gbs": stream_bandwidth(T)})
    # The profiles, like the ratios, in turns (1 2 4 ... 1 2 4 ...): a phase's speed-up is a
    # ratio between thread counts, and the prediction extrapolates it, so a spell of other work
    # on the machine must not fall on one thread count's profiles alone.
    log(f"ours profiled, {profiled} round{'s' * (profiled > 1)} of the thread counts in turn")
    profiles: list[list[tuple[float, PhaseTimer]]] = [[] for _ in threads]
    for _ in range(profiled):
        for T, (objective, x, workers), done in zip(threads, setups, profiles):
            with limited(T, torch):
                done.append(profile_once(objective, x, workers))
    for run, done in zip(result["runs"], profiles):
        run["profile"] = summarise(done)
        run["phases"] = phases(run["profile"]["rows"])
        run["rounds"] = [{"seconds": total, "phases": phases(summarise([(total, t)])["rows"])}
                         for total, t in done]
    _serial_remainders(result)
    return result


def _timed_in_turns(threads: Sequence[int], setups: Sequence[tuple[Any, np.ndarray, Workers]],
                    peer: Any, torch: Any, pairs: int) -> list[dict[str, Any]]:
    """Each thread count's timing (:func:`harness.paired`): in each of ``pairs`` rounds, after a
    round of warm-ups, ours then PyTorch's evaluation at each thread count in turn, so that
    ours and PyTorch's at one count are a pair, and a round's evaluations at one count and at
    another are seconds apart, not a block of pairs apart (a speed-up is their ratio)."""
    def timer(T: int, once: Callable[[], Any]) -> Callable[[], float]:
        def timed() -> float:
            with limited(T, torch):
                return _timed(once)
        return timed

    timers: dict[tuple[int, str], Callable[[], float]] = {}
    for T, (objective, x, _) in zip(threads, setups):
        timers[T, "ours"] = timer(T, evaluation(objective, x))
        if peer is not None:
            timers[T, "torch"] = timer(T, functools.partial(peer.evaluate, x))
    runs = in_turns(timers, pairs)
    return [paired(runs[T, "ours"], runs.get((T, "torch"), [])) for T in threads]


def _serial_remainders(result: dict[str, Any]) -> None:
    """Each run's speed-up over one thread and serial remainder, whole and per phase."""
    one = next((r for r in result["runs"] if r["threads"] == 1), None)
    if one is None:
        return
    for r in result["runs"]:
        T = r["threads"]
        r["speedup"] = one["seconds"] / r["seconds"]
        r["serial_remainder"] = r["seconds"] - one["seconds"] / T
        r["serial_remainder_share"] = r["serial_remainder"] / one["seconds"]
        if r["torch_seconds"] and one["torch_seconds"]:
            r["torch_speedup"] = one["torch_seconds"] / r["torch_seconds"]
        # the same round by round, the thread counts having taken turns in each
        r["serial_remainder_share_by_round"] = spread(
            [(t - t1 / T) / t1 for t1, t in zip(one["seconds_all"], r["seconds_all"])])
        if r["torch_seconds_all"] and one["torch_seconds_all"]:
            r["speedup_over_torch_by_round"] = spread(
                [(t1 / t) / (u1 / u) for t1, t, u1, u in zip(
                    one["seconds_all"], r["seconds_all"], one["torch_seconds_all"],
                    r["torch_seconds_all"])])
        for name, p in r["phases"].items():
            base = one["phases"][name]
            t1, t = base["parallel"] + base["main"], p["parallel"] + p["main"]
            p["speedup"] = t1 / t if t else None
            p["serial_remainder"] = t - t1 / T
            p["remainder_split"] = remainder_split(base, p, T)
            p["work_ratio"] = p["busy"] / base["busy"] if base["busy"] else None
            # how busy the threads were inside the parallel parts (1: every thread throughout)
            p["thread_use"] = p["busy"] / (p["parallel"] * T) if p["parallel"] else None
        total, base_total = _summed(r["phases"].values()), _summed(one["phases"].values())
        r["profile_remainder_split"] = remainder_split(base_total, total, T)
        r["work_ratio"] = total["busy"] / base_total["busy"] if base_total["busy"] else None


REMAINDER_CAUSES = ("main", "idle", "slower work")


def remainder_split(one: dict[str, float], at: dict[str, float], T: int) -> dict[str, float]:
    """A phase's serial remainder t(T) - t(1)/T (t = parallel + main seconds; ``one`` at one
    thread, ``at`` at T), split exactly into REMAINDER_CAUSES: the main thread's time alone,
    main(T) - main(1)/T; the threads idle inside the maps, (parallel(T) - busy(T)/T) -
    (parallel(1) - busy(1))/T; and the parts' own work taking longer than on one thread,
    (busy(T) - busy(1))/T (busy: the parts' seconds summed over the threads)."""
    return {"main": at["main"] - one["main"] / T,
            "idle": (at["parallel"] - at["busy"] / T) - (one["parallel"] - one["busy"]) / T,
            "slower work": (at["busy"] - one["busy"]) / T}


def _summed(phases: Any) -> dict[str, float]:
    """The parallel, main and busy seconds of ``phases`` summed."""
    return {k: sum(p[k] for p in phases) for k in ("parallel", "main", "busy")}


def predict(result: dict[str, Any], counts: Sequence[int]) -> list[dict[str, Any]]:
    """Ours and PyTorch's seconds per evaluation at each of ``counts`` threads, from the runs
    at 1 and 2 threads (see the module's docstring); ours also from each profiled round's
    pair of evaluations alone (``seconds_by_round``), where the runs have them."""
    by = {r["threads"]: r for r in result["runs"]}
    if not {1, 2} <= set(by):
        return []
    one, two = by[1], by[2]
    rounds = list(zip(one.get("rounds", []), two.get("rounds", [])))
    out = []
    for T in counts:
        # seconds per GB of a stream copy, extrapolated like the phases
        per_gb = amdahl(1 / one["bandwidth_gbs"], 1 / two["bandwidth_gbs"], T)
        bandwidth_speedup = (1 / one["bandwidth_gbs"]) / per_gb
        total, uncapped, per_phase = _fit(one["phases"], two["phases"], one["bandwidth_gbs"],
                                          bandwidth_speedup, T)
        # The profiled evaluations carry the timer's waits; scale to the alternated timing.
        scale = one["seconds"] / one["profile"]["seconds"]
        row = {"threads": T, "seconds": total * scale, "seconds_uncapped": uncapped * scale,
               "phases": per_phase, "stream_speedup": bandwidth_speedup, "torch_seconds": None,
               "ratio": None, "ratio_uncapped": None,
               "seconds_by_round": [_fit(r1["phases"], r2["phases"], one["bandwidth_gbs"],
                                         bandwidth_speedup, T)[0] * one["seconds"] / r1["seconds"]
                                    for r1, r2 in rounds]}
        if one["torch_seconds"] and two["torch_seconds"]:
            row["torch_seconds"] = amdahl(one["torch_seconds"], two["torch_seconds"], T)
            row["ratio"] = row["seconds"] / row["torch_seconds"]
            row["ratio_uncapped"] = row["seconds_uncapped"] / row["torch_seconds"]
        out.append(row)
    return out


def _fit(phases1: dict[str, dict[str, float]], phases2: dict[str, dict[str, float]],
         gbs1: float, bandwidth_speedup: float,
         T: int) -> tuple[float, float, dict[str, float]]:
    """The phases at 1 and 2 threads extrapolated to T (:func:`predict`): the profile's seconds
    at T, capped and not, and each phase's; ``gbs1`` the copy's speed on one thread and
    ``bandwidth_speedup`` its speed-up at T."""
    total, uncapped, per_phase = 0.0, 0.0, {}
    for name, p1 in phases1.items():
        p2 = phases2[name]

        def fit(cap: float | None) -> float:
            return sum(amdahl(p1[k], p2[k], T, cap) for k in ("parallel", "main"))

        limit = None
        if any(name.startswith(m) for m in MEMORY_BOUND):
            # never below what the phase itself gained on two threads, nor below 1: a copy
            # measured slower on two threads than on one is the machine's noise, not a bound
            own = (p1["parallel"] + p1["main"]) / max(p2["parallel"] + p2["main"], 1e-12)
            limit = max(bandwidth_speedup, own, 1.0)
        per_phase[name] = fit(limit)
        if p1.get("bytes"):  # products: the time their bytes take scales as a copy
            t1 = p1["parallel"] + p1["main"]
            moving = min(p1["bytes"] / (gbs1 * 1e9), t1)
            per_phase[name] = max(per_phase[name], moving / max(bandwidth_speedup, 1.0))
        total += per_phase[name]
        uncapped += fit(None)
    return total, uncapped, per_phase


STEP_THREADS = (1, 2, 4, 8, 16)
GIL_SECONDS = 5  # sampled by bench.gil at the most threads
ARENA_SECONDS, ARENA_ROUNDS = 3, 2  # the malloc heaps' comparison: per process, turns
ARENAS = {"one heap": "1", "a heap per thread": "0"}  # GATYS_MALLOC_ARENAS
PART_MEGABYTES, PART_ROUNDS = (2, 4, 16), 3  # Winograd parts beside the engine's, turns
SWITCH_MILLISECONDS, SWITCH_ROUNDS = (1.0,), 3  # switch intervals beside the interpreter's
LARGE_SIDE, LARGE_ROUNDS = 1024, 2  # the default threads at it and at the step's size, in turns
CORUN_EVALUATIONS, CORUN_ROUNDS = 2, 1  # bench.corun's processes at the most threads


def malloc_arenas(threads: int, size: int) -> dict[str, Any]:
    """Seconds per evaluation and peak resident memory at ``threads`` threads with one malloc
    heap for all threads (the engine's default) and with glibc's heap per thread
    (``GATYS_MALLOC_ARENAS``, kernels/allocator.py), each in its own processes, the settings
    taking turns for ARENA_ROUNDS rounds; the median of each."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ARENAS}
    for _ in range(ARENA_ROUNDS):
        for name, arenas in ARENAS.items():
            env = {**os.environ, "GATYS_MALLOC_ARENAS": arenas}
            runs[name].append(gil.loop_in_child(threads, size, ARENA_SECONDS, env))
    return {"threads": threads, "size": size, "runs": runs, **{
        name: {key: float(np.median([r[key] for r in rs]))
               for key in ("seconds_per_evaluation", "peak_bytes")}
        for name, rs in runs.items()}}


def in_turns(timers: dict[Any, Callable[[], float]], rounds: int) -> dict[Any, list[float]]:
    """Each of ``timers`` (a setting's one timed evaluation, in seconds) once a round, in turns,
    for ``rounds`` rounds after a round of warm-ups, so that a machine whose speed drifts moves
    them alike: each one's timed seconds."""
    runs: dict[Any, list[float]] = {key: [] for key in timers}
    for timed in (False, *[True] * rounds):
        for key, time_once in timers.items():
            seconds = time_once()
            if timed:
                runs[key].append(seconds)
    return runs


def part_sizes(threads: int, size: int) -> dict[str, Any]:
    """Seconds per evaluation at ``threads`` threads with the Winograd parts sized each way the
    engine sizes them: a thread's share (up to ``winograd.part_bytes(threads)``) and to fit
    the cache (``winograd.WINOGRAD_CACHED_PART_BYTES`` or a few times U), the engine's where
    BLAS multiplies with AVX-512 kernels (``engine`` says which it took); and in parts of each
    of PART_MEGABYTES (the least and the bound set to it: parts of that size or U's). In one
    process, the settings taking turns for PART_ROUNDS rounds after a warm-up of each; the
    median of each. On 2 cores a thread's share was fastest with AVX2 products and cache-sized
    parts with AVX-512 ones (docs/performance.md); with many threads sharing one L3, smaller
    parts may be."""
    from gatys.kernels import winograd
    from gatys.store import weights as weights_store

    workers = Workers(threads)
    objective, x = cpu_objective(weights_store.load(), workers, size)
    names = ("WINOGRAD_CACHE_PARTS", "WINOGRAD_CACHED_PART_BYTES", "WINOGRAD_HELD_BYTES")
    chosen = {name: getattr(winograd, name) for name in names}
    settings = {"a thread's share": {**chosen, "WINOGRAD_CACHE_PARTS": False},
                "cache-sized": {**chosen, "WINOGRAD_CACHE_PARTS": True},
                **{str(mb): {"WINOGRAD_CACHE_PARTS": True, "WINOGRAD_CACHED_PART_BYTES": mb << 20,
                             "WINOGRAD_HELD_BYTES": (mb << 20) * max(2, threads)}
                   for mb in PART_MEGABYTES}}
    engine = "cache-sized" if winograd.cache_parts() else "a thread's share"
    least = winograd.least_cpu_part_bytes()
    once = evaluation(objective, x)

    def sized(values: dict[str, Any]) -> float:
        for attribute, value in values.items():
            setattr(winograd, attribute, value)
        return _timed(once)

    try:
        with limited(threads, None):
            runs = in_turns({name: functools.partial(sized, values)
                             for name, values in settings.items()}, PART_ROUNDS)
    finally:
        for attribute, value in chosen.items():
            setattr(winograd, attribute, value)
    return {"threads": threads, "size": size, "engine": engine,
            "engine_megabytes": [least >> 20, winograd.part_bytes(threads) >> 20],
            "runs": runs, "seconds": {name: float(np.median(r)) for name, r in runs.items()}}


def switch_intervals(threads: Sequence[int], size: int) -> dict[str, Any]:
    """Seconds per evaluation on each of ``threads`` with the interpreter's switch interval as
    it is and at each of SWITCH_MILLISECONDS (``sys.setswitchinterval``: how long a thread
    waiting for the GIL waits before it asks the thread holding it to let go), and PyTorch's
    on all the CPUs, in one process, taking turns for SWITCH_ROUNDS rounds after a warm-up of
    each; the medians, and each setting's median ratio to PyTorch's evaluation of its round.
    On the 16-core host 1 ms made 16 threads 17 % faster (docs/performance.md)."""
    from gatys.store import weights as weights_store

    vgg = weights_store.load()
    own = sys.getswitchinterval()
    settings = [(t, ms) for t in threads for ms in (own * 1e3, *SWITCH_MILLISECONDS)]
    onces = {t: evaluation(*cpu_objective(vgg, Workers(t), size)) for t in threads}

    def switched(t: int, ms: float) -> float:
        sys.setswitchinterval(ms / 1e3)
        try:
            return _timed(onces[t])
        finally:
            sys.setswitchinterval(own)

    timers: dict[Any, Callable[[], float]] = {
        (t, ms): functools.partial(switched, t, ms) for t, ms in settings}
    torch: Any = None
    if torch_peer.available():  # PyTorch's evaluation last in each round
        import torch

        peer = make_peer(vgg, "cpu", False)
        content, style, x = pictures(size)
        peer.targets(content, style)
        timers["torch"] = functools.partial(_timed, functools.partial(peer.evaluate, x))
    with limited(cpus(), torch):
        runs = in_turns(timers, SWITCH_ROUNDS)
    torch_runs = runs.pop("torch", [])
    rows = []
    for (t, ms), r in runs.items():
        ratio = float(np.median(np.array(r) / np.array(torch_runs))) if torch_runs else None
        rows.append({"threads": t, "interval_ms": ms, "seconds": float(np.median(r)),
                     "seconds_all": r, "ratio": ratio})
    return {"size": size, "torch_threads": cpus(),
            "torch_seconds": float(np.median(torch_runs)) if torch_runs else None,
            "torch_seconds_all": torch_runs or None, "rows": rows}


def run_step(out: Path, size: int = 512, pairs: int = 3, profiled: int = 2,
             log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """The GPU check's ``cpu_scaling`` step, for the many-core host of a GPU machine: this
    bench at 1, 2, 4, 8 and 16 threads (as many as there are CPUs) with PyTorch, the prediction
    from 1 and 2 threads beside what was measured, and at the most threads the engine's split
    against tile rows only (``bench.partition``), one malloc heap against a heap per thread
    (:func:`malloc_arenas`), the Winograd parts' sizes (:func:`part_sizes`), the switch
    interval on the engine's default threads and on all (:func:`switch_intervals`), where
    py-spy is installed the GIL's share (``bench.gil``), what that many one-thread processes
    of ours and of PyTorch's lose to each other (``bench.corun``), and at ``size``^2 and at
    LARGE_SIDE^2 the engine's default threads for small images and for large ones
    (``workers.LARGE_IMAGE_PIXELS``) and all the CPUs, in turns with PyTorch
    (``bench.settings``: whether the defaults still beat more threads at each size), written to
    ``out/cpu_scaling.json``."""
    counts = [t for t in STEP_THREADS if t <= cpus()]
    result = measure(size, counts, pairs, profiled, True, log)
    result["prediction"] = predict(result, [t for t in counts if t > 2])
    measured = {r["threads"]: r for r in result["runs"]}
    for p in result["prediction"]:
        p["measured_seconds"] = measured[p["threads"]]["seconds"]
        p["measured_torch_seconds"] = measured[p["threads"]]["torch_seconds"]
    if counts[-1] > 2:  # the engine's split of the small layers against tile rows only
        result["partition"] = partition.measure(size, counts[-1], pairs, counts[-1])
        result["partition"]["table"] = partition.format_table(result["partition"])
        try:  # one malloc heap against a heap per thread, at that many real threads
            result["malloc_arenas"] = malloc_arenas(counts[-1], size)
            result["malloc_arenas"]["table"] = format_arenas(result["malloc_arenas"])
        except RuntimeError as e:
            result["malloc_arenas"] = {"error": str(e)}
        # on the threads an image of this size gets by default: the sizes users run
        result["part_sizes"] = part_sizes(min(default_threads(size * size), counts[-1]), size)
        result["part_sizes"]["table"] = format_parts(result["part_sizes"])
        # the engine's default thread count and all the CPUs, each at two switch intervals
        result["switch_intervals"] = switch_intervals(
            sorted({min(default_threads(), counts[-1]), counts[-1]}), size)
        result["switch_intervals"]["table"] = format_switches(result["switch_intervals"])
        try:  # the GIL's floor at that many real threads, where py-spy is installed
            result["gil"] = gil.measure(counts[-1], size, GIL_SECONDS, 200)
            result["gil"]["table"] = gil.format_table(result["gil"])
        except RuntimeError as e:
            result["gil"] = {"error": str(e)}
        try:  # what the cores share, whatever the threads do
            result["corun"] = corun.measure(size, counts[-1], CORUN_EVALUATIONS, CORUN_ROUNDS,
                                            corun.engines())
            result["corun"]["table"] = corun.format_table(result["corun"])
        except RuntimeError as e:
            result["corun"] = {"error": str(e)}
        from . import settings  # it imports this module's helpers

        chosen = sorted({default_threads(), default_threads(LARGE_SIDE ** 2), counts[-1]})
        result["thread_counts"] = settings.measure(sorted({size, LARGE_SIDE}), chosen, {},
                                                   LARGE_ROUNDS, True, log)
        result["thread_counts"]["table"] = settings.format_table(result["thread_counts"])
    result["table"] = format_table(result)
    (out / "cpu_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    most = result["runs"][-1]
    result["summary"] = (f"{most['threads']} threads at {size}^2: ours {most['seconds']:.3f} s, "
                         f"PyTorch {_fmt(most['torch_seconds'], '.3f')} s, ours/torch "
                         f"{_fmt(most['ratio'], '.2f')}")
    result["targets"] = {f"{size}_at_most_torch_at_{most['threads']}_threads":
                         None if most["ratio"] is None else most["ratio"] <= 1.0}
    return result


def format_arenas(r: dict[str, Any]) -> str:
    lines = [f"malloc heaps at {r['threads']} threads, {r['size']}^2 (the median of "
             f"{len(r['runs']['one heap'])} processes each, in turns):"]
    lines += [f"  {name:18} {r[name]['seconds_per_evaluation']:.3f} s per evaluation, peak "
              f"{r[name]['peak_bytes'] / 2 ** 30:.2f} GiB" for name in ARENAS]
    return "\n".join(lines)


def format_parts(r: dict[str, Any]) -> str:
    least, most = r["engine_megabytes"]
    return (f"Winograd parts at {r['threads']} threads, {r['size']}^2 (the engine's: "
            f"{r['engine']}, at least {least} MB or a few U, up to {most} MB; median of "
            f"{PART_ROUNDS}, in turns): "
            + ", ".join(f"{name}{' MB' if name.isdigit() else ''} {seconds:.3f} s"
                        for name, seconds in r["seconds"].items()))


def format_switches(r: dict[str, Any]) -> str:
    torch_text = "PyTorch not available" if r["torch_seconds"] is None else \
        f"PyTorch on {r['torch_threads']} threads {r['torch_seconds']:.3f} s"
    lines = [f"switch intervals at {r['size']}^2 (median of {SWITCH_ROUNDS}, in turns; "
             f"{torch_text}):"]
    lines += [f"  {row['threads']:3} threads, {row['interval_ms']:g} ms: {row['seconds']:.3f} s"
              + ("" if row["ratio"] is None else f", ours/torch {row['ratio']:.2f}")
              for row in r["rows"]]
    return "\n".join(lines)


def format_table(r: dict[str, Any]) -> str:
    m = r["machine"]
    blas = blas_text(m)
    kind = ", ".join(filter(None, [m.get("cpu_id"), " ".join(m.get("isa", []))]))
    lines = [f"CPU: {m.get('cpu')} ({m.get('vendor')}; {kind}), {m.get('cpus')} cores; "
             f"BLAS: {blas}{python_text(m)}; torch {r['torch'] or 'not available'}",
             f"one evaluation at {r['size']}^2, {r['pairs']} rounds of an alternating pair per "
             f"thread count, the counts in turn (median of the pair ratios, [min, quartiles, "
             f"max]), {r['profiled']} profiled",
             "", f"{'threads':>7} {'ours s':>8} {'torch s':>8} {'ours/torch':>10} "
                 f"{'spread':>25} {'speed-up':>8} {'torch':>6} {'serial rem.':>11} "
                 f"{'stream GB/s':>11}"]
    for run in r["runs"]:
        ratios = _bracketed(run["ratio_spread"], ".2f") if run["ratio_spread"] else "-"
        lines.append(f"{run['threads']:>7} {run['seconds']:8.3f} "
                     f"{_fmt(run['torch_seconds'], '8.3f'):>8} {_fmt(run['ratio'], '10.2f'):>10} "
                     f"{ratios:>25} {_fmt(run.get('speedup'), '7.2f'):>7}x "
                     f"{_fmt(run.get('torch_speedup'), '5.2f'):>5}x "
                     f"{_fmt(run.get('serial_remainder_share'), '11.1%'):>11} "
                     f"{run['bandwidth_gbs']:11.1f}")
    lines += format_rounds(r["runs"])
    names = list(r["runs"][0]["phases"])
    lines += ["", "per phase, ms: inside the workers' parallel parts + on the main thread alone; "
                  "thread use in the parallel parts (busy / (wall x T)); speed-up over one "
                  "thread; serial remainder t(T) - t(1)/T:",
              f"{'phase':20} " + " ".join(f"{'T=' + str(run['threads']):>33}"
                                          for run in r["runs"])]
    for name in names:
        cells = []
        for run in r["runs"]:
            p = run["phases"][name]
            cells.append(f"{p['parallel'] * 1e3:6.0f}+{p['main'] * 1e3:4.0f} "
                         f"{_fmt(p.get('thread_use'), '4.0%'):>4} "
                         f"{_fmt(p.get('speedup'), '4.2f'):>4}x "
                         f"{_fmt(p.get('serial_remainder'), '+7.3f'):>7}s")
        lines.append(f"{name:20} " + " ".join(f"{c:>33}" for c in cells))
    lines += format_split(r["runs"])
    lines += ["", "idle in the workers' maps per evaluation, ms of all threads' time: before a "
                  "thread's first part (its wake-up), between its parts, after its last part "
                  "while another's ran (imbalance), after the last part until the map returned "
                  "(the calling thread's wake-up):",
              f"{'threads':>7} {'maps':>5} " + " ".join(f"{c:>9}" for c in IDLE)
              + f" {'all':>7} {'share':>6}"]
    for run in r["runs"]:
        idle, T = run["profile"]["idle_seconds"], run["threads"]
        total = sum(idle.values())
        lines.append(f"{T:>7} {run['profile']['maps']:>5} "
                     + " ".join(f"{idle[c] * 1e3:9.1f}" for c in IDLE)
                     + f" {total * 1e3:7.1f} {total / (run['profile']['seconds'] * T):6.1%}")
    last, first = r["runs"][-1], r["runs"][0]
    busy_at_one = {(row["direction"], row["layer"]): row["busy_seconds"]
                   for row in first["profile"]["rows"]}
    lines += ["", f"per layer at {last['threads']} threads, ms: in all, in the parallel parts and "
                  "on the main thread; thread use; the parts' busy time over that on "
                  f"{first['threads']} thread{'s' if first['threads'] > 1 else ''} (work); the "
                  "maps, their parts, and the threads' idle time in them by cause:",
              f"  {'':8} {'layer':14} {'ms':>6} {'par.':>6} {'main':>5} {'use':>4} "
              f"{'work':>5} {'maps':>4} {'parts':>5} " + " ".join(f"{c:>9}" for c in IDLE)]
    for row in last["profile"]["rows"]:
        use = row["busy_seconds"] / (row["parallel_seconds"] * last["threads"]) \
            if row["parallel_seconds"] else None
        base = busy_at_one.get((row["direction"], row["layer"]))
        work = row["busy_seconds"] / base if base else None
        idle = row.get("idle_seconds", {})
        lines.append(f"  {row['direction']:8} {row['layer']:14} {row['seconds'] * 1e3:6.1f} "
                     f"{row['parallel_seconds'] * 1e3:6.1f} "
                     f"{(row['seconds'] - row['parallel_seconds']) * 1e3:5.1f} "
                     f"{_fmt(use, '4.0%'):>4} {_fmt(work, '5.3f'):>5} "
                     f"{_fmt(row.get('maps'), '4d'):>4} "
                     f"{_fmt(row.get('parts'), '5d'):>5} "
                     + " ".join(f"{_fmt(idle[c] * 1e3 if c in idle else None, '9.2f'):>9}"
                                for c in IDLE))
    if r.get("prediction"):
        lines += ["", *format_prediction(r["prediction"])]
    return "\n".join(lines)


def format_split(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The profiled serial remainder of each thread count past one, split by
    :func:`remainder_split`: the whole evaluation's, then each phase's, in ms, with the
    parts' busy time over one thread's."""
    rows = [run for run in runs if run["threads"] > 1 and "profile_remainder_split" in run]
    if not rows:
        return []
    lines = ["", "the profiled serial remainder split, ms: on the main thread alone + the threads "
                 "idle in the maps + the parts' work slower than on one thread (its busy time "
                 "over one thread's):"]
    for run in rows:
        for name, split, ratio in [("all", run["profile_remainder_split"], run["work_ratio"]),
                                   *[(n, p["remainder_split"], p["work_ratio"])
                                     for n, p in run["phases"].items()]]:
            lines.append(f"  T={run['threads']:<3} {name:18} {sum(split.values()) * 1e3:7.1f} = "
                         + " + ".join(f"{split[c] * 1e3:5.1f} {c}" for c in REMAINDER_CAUSES)
                         + f" (work {_fmt(ratio, '.3f')})")
    return lines


def format_rounds(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The speed-ups and serial remainders of :func:`_serial_remainders`' rounds, where more
    than one thread count ran."""
    rows = [run for run in runs if run["threads"] > 1 and "serial_remainder_share_by_round" in run]
    if not rows:
        return []
    lines = ["", "round by round (a round's evaluations at one thread and at T): ours' speed-up "
                 "over PyTorch's, and the serial remainder's share, median [min, quartiles, max]:"]
    for run in rows:
        over = run.get("speedup_over_torch_by_round")
        over_text = "-" if over is None else f"{over[0]:.3f} {_bracketed(over[1], '.3f')}"
        share, shares = run["serial_remainder_share_by_round"]
        lines.append(f"  {run['threads']:>3} threads: speed-up over PyTorch's {over_text}; "
                     f"remainder {share:.1%} {_bracketed(shares, '.1%')}")
    return lines


def format_prediction(prediction: Sequence[dict[str, Any]]) -> list[str]:
    """The lines of :func:`predict`'s rows, with what was measured where a row has it."""
    lines = ["predicted from 1 and 2 threads (Amdahl per phase and part; pools and the rest no "
             "faster than a stream copy, nor slower than on 2 threads; the loss products no "
             "faster than their bytes at the copy's speed; in brackets, the range of the "
             "predictions from each profiled round alone):"]
    for p in prediction:
        measured = (f"; measured: ours {p['measured_seconds']:.3f} s, PyTorch "
                    f"{_fmt(p['measured_torch_seconds'], '.3f')} s"
                    if "measured_seconds" in p else "")
        lines.append(f"  {p['threads']:>3} threads: ours {p['seconds']:.3f} s"
                     f"{_round_range(p, 1.0, '.3f')}, PyTorch "
                     f"{_fmt(p['torch_seconds'], '.3f')} s, ours/torch {_fmt(p['ratio'], '.2f')}"
                     f"{_round_range(p, p['torch_seconds'], '.2f')} (stream copy "
                     f"{_fmt(p['stream_speedup'], '.1f')}x; without the cap: ours "
                     f"{p['seconds_uncapped']:.3f} s, "
                     f"{_fmt(p['ratio_uncapped'], '.2f')}){measured}")
    return lines


def _bracketed(values: Sequence[float], spec: str) -> str:
    """``[a b c ...]``: a spread's values (:func:`harness.spread`) as the tables show them."""
    return "[" + " ".join(f"{v:{spec}}" for v in values) + "]"


def _round_range(p: dict[str, Any], per: float | None, spec: str) -> str:
    """`` [lo–hi in N rounds]``: the predictions of a row's profiled rounds, each alone, divided
    by ``per``; nothing without rounds or ``per``."""
    each = p.get("seconds_by_round") or []
    if not each or not per:
        return ""
    lo, hi = min(each) / per, max(each) / per
    return f" [{lo:{spec}}–{hi:{spec}} in {len(each)} rounds]"


def _counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of thread counts: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be 1 or more: {text!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=_counts, default=[1, 2],
                   help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--pairs", type=int, default=5,
                   help="alternating evaluations of each engine per thread count (default 5)")
    p.add_argument("--profiled", type=int, default=3,
                   help="profiled evaluations of ours per thread count (median; default 3)")
    p.add_argument("--predict", type=_counts, default=[4, 8, 16],
                   help="thread counts to predict from the runs at 1 and 2 (default 4,8,16)")
    p.add_argument("--no-torch", action="store_true", help="time ours alone")
    add_output_options(p, "the tables")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.size < 32 or a.pairs < 1 or a.profiled < 1:
        print("scaling: error: --size must be >= 32, --pairs and --profiled >= 1",
              file=sys.stderr)
        return 2
    if max(a.threads) > cpus():
        print(f"scaling: error: {max(a.threads)} threads asked for, {cpus()} CPUs here: time "
              f"at most {cpus()}", file=sys.stderr)
        return 2
    try:
        if a.out:
            check_writable(a.out)
        log = (lambda s: None) if a.json else (lambda s: print(f"scaling: {s}", file=sys.stderr))
        result = measure(a.size, a.threads, a.pairs, a.profiled, not a.no_torch, log)
    except GatysError as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 2
    result["prediction"] = predict(result, a.predict)
    report(result, a, format_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
