"""Where an evaluation lets go of the GIL, line by line: the count that many threads multiply.

    python -m bench.releases [--like 8] [--size 512] [--top 25] [--json] [--out FILE]

Every NumPy call that does real work releases the GIL and takes it back. On two cores the other
thread rarely holds it then; on many, a thread coming back queues behind the others, so the
releases per evaluation are what the GIL's floor grows with (docs/performance.md, "The GIL: a
floor under many threads"). This bench finds where they are made. It opens Linux's counter of a
uprobe on CPython's ``PyEval_SaveThread`` for its own thread (``perf_event_open``), evaluates
once cut as ``--like`` threads would be (``bench.partition``) but on one thread, so that every
part runs in the thread counted, and with ``sys.settrace`` reads the counter at each line of the
gatys package, crediting a line with the releases since the line before (a call into NumPy or
into code outside the package is credited to the line that made it). One evaluation untraced
gives the total beside it, and each layer's share, forward and backward.

The uprobe is made once per boot, as root, with Linux's perf (Debian's ``linux-perf``):

    python -m bench.releases --library       # prints LIBPYTHON, the library to probe
    perf probe -x LIBPYTHON PyEval_SaveThread

A probe on another Python's library (a virtual environment made from another interpreter) is
refused: it would count nothing of this one's.
"""
from __future__ import annotations

import argparse
import ctypes
import linecache
import os
import platform
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from gatys.model.network import LayerTimer

from . import harness

TRACING = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")  # where tracefs is mounted
PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}  # the syscall's number
PERF_TYPE_TRACEPOINT = 2
PROBED = ("PyEval_SaveThread",)  # the uprobe this bench counts, as ``perf probe`` is given it
OUTSIDE = ("(outside the package)", 0)  # where releases before the first traced line go


class _EventAttr(ctypes.Structure):
    """The first 64 bytes of ``struct perf_event_attr`` (PERF_ATTR_SIZE_VER0), enough for a
    counting tracepoint; the rest the kernel takes as zeros."""
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                ("config1", ctypes.c_uint64)]


def probe(name: str, roots: Sequence[str] | None = None, target: str | None = None,
          make: Sequence[str] = PROBED) -> tuple[str, int]:
    """The group and id of the uprobe ``name`` on ``target`` (default: this interpreter's
    :func:`library`), of whichever group perf gave it (named after the library or executable
    probed), as tracefs under ``roots`` (default TRACING) lists them in ``uprobe_events``. A
    probe on another Python's library would count nothing of this one's, so it is refused.
    The errors say how to make the probes a bench needs (``make``, as ``perf probe`` is given
    them) on this Python's library."""
    roots = roots or TRACING
    target = target or library()
    elsewhere: list[tuple[str, str]] = []  # (path, group) of probes on other files
    for root in roots:
        try:
            listed = Path(root, "uprobe_events").read_text().splitlines()
        except OSError:
            continue
        for line in listed:  # "p:GROUP/NAME PATH:0xOFFSET", "r:..." for a return probe
            probed, _, place = line.partition(" ")
            group, _, event = probed.partition(":")[2].partition("/")
            path = place.split()[0].rpartition(":")[0] if place.strip() else ""
            if event != name:
                continue
            if not _same_file(path, target):
                elsewhere.append((path, group))
                continue
            try:
                return group, int(Path(root, "events", group, name, "id").read_text())
            except (OSError, ValueError):
                continue
    commands = "; ".join(f"perf probe -x {target} {point}" for point in make) + ", as root"
    if elsewhere:
        paths = ", ".join(sorted({path for path, _ in elsewhere}))
        groups = " ".join(sorted({f"'{group}:*'" for _, group in elsewhere}))
        raise RuntimeError(f"the uprobe {name} is on {paths}, not on this Python's library: "
                           f"perf probe -d {groups} removes it; then {commands}")
    raise RuntimeError(f"no uprobe {name} in {' or '.join(roots)}: make it with {commands}")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def tracepoint_id(roots: Sequence[str] | None = None) -> int:
    """The id of the ``PyEval_SaveThread`` uprobe on this interpreter's library (:func:`probe`)."""
    return probe("PyEval_SaveThread", roots)[1]


