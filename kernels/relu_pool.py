"""ReLU, 2x2 pooling and their backward passes, over an array module ``xp``, split by channels
among the workers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .workers import CHANNEL_BLOCK_ELEMENTS, SEQUENTIAL, Workers


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


def written_and_masked(grad: Any, mask: Any, fill: Callable[[slice], None] | None, xp: Any,
                       workers: Workers = SEQUENTIAL) -> None:
    """``grad`` (C, L), padded flat, written by ``fill(channels)`` where given, then zeroed
    where ``mask`` is False (:func:`relu_backward`) where given: a block of channels at a
    time, each written and masked in one part of one map, as many channels a block as a
    pass over the interior takes (:meth:`.Workers.by_channels`: L is a few elements more
    than the interior's, and one channel a block made twice the parts, no faster)."""
    if fill is None:
        if mask is not None:
            relu_backward(grad, mask, xp, workers)
        return

    def block(part: tuple[int, int]) -> None:
        b = slice(*part)
        fill(b)
        if mask is not None:
            mask_gradient(grad[b], mask[b], xp)

    step = max(1, round(CHANNEL_BLOCK_ELEMENTS / grad.shape[1]))
    workers.map(block, workers.split(grad.shape[0], step))


def mask_gradient(grad: Any, mask: Any, xp: Any) -> None:
    """``grad`` zeroed in place where ``mask`` is False, in one call (a block's share of
    :func:`relu_backward`)."""
    xp.multiply(grad, mask, out=grad)


@dataclass
class Pooling:
    """Where a conv layer's forward pass also writes its 2x2 pooling: ``out``, a padded flat
    buffer of H // 2 x W // 2 inside, and for max pooling ``index`` (C, H // 2, W // 2, int8,
    as :func:`max_pool2` gives it); average pooling where it is None."""

    out: Any
    index: Any = None


def pool_block(x: Any, out: Any, index: Any, xp: Any) -> None:
    """The 2x2 pooling of a (C, H, W) array or view into ``out`` (C, H // 2, W // 2): the
    maximum, its winners into ``index``, where given, else the average; in one thread."""
    if index is None:
        avg_pool2_block(x, out, xp)
    else:
        max_pool2_block(x, out, index, xp)


def pool_backward_block(grad: Any, index: Any, out: Any, xp: Any) -> None:
    """The backward pass of :func:`pool_block` (the gradient (C, H // 2, W // 2) into ``out``
    (C, H, W)), in one thread."""
    if index is None:
        avg_pool2_backward_block(grad, out)
    else:
        max_pool2_backward_block(grad, index, out, xp)


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

    workers.by_channels(lambda b: avg_pool2_block(x[b], out[b], xp), x.shape[0],
                        plane=x[0].size)
    return out


def avg_pool2_block(x: Any, out: Any, xp: Any) -> None:
    """2x2 average pooling, stride 2, of a (C, H, W) array or view into ``out`` (C, H // 2,
    W // 2), in one thread (a block's share of :func:`avg_pool2`)."""
    h2, w2 = out.shape[1:]
    rows = xp.add(x[:, 0 : 2 * h2 : 2], x[:, 1 : 2 * h2 : 2])  # whole rows: unit stride
    rows *= rows.dtype.type(0.25)  # here, contiguous: ``out``'s rows are strided
    xp.add(rows[..., 0 : 2 * w2 : 2], rows[..., 1 : 2 * w2 : 2], out=out)


def avg_pool2_backward(grad: Any, in_shape: tuple[int, int, int], xp: Any, out: Any = None,
                       workers: Workers = SEQUENTIAL) -> Any:
    """Spread each output gradient evenly over its 2x2 window; ``out`` (in_shape) may be a view
    to write into: every element of every window is written, an odd last row or column (left
    out in floor mode) is not, and must be zero already (zeros when ``out`` is not given)."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)
    workers.by_channels(lambda b: avg_pool2_backward_block(grad[b], out[b]), grad.shape[0],
                        plane=out[0].size)
    return out


def avg_pool2_backward_block(grad: Any, out: Any) -> None:
    """:func:`avg_pool2_backward` of a (C, H // 2, W // 2) gradient into ``out`` (C, H, W), in
    one thread (a block's share of it)."""
    quarter = grad * 0.25
    for i, j in WINDOW:
        _window(out, i, j)[...] = quarter


def max_pool2(x: Any, xp: Any, workers: Workers = SEQUENTIAL, out: Any = None,
              index: Any = None) -> tuple[Any, Any]:
    """2x2 max pooling, stride 2 (into ``out`` if given, which may be a view). Returns the
    output and the index (0..3, as in ``WINDOW``; into ``index`` if given) of each maximum
    (the first one on ties), found by comparing the two pairs of each window, then the pairs'
    winners: three comparisons, no stacked copy of the windows."""
    c, h2, w2 = x.shape[0], x.shape[1] // 2, x.shape[2] // 2
    if out is None:
        out = xp.empty((c, h2, w2), dtype=x.dtype)
    if index is None:
        index = xp.empty((c, h2, w2), dtype=xp.int8)
    # Scratch for the comparisons, allocated once for all threads' parts.
    lower = xp.empty((c, h2, w2), dtype=x.dtype)
    second, top = xp.empty((2, c, h2, w2), dtype=bool)
    workers.by_channels(lambda b: max_pool2_block(x[b], out[b], index[b], xp, lower[b],
                                                  second[b], top[b]), c, plane=x[0].size)
    return out, index


def max_pool2_block(x: Any, out: Any, index: Any, xp: Any, lower: Any = None,
                    second: Any = None, top: Any = None) -> None:
    """:func:`max_pool2` of a (C, H, W) array or view into ``out`` and ``index`` (C, H // 2,
    W // 2), in one thread (a block's share of it); ``lower``, ``second`` and ``top`` are
    scratch of ``out``'s shape (``x``'s dtype, bool, bool), made here if not given."""
    if lower is None:
        lower = xp.empty(out.shape, dtype=x.dtype)
        second, top = xp.empty((2, *out.shape), dtype=bool)
    a0, a1, a2, a3 = (_window(x, i, j) for i, j in WINDOW)
    xp.greater(a1, a0, out=second)  # strictly: the first of a tie wins
    xp.maximum(a0, a1, out=out)
    xp.maximum(a2, a3, out=lower)
    xp.greater(lower, out, out=top)
    xp.maximum(out, lower, out=out)
    xp.greater(a3, a2, out=index)  # the lower pair's index - 2
    index += 2
    xp.copyto(index, second, where=~top)


def max_pool2_backward(grad: Any, index: Any, in_shape: tuple[int, int, int], xp: Any,
                       out: Any = None, workers: Workers = SEQUENTIAL) -> Any:
    """Route each output gradient to the input that was the maximum of its window; ``out``
    (in_shape) may be a view to write into: every element of every window is written (zero
    where it was not the maximum), an odd last row or column is not, as in
    :func:`avg_pool2_backward`."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)

    winner = xp.empty(grad.shape, dtype=bool)  # scratch, once for all threads' parts
    workers.by_channels(lambda b: max_pool2_backward_block(grad[b], index[b], out[b], xp,
                                                           winner[b]),
                        grad.shape[0], plane=out[0].size)
    return out


def max_pool2_backward_block(grad: Any, index: Any, out: Any, xp: Any,
                             winner: Any = None) -> None:
    """:func:`max_pool2_backward` of a (C, H // 2, W // 2) gradient into ``out`` (C, H, W), in
    one thread (a block's share of it); ``winner``: bool scratch of ``grad``'s shape, made
    here if not given."""
    if winner is None:
        winner = xp.empty(grad.shape, dtype=bool)
    for k, (i, j) in enumerate(WINDOW):
        xp.equal(index, k, out=winner)
        xp.multiply(grad, winner, out=_window(out, i, j))
