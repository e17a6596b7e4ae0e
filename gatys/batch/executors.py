"""Where cells run: in this process, in local worker processes, or on a Dask cluster. One
interface, used by ``gatys figure`` and ``gatys sweep``.

Every executor computes a cell with :func:`gatys.batch.cells.compute`, which returns the cell's PNG
bytes and its record; the caller (this process) writes both into the work folder, so a Dask
worker needs no shared file system. The work folder stays the record of what is done: an
executor is only given the missing cells.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import ctypes
import importlib.util
import logging
import multiprocessing
import os
import queue as queue_module
import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator

from gatys.batch.cells import Cell, compute, lower_priority, with_absolute_paths
from gatys.errors import GatysError, InputError
from gatys.kernels.workers import cpus

Report = Callable[[str, int], None]  # (cell key, iteration reached)
Done = Callable[[Cell, "bytes | None", dict[str, Any]], None]  # (cell, PNG bytes, record)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GATYS_THREADS")


def thread_share(jobs: int) -> dict[str, str]:
    """The environment that gives each of ``jobs`` worker processes its share of the cores:
    BLAS's threads, whose count the engine takes its own from for each image's size, as outside
    a sweep (``workers.default_threads``); GATYS_THREADS emptied, so that a count set for the whole
    machine does not reach every worker."""
    share = max(1, cpus() // jobs)
    return {**dict.fromkeys(THREAD_VARIABLES, str(share)), "GATYS_THREADS": ""}


# --- local worker processes -------------------------------------------------------------------

_progress_queue: Any = None


def init_worker(progress_queue: Any) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    lower_priority()
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the parent
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def compute_in_worker(cell: Cell, ident: dict[str, Any]) -> tuple[bytes | None, dict[str, Any]]:
    return compute(cell, ident, lambda key, i: _progress_queue.put((key, i)))


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


class InProcess:
    """One cell after the other, in this process."""

    runs_here = 1  # cells computed at once on this machine (for its memory plan)

    def run(self, todo: list[Cell], idents: dict[str, dict], report: Report, done: Done) -> None:
        for cell in todo:
            done(cell, *_named(lambda: compute(cell, idents[cell.key], report), cell))


class Processes:
    """``jobs`` worker processes on this machine (spawned, each with cpu_count / jobs threads,
    at lower priority)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    @property
    def runs_here(self) -> int:
        return self.jobs

    def run(self, todo: list[Cell], idents: dict[str, dict], report: Report, done: Done) -> None:
        jobs = min(self.jobs, len(todo))
        if jobs <= 1:
            return InProcess().run(todo, idents, report, done)
        context = multiprocessing.get_context("spawn")  # no fork of a process holding BLAS threads
        progress_queue = context.Queue()
        pool = None
        try:
            with environment(thread_share(jobs)):
                pool = futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                   initializer=init_worker,
                                                   initargs=(progress_queue,))
                pending = {pool.submit(compute_in_worker, c, idents[c.key]): c
                           for c in todo}
                while pending:
                    finished, _ = futures.wait(pending, timeout=0.5,
                                               return_when=futures.FIRST_COMPLETED)
                    with contextlib.suppress(queue_module.Empty):
                        while True:
                            report(*progress_queue.get_nowait())
                    for future in finished:
                        cell = pending.pop(future)
                        done(cell, *_named(future.result, cell))
        except BaseException:
            stop_pool(pool)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            progress_queue.close()


def dask_missing() -> str | None:
    """Why Dask cannot be used here, or None."""
    if importlib.util.find_spec("distributed") is None:
        return ("running cells on Dask needs dask.distributed: pip install 'gatys[dask]' (or "
                "pip install 'dask[distributed]')")
    return None


