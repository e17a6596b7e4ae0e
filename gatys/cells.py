"""The independent runs ("cells") of a figure or a sweep, kept in a work folder: each as an image
and a JSON record of its parameters, final losses, time and machine. A cell whose record matches
its parameters and inputs is never recomputed, so an interrupted figure or sweep resumes where
it stopped. Where the cells run is an executor's business (:mod:`gatys.executors`)."""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
import platform
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from . import signals
from .atomic import atomic_write_bytes
from .errors import InputError, OutputError
from .images import check_writable
from .signals import signum_of

RECORD_FORMAT = 1
WORKER_NICE = 10  # cells are batch work: let the desktop and shells keep their priority
_PATH_ARGUMENTS = ("image", "content", "style")  # arguments that name input files


@dataclass(frozen=True)
class Cell:
    """One run: ``kind`` ("content", "style" or "transfer") with the keyword ``arguments`` of
    :func:`gatys.reconstruct_content`, :func:`gatys.reconstruct_style` or :func:`gatys.transfer`
    (JSON values only). ``key`` names its files in the work folder."""

    key: str
    kind: str
    arguments: dict[str, Any] = field(hash=False)


def default_jobs() -> int:
    """Cells run at once by default: half the cores, so an interactive machine stays usable."""
    return max(1, (os.cpu_count() or 1) // 2)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(cell: Cell, hashes: dict[str, str]) -> dict[str, Any]:
    """What a cell's result depends on: kind, arguments (not the device) and the contents of
    its input files. ``hashes`` caches file checksums by path."""
    inputs = {}
    for path in input_paths(cell.arguments):
        if path not in hashes:
            hashes[path] = _sha256(path)
        inputs[path] = hashes[path]
    arguments = {k: v for k, v in cell.arguments.items() if k != "device"}
    return {"format": RECORD_FORMAT, "kind": cell.kind, "arguments": arguments, "inputs": inputs}


def input_paths(arguments: dict[str, Any]) -> list[str]:
    """The input files a cell's ``arguments`` name: pictures, and each region's masks and
    painting (given as "MASK:PAINTING[:PAINTING_MASK]" or as a list of paths)."""
    paths = []
    for name in _PATH_ARGUMENTS:
        value = arguments.get(name)
        paths += value if isinstance(value, list) else [value] if value else []
    for region in arguments.get("regions") or []:
        paths += region.split(":") if isinstance(region, str) else list(region)
    return [str(p) for p in paths if p is not None]


def with_absolute_paths(cell: Cell) -> Cell:
    """``cell`` with its input files named by absolute paths, for a worker whose working
    folder is not ours (the record's identity keeps the names as given)."""
    def absolute(value: Any) -> Any:
        if isinstance(value, list):
            return [absolute(v) for v in value]
        return os.path.abspath(value) if isinstance(value, (str, os.PathLike)) else value

    arguments = dict(cell.arguments)
    for name in _PATH_ARGUMENTS:
        if arguments.get(name):
            arguments[name] = absolute(arguments[name])
    if arguments.get("regions"):
        arguments["regions"] = [":".join(map(os.path.abspath, r.split(":"))) if isinstance(r, str)
                                else absolute(list(r)) for r in arguments["regions"]]
    return dataclasses.replace(cell, arguments=arguments)


def record_path(workdir: Path, key: str) -> Path:
    return workdir / f"{key}.json"


def load_record(workdir: Path, cell: Cell, ident: dict[str, Any]) -> dict[str, Any] | None:
    """The cell's record if it was made with ``ident`` and its image is the one it recorded:
    a plain name inside ``workdir`` whose sha256 matches. A work folder is evidence, not trust:
    anything else means the cell is computed again."""
    try:
        record = json.loads(record_path(workdir, cell.key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("identity") != ident:
        return None
    if record.get("failed") is True:  # the same inputs fail the same way: not run again
        return record if isinstance(record.get("message"), str) else None
    image = record.get("image")
    if not isinstance(image, str) or image != f"{cell.key}.png":
        return None
    path = workdir / image
    if not path.is_file() or _sha256(str(path)) != record.get("image_sha256"):
        return None
    return record


# --- the worker side ------------------------------------------------------------------------

_progress_queue: Any = None


def init_worker(progress_queue: Any) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    lower_priority()
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the parent
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def lower_priority() -> None:
    """Run at nice WORKER_NICE (unless already lower): cells are batch work, and a desktop or a
    shell on the same cores should stay responsive."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(max(0, WORKER_NICE - os.nice(0)))


def compute_in_worker(cell: Cell, ident: dict[str, Any]) -> tuple[bytes | None, dict[str, Any]]:
    return compute(cell, ident, lambda key, i: _progress_queue.put((key, i)))


def compute(cell: Cell, ident: dict[str, Any], report: Callable[[str, int], Any] | None = None
            ) -> tuple[bytes | None, dict[str, Any]]:
    """Run ``cell``: its image as PNG bytes (with the run's parameters as text chunks) and its
    record, for the caller to keep with :func:`store` (so a remote worker needs no shared
    folder). A bad input (InputError) gives no image and a record marked failed with the
    message. ``report(key, iteration)`` follows progress."""
    from . import api
    from .images import png_bytes

    run = {"content": api.reconstruct_content, "style": api.reconstruct_style,
           "transfer": api.transfer}[cell.kind]

    def on_step(step: Any, _x: Any) -> None:
        if report is not None:
            report(cell.key, step.iteration)

    start = time.perf_counter()
    try:
        result = run(**cell.arguments, callback=on_step)
    except InputError as e:
        return None, {"cell": cell.key, "identity": ident, "failed": True, "message": str(e),
                      "seconds": time.perf_counter() - start,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    last = result.history[-1] if result.history else {}
    png = png_bytes(result.image.transpose(2, 0, 1), api.png_text(result.parameters, last or None))
    record = {"cell": cell.key, "identity": ident, "image": f"{cell.key}.png",
              "image_sha256": hashlib.sha256(png).hexdigest(),
              "content_loss": last.get("content"), "style_loss": last.get("style"),
              "total_loss": last.get("total"), "final": last,
              "iterations": len(result.history), "seconds": time.perf_counter() - start,
              "message": result.message, "parameters": result.parameters,
              "machine": platform.node(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "history": result.history}
    return png, record


def store(workdir: Path, cell: Cell, png: bytes | None, record: dict[str, Any]) -> None:
    """Keep a computed cell in ``workdir``: its image, then its record (the record last, so a
    cell counts as done only when both are there)."""
    if png is not None:
        atomic_write_bytes(workdir / record["image"], png)
    atomic_write_bytes(record_path(workdir, cell.key),
                       json.dumps(record, indent=1, default=str).encode())


# --- the parent side ------------------------------------------------------------------------

class CellsInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) while cells were running: the finished ones are kept."""

    def __init__(self, done: int, total: int, workdir: Path, signum: int = signal.SIGINT) -> None:
        super().__init__(f"{done} of {total} cells done")
        self.done, self.total, self.workdir, self.signum = done, total, workdir, signum


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the worker processes started inside the block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ensure_workdir(workdir: str | os.PathLike) -> Path:
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot use work folder {workdir}: {e.strerror or e}") from None
    check_writable(workdir / "cell.json")
    return workdir


def run_cells(cells: list[Cell], workdir: Path, executor: Any, progress: bool = True,
              description: str = "cells") -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every cell's record, computing on ``executor`` (:mod:`gatys.executors`) those not yet in
    ``workdir``, and keeping each there as it arrives. Returns the records by key and the keys
    computed now (failed ones included: their records say so). Ctrl-C or SIGTERM raises
    :class:`CellsInterrupted` once the executor has stopped."""
    hashes: dict[str, str] = {}
    idents = {c.key: identity(c, hashes) for c in cells}
    records = {c.key: r for c in cells if (r := load_record(workdir, c, idents[c.key]))}
    todo = [c for c in cells if c.key not in records]
    if not todo:
        return records, []
    bar = tqdm(total=len(cells), initial=len(records), desc=description, unit="cell",
               disable=not progress, dynamic_ncols=True)
    iterations = {c.key: c.arguments.get("iterations", 0) for c in cells}
    running: dict[str, int] = {}

    def report(key: str, iteration: int) -> None:
        if key not in records:  # late reports of a finished cell are stale
            running[key] = iteration
            bar.set_postfix_str(", ".join(f"{k} {i}/{iterations[k]}"
                                          for k, i in sorted(running.items())))

    def done(cell: Cell, png: bytes | None, record: dict[str, Any]) -> None:
        if cell.key in records:  # a cell rerun after its worker died reports once
            return
        store(workdir, cell, png, record)
        records[cell.key] = record
        computed.append(cell.key)
        running.pop(cell.key, None)
        bar.update(1)

    computed: list[str] = []
    try:
        with signals.handled():
            executor.run(todo, idents, report, done)
    except KeyboardInterrupt as e:  # includes api.Interrupted from inside a cell
        raise CellsInterrupted(len(records), len(cells), workdir, signum_of(e)) from None
    finally:
        bar.close()
    return records, computed


def stop_pool(pool: futures.ProcessPoolExecutor | None) -> None:
    """Cancel what has not started and end this pool's running workers now (and no other
    child of this process)."""
    if pool is None:
        return
    if hasattr(pool, "terminate_workers"):  # Python 3.14+
        pool.terminate_workers()
        return
    # Before 3.14 the executor's own table of its worker processes is the only exact list.
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        if process.is_alive():
            process.terminate()
