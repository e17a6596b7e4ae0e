"""Compute primitives of the engine, written once over an array module ``xp``.

Every function works on a single image in channel-first layout, ``(C, H, W)``, in the dtype of
its inputs (float32 for synthesis, float64 for gradient checks). NumPy and CuPy both provide the
calls used here, so the same code serves as the CPU kernels and as the fallback on CUDA.
"""
from __future__ import annotations

from typing import Any

# Offsets of the nine taps of a 3x3 kernel in row-major order; tap k is weight[:, :, dy, dx].
TAPS = [(dy, dx) for dy in range(3) for dx in range(3)]


def conv_taps(weight: Any, xp: Any) -> Any:
    """Rearrange an OIHW 3x3 weight into nine contiguous (O, C) matrices, shape (9, O, C)."""
    o, c = weight.shape[:2]
    return xp.ascontiguousarray(weight.reshape(o, c, 9).transpose(2, 0, 1))


def conv_taps_input_grad(taps: Any, xp: Any) -> Any:
    """Taps of the convolution that maps an output gradient to the input gradient.

    The gradient of a stride-1, pad-1 correlation with respect to its input is the correlation of
    the output gradient with the kernel rotated by 180 degrees and with in/out channels swapped.
    """
    return xp.ascontiguousarray(taps[::-1].transpose(0, 2, 1))


def conv3x3(x: Any, taps: Any, bias: Any | None, xp: Any) -> Any:
    """3x3 cross-correlation, stride 1, zero padding 1: (C, H, W) -> (O, H, W).

    The padded input is kept as one flat row per channel. Shifting that row by dy*(W+2)+dx gives,
    for every output pixel, the input pixel under tap (dy, dx), as a strided 2-D view that BLAS
    reads directly: nine GEMMs of (O, C) x (C, H*(W+2)) and no im2col copy. The two extra columns
    per row that this computes are dropped at the end.
    """
    c, h, w = x.shape
    o = taps.shape[1]
    wp = w + 2
    n = h * wp
    padded = xp.zeros((c, (h + 2) * wp + 2), dtype=x.dtype)
    padded[:, : (h + 2) * wp].reshape(c, h + 2, wp)[:, 1:-1, 1:-1] = x
    out = xp.empty((o, n), dtype=x.dtype)
    part = xp.empty((o, n), dtype=x.dtype)
    for k, (dy, dx) in enumerate(TAPS):
        start = dy * wp + dx
        window = padded[:, start : start + n]
        if k == 0:
            xp.matmul(taps[k], window, out=out)
        else:
            xp.matmul(taps[k], window, out=part)
            out += part
    y = out.reshape(o, h, wp)[:, :, :w]
    if bias is not None:
        y = y + bias[:, None, None]
    return xp.ascontiguousarray(y)


def relu(x: Any, xp: Any) -> Any:
    return xp.maximum(x, 0)


def relu_backward(grad: Any, y: Any, xp: Any) -> Any:
    """Gradient through ReLU, given its output ``y``: passes where y > 0, else 0."""
    return grad * (y > 0)


def _blocks(x: Any) -> Any:
    """View (C, H, W) as (C, H//2, 2, W//2, 2), dropping an odd last row/column (floor mode)."""
    c, h, w = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2)


def avg_pool2(x: Any, xp: Any) -> Any:
    """2x2 average pooling, stride 2."""
    return _blocks(x).mean(axis=(2, 4))


def avg_pool2_backward(grad: Any, in_shape: tuple[int, int, int], xp: Any) -> Any:
    c, h, w = in_shape
    out = xp.zeros(in_shape, dtype=grad.dtype)
    _blocks(out)[...] = (grad * 0.25)[:, :, None, :, None]
    return out


def max_pool2(x: Any, xp: Any) -> tuple[Any, Any]:
    """2x2 max pooling, stride 2. Returns the output and the index (0..3) of each maximum."""
    c, h2, _, w2, _ = _blocks(x).shape
    windows = _blocks(x).transpose(0, 1, 3, 2, 4).reshape(c, h2, w2, 4)
    index = windows.argmax(axis=3).astype(xp.int8)
    return xp.take_along_axis(windows, index[..., None].astype(xp.intp), axis=3)[..., 0], index


def max_pool2_backward(grad: Any, index: Any, in_shape: tuple[int, int, int], xp: Any) -> Any:
    """Routes each output gradient to the input that was the maximum of its window."""
    c, h2, w2 = grad.shape
    windows = xp.zeros((c, h2, w2, 4), dtype=grad.dtype)
    xp.put_along_axis(windows, index[..., None].astype(xp.intp), grad[..., None], axis=3)
    out = xp.zeros(in_shape, dtype=grad.dtype)
    _blocks(out)[...] = windows.reshape(c, h2, w2, 2, 2).transpose(0, 1, 3, 2, 4)
    return out


def gram(F: Any) -> Any:
    """Gram matrix G = F F^T of an (N_l, M_l) feature matrix (eq. 3)."""
    return F @ F.T
