"""How long the interpreter holds the GIL during an evaluation: the serial floor of many threads.

    python -m bench.gil [--like 16] [--size 512] [--seconds 8] [--rate 200] [--json]

NumPy's ufuncs, copies and BLAS calls release the GIL while they work, but each call's Python
side (slicing, argument parsing, creating the result's view) holds it, and so does the engine's
own Python between the calls. However many threads there are, only one runs Python at a time,
so the seconds per evaluation spent holding the GIL are a floor no thread count goes below; a
16-thread partition makes more, smaller calls than a 2-thread one. An Amdahl fit from 1 and 2
threads cannot see this floor (two threads rarely wait for each other's Python).

This bench evaluates in a loop in a child process, every layer cut as ``--like`` threads would
(``bench.partition``), on this machine's threads, and samples it with py-spy's ``record --gil``
(``pip install py-spy``), which keeps only the samples taken while a thread holds the GIL. The
share of the samples over the wall time is the GIL's share; times the seconds per evaluation,
the seconds held per evaluation. py-spy reads another process's memory: it may need root or
``ptrace`` rights.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from gatys.kernels.allocator import arena_setting
from gatys.kernels.workers import cpus

from .peak import high_water_bytes

_MODULE = __spec__.name if __spec__ else "bench.gil"  # the child's: installed or in a checkout


def loop(like: int, size: int, seconds: float, report: Any = sys.stdout) -> dict[str, float]:
    """Evaluate for about ``seconds`` after a warm-up, every layer cut as for ``like`` threads;
    prints ``ready`` to ``report`` when the warm-up is done (the sampler's cue). Returns the
    evaluations made, the seconds per evaluation, when they began and ended (the ``window``),
    the process's peak resident bytes and its malloc heaps (GATYS_MALLOC_ARENAS)."""
    from .partition import partitioned_objective

    _, objective, x = partitioned_objective(cpus(), like, size)
    objective.evaluate(x)
    print("ready", file=report, flush=True)
    count, window, start = 0, [time.clock_gettime(time.CLOCK_MONOTONIC)], time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        objective.evaluate(x)
        count += 1
    window.append(time.clock_gettime(time.CLOCK_MONOTONIC))
    return {"evaluations": count, "seconds_per_evaluation": (time.perf_counter() - start) / count,
            "window": window,  # CLOCK_MONOTONIC seconds, as perf's -k CLOCK_MONOTONIC stamps
            "peak_bytes": high_water_bytes(),  # not ru_maxrss: the parent's, from a fork
            "malloc_arenas": arena_setting()}


def loop_in_child(like: int, size: int, seconds: int, env: dict[str, str] | None = None,
                  launcher: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`loop` in a child process with the environment ``env`` (default: this one's),
    started through ``launcher`` (a command that runs the rest of its line: ``perf record
    ... --``) if given."""
    done = subprocess.run([*launcher, sys.executable, "-m", _MODULE, "--loop", "--like",
                           str(like), "--size", str(size), "--seconds", str(seconds)],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the evaluation loop failed: {last}")
    return json.loads(done.stdout.splitlines()[-1])


def held(raw: str, seconds: int, rate: int, top: int = 8) -> dict[str, Any]:
    """From py-spy's raw output (``stack;frames count`` per line) of a ``--gil`` recording of
    ``seconds`` at ``rate`` Hz: the share of the wall time a thread held the GIL, and the
    innermost gatys frames that held it most (share of the held samples)."""
    total, where = 0, Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        frames = stack.split(";")
        ours = [f for f in frames if "kernels/" in f or "gatys/" in f]
        where[(ours or frames)[-1].strip()] += int(count)
    return {"samples": total, "share": total / (seconds * rate),
            "where": [{"frame": f, "share": n / total} for f, n in where.most_common(top)]}


def measure(like: int, size: int, seconds: int, rate: int) -> dict[str, Any]:
    """The loop in a child process, sampled by py-spy for ``seconds`` once it is warm."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    child = subprocess.Popen([sys.executable, "-m", _MODULE, "--loop", "--like", str(like),
                              "--size", str(size), "--seconds", str(seconds + 2)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the evaluation loop stopped before it was ready")
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "gil.txt"
            spied = subprocess.run([spy, "record", "--gil", "--nonblocking", "--rate", str(rate),
                                    "--format", "raw", "--duration", str(seconds), "--pid",
                                    str(child.pid), "--output", str(raw)],
                                   capture_output=True, text=True)
            if spied.returncode or not raw.exists():
                last = (spied.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"py-spy could not sample the loop: {last}")
            result = held(raw.read_text(), seconds, rate)
        timing = json.loads(child.communicate(timeout=600)[0])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    seconds_per = timing["seconds_per_evaluation"]
    return {"like": like, "threads": cpus(), "size": size, "rate": rate, **timing, **result,
            "held_seconds_per_evaluation": result["share"] * seconds_per}


def format_table(r: dict[str, Any]) -> str:
    lines = [f"{r['size']}^2, parts cut as for {r['like']} threads, run on {r['threads']}: "
             f"{r['seconds_per_evaluation']:.3f} s per evaluation ({r['evaluations']} made)",
             f"the GIL held {r['share']:.1%} of the wall time ({r['samples']} samples at "
             f"{r['rate']} Hz): {r['held_seconds_per_evaluation'] * 1e3:.0f} ms per evaluation",
             "held most in (share of the held samples):"]
    lines += [f"  {w['share']:6.1%}  {w['frame']}" for w in r["where"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gil", description=__doc__.split("\n\n")[0])
    p.add_argument("--like", type=int, default=16, help="threads whose partition is run (16)")
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--seconds", type=int, default=8, help="seconds sampled (default 8)")
    p.add_argument("--rate", type=int, default=200, help="samples per second (default 200)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)  # the child's part
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.like < 1 or a.size < 32 or a.seconds < 1 or a.rate < 1:
        print("gil: error: --like and --rate must be >= 1, --size >= 32, --seconds >= 1",
              file=sys.stderr)
        return 2
    if a.loop:
        print(json.dumps(loop(a.like, a.size, a.seconds)))
        return 0
    try:
        r = measure(a.like, a.size, a.seconds, a.rate)
    except RuntimeError as e:
        print(f"gil: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2) if a.json else format_table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
