"""How much memory a run needs, estimated before it starts, and how much the machine has."""
from __future__ import annotations

from typing import Callable, Iterator

from .kernels.array_ops import CHUNK_BYTES, WINOGRAD_CHUNK_BYTES, padded_length, winograd_tiles
from .kernels.cuda_backend import CHUNK_BYTES as CUDA_CHUNK_BYTES
from .kernels.workers import default_threads
from .vgg import layer_shapes

# Interpreter with NumPy, SciPy, ONNX and Pillow loaded. With the terms below, the estimate is
# 10-25 % above the peak resident memory measured for 256-1024 px transfers (bench/, README).
BASE_BYTES = 150 << 20


def estimate_bytes(shape: tuple[int, int], channels: tuple[int, ...], deepest: str,
                   history: int, itemsize: int = 4, threads: int | None = None) -> int:
    """Peak bytes of a run on an output of ``shape`` = (H, W) through layer ``deepest``.

    Counts what a loss+gradient evaluation keeps (each conv layer's ReLU mask, one byte per
    padded element, and the loss gradients of up to six loss layers), the largest layer's
    transient float buffers, convolution scratch (one part of a layer per thread, a Winograd
    part with its transforms' temporaries about twice its V and M), the weights (all 16 layers
    as loaded, plus the forms the used layers' kernels need: one Winograd U shared by both
    directions, or a direct form per direction), and L-BFGS-B's float64 workspace
    (2 m + 5 vectors of 3 H W, plus bounds and copies at scipy's boundary).
    """
    masks = transient = used_weights = 0
    loss_grads = []
    for c_in, c_out, h, w in _convs(shape, channels, deepest):
        elements = c_out * padded_length(h, w)
        masks += elements
        loss_grads.append(c_out * h * w * itemsize)
        transient = max(transient, 3 * elements * itemsize + c_in * padded_length(h, w) * itemsize)
        tiles = winograd_tiles(c_in, c_out)
        taps = (tiles[0] + 2) ** 2 if tiles else 2 * 9
        used_weights += taps * c_in * c_out * itemsize
    lbfgs = lbfgs_bytes(shape, history)
    scratch = max(CHUNK_BYTES, 2 * WINOGRAD_CHUNK_BYTES) * (threads or default_threads())
    return (BASE_BYTES + masks + sum(sorted(loss_grads)[-6:]) + transient + scratch
            + loaded_weights_bytes(channels, itemsize) + used_weights + lbfgs)


def _convs(shape: tuple[int, int], channels: tuple[int, ...],
           deepest: str) -> Iterator[tuple[int, int, int, int]]:
    """(C_in, C_out, H, W) of each conv layer through ``deepest``."""
    return ((c_in, c_out, h, w)
            for name, c_in, c_out, h, w in layer_shapes(shape, channels, deepest)
            if name.startswith("conv"))


def loaded_weights_bytes(channels: tuple[int, ...], itemsize: int) -> int:
    """All conv layers' OIHW weights as loaded."""
    return sum(9 * a * b for a, b in zip((3, *channels[:-1]), channels)) * itemsize


def lbfgs_bytes(shape: tuple[int, int], history: int) -> int:
    """L-BFGS-B's float64 workspace on the host: 2 m + 5 vectors of 3 H W, plus bounds and
    copies at scipy's boundary."""
    n = 3 * shape[0] * shape[1]
    return (2 * history + 12) * n * 8 + 11 * history * history * 8


def estimate_cuda_bytes(shape: tuple[int, int], channels: tuple[int, ...], deepest: str,
                        itemsize: int = 4) -> int:
    """Peak GPU bytes of a run on the CUDA backend (kernels.cuda_backend) on an output of
    ``shape`` = (H, W) through layer ``deepest``: the ReLU masks and up to six loss layers'
    features and gradients kept through an evaluation, the largest layer's input, output and
    gradient buffers with its im2col chunk and product, and the weights (as loaded, plus the
    used layers' (O, 9C) matrices both ways), with a fifth more for the memory pool's rounding
    and fragmentation. (Not measured on a GPU yet: see the README.)"""
    masks = transient = used_weights = 0
    loss_bytes = []
    for c_in, c_out, h, w in _convs(shape, channels, deepest):
        length = padded_length(h, w)
        masks += c_out * length
        loss_bytes.append(2 * c_out * h * w * itemsize)
        columns = min(9 * c_in * h * (w + 2) * itemsize, CUDA_CHUNK_BYTES)
        transient = max(transient, (c_in + 2 * c_out) * length * itemsize
                        + columns * (1 + c_out / (9 * c_in)))
        used_weights += 2 * 9 * c_in * c_out * itemsize
    return int(1.2 * (masks + sum(sorted(loss_bytes)[-6:]) + transient
                      + loaded_weights_bytes(channels, itemsize) + used_weights))


def available_bytes() -> int | None:
    """Memory the system can give without swapping (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def largest_fitting_size(shape: tuple[int, int], estimate: Callable[[tuple[int, int]], int],
                         budget: int) -> int:
    """The largest longest side, same aspect as ``shape``, whose ``estimate`` fits in
    ``budget``."""
    longest = max(shape)
    lo, hi = 0, longest
    while lo < hi:
        mid = (lo + hi + 1) // 2
        scaled = (max(1, shape[0] * mid // longest), max(1, shape[1] * mid // longest))
        if estimate(scaled) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
