"""What taking the GIL back costs the threads that wait for it, per evaluation.

    python -m bench.gil_waits [--like 2] [--size 512] [--seconds 4] [--json] [--out FILE]

``bench.gil`` samples how long the GIL is held and ``bench.releases`` counts where it is let go;
neither sees what a hand-over costs. When one thread's NumPy call ends while another runs
Python, it sleeps until that one lets go and the kernel wakes it, which takes longer than the
Python it waited for. This bench runs ``bench.gil``'s evaluation loop (every layer cut as
``--like`` threads would, on this machine's threads) under Linux's ``perf record``, with uprobes
on CPython's ``PyEval_RestoreThread`` (entry and return) and ``PyEval_SaveThread``. For each
thread, from entry to return is a wait for the GIL, and from return to the next release the GIL
is held. It reports, per evaluation, each thread's takes, their wait in all, the waits longer
than LONG_WAIT (a sleep and a wake-up rather than a free GIL) and the time held, and for all
threads how the waits spread over WAIT_BINS.

Each probe's hit costs the thread a microsecond or two, counted in the waits and the time held
alike: a run on one thread (``taskset -c 0`` with ``OPENBLAS_NUM_THREADS=1``), where nobody else
holds the GIL, shows that cost. The probes are made once per boot, as root, with Linux's perf
(Debian's ``linux-perf``):

    python -m bench.releases --library       # prints LIBPYTHON, the library to probe
    perf probe -x LIBPYTHON PyEval_SaveThread
    perf probe -x LIBPYTHON PyEval_RestoreThread
    perf probe -x LIBPYTHON 'PyEval_RestoreThread%return'

A probe on another Python's library (a virtual environment made from another interpreter) is
refused: it would count nothing of this one's.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from gatys.kernels.workers import cpus

from . import harness
from .gil import loop_in_child
from .releases import TRACING, library, probe

# The probes' names, as perf names them (the group is named after the library probed).
TAKE, TAKEN, RELEASE = "PyEval_RestoreThread", "PyEval_RestoreThread__return", "PyEval_SaveThread"
# the uprobes this bench records, as ``perf probe`` is given them
PROBED = ("PyEval_SaveThread", "PyEval_RestoreThread", "'PyEval_RestoreThread%return'")
LONG_WAIT = 20e-6  # seconds: longer than a probe's hit and a free GIL, a sleep and a wake-up
WAIT_BINS = (0.0, 5e-6, 20e-6, 50e-6, 100e-6, 1e-3)  # lower bounds, seconds


def probe_events(roots: Sequence[str] | None = None) -> list[str]:
    """The three uprobes on this interpreter's library as perf's ``GROUP:NAME`` events, found
    under ``roots`` (default TRACING) in whichever group perf gave them (``releases.probe``)."""
    target = library()  # read once for the three
    return [f"{probe(name, roots or TRACING, target, PROBED)[0]}:{name}"
            for name in (TAKE, TAKEN, RELEASE)]


def waits(script: str, window: Sequence[float]) -> dict[int, dict[str, Any]]:
    """From ``perf script -F tid,time,event`` lines, each thread's waits (seconds, in order),
    the time it held the GIL and its releases, between the ``window``'s two times (perf's
    clock). A take whose entry fell before the window is left out, and so is the last hold
    of each thread, which the window ends."""
    start, end = window
    entered: dict[int, float] = {}
    held_since: dict[int, float] = {}
    threads: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"waits": [], "held_seconds": 0.0, "releases": 0})
    for line in script.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        try:
            tid, t = int(fields[0]), float(fields[1].rstrip(":"))
        except ValueError:
            continue
        if not start <= t <= end:
            continue
        event = fields[2].rstrip(":").rpartition(":")[2]
        if event == TAKE:
            entered[tid] = t
        elif event == TAKEN:
            if tid in entered:
                threads[tid]["waits"].append(t - entered.pop(tid))
            held_since[tid] = t
        elif event == RELEASE:
            threads[tid]["releases"] += 1
            if tid in held_since:
                threads[tid]["held_seconds"] += t - held_since.pop(tid)
    return dict(threads)


def summary(threads: dict[int, dict[str, Any]], evaluations: int) -> dict[str, Any]:
    """Per evaluation: each thread's takes, wait, long waits and time held, busiest first, and
    all threads' waits in WAIT_BINS."""
    rows = []
    for tid, t in threads.items():
        w, long = t["waits"], [x for x in t["waits"] if x > LONG_WAIT]
        rows.append({"tid": tid, "takes": len(w) / evaluations,
                     "wait_seconds": sum(w) / evaluations, "long_waits": len(long) / evaluations,
                     "long_wait_seconds": sum(long) / evaluations,
                     "held_seconds": t["held_seconds"] / evaluations,
                     "releases": t["releases"] / evaluations})
    rows.sort(key=lambda r: -r["takes"])
    every = [x for t in threads.values() for x in t["waits"]]
    bounds = (*WAIT_BINS, float("inf"))
    bins = [{"from_us": lo * 1e6, "to_us": hi * 1e6,
             "waits": sum(lo <= x < hi for x in every) / evaluations,
             "seconds": sum(x for x in every if lo <= x < hi) / evaluations}
            for lo, hi in zip(bounds[:-1], bounds[1:])]
    return {"threads": rows, "bins": bins}


