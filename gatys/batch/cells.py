"""The independent runs ("cells") of a figure or a sweep, kept in a work folder: each as an image
and a JSON record of its parameters, final losses, time and machine. A cell whose record matches
its parameters and inputs is never recomputed, so an interrupted figure or sweep resumes where
it stopped. Where the cells run is an executor's business (:mod:`gatys.batch.executors`)."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import signal
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from gatys.errors import GatysError, InputError, OutputError
from gatys.io import signals
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import check_distinct, check_writable
from gatys.io.signals import signum_of
from gatys.run.options import POOL_DEFAULTS

log = logging.getLogger("gatys")

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
    """What a cell's result depends on: kind, arguments (not the device), the contents of its
    input files, and for a transfer the defaults per pooling of what its arguments leave out
    (so that a sweep's cells are computed again when those defaults change). ``hashes`` caches
    file checksums by path."""
    inputs = {}
    for path in input_paths(cell.arguments):
        if path not in hashes:
            hashes[path] = _sha256(path)
        inputs[path] = hashes[path]
    arguments = {k: v for k, v in cell.arguments.items() if k != "device"}
    ident = {"format": RECORD_FORMAT, "kind": cell.kind, "arguments": arguments, "inputs": inputs}
    if cell.kind == "transfer":  # what its options left out follows these
        ident["defaults"] = POOL_DEFAULTS
    return ident


def map_inputs(arguments: dict[str, Any], f: Callable[[str], Any]) -> dict[str, Any]:
    """``arguments`` with ``f`` applied to every input file they name: pictures (one or a
    list), and each region's masks and painting (given as "MASK:PAINTING[:PAINTING_MASK]" or
    as a list of paths)."""
    def each(value: Any) -> Any:
        return [each(v) for v in value] if isinstance(value, (list, tuple)) else \
            f(str(value)) if value is not None else None

    mapped = dict(arguments)
    for name in _PATH_ARGUMENTS:
        if mapped.get(name):
            mapped[name] = each(mapped[name])
    if mapped.get("regions"):
        mapped["regions"] = [":".join(map(str, each(r.split(":")))) if isinstance(r, str)
                             else each(r) for r in mapped["regions"]]
    return mapped


def input_paths(arguments: dict[str, Any]) -> list[str]:
    """The input files a cell's ``arguments`` name, in order."""
    paths: list[str] = []
    map_inputs(arguments, paths.append)
    return paths


def with_absolute_paths(cell: Cell) -> Cell:
    """``cell`` with its input files named by absolute paths, for a worker whose working
    folder is not ours (the record's identity keeps the names as given)."""
    return dataclasses.replace(cell, arguments=map_inputs(cell.arguments, os.path.abspath))


def record_path(workdir: Path, key: str) -> Path:
    return workdir / f"{key}.json"


# A record is at most this large (a 1000-iteration history is about 1 MB).
MAX_RECORD_BYTES = 64 << 20
_NUMBER = (int, float)
# The fields of a finished cell's record that the table and the page read, and their types.
_FIELDS: dict[str, tuple[type, ...]] = {
    "image_sha256": (str,), "content_loss": _NUMBER, "style_loss": _NUMBER,
    "iterations": (int,), "seconds": _NUMBER, "history": (list,)}


def load_record(workdir: Path, cell: Cell, ident: dict[str, Any]) -> dict[str, Any] | None:
    """The cell's record if it was made with ``ident`` and its image is the one it recorded:
    a regular file of its own name inside ``workdir`` (no link out) whose sha256 matches. A work
    folder is evidence, not trust: anything else means the cell is computed again, and a
    record that is there but damaged (not JSON, nested beyond reason, too large, a field of the
    wrong type) is said in one line."""
    try:
        return _valid_record(workdir, cell, ident)
    except _Damaged as e:
        log.warning(f"cell {cell.key}: its record is damaged ({e}); computing it again")
        return None


class _Damaged(Exception):
    """What is wrong with a record that is there."""


