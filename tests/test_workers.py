"""The worker threads' contract: every part once, on several threads; after an error or a
Ctrl-C, no part still running once ``map`` returns and none started after it; the threads end
with their Workers; work cut into parts the threads can share evenly."""
from __future__ import annotations

import ctypes
import gc
import os
import queue
import random
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatys.kernels.workers import Workers, cpus, cut


def helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gatys-")]


def test_every_part_runs_once_and_the_work_is_shared():
    workers = Workers(3)
    seen: list[tuple[int, str]] = []

    def part(k: int) -> None:
        time.sleep(0.02)  # long enough that one thread cannot take every part
        seen.append((k, threading.current_thread().name))

    for n in (2, 3, 50):
        seen.clear()
        workers.map(part, range(n))
        assert sorted(k for k, _ in seen) == list(range(n))
        assert len({name for _, name in seen}) > 1


def test_every_part_runs_once_when_many_threads_race_for_short_parts():
    """Eight threads taking parts that last a few microseconds, map after map: the counter the
    threads take parts from gives each part to one thread, and the map returns when all have
    run. Under the GIL one thread runs Python at a time; on a free-threaded Python without it
    (docs/performance.md, "Without the GIL") the threads take parts truly at once."""
    workers = Workers(8)
    for n in (8, 9, 100, 2000):
        for _ in range(20):
            runs = [0] * n

            def part(k: int) -> None:
                runs[k] += 1  # each k is one part's own: no two threads write one element

            workers.map(part, range(n))
            assert runs == [1] * n


class _Queue:
    """A job queue that has a job at its ``ready``-th look (get_nowait) and records whether a
    thread slept on it (get)."""

    def __init__(self, ready: int) -> None:
        self.looks, self.ready, self.slept = 0, ready, False

    def get_nowait(self) -> str:
        self.looks += 1
        if self.looks < self.ready:
            raise queue.Empty
        return "job"

    def get(self) -> str:
        self.slept = True
        return "job"


@pytest.mark.parametrize("gil", [True, False])
def test_without_the_gil_a_thread_looks_again_for_work_before_it_sleeps(monkeypatch, gil):
    """Without the GIL a helper with no job looks at the queue again for SPIN_SECONDS, and
    takes a job that comes meanwhile without sleeping; with it, it sleeps at once (looking
    again would hold the GIL the working threads need). Past SPIN_SECONDS it sleeps."""
    from gatys.kernels import workers

    monkeypatch.setattr(workers, "gil_enabled", lambda: gil)
    monkeypatch.setattr(workers, "SPIN_SECONDS", 10.0)
    jobs = _Queue(ready=3)
    assert workers._next_job(jobs) == "job"
    assert (jobs.slept, jobs.looks) == ((True, 0) if gil else (False, 3))
    monkeypatch.setattr(workers, "SPIN_SECONDS", 0.001)
    never = _Queue(ready=10**12)
    assert workers._next_job(never) == "job" and never.slept
    assert gil or never.looks > 1


@pytest.mark.parametrize("gil", [True, False])
def test_the_calling_thread_waits_for_the_last_part_looking_or_asleep(monkeypatch, gil):
    """``map``'s wait for the helpers' last part returns once it is done, whether it ends
    while the calling thread still looks (without the GIL) or after it has gone to sleep."""
    from gatys.kernels import workers

    monkeypatch.setattr(workers, "gil_enabled", lambda: gil)
    monkeypatch.setattr(workers, "SPIN_SECONDS", 0.01)
    for delay in (0.0, 0.002, 0.05):
        done, released = threading.Lock(), []
        done.acquire()

        def last_part_ends() -> None:
            released.append(time.perf_counter())
            done.release()

        timer = threading.Timer(delay, last_part_ends)
        timer.start()
        workers._wait_for(done)
        assert released and done.locked()  # returned after the release, holding the lock
        timer.join()