def release_counter(event: int) -> Callable[[], int]:
    """A function giving the releases this thread has made since it was made, its own reads
    (each a ctypes call, which releases the GIL) left out."""
    number = PERF_EVENT_OPEN.get(platform.machine())
    if number is None:
        raise RuntimeError(f"perf_event_open's number on {platform.machine()} is not known here")
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _EventAttr(type=PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(_EventAttr), config=event)
    fd = libc.syscall(number, ctypes.byref(attr), 0, -1, -1, 0)  # this thread, any CPU
    if fd < 0:
        raise RuntimeError(f"perf_event_open failed: {os.strerror(ctypes.get_errno())} (root, "
                           "or CAP_PERFMON, may be needed)")
    value, reads = ctypes.create_string_buffer(8), [0]

    def count() -> int:
        libc.read(fd, value, 8)
        reads[0] += 1
        return int(struct.unpack("q", value.raw)[0]) - reads[0]

    count()  # the count from here
    return count


class _LayerReleases(LayerTimer):
    """The releases of each layer's forward and backward step (``forward`` and ``backward``
    keyed by layer), read from ``count`` where a timer reads the clock."""

    def __init__(self, count: Callable[[], int]) -> None:
        super().__init__()
        self._count, self._at = count, 0

    def start(self) -> None:
        self._at = self._count()

    def stop(self, table: dict[str, float], name: str) -> None:
        table[name] = table.get(name, 0) + self._count() - self._at


def by_line(run: Callable[[], Any], count: Callable[[], int], traced: Callable[[str], bool],
            functions: dict[tuple[str, int], str] | None = None) -> Counter:
    """``run()`` traced: the releases (``count()``'s increase) credited to each (file, line) of
    the files ``traced`` says, each to the traced line last started in this thread; the name of
    each line's function into ``functions`` where given."""
    credit: Counter = Counter()
    last, seen = [OUTSIDE], [count()]

    def line(frame: Any, event: str, arg: Any) -> Any:
        now = count()
        credit[last[0]] += now - seen[0]
        seen[0] = now
        if event == "line":
            last[0] = (frame.f_code.co_filename, frame.f_lineno)
            if functions is not None:
                functions[last[0]] = frame.f_code.co_name
        elif event == "return":  # from here the caller's line is running again
            caller = frame.f_back
            last[0] = (caller.f_code.co_filename, caller.f_lineno) \
                if caller is not None and traced(caller.f_code.co_filename) else OUTSIDE
        return line

    def call(frame: Any, event: str, arg: Any) -> Any:
        return line if traced(frame.f_code.co_filename) else None

    sys.settrace(call)
    try:
        run()
    finally:
        sys.settrace(None)
    credit[last[0]] += count() - seen[0]
    return +credit  # lines credited with nothing left out


