"""The studio's runs: a queue worked by one thread outside the server's event loop, one run at
a time, each a call of :func:`gatys.transfer` writing its PNG (with the command line's text
chunks) into the folder; and the events the page is sent as they happen.

Between two iterations of the run under way the worker also answers the Inside view's
requests and looks whether the run was asked to stop: the engine is only ever used by this
one thread."""
from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gatys.errors import GatysError, InputError
from gatys.io.atomic import atomic_write_bytes
from gatys.io.images import png_bytes, read_image
from gatys.run.api import transfer
from gatys.run.results import Interrupted
from gatys.studio import folder as pictures
from gatys.studio import form
from gatys.studio.inside import Inspector
from gatys.studio.requests import RunRequest

log = logging.getLogger("gatys")

PREVIEW_SECONDS = 0.25  # the most often a run's picture is encoded for the page


class Stop(KeyboardInterrupt):
    """Raised in a run's callback to stop it as Ctrl-C would: the image reached is saved."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


@dataclass
class StudioRun:
    """One run: its request, output name, command line, state and what it has reached."""

    id: int
    name: str
    request: RunRequest
    command: str
    state: str = "queued"  # then running; over: done, stopped, failed or cancelled
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    image: np.ndarray | None = None  # (H, W, 3), the latest iterate
    preview: bytes | None = None
    preview_version: int = 0
    stop_signum: int = 0
    inspector: Inspector | None = None
    _previewed: float = 0.0

    def summary(self, with_history: bool = False) -> dict[str, Any]:
        out = {"id": self.id, "name": self.name, "state": self.state, "message": self.message,
               "iterations": len(self.history), "command": self.command,
               "request": self.request.record(), "preview": self.preview_version,
               "style_layers": self.request.style_layers,
               "last": self.history[-1] if self.history else None}
        if with_history:
            out["history"] = self.history
        return out


class Hub:
    """The page's event streams: each subscriber an asyncio queue, fed from any thread."""

    def __init__(self) -> None:
        self._loop: Any = None
        self._queues: set[Any] = set()

    def attach(self, loop: Any) -> None:
        self._loop = loop

    def subscribe(self) -> Any:
        import asyncio
        q: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: Any) -> None:
        self._queues.discard(q)

    def publish(self, event: dict[str, Any]) -> None:
        if self._loop is None:
            return
        for q in list(self._queues):
            self._loop.call_soon_threadsafe(_offer, q, event)


def _offer(q: Any, event: dict[str, Any]) -> None:
    if not q.full():  # a page that stopped reading loses steps, not the server's memory
        q.put_nowait(event)


