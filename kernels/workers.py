"""Every core on the engine's own loops, not only inside BLAS.

OpenBLAS spreads one matrix product over the cores, but NumPy runs everything else (Winograd
transforms, sums of shifted products, ReLU masks, pooling) on one core. NumPy's ufuncs and BLAS
calls release the GIL, so plain threads, each given an independent part of the work, keep every
core busy for all of it. While they run, BLAS is held to one thread: each thread's product is
already one core's share, and nested BLAS threads would only compete for the same cores. On a
free-threaded Python without its GIL the same threads also run the Python between the calls at
once (docs/performance.md, "Without the GIL").
"""
from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from queue import Empty, SimpleQueue
from typing import Any, Callable, Iterable, Iterator

# Elements that one call of a pass over large planes takes, a block of channels: NumPy passes
# over (C, H, W) views of padded buffers ran at half speed from about 32 MB, and a call per
# channel took the GIL once for each (docs/performance.md).
CHANNEL_BLOCK_ELEMENTS = 1 << 19
# The most threads used unless GATYS_THREADS asks for more: past about eight, the threads queue
# for the GIL, and an evaluation gets slower, not faster (docs/performance.md, "Sixteen cores").
# Both caps hold only where there is a GIL (:func:`gil_enabled`).
DEFAULT_THREADS_AT_MOST = 8
# On images of LARGE_IMAGE_PIXELS or more, each NumPy call does more work for the same Python,
# and up to this many threads paid: on 16 cores twelve were faster than eight at 1024^2 and
# 2048^2, and slower at 512^2 (docs/performance.md, "Sixteen cores again").
LARGE_IMAGE_THREADS_AT_MOST = 12
LARGE_IMAGE_PIXELS = 1 << 20
# How often the main thread wakes while the helpers work: a Ctrl-C that the kernel hands to a
# helper thread is only seen when the main thread runs Python again.
WAKE_SECONDS = 0.05
# How long a thread without a part looks again for work before it sleeps, where the interpreter
# runs without its GIL (:func:`gil_enabled`): a sleeping thread needs the kernel to wake it, and
# many maps follow the one before within this. Under the GIL a thread that looks again holds the
# lock that the others take back after each NumPy call (docs/performance.md, "Without the GIL").
SPIN_SECONDS = 0.0005


def _blas_controller() -> Any:
    try:
        import threadpoolctl
    except ImportError:  # the library works without it, one thread at a time
        return None
    return threadpoolctl.ThreadpoolController()


_is_gil_enabled = getattr(sys, "_is_gil_enabled", None)  # CPython 3.13 on; before, a GIL always


def gil_enabled() -> bool:
    """Whether this interpreter runs Python one thread at a time: always, except on a
    free-threaded build (CPython 3.13t and later) that runs without its GIL, as it does unless
    PYTHON_GIL=1 or a module that needs the GIL has turned it back on (asked on every call:
    the workers' waits ask it, so it is looked up once)."""
    return _is_gil_enabled is None or bool(_is_gil_enabled())


def default_threads(pixels: int = 0) -> int:
    """The threads to use on an image of ``pixels`` (0: any size): GATYS_THREADS if set (up
    to the CPUs), else as many as BLAS uses (which follows OPENBLAS_NUM_THREADS /
    OMP_NUM_THREADS and the CPUs this process may run on), with the GIL up to
    DEFAULT_THREADS_AT_MOST, or LARGE_IMAGE_THREADS_AT_MOST on images of LARGE_IMAGE_PIXELS
    or more (:func:`engine_threads`)."""
    asked, cores = _threads_available()
    return asked or engine_threads(cores, pixels)