def _dask_task(cell: Cell, ident: dict[str, Any]) -> tuple[bytes | None, dict[str, Any]]:
    """A cell on a Dask worker, with BLAS held to the worker's share of its machine's cores,
    which the engine takes its count from for each image's size (``workers.default_threads``: read
    in the first cell, inside this limit), unless the worker's GATYS_THREADS sets one."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(_worker_share()):
        return compute(cell, ident)


def _worker_share() -> int:
    """This machine's cores over the task threads of every Dask worker on it (as the scheduler
    lists them): workers started with ``--nworkers 2`` must not each take every core, where
    spinning BLAS threads would slow all of them down many times over."""
    from distributed import get_client, get_worker

    worker = get_worker()
    host = worker.address.rsplit(":", 1)[0]
    try:
        workers = get_client().scheduler_info(n_workers=-1)["workers"]
        threads = sum(w["nthreads"] for address, w in workers.items()
                      if address.rsplit(":", 1)[0] == host)
    except Exception:  # an older scheduler, or no answer: this worker's own threads
        threads = worker.state.nthreads
    return max(1, cpus() // max(1, threads))


class Dask:
    """A Dask cluster: the scheduler at ``scheduler`` (tcp://host:8786), or a LocalCluster of
    ``workers`` processes on 127.0.0.1 started for the run. CUDA cells need a ``GPU`` resource
    (``dask worker --resources GPU=1``). A worker that dies mid-cell has its cell rerun
    elsewhere by the scheduler; each cell is recorded once, here."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        if (scheduler is None) == (workers is None):
            raise InputError("give a Dask scheduler address or a number of local Dask workers, "
                             "not both")
        why = dask_missing()
        if why:
            raise InputError(why)
        self.scheduler, self.workers = scheduler, workers
        self.runs_here = workers or 1  # a remote cluster's cells use no memory here
        self.name = (f"the Dask scheduler at {scheduler}" if scheduler
                     else f"a local Dask cluster of {workers} workers")

    def _client(self, gpu: bool) -> tuple[Any, Any]:
        import distributed  # noqa: F811

        # Dask's own log lines (workers starting, its tracebacks while it reconnects to a lost
        # scheduler) are not ours to show: what matters reaches us as an exception, said in
        # one line.
        quiet = ("distributed", "dask", "tornado", "asyncio")
        for name in [*quiet, *logging.root.manager.loggerDict]:
            if name.split(".")[0] in quiet:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        if self.scheduler is not None:
            try:
                return distributed.Client(self.scheduler, timeout="10s"), None
            except (OSError, TimeoutError) as e:
                raise GatysError(f"cannot reach the Dask scheduler at {self.scheduler} ({e}): "
                                 "start it with `dask scheduler`, or check the address") from None
        cluster = distributed.LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, env=thread_share(self.runs_here),
            resources={"GPU": 1} if gpu else None)
        return distributed.Client(cluster), cluster

    def run(self, todo: list[Cell], idents: dict[str, dict], report: Report, done: Done) -> None:
        import distributed

        gpu = [c.arguments.get("device") == "cuda" for c in todo]
        client, cluster = self._client(any(gpu))
        pending: dict[Any, Cell] = {}
        try:
            for cell, on_gpu in zip(todo, gpu):
                # The workers' working folders are not ours: name the inputs absolutely.
                future = client.submit(_dask_task, with_absolute_paths(cell),
                                       idents[cell.key], pure=False,
                                       key=f"gatys-cell-{cell.key}",
                                       resources={"GPU": 1} if on_gpu else None)
                pending[future] = cell
            for future in distributed.as_completed(list(pending)):
                cell = pending.pop(future)
                done(cell, *_named(future.result, cell))
        except (OSError, TimeoutError, distributed.comm.CommClosedError,
                distributed.client.FutureCancelledError) as e:
            raise GatysError(f"lost {self.name} ({type(e).__name__}: it stopped or restarted): "
                             "the finished cells are kept; run the same command again to "
                             "compute the others") from None
        finally:
            with contextlib.suppress(Exception):
                client.cancel(list(pending), force=True)
            with contextlib.suppress(Exception):
                client.close(timeout=5)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)


def _named(get: Callable[[], Any], cell: Cell) -> Any:
    """``get()``, with the cell named in an error."""
    try:
        return get()
    except BrokenProcessPool:
        raise GatysError(f"the worker computing cell {cell.key} died (out of memory?): "
                         "use fewer --jobs or a smaller --size") from None
    except GatysError as e:
        raise type(e)(f"cell {cell.key}: {e}") from None
    except Exception as e:
        if type(e).__name__ == "KilledWorker":  # distributed's, without importing it here
            raise GatysError(f"cell {cell.key} killed every Dask worker that ran it (out of "
                             "memory?): use a smaller --size") from None
        raise


def choose(jobs: int | None, scheduler: str | None, dask_workers: int | None,
           default_jobs: int) -> Any:
    """The executor the options ask for: Dask if a scheduler or local Dask workers are named,
    else local processes (``jobs``, default ``default_jobs``), one of which runs in-process."""
    if scheduler is not None or dask_workers is not None:
        if jobs is not None:
            raise InputError("jobs is for local worker processes; with Dask give the workers "
                             "to the cluster (dask_workers) instead")
        return Dask(scheduler, dask_workers)
    jobs = default_jobs if jobs is None else jobs
    return InProcess() if jobs == 1 else Processes(jobs)
