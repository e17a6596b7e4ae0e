"""The padded flat layout that activations and their gradients live in.

Per channel, the image with a one-pixel zero border as rows of width W + 2, flattened, plus two
slack elements: a (C, L) array with L = (H + 2) (W + 2) + 2. A 3x3 convolution's nine taps are
then shifted, strided views of the input that BLAS reads in place, and a product lands directly
in the next layer's padded buffer: its two junk columns per row fall on the border, which is
then zeroed. Pooling and losses use the interior view, (C, H, W) without the border.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy


def padded_length(h: int, w: int) -> int:
    return (h + 2) * (w + 2) + 2


def interior(buf: Any, h: int, w: int) -> Any:
    """The (C, H, W) view of the image inside a padded flat buffer."""
    return buf[:, : (h + 2) * (w + 2)].reshape(buf.shape[0], h + 2, w + 2)[:, 1 : h + 1, 1 : w + 1]


# A block of channels with at most this many border positions in all has them zeroed through
# one flat index over the block: one GIL release where the (channels, positions) index takes
# two, in as little time; past it, the flat index, read per position, was slower
# (docs/performance.md, "The Gram matrices in one map, and small borders in one release").
FLAT_BORDER_POSITIONS = 1 << 15


def zero_border(buf: Any, h: int, w: int, written: tuple[int, int] | None = None) -> None:
    """Zero the border and slack of a padded flat buffer (where junk columns land); with
    ``written`` = (rows, cols), also the interior below its first rows and right of its first
    columns (what a 2x2 pooling's backward leaves unwritten where H or W is odd). On the CPU in
    one indexed assignment (:func:`border_positions`, or for a small contiguous block
    :func:`flat_border_positions`; ``Backend.zero_border`` gives each thread a block of
    channels): three strided passes took the GIL three times per call for a few cache lines
    per row (docs/performance.md); elsewhere (CuPy) in those passes."""
    if not isinstance(buf, numpy.ndarray):
        _zero_border_in_passes(buf, h, w, written)
        return
    positions = border_positions(h, w, written)
    c, length = buf.shape
    if buf.flags.c_contiguous and c * positions.size <= FLAT_BORDER_POSITIONS:
        buf.reshape(-1)[flat_border_positions(h, w, written, c, length)] = 0
    else:
        buf[:, positions] = 0


@functools.lru_cache(maxsize=64)
def border_positions(h: int, w: int, written: tuple[int, int] | None = None) -> numpy.ndarray:
    """The positions within a channel of a padded flat buffer that :func:`zero_border` zeroes,
    ascending (read-only: shared by every call with the same arguments)."""
    rows, cols = written or (h, w)
    outside = numpy.ones((h + 2, w + 2), dtype=bool)
    outside[1 : rows + 1, 1 : cols + 1] = False
    end = padded_length(h, w)
    positions = numpy.concatenate([numpy.flatnonzero(outside), numpy.arange(end - 2, end)])
    positions.flags.writeable = False
    return positions


@functools.lru_cache(maxsize=64)
def flat_border_positions(h: int, w: int, written: tuple[int, int] | None, channels: int,
                          length: int) -> numpy.ndarray:
    """:func:`border_positions` of each of ``channels`` channels of ``length`` elements, as
    positions in the flat block (read-only)."""
    positions = (numpy.arange(channels)[:, None] * length + border_positions(h, w, written))
    flat = positions.ravel()
    flat.flags.writeable = False
    return flat


def _zero_border_in_passes(buf: Any, h: int, w: int, written: tuple[int, int] | None) -> None:
    """:func:`zero_border` in three strided passes: the top row, the sides, the rows below."""
    rows, cols = written or (h, w)
    wp = w + 2
    buf[:, :wp] = 0  # the top row
    _zero_sides(buf, wp, cols, 0, rows + 1)
    buf[:, (rows + 1) * wp :] = 0  # the rows below ``rows`` and the slack


def zero_border_rows(buf: Any, h: int, w: int, first: int, stop: int) -> slice:
    """Zero the border within the flat span that rows ``first`` .. ``stop`` - 1 of a padded
    flat buffer own (1 <= first < stop <= h + 1; row 0 is the top border): from the right
    border of the row above to that of their last row but one, with the top row where
    ``first`` is 1 and the bottom row and slack where ``stop`` is h + 1. The spans of passes
    that each write some rows' interior tile the buffer, so between them they zero the whole
    border, each only within its own span, without a pass of its own. Returns the span. A pass
    that wrote every row zeroes the whole border as :func:`zero_border` does (on the CPU one
    indexed assignment, where the three strided passes below took the GIL three times)."""
    if first == 1 and stop == h + 1:
        zero_border(buf, h, w)
        return slice(None)
    wp = w + 2
    span = slice(0 if first == 1 else first * wp - 1, None if stop == h + 1 else stop * wp - 1)
    _zero_sides(buf, wp, w, first - 1, stop - 1)
    if first == 1:
        buf[:, :wp] = 0  # the top row
    if stop == h + 1:
        buf[:, stop * wp - 1 :] = 0  # the last row's right border, the bottom row, the slack
    return span


def finish_rows(buf: Any, h: int, w: int, first: int, stop: int, mask: Any, xp: Any) -> None:
    """What a pass that wrote rows ``first`` .. ``stop`` - 1 of a padded flat buffer does while
    they are in cache: zero the border within their span (:func:`zero_border_rows`) and, where
    ``mask`` (bool, ``buf``'s shape) is given, write where ``buf`` > 0 in that span into it."""
    span = zero_border_rows(buf, h, w, first, stop)
    if mask is not None:
        xp.greater(buf[:, span], 0, out=mask[:, span])


def _zero_sides(buf: Any, wp: int, cols: int, first: int, stop: int) -> None:
    """Zero the columns right of ``cols`` in rows ``first`` .. ``stop`` - 1 of a padded flat
    buffer, and column 0 in each next row: they lie next to each other, so one strided pass
    zeroes both (each pass takes the GIL once)."""
    start = first * wp + cols + 1
    sides = buf[:, start : start + (stop - first) * wp].reshape(buf.shape[0], stop - first, wp)
    sides[:, :, : wp - cols] = 0


def to_padded(x: Any, xp: Any) -> Any:
    """(C, H, W) -> padded flat (C, L)."""
    c, h, w = x.shape
    buf = xp.zeros((c, padded_length(h, w)), dtype=x.dtype)
    interior(buf, h, w)[...] = x
    return buf