class Studio:
    """The queue of runs in ``folder`` and the thread that works it."""

    def __init__(self, folder: Path, hub: Hub | None = None) -> None:
        self.folder = folder
        self.hub = hub or Hub()
        self.runs: list[StudioRun] = []
        self._queue: collections.deque[StudioRun] = collections.deque()
        self._tasks: collections.deque[Callable[[], None]] = collections.deque()
        self._current: StudioRun | None = None
        self._closing = False
        self._cv = threading.Condition()
        self._worker = threading.Thread(target=self._work, name="gatys-studio-runs",
                                        daemon=True)
        self._worker.start()

    # --- what the server asks -------------------------------------------------------------

    def submit(self, request: RunRequest) -> StudioRun:
        """Queue a checked request; it runs when those before it are over."""
        with self._cv:
            if self._closing:
                raise InputError("the studio is shutting down: no new runs")
            taken = {r.name for r in self.runs}
            name = pictures.next_run_name(self.folder)
            while name in taken:
                name = f"run-{int(name[4:-4]) + 1:03d}.png"
            output = self.folder / name
            run = StudioRun(len(self.runs) + 1, name, request,
                            form.command(request.values, request.content, request.styles,
                                         request.region_texts(),
                                         output.with_name(output.stem + "-cli.png")))
            self.runs.append(run)
            self._queue.append(run)
            self._cv.notify_all()
        self._publish_runs()
        return run

    def run(self, run_id: int) -> StudioRun:
        if not 1 <= run_id <= len(self.runs):
            raise InputError(f"there is no run {run_id}")
        return self.runs[run_id - 1]

    def stop(self, run_id: int, signum: int = signal.SIGINT) -> StudioRun:
        """Stop a run: one queued is cancelled, one running stops after its iteration and
        keeps the image reached."""
        run = self.run(run_id)
        with self._cv:
            if run.state == "queued":
                self._queue.remove(run)
                run.state, run.message = "cancelled", "cancelled before it started"
            elif run.state == "running":
                run.stop_signum = signum
        self._publish_runs()
        return run

    def inspect(self, run_id: int, layer: str, region: int = 0) -> concurrent.futures.Future:
        """The Inside view's panels of a run's latest picture, computed by the worker (between
        two iterations when the run is under way)."""
        run = self.run(run_id)
        future: concurrent.futures.Future = concurrent.futures.Future()

        def task() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                image = self._image(run)
                if image is None:
                    raise InputError("this run has no picture yet: wait for its first iteration")
                for other in self.runs:  # one run's stages held at a time
                    if other is not run:
                        other.inspector = None
                if run.inspector is None:
                    run.inspector = Inspector(run.request)
                future.set_result(run.inspector.panels(image, layer, region))
            except BaseException as e:  # the page's request gets it, the worker goes on
                future.set_exception(e)

        with self._cv:
            self._tasks.append(task)
            self._cv.notify_all()
        return future

    def begin_close(self, signum: int) -> None:
        """From a signal handler (no lock taken): no queued run starts any more, and the one
        under way stops after its iteration."""
        self._closing = True
        run = self._current
        if run is not None:
            run.stop_signum = run.stop_signum or signum

    def close(self, signum: int = signal.SIGINT, wait: bool = True) -> None:
        """Cancel the queued runs, stop the one under way (``signum``: why) and, with
        ``wait``, return once its image is written."""
        self.begin_close(signum)
        with self._cv:
            self._cv.notify_all()
        if wait:
            self._worker.join()

    @property
    def current(self) -> StudioRun | None:
        return self._current

    # --- the worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cv:
                while not (self._tasks or self._queue or self._closing):
                    self._cv.wait()
                if self._tasks:
                    task, run = self._tasks.popleft(), None
                elif self._closing:
                    for queued in self._queue:
                        queued.state, queued.message = "cancelled", "cancelled: the studio stopped"
                    self._queue.clear()
                    return
                else:
                    task, run = None, self._queue.popleft()
                    self._current, run.state = run, "running"
            if task is not None:
                task()
                continue
            assert run is not None
            try:
                self._execute(run)
            finally:
                with self._cv:
                    self._current = None
                self._publish_runs()

    def _serve_tasks(self) -> None:
        while True:
            with self._cv:
                if not self._tasks:
                    return
                task = self._tasks.popleft()
            task()

    def _execute(self, run: StudioRun) -> None:
        for other in self.runs:  # the runs before keep their pictures in their PNGs
            if other is not run:
                other.image, other.inspector = None, None
        self._publish_runs()
        r = run.request

        def on_step(step: Any, image: np.ndarray) -> None:
            entry = {**step.as_dict(), "height": image.shape[0], "width": image.shape[1]}
            run.history.append(entry)
            run.image = np.array(image, dtype=np.float32)
            now = time.monotonic()
            if now - run._previewed >= PREVIEW_SECONDS or len(run.history) == 1:
                self._preview(run, now)
            self.hub.publish({"type": "step", "run": run.id, "step": entry,
                              "preview": run.preview_version})
            self._serve_tasks()
            if run.stop_signum:
                raise Stop(run.stop_signum)

        output = self.folder / run.name
        try:
            result = transfer(str(r.content), [str(s) for s in r.styles] or None, output,
                              callback=on_step, progress=False, **r.transfer_keywords)
            run.state = "done"
            run.message = f"{len(result.history)} iterations in {result.seconds:.1f} s"
        except Interrupted as e:
            result = e.result
            why = "" if e.signum == signal.SIGINT else f" ({signal.Signals(e.signum).name})"
            n = len(result.history)
            run.state, run.message = "stopped", \
                f"stopped{why} after {n} iteration{'s' if n != 1 else ''}"
        except GatysError as e:
            run.state, run.message, result = "failed", str(e), None
        except Exception as e:  # a bug: the page gets one line, the server's log the rest
            log.exception("run %d failed", run.id)
            run.state, run.message, result = "failed", \
                f"internal error ({type(e).__name__}: {e}); the server's log has the details", None
        if result is not None:
            run.image = result.image
            self._preview(run, time.monotonic())
        self._write_record(run)
        self.hub.publish({"type": "over", "run": run.summary()})

    def _image(self, run: StudioRun) -> np.ndarray | None:
        """A run's picture: its latest iterate, or once another run has started, its PNG."""
        if run.image is None and run.state in ("done", "stopped") \
                and (self.folder / run.name).is_file():
            return read_image(self.folder / run.name, "run").transpose(1, 2, 0)
        return run.image

    def _preview(self, run: StudioRun, now: float) -> None:
        assert run.image is not None
        run.preview = png_bytes(run.image.transpose(2, 0, 1))
        run.preview_version += 1
        run._previewed = now

    def _write_record(self, run: StudioRun) -> None:
        """The run's request, state and command beside its PNG, to reopen it with its
        settings."""
        record = {"request": run.request.record(), "state": run.state, "message": run.message,
                  "command": run.command, "iterations": len(run.history)}
        try:
            atomic_write_bytes(self.folder / (Path(run.name).stem + ".json"),
                               json.dumps(record, indent=1).encode())
        except OSError as e:
            log.warning("could not write the record of %s: %s", run.name, e)

    def _publish_runs(self) -> None:
        self.hub.publish({"type": "runs", "runs": [r.summary() for r in self.runs]})
