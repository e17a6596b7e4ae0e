"""How much memory a run needs, estimated before it starts, and how much the machine has."""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

from gatys.kernels.conv import CHUNK_BYTES
from gatys.kernels.cuda_backend import CHUNK_BYTES as CUDA_CHUNK_BYTES
from gatys.kernels.layout import padded_length
from gatys.kernels.winograd import (
    WINOGRAD_CHUNK_BYTES,
    least_part_bytes,
    part_bytes,
    shares_tile_rows,
    tile_for,
    winograd_tiles,
)
from gatys.kernels.workers import default_threads
from gatys.model.vgg import LAYERS, layer_shapes

# Interpreter with NumPy, SciPy, ONNX and Pillow loaded. How the estimate compares with measured
# peaks is in docs/performance.md.
BASE_BYTES = 150 << 20


def estimate_bytes(shape: tuple[int, int], channels: tuple[int, ...], deepest: str,
                   history: int, itemsize: int = 4, threads: int | None = None) -> int:
    """Peak bytes of a run on an output of ``shape`` = (H, W) through layer ``deepest``.

    Counts what a loss+gradient evaluation keeps (each conv layer's ReLU mask, one byte per
    padded element, and up to six loss layers' outputs or gradients, held for the backward
    sweep), the largest layer's transient float buffers, convolution scratch (one part of a
    layer per thread, a Winograd part with its transforms' temporaries about twice its V and
    M), the weights (all 16 layers
    as loaded, plus the forms the used layers' kernels need: one Winograd U shared by both
    directions, or a direct form per direction), and L-BFGS-B's float64 workspace
    (2 m + 5 vectors of 3 H W, plus bounds and copies at scipy's boundary).
    """
    masks = transient = used_weights = 0
    winograd_part = WINOGRAD_CHUNK_BYTES
    threads = threads or default_threads(shape[0] * shape[1])
    loss_grads = []
    for c_in, c_out, h, w in _convs(shape, channels, deepest):
        elements = c_out * padded_length(h, w)
        masks += elements
        loss_grads.append(c_out * h * w * itemsize)
        transient = max(transient, 3 * elements * itemsize + c_in * padded_length(h, w) * itemsize)
        m = tile_for(winograd_tiles(c_in, c_out), h, w)  # the engine's F(m x m) here
        taps = (m + 2) ** 2 if m else 2 * 9
        used_weights += taps * c_in * c_out * itemsize
        if m:  # a Winograd part moves a few times the layer's U, and with several threads
            # (unless parts fit the cache) a thread's share of its V and M (winograd._parts)
            u = taps * c_in * c_out * itemsize
            whole = taps * (c_in + c_out) * -(-h // m) * -(-w // m) * itemsize
            share = min(part_bytes(threads), whole // threads) if shares_tile_rows(threads) else 0
            least = least_part_bytes(u, threads)
            winograd_part = max(winograd_part, u, min(least, whole), share)
    lbfgs = lbfgs_bytes(shape, history)
    scratch = max(CHUNK_BYTES, 2 * winograd_part) * threads
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


# CuPy's pool keeps freed blocks of every size an evaluation uses, so what it takes from the GPU
# exceeds the peak of live arrays; this factor is fit to the two sizes bench/gpu_check.py
# measured on a GPU (docs/cuda.md; tests/test_memory_estimates.py keeps the fit).
CUDA_POOL_FACTOR = 1.41


def estimate_cuda_bytes(shape: tuple[int, int], channels: tuple[int, ...],
                        layers: Sequence[str], itemsize: int = 4) -> int:
    """GPU bytes a run on the CUDA backend (kernels.cuda_backend) takes on an output of ``shape``
    = (H, W) with loss ``layers``: the live peak of an evaluation, times the pool's overhead.

    The live peak is the weights (as loaded, plus the used layers' (O, 9C) matrices both ways),
    the ReLU masks (kept for the whole evaluation), and the larger of two moments: the losses,
    when every loss layer's features and their gradients dL/dF exist together; and the largest
    convolution, forward or backward, with its input and output buffers, one im2col chunk and
    two chunks of GEMM product, besides the loss features or gradients held at that point.
    """
    feature = {}
    masks = conv = held = used_weights = 0
    for name, c_in, c_out, h, w in layer_shapes(shape, channels, max(layers, key=LAYERS.index)):
        if not name.startswith("conv"):
            continue
        masks += c_out * padded_length(h, w)
        used_weights += 2 * 9 * c_in * c_out * itemsize
        forward = held + _cuda_conv_bytes(c_in, c_out, h, w, itemsize)
        if name in layers:
            feature[name] = c_out * h * w * itemsize
            held += feature[name]
        backward = held + _cuda_conv_bytes(c_out, c_in, h, w, itemsize)
        conv = max(conv, forward, backward)
    losses = 2 * sum(feature.values())
    live = loaded_weights_bytes(channels, itemsize) + used_weights + masks + max(losses, conv)
    return int(CUDA_POOL_FACTOR * live)


def _cuda_conv_bytes(c_in: int, c_out: int, h: int, w: int, itemsize: int) -> int:
    """One 3x3 convolution on the CUDA backend: padded input and output, an im2col chunk of
    (9 C_in, k) and two (C_out, k) products (the last chunk's and the next one's)."""
    length = padded_length(h, w)
    k = min(h * (w + 2), max(256, CUDA_CHUNK_BYTES // ((9 * c_in + c_out) * itemsize)))
    return ((c_in + c_out) * length + 9 * c_in * k + 2 * c_out * k) * itemsize


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