def test_an_error_is_raised_once_the_parts_running_have_finished_and_no_more_start():
    workers = Workers(2)
    running, started, finished = threading.Lock(), [], []

    def part(k: int) -> None:
        with running:
            started.append(k)
        if k == 1:
            raise ValueError("part 1")
        time.sleep(0.05)
        finished.append(k)

    with pytest.raises(ValueError, match="part 1"):
        workers.map(part, range(40))
    ran = sorted(started)
    assert sorted(finished + [1]) == ran  # nothing still running when map gave the error back
    assert len(ran) < 10  # the rest never started
    time.sleep(0.1)
    assert sorted(started) == ran
    workers.map(lambda k: finished.append(-1 - k), range(4))  # the threads work on after it
    assert sorted(finished)[:4] == [-4, -3, -2, -1]


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_a_ctrl_c_while_the_parts_run_stops_them_before_map_returns():
    """Sent from a helper's part, the SIGINT is raised in the main thread, which is running a
    part of its own: that part stops, the helper's parts finish before map returns, and no
    other part starts."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a CLI test may ignore it
    workers = Workers(2)
    started, finished, sent = [], [], threading.Lock()
    main = threading.main_thread()

    def part(k: int) -> None:
        in_main = threading.current_thread() is main
        started.append((k, in_main))
        if not in_main and sent.acquire(blocking=False):
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        finished.append((k, in_main))

    try:
        with pytest.raises(KeyboardInterrupt):
            workers.map(part, range(20))
    finally:
        signal.signal(signal.SIGINT, before)
    ran = list(started)
    assert sent.locked(), "no part ran in a helper"
    cut_short = set(ran) - set(finished)
    assert len(cut_short) <= 1 and all(in_main for _, in_main in cut_short)
    assert len(ran) < 20
    time.sleep(0.15)
    assert started == ran  # none started after map returned


def test_an_interruption_anywhere_in_the_calling_thread_leaves_no_part_running(monkeypatch):
    """An exception raised in the thread that called map at any point of its own counting of
    parts or of its wait (here sent asynchronously, as a signal handler's would be, at a random
    moment, the wait woken often): map neither hangs nor returns while a helper's part runs,
    and no part starts after it."""
    from gatys.kernels import workers as module

    monkeypatch.setattr(module, "WAKE_SECONDS", 0.0005)
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
    workers = Workers(3)
    rng = random.Random(0)
    running: dict[int, int] = {}  # part: the thread running it
    late: list[int] = []
    outcomes: list[str] = []
    ran_on: list[int] = []  # laps after which a helper's part was still running

    def calls(caller: int) -> None:
        for lap in range(200):
            fire = rng.randrange(40)
            returned = [False]

            def part(k: int) -> None:
                if returned[0]:
                    late.append(k)
                running[k] = threading.get_ident()
                if k == fire and threading.get_ident() != caller:
                    time.sleep(rng.random() * 2e-4)
                    set_async_exc(caller, KeyboardInterrupt)
                    time.sleep(rng.random() * 3e-3)  # running on while the caller sees it
                time.sleep(rng.random() * 2e-4)  # letting go of the GIL, as NumPy's calls do
                del running[k]

            try:
                workers.map(part, range(40))
                outcomes.append("done")
            except KeyboardInterrupt:
                outcomes.append("interrupted")
                if set(running.values()) - {caller}:  # its own part may have been cut short
                    ran_on.append(lap)
            returned[0] = True
            running.clear()

    caller = threading.Thread(target=lambda: calls(caller.ident), daemon=True)
    caller.start()
    caller.join(timeout=60)
    assert not caller.is_alive(), "map hung after an interruption"
    assert len(outcomes) == 200 and "interrupted" in outcomes
    assert not ran_on, "a helper's part ran on after map was interrupted"
    assert not late, "parts started after map returned"


def test_the_threads_end_with_their_workers():
    before = set(helper_threads())
    workers = Workers(3)
    workers.map(lambda k: None, range(6))
    mine = [t for t in helper_threads() if t not in before]
    assert len(mine) == 2  # and the thread that calls map
    del workers
    gc.collect()
    for t in mine:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in mine)


def test_a_part_that_maps_again_runs_its_own_parts_instead_of_waiting_for_busy_threads():
    workers = Workers(2)
    inner: list[tuple[int, int]] = []

    def outer(k: int) -> None:
        workers.map(lambda j: inner.append((k, j)), range(3))

    done = threading.Thread(target=workers.map, args=(outer, range(4)), daemon=True)
    done.start()
    done.join(timeout=10)
    assert not done.is_alive(), "a nested map waited for threads that were all busy"
    assert sorted(inner) == [(k, j) for k in range(4) for j in range(3)]


class _Blas:
    """A threadpoolctl controller whose BLAS runs ``threads`` threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def info(self) -> list[dict]:
        return [{"user_api": "blas", "num_threads": self.threads}]


