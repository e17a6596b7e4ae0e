"""The padded flat layout that activations and their gradients live in.

Per channel, the image with a one-pixel zero border as rows of width W + 2, flattened, plus two
slack elements: a (C, L) array with L = (H + 2) (W + 2) + 2. A 3x3 convolution's nine taps are
then shifted, strided views of the input that BLAS reads in place, and a product lands directly
in the next layer's padded buffer: its two junk columns per row fall on the border, which is
then zeroed. Pooling and losses use the interior view, (C, H, W) without the border.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .workers import Workers


def padded_length(h: int, w: int) -> int:
    return (h + 2) * (w + 2) + 2


def interior(buf: Any, h: int, w: int) -> Any:
    """The (C, H, W) view of the image inside a padded flat buffer."""
    return buf[:, : (h + 2) * (w + 2)].reshape(buf.shape[0], h + 2, w + 2)[:, 1 : h + 1, 1 : w + 1]


def zero_border(buf: Any, h: int, w: int, written: tuple[int, int] | None = None,
                workers: Workers | None = None) -> None:
    """Zero the border and slack of a padded flat buffer (where junk columns land); with
    ``written`` = (rows, cols), also the interior below its first rows and right of its first
    columns (what a 2x2 pooling's backward leaves unwritten where H or W is odd). With
    ``workers``, a block of channels per thread (not the main thread alone)."""
    if workers is not None:
        workers.by_channels(lambda b: zero_border(buf[b], h, w, written), buf.shape[0])
        return
    rows, cols = written or (h, w)
    grid = buf[:, : (h + 2) * (w + 2)].reshape(buf.shape[0], h + 2, w + 2)
    grid[:, 0, :] = 0
    grid[:, rows + 1 :, :] = 0
    grid[:, :, 0] = 0
    grid[:, :, cols + 1 :] = 0
    buf[:, (h + 2) * (w + 2) :] = 0


def to_padded(x: Any, xp: Any) -> Any:
    """(C, H, W) -> padded flat (C, L)."""
    c, h, w = x.shape
    buf = xp.zeros((c, padded_length(h, w)), dtype=x.dtype)
    interior(buf, h, w)[...] = x
    return buf