def _valid_record(workdir: Path, cell: Cell, ident: dict[str, Any]) -> dict[str, Any] | None:
    path = record_path(workdir, cell.key)
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            raise _Damaged("not a regular file")
        if st.st_size > MAX_RECORD_BYTES:
            raise _Damaged("larger than any record gatys writes")
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except RecursionError:
        raise _Damaged("nested too deeply") from None
    except (OSError, ValueError):
        raise _Damaged("not JSON") from None
    if not isinstance(record, dict) or record.get("identity") != ident:
        return None
    if record.get("failed") is True:  # bad inputs fail the same way: not run again
        if not isinstance(record.get("message"), str):
            raise _Damaged("its message is not text")
        return None if record.get("bad_input") is False else record
    wrong = [name for name, types in _FIELDS.items() if not _is(record.get(name), types)]
    if wrong or not all(isinstance(h, dict) for h in record["history"]):
        raise _Damaged(f"{', '.join(wrong) or 'history'} of the wrong type")
    image = workdir / f"{cell.key}.png"
    if record.get("image") != image.name or image.is_symlink() or not image.is_file():
        return None
    if _sha256(str(image)) != record["image_sha256"]:
        return None
    return record


def _is(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


# --- computing a cell (in any process) and keeping it ---------------------------------------

def lower_priority() -> None:
    """Run at nice WORKER_NICE (unless already lower): cells are batch work, and a desktop or a
    shell on the same cores should stay responsive."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(max(0, WORKER_NICE - os.nice(0)))


def compute(cell: Cell, ident: dict[str, Any], report: Callable[[str, int], Any] | None = None
            ) -> tuple[bytes | None, dict[str, Any]]:
    """Run ``cell``: its image as PNG bytes (with the run's parameters as text chunks) and its
    record, for the caller to keep with :func:`store` (so a remote worker needs no shared
    folder). A cell that fails gives no image and a record marked failed with the message:
    for a bad input (InputError) for good, anything else (say, out of memory) until the next
    run tries it again. ``report(key, iteration)`` follows progress."""
    from gatys.io.images import png_bytes
    from gatys.run import api

    runs: dict[str, Callable[..., Any]] = {"content": api.reconstruct_content,
                                           "style": api.reconstruct_style,
                                           "transfer": api.transfer}
    run = runs[cell.kind]

    def on_step(step: Any, _x: Any) -> None:
        if report is not None:
            report(cell.key, step.iteration)

    start = time.perf_counter()
    try:
        result = run(**cell.arguments, callback=on_step)
    except Exception as e:  # any failure fails this cell only: the others go on
        message = str(e) if isinstance(e, GatysError) else f"{type(e).__name__}: {e}"
        return None, {"cell": cell.key, "identity": ident, "failed": True, "message": message,
                      "bad_input": isinstance(e, InputError),
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


# --- running the cells (in the process that keeps them) -----------------------------------

class CellsInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) while cells were running: the finished ones are kept."""

    def __init__(self, done: int, total: int, workdir: Path, signum: int = signal.SIGINT) -> None:
        super().__init__(f"{done} of {total} cells done")
        self.done, self.total, self.workdir, self.signum = done, total, workdir, signum


def check_outputs(cells: list[Cell], workdir: Path, outputs: dict[str, Path | None]) -> None:
    """OutputError before any work if a file the command writes (each cell's image and record
    in ``workdir``, and its other ``outputs``) is one of the cells' inputs or another output."""
    written = dict(outputs)
    for cell in cells:
        written[f"cell {cell.key}'s image"] = workdir / f"{cell.key}.png"
        written[f"cell {cell.key}'s record"] = record_path(workdir, cell.key)
    check_distinct(written, {f"the picture {path}": path for cell in cells
                             for path in input_paths(cell.arguments)})


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
    """Every cell's record, computing on ``executor`` (:mod:`gatys.batch.executors`) those not
    yet in ``workdir``, and keeping each there as it arrives. Returns the records by key and
    the keys computed now (failed ones included: their records say so). Ctrl-C or SIGTERM
    raises :class:`CellsInterrupted` once the executor has stopped."""
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