def measure(like: int, size: int, top: int = 25) -> dict[str, Any]:
    """One evaluation cut as for ``like`` threads, on one thread: its releases untraced, and
    traced line by line, with the ``top`` lines and functions that made the most."""
    import gatys
    import gatys.kernels

    from .partition import partitioned_objective

    count = release_counter(tracepoint_id())
    _, objective, x = partitioned_objective(1, like, size)
    objective.evaluate(x)  # buffers, weights' forms and the helpers made
    layers = _LayerReleases(count)
    start = count()
    objective.evaluate(x, timer=layers)
    untraced = count() - start
    # gatys.kernels lies outside gatys/ in an editable install (pyproject's package-dir): each
    # package's files are named by its import path, wherever they lie
    packages = {os.path.dirname(os.path.abspath(p.__file__)) + os.sep:
                os.path.join(*p.__name__.split(".")) for p in (gatys.kernels, gatys)}
    names: dict[tuple[str, int], str] = {}
    credit = by_line(lambda: objective.evaluate(x), count,
                     lambda name: os.path.abspath(name).startswith(tuple(packages)), names)

    def where(name: str) -> str:
        path = os.path.abspath(name)
        root = next((r for r in packages if path.startswith(r)), None)
        return name if root is None else os.path.join(packages[root], path[len(root):])

    functions: Counter = Counter()
    for (name, number), n in credit.items():
        functions[where(name), names.get((name, number), name)] += n
    directions = {"forward": layers.forward, "backward": layers.backward}
    by_layer = [{"direction": direction, "layer": name, "releases": int(n)}
                for direction, table in directions.items() for name, n in table.items()]
    return {"like": like, "size": size, "machine": harness.machine(),
            "releases": untraced, "traced_releases": sum(credit.values()), "layers": by_layer,
            "outside_layers": untraced - sum(r["releases"] for r in by_layer),
            "lines": [{"file": where(name), "line": number, "releases": n,
                       "code": linecache.getline(name, number).strip()}
                      for (name, number), n in credit.most_common(top)],
            "functions": [{"file": name, "function": fn, "releases": n}
                          for (name, fn), n in functions.most_common(top)]}


def format_table(r: dict[str, Any]) -> str:
    lines = [f"{r['size']}^2, parts cut as for {r['like']} threads, run on one: "
             f"{r['releases']} GIL releases per evaluation ({r['traced_releases']} traced)",
             "", "by layer:"]
    lines += [f"  {row['releases']:6d}  {row['direction']:8s} {row['layer']}"
              for row in r["layers"]]
    lines += [f"  {r['outside_layers']:6d}  outside the layers (losses, Gram terms, the rest)",
              "", "by function:"]
    lines += [f"  {f['releases']:6d}  {f['file']}  {f['function']}" for f in r["functions"]]
    lines += ["", "by line:"]
    lines += [f"  {w['releases']:6d}  {w['file']}:{w['line']}  {w['code'][:80]}"
              for w in r["lines"]]
    return "\n".join(lines)


def library(maps: str = "/proc/self/maps") -> str:
    """The file whose ``PyEval_SaveThread`` this interpreter runs, as the process has it
    mapped (``maps``): its shared libpython, or the executable itself where Python is linked
    statically. sysconfig cannot say which: Debian's python3 reports the shared library it
    ships for embedding, and runs its own copy. Where ``maps`` cannot be read, sysconfig's
    shared library if there is one, else the executable."""
    address = ctypes.cast(ctypes.pythonapi.PyEval_SaveThread, ctypes.c_void_p).value or 0
    try:
        with open(maps) as mapped:
            for line in mapped:  # "start-end perms offset dev inode [path]"
                fields = line.split(maxsplit=5)
                start, _, end = fields[0].partition("-")
                if len(fields) == 6 and int(start, 16) <= address < int(end, 16):
                    return fields[5].strip()
    except (OSError, ValueError):
        pass
    import sysconfig

    shared = sysconfig.get_config_var("LDLIBRARY") or ""
    path = os.path.join(sysconfig.get_config_var("LIBDIR") or "", shared)
    linked = shared.endswith(".so") or ".so." in shared
    return path if linked and os.path.exists(path) else sys.executable


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.releases",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--like", type=int, default=8, help="threads whose partition is run (8)")
    p.add_argument("--size", type=int, default=512, help="image side (default 512)")
    p.add_argument("--top", type=int, default=25, help="lines and functions shown (25)")
    p.add_argument("--library", action="store_true",
                   help="print the file to put the uprobe on, and stop")
    harness.add_output_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.library:
        print(library())
        return 0
    if a.like < 1 or a.size < 32 or a.top < 1:
        print("releases: error: --like and --top must be >= 1, --size >= 32", file=sys.stderr)
        return 2
    return harness.measure_and_report("releases", a, lambda: measure(a.like, a.size, a.top),
                                      format_table)


if __name__ == "__main__":
    sys.exit(main())