@contextmanager
def _machine(monkeypatch, blas: int, cpus: int, env: str | None) -> Iterator[Any]:
    """The workers module on a machine whose BLAS uses ``blas`` threads of ``cpus`` CPUs, with
    GATYS_THREADS ``env`` (None: unset), read afresh inside and again after."""
    from gatys.kernels import workers

    monkeypatch.setattr(workers, "_blas_controller", lambda: _Blas(blas))
    monkeypatch.setattr(workers, "cpus", lambda: cpus)
    if env is None:
        monkeypatch.delenv("GATYS_THREADS", raising=False)
    else:
        monkeypatch.setenv("GATYS_THREADS", env)
    workers._threads_available.cache_clear()
    try:
        yield workers
    finally:
        workers._threads_available.cache_clear()


@pytest.fixture
def under_the_gil(monkeypatch):
    """The thread caps that the GIL calls for, whichever Python runs the test: a free-threaded
    one without its GIL has none (``workers.gil_enabled``)."""
    from gatys.kernels import workers

    monkeypatch.setattr(workers, "gil_enabled", lambda: True)


@pytest.mark.parametrize("blas, cpus, env, expected, large", [
    (2, 2, None, 2, 2),        # what BLAS uses, on a small machine
    (16, 16, None, 8, 12),     # past DEFAULT_THREADS_AT_MOST the threads queue for the GIL,
    (64, 64, None, 8, 12),     # unless each call's work is large: LARGE_IMAGE_THREADS_AT_MOST
    (10, 10, None, 8, 10),
    (16, 16, "16", 16, 16),    # asked for: GATYS_THREADS is not capped, bar the CPUs
    (16, 16, "99", 16, 16),
    (16, 16, "many", 8, 12),   # not a number: as if unset
])
@pytest.mark.usefixtures("under_the_gil")
def test_the_default_threads_follow_blas_up_to_eight_or_twelve_unless_asked(
        monkeypatch, blas, cpus, env, expected, large):
    with _machine(monkeypatch, blas, cpus, env) as workers:
        assert (workers.DEFAULT_THREADS_AT_MOST, workers.LARGE_IMAGE_THREADS_AT_MOST) == (8, 12)
        assert workers.default_threads() == expected
        assert workers.default_threads(1023 * 1024) == expected  # under 1024^2 pixels
        assert workers.default_threads(1024 * 1024) == large
        assert workers.default_threads(2048 * 2048) == large


@pytest.mark.parametrize("blas, env, expected", [
    (2, None, 2), (16, None, 16), (64, None, 64),  # the caps are for the GIL's queue
    (64, "4", 4),                                  # GATYS_THREADS still decides
])
def test_without_the_gil_the_default_threads_are_all_that_blas_uses(monkeypatch, blas, env,
                                                                    expected):
    """On a free-threaded Python running without its GIL, no cap: every image size gets the
    threads BLAS would use."""
    with _machine(monkeypatch, blas, 64, env) as workers:
        monkeypatch.setattr(workers, "gil_enabled", lambda: False)
        assert [workers.default_threads(p) for p in (0, 512 * 512, 2048 * 2048)] == [expected] * 3


@pytest.mark.usefixtures("under_the_gil")
def test_without_threadpoolctl_the_default_threads_are_the_cpus_up_to_eight(monkeypatch):
    from gatys.kernels import workers

    monkeypatch.setattr(workers, "_blas_controller", lambda: None)
    monkeypatch.delenv("GATYS_THREADS", raising=False)
    for cpus, expected in ((1, 1), (4, 4), (32, 8)):
        monkeypatch.setattr(workers, "cpus", lambda: cpus)
        workers._threads_available.cache_clear()
        try:
            assert workers.default_threads() == expected
        finally:
            workers._threads_available.cache_clear()


def test_an_image_under_a_million_pixels_runs_on_the_small_images_threads():
    """Workers(4, small_images=2): on a 1000^2 image jobs are cut for two threads and run on
    two, on 1024^2 on all four; after the block, as before; Workers without ``small_images``,
    and a cut set apart from the threads (bench.partition's), are left as they are."""
    w = Workers(4, small_images=2)
    seen: set[int] = set()
    gate = threading.Barrier(2, timeout=10)

    def part(i: int) -> None:
        seen.add(threading.get_ident())
        gate.wait() if i < 2 else time.sleep(0.01)  # the first two parts run at once

    with w.for_image(1000 * 1000):
        assert w.threads == 2 and w.per_thread(8) == [(0, 4), (4, 8)]
        w.map(part, range(8))
    assert len(seen) == 2, "more threads than the small images' ran a job"
    assert w.threads == 4 and w.threads_for(1000 * 1000) == 2
    with w.for_image(1024 * 1024):
        assert w.threads == 4 and len(w.per_thread(8)) == 4
        seen.clear()
        gate = threading.Barrier(4, timeout=10)
        w.map(lambda i: (seen.add(threading.get_ident()), gate.wait() if i < 4 else None), range(8))
        assert len(seen) == 4
    with w.for_image(16):  # nested, as an evaluation's forward pass is
        with w.for_image(16):
            pass
        assert w.threads == 2, "an inner block's end gave the outer one all the threads"
        with w.for_image(2048 * 2048):
            assert w.threads == 2  # a large image's block leaves a small one's count
    assert w.threads == 4 and w._running == 4
    assert Workers(4).threads_for(16) == 4
    cut = Workers(2)
    cut.threads = 16  # cut as 16 threads would, run on 2
    with cut.for_image(16):
        assert cut.threads == 16 and cut._running == 2