def measure(like: int, size: int, seconds: int) -> dict[str, Any]:
    """``bench.gil``'s loop in a child process under ``perf record``, its three uprobes
    recorded, and :func:`summary` of the evaluations after its warm-up."""
    perf = shutil.which("perf")
    if perf is None:
        raise RuntimeError("Linux's perf is not installed (Debian: apt install linux-perf)")
    events = probe_events()
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "perf.data")
        record = [perf, "record", "-q", "-k", "CLOCK_MONOTONIC", "-o", data]
        for event in events:
            record += ["-e", event]
        timing = loop_in_child(like, size, seconds, launcher=[*record, "--"])
        script = subprocess.run([perf, "script", "--ns", "-i", data, "-F", "tid,time,event"],
                                capture_output=True, text=True)
        if script.returncode:
            last = (script.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"perf script could not read the recording: {last}")
    threads = waits(script.stdout, timing["window"])
    if not threads:
        raise RuntimeError("perf recorded no takes of the GIL in the loop: are the uprobes on "
                           "the library this Python runs (python -m bench.releases --library)?")
    return {"like": like, "threads_run": cpus(), "size": size,
            "evaluations": timing["evaluations"],
            "seconds_per_evaluation": timing["seconds_per_evaluation"],
            "long_wait_us": LONG_WAIT * 1e6,
            **summary(threads, timing["evaluations"]), "machine": harness.machine()}


def format_table(r: dict[str, Any]) -> str:
    lines = [f"{r['size']}^2, parts cut as for {r['like']} threads, run on {r['threads_run']}: "
             f"{r['seconds_per_evaluation']:.3f} s per evaluation ({r['evaluations']} recorded)",
             f"per evaluation, each thread (waits over {r['long_wait_us']:.0f} us are long):",
             f"{'thread':>8s} {'takes':>7s} {'wait ms':>8s} {'long':>6s} {'long ms':>8s} "
             f"{'held ms':>8s}"]
    lines += [f"{t['tid']:8d} {t['takes']:7.0f} {t['wait_seconds'] * 1e3:8.2f} "
              f"{t['long_waits']:6.0f} {t['long_wait_seconds'] * 1e3:8.2f} "
              f"{t['held_seconds'] * 1e3:8.2f}" for t in r["threads"]]
    lines += ["", "all threads' waits per evaluation, by length:"]
    lines += [f"  {b['from_us']:6.0f} - {b['to_us']:<6.0f} us {b['waits']:8.1f} "
              f"{b['seconds'] * 1e3:8.2f} ms" for b in r["bins"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gil_waits",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--like", type=int, default=2, help="threads whose partition is run (2)")
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--seconds", type=int, default=4, help="seconds recorded (default 4)")
    harness.add_output_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.like < 1 or a.size < 32 or a.seconds < 1:
        print("gil_waits: error: --like and --seconds must be >= 1, --size >= 32",
              file=sys.stderr)
        return 2
    return harness.measure_and_report("gil_waits", a, lambda: measure(a.like, a.size, a.seconds),
                                      format_table)


if __name__ == "__main__":
    sys.exit(main())