@functools.lru_cache(maxsize=1)
def _threads_available() -> tuple[int, int]:
    """GATYS_THREADS up to the CPUs (0 if unset, empty or not a number), and the threads BLAS uses
    (the CPUs without threadpoolctl); read once per process."""
    env = os.environ.get("GATYS_THREADS")
    if env:
        try:  # more threads than CPUs only costs memory and switching
            return max(1, min(int(env), cpus())), 0
        except ValueError:
            pass
    controller = _blas_controller()
    counts = [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"] \
        if controller is not None else []
    return 0, min(counts) if counts else cpus()


def engine_threads(cores: int, pixels: int = 0) -> int:
    """The engine's threads, unless GATYS_THREADS asks for more, where ``cores`` are to be had,
    on an image of ``pixels`` (0: any size): at most DEFAULT_THREADS_AT_MOST, or
    LARGE_IMAGE_THREADS_AT_MOST from LARGE_IMAGE_PIXELS on; all ``cores`` where the interpreter
    runs without a GIL (:func:`gil_enabled`), whose queue is what the caps keep short."""
    if not gil_enabled():
        return max(1, cores)
    most = LARGE_IMAGE_THREADS_AT_MOST if pixels >= LARGE_IMAGE_PIXELS else DEFAULT_THREADS_AT_MOST
    return max(1, min(cores, most))


@contextmanager
def one_blas_thread(controller: Any = None) -> Iterator[None]:
    """BLAS held to one thread inside, whatever the backend: for scipy's L-BFGS-B, whose vector
    operations on a picture's values run slower on more threads (``python -m bench.lbfgsb``).
    ``controller``: a threadpoolctl controller already made (making one lists the libraries)."""
    if controller is None:
        controller = _blas_controller()
    with controller.limit(limits=1, user_api="blas") if controller is not None else nullcontext():
        yield


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Workers:
    """Runs ``fn`` over parts of a job on ``threads`` threads at once: the thread that calls
    ``map`` and ``threads`` - 1 helpers (inline for one thread). Taking parts, the calling
    thread saves a wake-up per map, and no third thread waits on two cores. The helpers start
    on the first ``map`` and end when the Workers is collected. With ``small_images``, images
    under LARGE_IMAGE_PIXELS use only that many of the threads (:meth:`for_image`)."""

    def __init__(self, threads: int = 1, small_images: int | None = None) -> None:
        self.threads = max(1, int(threads))
        self._thread_count = self.threads  # fixed: bench.partition's cut changes ``threads``
        # the threads for images under LARGE_IMAGE_PIXELS, where fewer than ``threads``
        self._small = max(1, small_images) if small_images and small_images < self.threads else None
        self._small_blocks = 0  # for_image blocks of small images open, on any thread
        self._sizing = threading.Lock()
        self._queue: SimpleQueue  # made with the helper threads, by _helpers
        self._started = 0  # the process id the helper threads were started in
        self._starting = threading.Lock()
        self._blas = _blas_controller() if self.threads > 1 else None
        self._held = 0

    @contextmanager
    def holding_blas(self) -> Iterator[None]:
        """BLAS held to one thread inside (re-entrant; a no-op for one thread).

        Hold it across whole evaluations and runs, not only inside ``map``: after a product on
        several threads, OpenBLAS's threads spin for a while waiting for more work, and that
        spinning takes the cores from the worker threads (docs/performance.md).
        """
        outermost = self._blas is not None and not self._held
        with one_blas_thread(self._blas) if outermost else nullcontext():
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1

    @property
    def _running(self) -> int:
        """The threads a map runs on: the small images' inside :meth:`for_image`, else all."""
        return self._small if self._small_blocks and self._small else self._thread_count

    def threads_for(self, pixels: int) -> int:
        """The threads an evaluation on an image of ``pixels`` runs on (:meth:`for_image`)."""
        if self._small is None:
            return self.threads
        return self._thread_count if pixels >= LARGE_IMAGE_PIXELS else self._small

    @contextmanager
    def for_image(self, pixels: int) -> Iterator[None]:
        """Inside, jobs are cut for and run on :meth:`threads_for` ``pixels`` threads: fewer
        than all on images under LARGE_IMAGE_PIXELS where ``small_images`` asked for fewer.
        Blocks nest (an evaluation's forward pass is one); when the last small image's block
        ends, on any thread, the workers have all their threads again."""
        if self._small is None or pixels >= LARGE_IMAGE_PIXELS:
            yield
            return
        with self._sizing:
            self._small_blocks += 1
            self.threads = self._small
        try:
            yield
        finally:
            with self._sizing:
                self._small_blocks -= 1
                if not self._small_blocks:
                    self.threads = self._thread_count

    def map(self, fn: Callable[[Any], None], parts: Iterable[Any]) -> None:
        """``fn(part)`` for every part, the calling thread taking parts beside the helpers;
        returns when all are done, re-raising the first error (the parts not yet started then
        do not start)."""
        parts = list(parts)
        if self._running < 2 or len(parts) < 2 or getattr(_helping, "job", None):
            for part in parts:  # a part's own parts run in its thread: helpers never wait
                fn(part)
            return
        with self.holding_blas():
            job = _Job(fn, parts)
            _helping.job = job  # a map inside one of this thread's parts runs inline
            try:
                queue = self._helpers()
                for _ in range(min(self._running, len(parts)) - 1):
                    queue.put(job)
                job.take_parts(helping=False)
                _wait_for(job.done)
            except BaseException as e:  # Ctrl-C: the parts running finish, no others start
                # It may have come between this thread's taking a part and counting it, so the
                # count may never be full: what is waited for is the helpers' parts running.
                job.fail(e)
                while job.running:
                    time.sleep(0.001)
                raise e from None
            finally:
                _helping.job = None
            job.drop_parts()  # a helper yet to take it from the queue holds it a while
            if job.error is not None:
                raise job.error

    def _helpers(self) -> SimpleQueue:
        """The queue the helper threads take jobs from, with the threads started on first use
        (and again in a forked child, which has none)."""
        if self._started != os.getpid():
            with self._starting:
                if self._started != os.getpid():
                    self._queue = SimpleQueue()
                    for k in range(self._thread_count - 1):  # and the calling thread
                        threading.Thread(target=_help, args=(self._queue,), daemon=True,
                                         name=f"gatys-{k}").start()
                    self._started = os.getpid()
                    weakref.finalize(self, _dismiss, self._queue, self._thread_count - 1)
        return self._queue

    def split(self, n: int, most: int, least: int = 1) -> list[tuple[int, int]]:
        """``range(n)`` cut into contiguous (start, stop) parts of at most ``most`` items and
        at least ``least`` (bar whole rounds), as many as needed to give every thread work,
        their sizes within one of each other: a short last part leaves threads idle in the last
        round (32 tile rows in parts of 6 gave one thread 18 rows and the other 14)."""
        parts = max(-(-n // max(1, most)), min(self.threads, max(1, n // max(1, least))))
        if parts > 1 and self.threads > 1:
            parts = -(-parts // self.threads) * self.threads  # a whole number of rounds
        return cut(n, parts)

    def per_thread(self, n: int) -> list[tuple[int, int]]:
        """``range(n)`` cut into one contiguous (start, stop) part per thread."""
        return self.split(n, n)

    def by_channels(self, fn: Callable[[slice], None], channels: int, plane: int = 0) -> None:
        """``fn(block)`` for contiguous blocks of ``channels`` (slices), one per thread; where
        ``plane``, the elements a channel's pass moves through its largest array, is given, in
        blocks of at most CHANNEL_BLOCK_ELEMENTS (a channel at least), each a part of the map,
        so that a thread that is through its blocks early takes the others' (the same calls
        as a thread's share of blocks in turn, and no thread waiting at the end)."""
        step = max(1, CHANNEL_BLOCK_ELEMENTS // plane) if plane else channels
        self.map(lambda part: fn(slice(*part)), self.split(channels, step))


def cut(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` in ``parts`` contiguous (start, stop) parts (at most n) whose sizes differ
    by one at most, the larger ones first: the threads take parts in order as they are free,
    so the last parts taken are the short ones and the threads end closer together (with the
    larger parts spread among the rest, one thread could take all of them and end that many
    items behind the others; docs/performance.md)."""
    parts = min(parts, n)
    if parts <= 0:
        return []
    q, r = divmod(n, parts)  # the first r parts take one item more
    bounds = [k * q + min(k, r) for k in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class _Job:
    """One ``map``: its parts, taken one at a time by the calling thread and whichever helper
    is free. A part costs one ``next`` of a counter (atomic under the GIL, and without it from
    CPython 3.13 on, where the counter takes its next value by compare-and-swap), not a
    future and its locks: the GIL held per part is a serial floor under many threads
    (docs/performance.md). The end of the job is a plain lock, held from the start and
    released by whoever finishes the last part: a ``threading.Event`` runs its Condition in
    Python, under the GIL, for every map. ``running`` holds the parts the helpers are in (a
    set's add and discard are atomic too: without the GIL a set locks itself), for a calling
    thread interrupted in its own counting; the calling thread's parts are not in it."""

    def __init__(self, fn: Callable[[Any], None], parts: list[Any]) -> None:
        self.fn, self.parts = fn, parts
        self.taken, self.finished = itertools.count(), itertools.count(1)
        self.done = threading.Lock()  # released when every part has run or been skipped
        self.done.acquire()
        self.running: set[int] = set()
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        """Keep the first error; the parts not yet started are then only counted."""
        if self.error is None:
            self.error = error

    def take_parts(self, helping: bool = True) -> None:
        """Take parts until none are left, running each while nothing has failed; whoever
        finishes the last part says the job is done. A helper's part is in ``running`` before
        the error is looked at, so that one not running after ``fail`` never starts."""
        n, running = len(self.parts), self.running if helping else set()
        for i in self.taken:
            if i >= n:
                return
            running.add(i)
            if self.error is None:
                try:
                    self.fn(self.parts[i])
                except BaseException as e:
                    self.fail(e)
            running.discard(i)
            if next(self.finished) == n:
                self.done.release()

    def drop_parts(self) -> None:
        """Let go of the parts and the function (and the arrays they hold) once all are taken."""
        self.fn, self.parts = _no_part, []


def _no_part(part: Any) -> None:
    """The function of a job whose parts are all taken: never called."""


_helping = threading.local()  # .job: the job a helper thread is working on


def _looks() -> Iterator[None]:
    """A turn for each look again for work before a thread sleeps: for SPIN_SECONDS without
    the GIL, none with it."""
    if gil_enabled():
        return
    deadline = time.perf_counter() + SPIN_SECONDS
    while time.perf_counter() < deadline:
        yield


def _wait_for(done: threading.Lock) -> None:
    """Acquire ``done``, looking again (:func:`_looks`), then asleep, waking every
    WAKE_SECONDS to run Python (and so see a Ctrl-C)."""
    for _ in _looks():
        if done.acquire(blocking=False):
            return
    while not done.acquire(timeout=WAKE_SECONDS):
        pass


def _next_job(queue: SimpleQueue) -> Any:
    """The next job from ``queue``, looked for again (:func:`_looks`), then waited for
    asleep."""
    for _ in _looks():
        try:
            return queue.get_nowait()
        except Empty:
            pass
    return queue.get()


def _help(queue: SimpleQueue) -> None:
    """A helper thread: the jobs of one Workers' maps until it is dismissed (None)."""
    while (job := _next_job(queue)) is not None:
        _helping.job = job
        job.take_parts()
        _helping.job = job = None  # not kept alive until the next one


def _dismiss(queue: SimpleQueue, threads: int) -> None:
    """Ends the helper threads of a Workers that is gone."""
    for _ in range(threads):
        queue.put(None)


SEQUENTIAL = Workers(1)
