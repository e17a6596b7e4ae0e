"""What the cores share: one-thread evaluations in several processes at once, against one alone.

    python -m bench.corun [--size 512] [--processes 2] [--evaluations 5] [--rounds 2]
                          [--no-torch] [--json] [--out FILE]

``bench.scaling`` finds how much of an evaluation's time on T threads is left over beyond
t(1)/T. Part of it may be the machine's: caches, memory and its bandwidth that the cores share,
clocks that drop when more cores run. This bench measures that part alone, with no threads to
wait for one another: each engine (ours: one worker thread, BLAS on one; PyTorch:
``set_num_threads(1)``) evaluates in one process alone, then in ``--processes`` processes
started together, each process loading and warming up first and all timing their
``--evaluations`` at once; alone and together take turns for ``--rounds`` rounds. The slowdown
together / alone is what sharing the machine costs each core; T / slowdown is then the most any
T-thread evaluation of that engine could gain over one thread here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any, Sequence

from . import harness, torch_peer
from .harness import add_output_options, machine, measure_and_report

ENGINES = ("ours", "torch")
_MODULE = __spec__.name if __spec__ else "bench.corun"  # the child's: installed or in a checkout


def child(engine: str, size: int, evaluations: int) -> None:
    """In a process of its own: load and warm up ``engine``, say so, wait for a line on stdin,
    then time ``evaluations`` evaluations and print their seconds as JSON."""
    from threadpoolctl import threadpool_limits

    from gatys.kernels.allocator import keep_freed_memory
    from gatys.kernels.workers import Workers
    from gatys.store import weights as weights_store

    keep_freed_memory()  # for PyTorch too, as in bench.scaling, where it shares our process
    vgg = weights_store.load()
    with threadpool_limits(1):
        if engine == "ours":
            objective, x = harness.cpu_objective(vgg, Workers(1), size)
            once = harness.evaluation(objective, x)
        else:
            import torch

            torch.set_num_threads(1)
            peer = harness.make_peer(vgg, "cpu", False)
            content, style, x = harness.pictures(size)
            peer.targets(content, style)

            def once() -> None:
                peer.evaluate(x)
        once()
        print("ready", flush=True)
        sys.stdin.readline()
        seconds = [harness._timed(once) for _ in range(evaluations)]
    print(json.dumps(seconds), flush=True)


def engines(with_torch: bool = True) -> tuple[str, ...]:
    """The engines to time: ours, and PyTorch's where asked for and it imports."""
    return ENGINES if with_torch and torch_peer.available() else ENGINES[:1]


def together(engine: str, processes: int, size: int, evaluations: int) -> list[float]:
    """Each of ``processes`` processes' median seconds per evaluation, timed at once."""
    command = [sys.executable, "-m", _MODULE, "--child", engine, "--size", str(size),
               "--evaluations", str(evaluations)]
    running = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for _ in range(processes)]
    try:
        for p in running:  # all loaded and warm before any times
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a process timing {engine} stopped before its evaluations")
        for p in running:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        medians = []
        for p in running:
            out, _ = p.communicate()
            if p.returncode:
                raise RuntimeError(f"a process timing {engine} failed (exit code {p.returncode})")
            medians.append(statistics.median(json.loads(out)))
        return medians
    finally:
        for p in running:
            if p.poll() is None:
                p.kill()


def measure(size: int, processes: int, evaluations: int, rounds: int,
            engines: Sequence[str]) -> dict[str, Any]:
    """Per engine: seconds per evaluation alone and together, per round, and the slowdown."""
    result: dict[str, Any] = {"size": size, "processes": processes, "evaluations": evaluations,
                              "rounds": rounds, "machine": machine(), "engines": {}}
    for engine in engines:
        alone, shared = [], []
        for _ in range(rounds):
            alone.append(together(engine, 1, size, evaluations)[0])
            shared.append(statistics.median(together(engine, processes, size, evaluations)))
        slowdown = statistics.median(s / a for s, a in zip(shared, alone))
        result["engines"][engine] = {"alone": alone, "together": shared, "slowdown": slowdown,
                                     "best_speedup": processes / slowdown}
    return result


def format_table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"CPU: {m['cpu']}, {m['cpus']} CPUs; {r['size']}^2, {r['evaluations']} evaluations "
             f"per process, {r['rounds']} rounds of alone and {r['processes']} together",
             f"{'engine':8} {'alone s':>9} {'together s':>11} {'slowdown':>9} "
             f"{'best speed-up on ' + str(r['processes']):>20}"]
    for engine, e in r["engines"].items():
        lines.append(f"{engine:8} {statistics.median(e['alone']):9.3f} "
                     f"{statistics.median(e['together']):11.3f} {e['slowdown']:9.3f} "
                     f"{e['best_speedup']:19.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.corun", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--processes", type=int, default=2, help="processes at once (default 2)")
    p.add_argument("--evaluations", type=int, default=5,
                   help="timed evaluations per process (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of alone and together")
    p.add_argument("--no-torch", action="store_true", help="time ours alone")
    p.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    add_output_options(p)
    a = p.parse_args(argv)
    if min(a.size, a.processes, a.evaluations, a.rounds) < 1:
        p.error("--size, --processes, --evaluations and --rounds must be 1 or more")
    if a.child:
        child(a.child, a.size, a.evaluations)
        return 0
    return measure_and_report(
        "corun", a, lambda: measure(a.size, a.processes, a.evaluations, a.rounds,
                                    engines(not a.no_torch)),
        format_table)


if __name__ == "__main__":
    sys.exit(main())
