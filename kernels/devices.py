"""Which backend serves a device name: the CPU (NumPy), CUDA (CuPy) or ``auto``."""
from __future__ import annotations

import functools

import numpy

from .allocator import keep_freed_memory
from .backend import Backend
from .workers import LARGE_IMAGE_PIXELS, Workers, default_threads

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where CuPy sees a GPU, else ``cpu``; other names unchanged."""
    if device != "auto":
        return device
    from .cuda_backend import why_no_cuda
    return "cpu" if why_no_cuda() else "cuda"


@functools.lru_cache(maxsize=None)
def get_backend(device: str = "cpu", tf32: bool = False, cuda_graphs: bool = False,
                threads: int | None = None) -> Backend:
    """The backend for ``device`` (one per process and setting): ``cpu`` (NumPy), ``cuda``
    (CuPy; DeviceUnavailable if CuPy or a GPU is missing) or ``auto``. ``tf32`` and
    ``cuda_graphs`` apply to CUDA only; ``threads``, the CPU's worker threads for every image
    size (default: :func:`default_threads`, by size), to the CPU only."""
    device = resolve_device(device)
    if device == "cpu":
        return cpu_backend(Workers(threads) if threads else None)
    if device == "cuda":
        from .cuda_backend import CudaBackend, load_cupy
        return CudaBackend("cuda", load_cupy(), tf32=tf32, graphs=cuda_graphs)
    raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")


def cpu_backend(workers: Workers | None = None) -> Backend:
    """A NumPy backend on ``workers`` (default: :func:`default_threads` of them for large images
    and for others, :meth:`Workers.for_image`), with glibc's malloc keeping freed blocks
    (:func:`keep_freed_memory`): how every CPU backend is made, benches' own workers included,
    so that they time the engine users run."""
    keep_freed_memory()
    return Backend("cpu", numpy, workers or Workers(default_threads(LARGE_IMAGE_PIXELS),
                                                    small_images=default_threads()))
