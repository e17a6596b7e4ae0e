"""ReLU, 2x2 pooling and their backward passes, over an array module ``xp``, split by channels
among the workers."""
from __future__ import annotations

from typing import Any

from .workers import SEQUENTIAL, Workers


def bias_relu(out: Any, bias: Any, relu: bool, xp: Any) -> None:
    """Add a per-channel ``bias`` to ``out`` (channels first, any shape) and apply ReLU, in
    place."""
    if bias is not None:
        out += bias.reshape(-1, *([1] * (out.ndim - 1)))
    if relu:
        xp.maximum(out, 0, out=out)




def relu(x: Any, xp: Any) -> Any:
    return xp.maximum(x, 0)


def relu_mask(x: Any, xp: Any, workers: Workers = SEQUENTIAL, out: Any = None) -> Any:
    """Where ``x`` > 0, as booleans (into ``out`` if given): what backprop through a ReLU needs
    of its output."""
    mask = xp.empty(x.shape, dtype=bool) if out is None else out
    workers.by_channels(lambda b: xp.greater(x[b], 0, out=mask[b]), x.shape[0])
    return mask


def relu_backward(grad: Any, mask: Any, xp: Any, workers: Workers = SEQUENTIAL) -> Any:
    """Gradient through ReLU, in place: passes where ``mask`` (its output > 0) is set, else 0;
    a block of channels per thread (:func:`mask_gradient`)."""
    workers.by_channels(lambda b: mask_gradient(grad[b], mask[b], xp), grad.shape[0])
    return grad


def mask_gradient(grad: Any, mask: Any, xp: Any) -> None:
    """``grad`` zeroed in place where ``mask`` is False, in one call (a block's share of
    :func:`relu_backward`)."""
    xp.multiply(grad, mask, out=grad)


def _window(x: Any, i: int, j: int) -> Any:
    """Element (i, j) of every 2x2 window of (C, H, W), as a strided view (C, H//2, W//2); an odd
    last row or column is left out (floor mode). Slicing, unlike reshape, never copies."""
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    return x[:, i : 2 * h2 : 2, j : 2 * w2 : 2]


WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))


def avg_pool2(x: Any, xp: Any, out: Any = None, workers: Workers = SEQUENTIAL) -> Any:
    """2x2 average pooling, stride 2, of a (C, H, W) array or view (into ``out`` if given)."""
    if out is None:
        out = xp.empty((x.shape[0], x.shape[1] // 2, x.shape[2] // 2), dtype=x.dtype)

    def channels(b: slice) -> None:
        xs, o = x[b], out[b]
        h2, w2 = o.shape[1:]
        rows = xp.add(xs[:, 0 : 2 * h2 : 2], xs[:, 1 : 2 * h2 : 2])  # whole rows: unit stride
        rows *= rows.dtype.type(0.25)  # here, contiguous: ``out``'s rows are strided
        xp.add(rows[..., 0 : 2 * w2 : 2], rows[..., 1 : 2 * w2 : 2], out=o)

    workers.by_channels(channels, x.shape[0], plane=x[0].size)
    return out


def avg_pool2_backward(grad: Any, in_shape: tuple[int, int, int], xp: Any, out: Any = None,
                       workers: Workers = SEQUENTIAL) -> Any:
    """Spread each output gradient evenly over its 2x2 window; ``out`` (in_shape) may be a view
    to write into: every element of every window is written, an odd last row or column (left
    out in floor mode) is not, and must be zero already (zeros when ``out`` is not given)."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)

    def channels(b: slice) -> None:
        quarter = grad[b] * 0.25
        for i, j in WINDOW:
            _window(out[b], i, j)[...] = quarter

    workers.by_channels(channels, grad.shape[0], plane=out[0].size)
    return out


def max_pool2(x: Any, xp: Any, workers: Workers = SEQUENTIAL,
              out: Any = None) -> tuple[Any, Any]:
    """2x2 max pooling, stride 2 (into ``out`` if given, which may be a view). Returns the
    output and the index (0..3, as in ``WINDOW``) of each maximum (the first one on ties),
    found by comparing the two pairs of each window, then the pairs' winners: three
    comparisons, no stacked copy of the windows."""
    c, h2, w2 = x.shape[0], x.shape[1] // 2, x.shape[2] // 2
    if out is None:
        out = xp.empty((c, h2, w2), dtype=x.dtype)
    index = xp.empty((c, h2, w2), dtype=xp.int8)
    # Scratch for the comparisons, allocated once for all threads' parts.
    lower = xp.empty((c, h2, w2), dtype=x.dtype)
    second, top = xp.empty((2, c, h2, w2), dtype=bool)

    def channels(b: slice) -> None:
        a0, a1, a2, a3 = (_window(x[b], i, j) for i, j in WINDOW)
        xp.greater(a1, a0, out=second[b])  # strictly: the first of a tie wins
        xp.maximum(a0, a1, out=out[b])
        xp.maximum(a2, a3, out=lower[b])
        xp.greater(lower[b], out[b], out=top[b])
        xp.maximum(out[b], lower[b], out=out[b])
        xp.greater(a3, a2, out=index[b])  # the lower pair's index - 2
        index[b] += 2
        xp.copyto(index[b], second[b], where=~top[b])

    workers.by_channels(channels, c, plane=x[0].size)
    return out, index


def max_pool2_backward(grad: Any, index: Any, in_shape: tuple[int, int, int], xp: Any,
                       out: Any = None, workers: Workers = SEQUENTIAL) -> Any:
    """Route each output gradient to the input that was the maximum of its window; ``out``
    (in_shape) may be a view to write into: every element of every window is written (zero
    where it was not the maximum), an odd last row or column is not, as in
    :func:`avg_pool2_backward`."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)

    winner = xp.empty(grad.shape, dtype=bool)  # scratch, once for all threads' parts

    def channels(b: slice) -> None:
        for k, (i, j) in enumerate(WINDOW):
            xp.equal(index[b], k, out=winner[b])
            xp.multiply(grad[b], winner[b], out=_window(out[b], i, j))

    workers.by_channels(channels, grad.shape[0], plane=out[0].size)
    return out