@pytest.mark.parametrize("cpus, jobs, blas, small, large", [
    (16, 1, 16, 8, 12),  # one job on 16 cores: BLAS's share is all, the engine's as outside
    (16, 4, 4, 4, 4),
    (2, 1, 2, 2, 2),
])
@pytest.mark.usefixtures("under_the_gil")
def test_a_sweeps_worker_processes_share_the_cores_and_the_engine_sizes_its_own(
        monkeypatch, cpus, jobs, blas, small, large):
    """Each worker's BLAS gets its share of the cores; the engine in it takes its threads from
    that share by the image's size, as outside a sweep, whatever GATYS_THREADS the machine has."""
    from gatys.batch import executors
    from gatys.kernels import workers

    monkeypatch.setattr(executors, "cpus", lambda: cpus)
    env = executors.thread_share(jobs)
    assert {env[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")} == \
        {str(blas)}
    monkeypatch.setenv("GATYS_THREADS", "16")  # the parent's, which the worker's replaces
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(workers, "_blas_controller", lambda: _Blas(blas))  # as the env says
    monkeypatch.setattr(workers, "cpus", lambda: cpus)
    workers._threads_available.cache_clear()
    try:
        assert workers.default_threads(512 * 512) == small
        assert workers.default_threads(1024 * 1024) == large
    finally:
        workers._threads_available.cache_clear()


@pytest.mark.skipif(cpus() < 2, reason="needs two CPUs to see a share of one")
def test_a_dask_cell_s_engine_takes_its_threads_from_the_worker_s_share(monkeypatch):
    """On a Dask worker whose share of the machine is one core, the engine made in its first
    cell counts BLAS's threads inside the cell's limit: one, not the machine's."""
    from gatys.batch import executors
    from gatys.kernels import workers

    monkeypatch.delenv("GATYS_THREADS", raising=False)
    monkeypatch.setattr(executors, "_worker_share", lambda: 1)
    monkeypatch.setattr(executors, "compute",
                        lambda cell, ident: (None, {"threads": workers.default_threads()}))
    workers._threads_available.cache_clear()
    try:
        assert executors._dask_task(None, {})[1] == {"threads": 1}
    finally:
        workers._threads_available.cache_clear()
    assert workers.default_threads() == workers.engine_threads(cpus())


def test_a_whole_evaluation_of_a_small_image_runs_on_the_small_images_threads(random_full_vgg,
                                                                                monkeypatch):
    """Every map of an evaluation at 32^2 (forward, losses, backward), and of the targets'
    features and Gram matrices before it, is cut for and run on the small images' two threads,
    not the four that large images get; after, the workers have all four again."""
    from gatys.bench import harness

    w = Workers(4, small_images=2)
    seen = []
    run = Workers.map

    def map(self, fn, parts):
        seen.append((self.threads, self._running))
        return run(self, fn, parts)

    monkeypatch.setattr(Workers, "map", map)
    objective, x = harness.cpu_objective(random_full_vgg, w, 32)
    made = len(seen)
    assert made > 10 and set(seen) == {(2, 2)}, seen  # the targets
    objective.evaluate(x)
    assert len(seen) - made > 50 and set(seen[made:]) == {(2, 2)}, seen
    assert (w.threads, w._running) == (4, 4)


@given(n=st.integers(0, 5000), parts=st.integers(-2, 300))
def test_cut_makes_contiguous_parts_largest_first_within_one_of_each_other(n, parts):
    """The parts tile range(n) in order, as many as asked (at most n, none for none), their
    sizes never growing and differing by one at most: the threads take the short ones last."""
    got = cut(n, parts)
    assert len(got) == max(0, min(parts, n))
    if got:
        assert got[0][0] == 0 and got[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(got, got[1:]))
        sizes = [stop - start for start, stop in got]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1
        assert min(sizes) >= 1
