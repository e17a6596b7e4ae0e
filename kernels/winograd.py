"""Winograd's minimal filtering for 3x3 convolutions (Lavin & Gray 2016), over an array module
``xp``: forward, and for the input gradient the forward pass of the flipped kernel with the same
U where the points allow it (F(2x2), F(6x6)), else its transpose (F(4x4)).

F(m x m, 3x3) turns (m + 2)^2 input tiles into m x m outputs with Y = A^T [(G g G^T) * (B^T d B)] A:
(m + 2)^2 products of (O, C) x (C, tiles) per tile instead of the direct method's 9 m^2
multiply-adds per (o, c), so 5.06x fewer for m = 6, 4x for m = 4 and 2.25x for m = 2. The
transforms B^T . B and A^T . A are products with their small matrices too, one dimension at a
time, and cost memory traffic more than arithmetic; they pay off only when the channels are many.
"""
from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Callable

import numpy

from .blas_kernels import avx512_products
from .layout import finish_rows, padded_length, zero_border
from .relu_pool import mask_gradient, written_and_masked
from .workers import Workers, cut

if TYPE_CHECKING:
    from .conv import ConvWeights

WINOGRAD_FROM_CHANNELS = 64  # below, the transforms cost more than the products save
# Each part of a layer's tile rows moves at least this much, or a few times U (which every part
# reads whole, so that reading it again is a small share of a part's traffic; up to a part's
# bound on the CPU, part_bytes): smaller parts starve the products (docs/performance.md).
WINOGRAD_CHUNK_BYTES = 16 << 20
# How many times U a part moves at least, from each thread count on: twice from eight threads,
# where conv2_2's parts were two per thread and three were faster on the 16-core host (it moves
# no other layer's cut there; docs/performance.md, "Sixteen cores, and two of the host's cores").
WINOGRAD_PART_U = {1: 4, 8: 2}
# With several threads on the CPU, a part is a thread's whole share of the layer's tile rows
# (unless parts are cut to fit the cache, below): on two threads with AVX2 products more,
# smaller parts ran slower. What the parts hold at once, V and M (the
# input gradient's rows too), all threads together, is at most this much, so that memory stays
# bounded on large images and many threads; a part at most half of it. Two passes hold a whole
# layer's V and M: at most this much too.
WINOGRAD_HELD_BYTES = 128 << 20
# Where BLAS multiplies with AVX-512 kernels, the products of a part whose V and M have left the
# cache wait on memory (conv1_2's do 16 FLOP a byte): parts then move at least this much or
# part_u times U (up to part_bytes), never a thread's share; with AVX2 kernels that
# made no difference on one CPU and cost time on another. At this size the parts ran as fast as
# at half of it on one and two threads, with half as many of conv1_2's, each a round of GIL
# takes (docs/performance.md).
# WINOGRAD_CACHE_PARTS: None chooses by the BLAS kernels; True or False forces it (tests, benches).
WINOGRAD_CACHED_PART_BYTES = 8 << 20
WINOGRAD_CACHE_PARTS: bool | None = None
# Where parts are cut to fit the cache but a layer's U makes them hold more than
# WINOGRAD_TWO_PASS_FROM_PART_BYTES of V and M (a part moves part_u times U), they
# run out of the cache (parts of 12 MB and more had lost most of its gain): such a layer runs
# in two passes on any number of threads, one included, each thread's share of the channels
# cut into blocks of about WINOGRAD_TWO_PASS_BLOCK_BYTES of transformed tiles per thread there
# is (the GIL's hand-overs per block grow with the threads), so that the transforms work in
# the cache and every product takes all the layer's tiles (docs/performance.md, "Two passes in
# blocks that fit the cache" and "conv2_2 in two passes, in larger blocks").
WINOGRAD_TWO_PASS_FROM_PART_BYTES = 12 << 20
WINOGRAD_TWO_PASS_BLOCK_BYTES = 1 << 20
WINOGRAD_TILES = (6, 4, 2)  # the largest m of F(m x m, 3x3) the image has room for is used
WINOGRAD_FROM_SIDE = 2  # tiles per side at least, or tiles past the image cost more than they save
# Whole tiles a layer needs for each m: every part of a layer reads all of U, and F(4x4)'s U is
# 2.25x F(2x2)'s, so on small layers F(4x4) is the slower one (docs/performance.md).
WINOGRAD_MIN_TILES = {6: 64, 4: 64, 2: 1}

# G of U = G g G^T, B^T and A^T of F(m x m, 3x3) for each m (interpolation points 0, +-1 for
# m = 2, 0, +-1, +-2 for m = 4 and 0, +-1, +-2, +-1/2 for m = 6; Lavin & Gray 2016). B^T and
# A^T hold small integers over powers of two, exact in every float type.
WINOGRAD_G = {
    2: [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
    4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    6: [[-1, 0, 0], [-2 / 9, -2 / 9, -2 / 9], [-2 / 9, 2 / 9, -2 / 9],
        [1 / 90, 1 / 45, 2 / 45], [1 / 90, -1 / 45, 2 / 45], [32 / 45, 16 / 45, 8 / 45],
        [32 / 45, -16 / 45, 8 / 45], [0, 0, 1]],
}
WINOGRAD_BT = {
    2: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    4: [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    6: [[-1, 0, 21 / 4, 0, -21 / 4, 0, 1, 0], [0, 1, 1, -17 / 4, -17 / 4, 1, 1, 0],
        [0, -1, 1, 17 / 4, -17 / 4, -1, 1, 0], [0, 1 / 2, 1 / 4, -5 / 2, -5 / 4, 2, 1, 0],
        [0, -1 / 2, 1 / 4, 5 / 2, -5 / 4, -2, 1, 0], [0, 2, 4, -5 / 2, -5, 1 / 2, 1, 0],
        [0, -2, 4, 5 / 2, -5, -1 / 2, 1, 0], [0, -1, 0, 21 / 4, 0, -21 / 4, 0, 1]],
}
WINOGRAD_AT = {
    2: [[1, 1, 1, 0], [0, 1, -1, -1]],
    4: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    6: [[1, 1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
        [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0], [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 0],
        [0, 1, 1, 16, 16, 1 / 16, 1 / 16, 0], [0, 1, -1, 32, -32, 1 / 32, -1 / 32, 1]],
}
# The interpolation point +1 of every F(m x m, 3x3): its column of A^T is all ones, so a value
# added to the products M at (+1, +1) reaches each of a tile's m x m outputs once: the forward
# pass adds its bias there, to one of the a^2 products, not in a pass over the outputs.
ONES_POINT = 1
# Columns per block of a transform's product on the CPU: a block of (m + 2) rows stays in the
# core's cache while BLAS reads it; one product over all columns was as slow as element-wise
# passes (docs/performance.md).
TRANSFORM_COLUMNS = 16384
# Columns of a part's tile rows that one transform call takes, several rows at once (a stack
# of products, each still in blocks of TRANSFORM_COLUMNS): every call holds the GIL a while,
# and a row at a time made many of them; more left the core's cache where a part is a thread's
# share of the rows. Where parts are cut to fit the cache (cache_parts), up to
# CACHED_PARTS_STACK_COLUMNS: as fast on one and two threads, in fewer calls (docs/performance.md).
TRANSFORM_STACK_COLUMNS = 4 * TRANSFORM_COLUMNS
CACHED_PARTS_STACK_COLUMNS = 16 * TRANSFORM_COLUMNS
# Input gradients by F(m x m) as the forward pass of the flipped kernel where F(m)'s points
# allow it (input_grad_as_forward); False: transposed everywhere (tests, benches).
WINOGRAD_INPUT_GRAD_AS_FORWARD = True
# "rows", "channels" or (p_c, p_r) forces how every layer is split among two threads or more
# (tests and benches): parts of tile rows, two passes finished in a block of output channels
# per thread, or in p_c channel blocks times p_r tile-row blocks; None chooses per layer
# (_blocks).
WINOGRAD_SPLIT: str | tuple[int, int] | None = None
# Backprop through a ReLU ahead of a layer in two passes: the mask applied by each block of
# channels of the transform that reads the gradient (a map fewer per layer); False: in a map of
# its own first, as parts of tile rows do (benches; docs/performance.md).
WINOGRAD_MASK_IN_BLOCKS = True
# A forward pass in two passes, given somewhere to pool its output (``rows_done``), has each block
# of output channels pooled as it is finished, from the cache; and an input gradient in two
# passes whose gradient is written block by block (``src_fill``: a pool's backward) has each
# block of channels written just before its transform reads it. Parts of tile rows leave both
# to a pass of their own (the pooling after them ran faster than in them, and their rows
# overlap); False: two passes leave them too (benches; docs/performance.md, "The pools in the
# two passes' blocks").
WINOGRAD_POOL_IN_BLOCKS = True


@functools.lru_cache(maxsize=None)
def _transform_matrices(m: int, xp: Any, dtype: Any) -> tuple[Any, Any]:
    """B^T and A^T of F(m x m, 3x3) as ``xp`` arrays of ``dtype``."""
    return xp.asarray(WINOGRAD_BT[m], dtype=dtype), xp.asarray(WINOGRAD_AT[m], dtype=dtype)


@functools.lru_cache(maxsize=None)
def flipped_points(m: int) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """(pi, d) such that G of F(m x m, 3x3) times a reversed 3-vector is D P G times the vector:
    row p of G reversed is d_p times row pi(p). It exists where the interpolation points are
    closed under p -> 1/p (0 and infinity swap; F(2x2) and F(6x6)), not for F(4x4)'s +-2
    without +-1/2: None. pi swaps pairs, so it is its own inverse; each d_p is a power of two."""
    G = numpy.asarray(WINOGRAD_G[m], dtype=numpy.float64)
    pi: list[int] = []
    d: list[float] = []
    for flipped in G[:, ::-1]:
        for q, row in enumerate(G):
            k = int(numpy.argmax(numpy.abs(row)))
            ratio = float(flipped[k] / row[k])
            if numpy.allclose(flipped, ratio * row, rtol=1e-12, atol=0):
                pi.append(q)
                d.append(ratio)
                break
        else:
            return None
    return tuple(pi), tuple(d)


def input_grad_as_forward(m: int) -> bool:
    """Whether an input gradient by F(m x m) runs as the forward pass of the flipped kernel
    (:func:`winograd_forward`, no tiles that overlap on output), rather than transposed
    (:func:`winograd_input_grad`)."""
    return WINOGRAD_INPUT_GRAD_AS_FORWARD and flipped_points(m) is not None


@functools.lru_cache(maxsize=None)
def _flipped_transform_matrices(m: int, xp: Any, dtype: Any) -> tuple[Any, Any]:
    """P B^T and A^T D P of F(m x m, 3x3) (:func:`flipped_points`), ``xp`` arrays of ``dtype``.

    The input gradient correlates dY with the kernel g rotated by 180 degrees, channels
    swapped; its U' = G g' G^T is then D P U P^T D, U's (a^2) positions permuted and scaled,
    with each (o, c) block transposed. So Y' = A^T [U' * (B^T dY B)] A
    = (A^T D P) [U^T * ((P B^T) dY (P B^T)^T)] (A^T D P)^T: the forward pass with these two
    matrices and the forward's U read transposed, with no copy of U."""
    found = flipped_points(m)
    if found is None:
        raise ValueError(f"F({m}x{m}, 3x3)'s interpolation points have no flipped form")
    pi, d = list(found[0]), numpy.asarray(found[1])
    BT = numpy.asarray(WINOGRAD_BT[m], dtype=numpy.float64)[pi]
    AT = numpy.asarray(WINOGRAD_AT[m], dtype=numpy.float64)[:, pi] * d[pi]
    return xp.asarray(BT, dtype=dtype), xp.asarray(AT, dtype=dtype)


def on_cpu(xp: Any) -> bool:
    """Whether ``xp`` is NumPy, whose transforms are cut to fit the core's cache and the GIL."""
    return getattr(xp, "__name__", "") == "numpy"


@functools.lru_cache(maxsize=256)
def _block_width(n: int) -> int:
    """Columns per block for ``n`` columns: TRANSFORM_COLUMNS, or where that leaves a shorter
    last block, the widest that divides ``n`` into blocks of at least half of it, so that no
    last block is multiplied in a call (and a GIL release) of its own; TRANSFORM_COLUMNS where
    none does."""
    fewest = -(-n // TRANSFORM_COLUMNS)
    return next((n // k for k in range(fewest, 2 * fewest + 1) if n % k == 0), TRANSFORM_COLUMNS)


def _in_blocks(X: Any, width: int) -> tuple[Any, Any]:
    """X (..., N) as (..., N // B, B), its blocks of B = ``width`` columns, and its last
    N % B columns (None if none): views, as splitting one axis never copies."""
    whole = X.shape[-1] - X.shape[-1] % width
    blocks = X[..., :whole].reshape(*X.shape[:-1], -1, width)
    return blocks, (X[..., whole:] if whole < X.shape[-1] else None)


def _rows_at_once(rows: int, columns: int, xp: Any) -> int:
    """How many of a part's ``rows`` tile rows, each ``columns`` wide, one transform call takes:
    on the CPU as many as TRANSFORM_STACK_COLUMNS holds, or CACHED_PARTS_STACK_COLUMNS where
    parts fit the cache (:func:`cache_parts`), one at least; all of them elsewhere."""
    if not on_cpu(xp):
        return rows
    stack = CACHED_PARTS_STACK_COLUMNS if cache_parts() else TRANSFORM_STACK_COLUMNS
    return max(1, min(rows, stack // max(1, columns)))


def _transform(T: Any, X: Any, out: Any, xp: Any) -> Any:
    """``out`` = T X for a transform matrix T (p, q) and X (..., q, N), a stack of them or one,
    as BLAS products; on the CPU in blocks of TRANSFORM_COLUMNS columns (or a few fewer,
    :func:`_block_width`), which stay in the core's cache while BLAS reads them: one NumPy
    call for all blocks (a stack of products, run without the GIL; a call per block took it
    again for each)."""
    if not on_cpu(xp) or X.shape[-1] <= TRANSFORM_COLUMNS:
        return xp.matmul(T, X, out=out)
    width = _block_width(X.shape[-1])
    (X_blocks, X_rest), (out_blocks, out_rest) = _in_blocks(X, width), _in_blocks(out, width)
    xp.matmul(T, X_blocks.swapaxes(-2, -3), out=out_blocks.swapaxes(-2, -3))
    if X_rest is not None:
        xp.matmul(T, X_rest, out=out_rest)
    return out


def _transform_transposed(X: Any, TT: Any, out: Any, xp: Any) -> Any:
    """``out`` (..., N, p) = X^T T^T = (T X)^T for X (..., q, N) and ``TT`` = T^T (q, p): the
    transform with the p values of each column next to each other, as they lie in a row of
    tiles (BLAS reads X transposed in place); in blocks of columns as :func:`_transform`."""
    if not on_cpu(xp) or X.shape[-1] <= TRANSFORM_COLUMNS:
        return xp.matmul(X.swapaxes(-1, -2), TT, out=out)
    width = _block_width(X.shape[-1])
    (X_blocks, X_rest), (out_blocks, out_rest) = \
        _in_blocks(X, width), _in_blocks(out.swapaxes(-1, -2), width)
    xp.matmul(X_blocks.swapaxes(-2, -3).swapaxes(-1, -2), TT,
              out=out_blocks.swapaxes(-2, -3).swapaxes(-1, -2))
    if X_rest is not None:
        xp.matmul(X_rest.swapaxes(-1, -2), TT, out=out_rest.swapaxes(-1, -2))
    return out


def _windows(x: Any, axis: int, first: int, n: int, size: int, step: int, xp: Any) -> Any:
    """The view of ``x`` whose ``axis`` becomes (n, ``size``), [.., t, i, ..] being item
    first + ``step`` t + i of that axis: n windows a step apart, overlapping where ``size`` >
    ``step`` (a tile row's rows, or a tile's columns, every m). No copy is made, and none is
    read past the axis' end: windows that would are refused."""
    axis %= x.ndim
    if n > 0 and first + step * (n - 1) + size > x.shape[axis]:
        raise ValueError(f"{n} windows of {size} from {first}, {step} apart, pass the "
                         f"{x.shape[axis]} items of axis {axis}")
    s = x.strides
    shape = (*x.shape[:axis], n, size, *x.shape[axis + 1 :])
    strides = (*s[:axis], step * s[axis], s[axis], *s[axis + 1 :])
    if isinstance(x, numpy.ndarray) and x.flags.c_contiguous:
        # a view of x's own memory: as_strided's Python held the GIL several times as long,
        # for each part's tile columns (docs/performance.md)
        return numpy.ndarray(shape, x.dtype, x, first * s[axis], strides)
    return xp.lib.stride_tricks.as_strided(
        x[(slice(None),) * axis + (slice(first, None),)], shape=shape, strides=strides)


class _TileRows:
    """An image's tile rows, for products along their rows: tile row t is the ``rows`` rows of
    ``grid`` (C, ., W) from row first + m t. Rows from ``end`` on and columns from ``end_col``
    on count as zeros, so a last tile row that reaches past the image reads zero rows, and a
    last tile column zero columns. The tile rows within ``end`` are one strided view, made once
    per layer (making one holds the GIL). Each thread's small products land in a buffer of its
    own, kept for the layer, whose columns past ``end_col`` it zeroes once per shape, not in
    every part (each a NumPy call and a GIL release)."""

    def __init__(self, grid: Any, first: int, rows: int, m: int, end: int, end_col: int,
                 xp: Any) -> None:
        self.grid, self.first, self.m, self.end, self.end_col = grid, first, m, end, end_col
        self.xp = xp
        self.windows = _windows(grid, 1, first, (end - first - rows) // m + 1, rows, m, xp)
        self._buffers: dict[tuple[int, tuple[int, ...]], Any] = {}  # (thread, shape): X

    def _buffer(self, shape: tuple[int, ...]) -> Any:
        """A buffer of ``shape`` for :meth:`times`, its columns from ``end_col`` on zero: this
        thread's own, kept for the layer, where it is at most WINOGRAD_CACHED_PART_BYTES (the
        many small parts, whose zero fills are many; larger ones are not kept, so that a
        part's memory does not grow). A thread runs one part at a time, and a part is through
        with the result of :meth:`times` before it calls it again."""
        key = threading.get_ident(), shape
        X = self._buffers.get(key)
        if X is None:
            X = self.xp.empty(shape, dtype=self.grid.dtype)
            if self.end_col < shape[-1]:
                X[..., self.end_col :] = 0
            if X.nbytes <= WINOGRAD_CACHED_PART_BYTES:
                self._buffers[key] = X
        return X

    def times(self, T: Any, channels: slice, t0: int, n: int, width: int) -> Any:
        """(p, channels, n, ``width``) = T (p, rows) times each of tile rows t0 .. t0 + n,
        ``width`` columns wide (zeros past ``end_col``). One stack of products reads the tile
        rows in place, each (rows, W) window a matrix BLAS reads with the grid's row stride, and
        writes each (p, W) product where it lies in the result: no copy of the tile rows, and
        one call for the part, where a copy and a product per block of channels took the GIL
        for each (docs/performance.md)."""
        xp, e = self.xp, self.end_col
        grid = self.grid[channels]
        X = self._buffer((T.shape[0], grid.shape[0], n, width))
        by_tile_row = X.transpose(1, 2, 0, 3)  # (channels, n, p, width)
        inside = max(0, min(n, self.windows.shape[1] - t0))
        if inside:
            xp.matmul(T, self.windows[channels, t0 : t0 + inside, :, :e],
                      out=by_tile_row[:, :inside, :, :e])
        for t in range(inside, n):  # the last tile row, reaching past ``end``: zeros below it
            below = self.end - self.first - self.m * (t0 + t)  # its rows inside (one at least)
            xp.matmul(T[:, :below], grid[:, self.end - below : self.end, :e],
                      out=by_tile_row[:, t, :, :e])
        return X


def _tile_columns(rows: Any, first: int, tw: int, m: int, out: Any, xp: Any) -> None:
    """Into ``out`` (k, ..., tw): columns first + j, first + j + m, ... (``tw`` of them) of
    ``rows`` for j < k, k <= m + 2, contiguous, for the transforms' products, in one strided
    copy (each call takes the GIL again): where k > m, from the ``tw`` overlapping windows of
    k columns, m apart; else from the columns cut into tiles of m (a plain view, a little
    faster to make and to copy from)."""
    k = out.shape[0]
    if k > m:
        tiles = _windows(rows, -1, first, tw, k, m, xp)
    else:
        tiles = rows[..., first : first + m * tw].reshape(*rows.shape[:-1], tw, m)[..., :k]
    out[...] = tiles.transpose(-1, *range(tiles.ndim - 1))


def _transform_columns(X: Any, T: Any, first: int, m: int, out: Any, xp: Any) -> None:
    """``out`` (rows p, C, n, tw) = T (p, q) along the columns of every tile of ``X`` (rows, C,
    n, W), whose tile t in a row has the q columns first + m t .. first + m t + q - 1:
    out[p i : p (i + 1)] is the product for row i of every tile. Several rows go in one call
    where a part's tiles are few (:func:`_rows_at_once`)."""
    rows, (p, q) = X.shape[0], T.shape
    g = _rows_at_once(rows, out[0].size, xp)
    columns = xp.empty((g, q, *out.shape[1:]), dtype=X.dtype)
    for i in range(0, rows, g):  # rows i .. i + r of every tile: their columns, then T along them
        r = min(g, rows - i)
        _tile_columns(X[i : i + r], first, out.shape[-1], m, columns[:r].swapaxes(0, 1), xp)
        _transform(T, columns[:r].reshape(r, q, -1), out[p * i : p * (i + r)].reshape(r, p, -1),
                   xp)


def part_bytes(threads: int) -> int:
    """The most that one of ``threads`` threads' parts of tile rows holds on the CPU: their
    share of WINOGRAD_HELD_BYTES, or half of it for one or two threads."""
    return WINOGRAD_HELD_BYTES // max(2, threads)


def cache_parts() -> bool:
    """Whether the CPU's parts of tile rows are cut to fit the cache (WINOGRAD_CACHE_PARTS, or
    else whether BLAS multiplies with AVX-512 kernels) rather than a thread's share each."""
    if WINOGRAD_CACHE_PARTS is not None:
        return WINOGRAD_CACHE_PARTS
    return avx512_products()


def least_cpu_part_bytes() -> int:
    """What a part of tile rows moves at least on the CPU, whatever U: WINOGRAD_CACHED_PART_BYTES
    where :func:`cache_parts`, else WINOGRAD_CHUNK_BYTES."""
    return WINOGRAD_CACHED_PART_BYTES if cache_parts() else WINOGRAD_CHUNK_BYTES


def shares_tile_rows(threads: int) -> bool:
    """Whether a part of tile rows on the CPU is a thread's whole share of them (up to
    :func:`part_bytes`): with several threads, where parts are not cut to fit the cache."""
    return threads > 1 and not cache_parts()


def least_part_bytes(u_bytes: int, threads: int, cpu: bool = True) -> int:
    """What a part of tile rows moves at least, for a U of ``u_bytes``, on the CPU or off it
    (:func:`_parts`)."""
    if not cpu:
        return max(WINOGRAD_CHUNK_BYTES, u_bytes)
    bound = max(u_bytes, part_bytes(threads))
    return max(least_cpu_part_bytes(), min(part_u(threads) * u_bytes, bound))


def part_u(threads: int) -> int:
    """How many times U a part of tile rows moves at least on ``threads`` threads on the CPU
    (WINOGRAD_PART_U)."""
    return WINOGRAD_PART_U[max(t for t in WINOGRAD_PART_U if t <= max(1, threads))]


def _parts(workers: Workers, tile_rows: int, row_bytes: int, U: Any,
           xp: Any) -> tuple[list[tuple[int, int]], int]:
    """The layer's tile rows cut into parts of ``row_bytes`` per row, and what reading U
    costs them, in bytes: every part reads all of U, and BLAS copies (packs) what it reads
    before multiplying, so it is counted as twice U's bytes per part. On the CPU a part moves
    at least WINOGRAD_CHUNK_BYTES or :func:`part_u` times U's bytes (up to the bound of
    :func:`part_bytes`, or U's bytes where they are more; WINOGRAD_CACHED_PART_BYTES for
    WINOGRAD_CHUNK_BYTES where :func:`cache_parts`) and, with several threads, unless parts
    fit the cache, is a thread's whole share of the tile rows, up to that bound; elsewhere it
    moves at least WINOGRAD_CHUNK_BYTES or U's bytes."""
    most = least_part_bytes(U.nbytes, workers.threads, on_cpu(xp)) // row_bytes
    if on_cpu(xp) and shares_tile_rows(workers.threads):
        share = -(-tile_rows // workers.threads)
        most = max(most, min(share, part_bytes(workers.threads) // row_bytes))
    parts = workers.split(tile_rows, max(1, most))
    return parts, 2 * len(parts) * U.nbytes


def _blocks(workers: Workers, c: int, o: int, tile_bytes: int, U: Any, parts_moved: int,
            part_most: int, cpu: bool = True) -> tuple[int, int, int] | None:
    """How a C -> O layer, ``tile_bytes`` a channel's transformed tiles, is split among T
    threads: None for one pass in parts of tile rows, or (p_i, p_c, p_r) for two passes
    (:func:`_two_passes`): the input transform in p_i blocks of input channels, the products
    by positions in the tile, the output transform in p_c blocks of output channels times p_r
    of tile rows. Two passes hold the whole layer's V and M at once, so only where that is at
    most WINOGRAD_HELD_BYTES. Where parts are cut to fit the cache (:func:`cache_parts`) but
    U makes ``part_most``, what the largest part of tile rows holds of V and M, more than
    WINOGRAD_TWO_PASS_FROM_PART_BYTES, two passes on any number of threads, in blocks of
    :func:`_pass_blocks`. Elsewhere, on several threads, two passes where they move less:
    they write the transformed input V (W in the input gradient) and read it back, read U
    once (twice its bytes, as in :func:`_parts`), write the products M and read them back:
    2 V + 2 U + 2 M, against ``parts_moved``, U's cost in the parts of tile rows (whose V and
    M are made and used within a part). At 512 px, where parts are cut to fit the cache, conv2_2
    to conv5_1 take them on one and two threads (conv5_1 not on one, as its part fits; at 1024 px
    conv4_x and conv5_1), conv3_x to conv5_1 on 8, conv2_2 to conv5_1 on 16; elsewhere conv4_1
    to conv5_1 on two threads, conv3_x to conv5_1 on 16 (docs/performance.md)."""
    T = workers.threads
    if WINOGRAD_SPLIT == "rows" or (T < 2 and WINOGRAD_SPLIT is not None):
        return None
    if WINOGRAD_SPLIT == "channels":
        return T, T, 1
    if isinstance(WINOGRAD_SPLIT, tuple):
        return (T, *WINOGRAD_SPLIT)
    if (c + o) * tile_bytes > WINOGRAD_HELD_BYTES:
        return None
    cached = cpu and cache_parts()
    parts_too_large = cached and part_most > WINOGRAD_TWO_PASS_FROM_PART_BYTES
    moves_less = T > 1 and 2 * ((c + o) * tile_bytes + U.nbytes) < parts_moved
    if not (parts_too_large or moves_less):
        return None
    if not cached:
        return T, T, 1
    return _pass_blocks(T, c, tile_bytes), _pass_blocks(T, o, tile_bytes), 1


def _pass_blocks(threads: int, channels: int, tile_bytes: int) -> int:
    """How many blocks of ``channels`` a pass of two passes is cut into where parts are cut to
    fit the cache: each thread's share in blocks of about ``threads`` times
    WINOGRAD_TWO_PASS_BLOCK_BYTES of transformed tiles (``tile_bytes`` a channel's), one at
    least, in whole rounds of the threads."""
    share = -(-channels // threads) * tile_bytes
    per_thread = max(1, round(share / (threads * WINOGRAD_TWO_PASS_BLOCK_BYTES)))
    return min(channels, threads * per_thread)


def _two_passes(workers: Workers, xp: Any, blocks: tuple[int, int, int], U: Any, c: int,
                o: int, th: int, tw: int, dtype: Any,
                transform: Callable[[slice, int, Any], None],
                finish: Callable[[Callable[[], Any], int, int, slice], None]) -> None:
    """A layer in the two passes of :func:`_blocks`: ``transform(channels, 0, V)`` fills the
    transformed input V (a^2, c, th, tw) in p_i blocks of input channels; the products M = U V
    follow, each thread whole products for a block of the a^2 positions in the tile (made
    block by block in the finish, every block's share of every position's product was a call
    into BLAS, and V was read once per block of output channels); then ``finish(products, t0,
    t1, channels)`` for each of the p_c x p_r blocks of output channels and tile rows,
    ``products()`` giving that block of M (both directions use this: V is W and U is U^T in
    the input gradient)."""
    p_i, p_c, p_r = blocks
    V = xp.empty((U.shape[0], c, th, tw), dtype=dtype)
    workers.map(lambda b: transform(slice(*b), 0, V[:, b[0] : b[1]]), cut(c, p_i))
    V2 = V.reshape(U.shape[0], c, th * tw)
    M = xp.empty((U.shape[0], o, th * tw), dtype=dtype)
    workers.map(lambda p: xp.matmul(U[p[0] : p[1]], V2[p[0] : p[1]], out=M[p[0] : p[1]]),
                workers.per_thread(U.shape[0]))
    V = V2 = None  # freed before the finish pass

    def block(part: tuple[tuple[int, int], tuple[int, int]]) -> None:
        (c0, c1), (t0, t1) = part
        finish(lambda: M[:, c0:c1, t0 * tw : t1 * tw], t0, t1, slice(c0, c1))

    workers.map(block, [(b, r) for b in cut(o, p_c) for r in cut(th, p_r)])


def _run(workers: Workers, xp: Any, U: Any, c: int, o: int, th: int, tw: int, row_bytes: int,
         dtype: Any, tile_rows: Callable[[tuple[int, int]], None],
         transform: Callable[[slice, int, Any], None],
         finish: Callable[[Callable[[], Any], int, int, slice], None],
         src: Any = None, src_mask: Any = None,
         src_fill: Callable[[slice], None] | None = None) -> bool:
    """A layer of ``th`` x ``tw`` tiles, C -> O channels, in parts of tile rows
    (``tile_rows(part)``, ``row_bytes`` a tile row) or in two passes (``transform`` and
    ``finish``, :func:`_two_passes`), whichever :func:`_blocks` chooses; both directions.
    With ``src_fill``, ``src`` (the layer's input, C channels) is first written by
    ``src_fill(channels)``; with ``src_mask``, then zeroed where the mask is False, in place
    (backprop through a ReLU). Both in a map of their own ahead of the parts of tile rows,
    which read overlapping rows, or in two passes by each block of channels that the
    transform reads, just before it reads them (a map fewer each, and the block read from the
    cache), unless WINOGRAD_POOL_IN_BLOCKS (the fill's; the mask then follows the fill) and
    WINOGRAD_MASK_IN_BLOCKS are off. Returns whether it ran in two passes."""
    tile_bytes = U.shape[0] * th * tw * dtype.itemsize  # a channel's transformed tiles
    parts, parts_moved = _parts(workers, th, row_bytes, U, xp)
    part_most = max(t1 - t0 for t0, t1 in parts) * row_bytes
    blocks = _blocks(workers, c, o, tile_bytes, U, parts_moved, part_most, on_cpu(xp))
    fill = src_fill if blocks is not None and WINOGRAD_POOL_IN_BLOCKS else None
    mask = src_mask if blocks is not None and (WINOGRAD_MASK_IN_BLOCKS or fill) else None
    written_and_masked(src, None if mask is not None else src_mask,
                       None if fill else src_fill, xp, workers)
    if blocks is None:
        workers.map(tile_rows, parts)
        return False

    def prepared(channels: slice, t0: int, V: Any) -> None:
        if fill is not None:
            fill(channels)
        if mask is not None:
            mask_gradient(src[channels], mask[channels], xp)
        transform(channels, t0, V)

    _two_passes(workers, xp, blocks, U, c, o, th, tw, dtype,
                transform if fill is None and mask is None else prepared, finish)
    return True


def winograd_tiles(c: int, o: int) -> tuple[int, ...]:
    """The m of F(m x m, 3x3), largest first, that a C -> O convolution may use (none: direct)."""
    if min(c, o) < WINOGRAD_FROM_CHANNELS:
        return ()
    return WINOGRAD_TILES


def winograd_tile(cw: ConvWeights, h: int, w: int) -> int:
    """m of the F(m x m, 3x3) Winograd method for this layer and image (0: not Winograd)."""
    return tile_for(cw.winograd_tiles, h, w)


def tile_for(tiles: tuple[int, ...], h: int, w: int) -> int:
    """The first m of ``tiles`` (:func:`winograd_tiles`) that an H x W image has room for."""
    return next((m for m in tiles if min(h, w) >= WINOGRAD_FROM_SIDE * m
                 and (h // m) * (w // m) >= WINOGRAD_MIN_TILES[m]), 0)


def winograd_forward(src: Any, h: int, w: int, cw: ConvWeights, dst: Any, xp: Any, bias: Any,
                     relu: bool, workers: Workers, m: int, mask: Any = None,
                     src_mask: Any = None,
                     rows_done: Callable[[slice, int, int], None] | None = None,
                     src_fill: Callable[[slice], None] | None = None) -> bool:
    """F(m x m, 3x3) Winograd convolution of padded flat ``src`` into ``dst`` (border zeroed),
    and where ``dst`` > 0 into ``mask`` (bool, ``dst``'s shape) if given; with ``src_mask``,
    of ``src`` zeroed where it is False, in place, once ``src_fill`` has written it, where
    given (:func:`_run`). In two passes, where WINOGRAD_POOL_IN_BLOCKS, ``rows_done(channels,
    first, stop)`` follows each block's rows ``first`` .. ``stop`` - 1 of its output
    ``channels`` (``first`` a multiple of m, which is even) while they are in the cache.
    Returns whether it did (for every row of every channel).

    Output tile (ty, tx) covers rows m ty .. m ty + m - 1 and the same columns; it reads the
    (m + 2)^2 input tile at padded rows and columns m ty .. m ty + m + 1. Where H or W is not a
    multiple of m, the last tile row or column reaches past the image: it reads zeros there and
    writes only the outputs inside. Input tiles go through V = B^T d B, the (m + 2)^2 products
    M = U V run as one batched matmul, and Y = A^T M A gives the m x m outputs. Each transform
    is a product with its small matrix (B^T along the rows of every tile, a block of channels
    in one product, then along the columns of each row, several rows in one call; likewise
    A^T), so BLAS does the transforms too. Tile rows are processed in parts, so the transformed
    buffers stay small (bounded for large images) and the parts run on all workers; on layers
    too small for a part of tile rows per thread, in two passes instead (:func:`_blocks`).
    Each part zeroes the border beside the rows it writes and fills their mask while they are
    fresh: a pass of its own was a map more each, and the mask's a pass over the output. Given
    an input gradient's weights, the flipped kernel's forward pass
    (:func:`_flipped_transform_matrices`, :func:`input_grad_as_forward`).
    """
    c, o = cw.in_channels, cw.out_channels
    a = m + 2
    wp = w + 2
    th, tw = -(-h // m), -(-w // m)
    grid = src[:, : (h + 2) * wp].reshape(c, h + 2, wp)
    out_grid = dst[:, : (h + 2) * wp].reshape(o, h + 2, wp)
    if cw.input_grad:  # the flipped kernel's forward pass (_flipped_transform_matrices)
        U = cw.winograd(m).transpose(0, 2, 1)  # (a^2, o, c): BLAS reads the transpose in place
        BT, AT = _flipped_transform_matrices(m, xp, src.dtype)
    else:
        U = cw.winograd(m)
        BT, AT = _transform_matrices(m, xp, src.dtype)
    tiles = _TileRows(grid, 0, a, m, h + 2, wp, xp)  # input tile rows: a rows every m

    def inputs(channels: slice, t0: int, V: Any) -> None:
        """V (a^2, channels, n, tw) = B^T d B of the tiles in tile rows t0 .. t0 + n."""
        X = tiles.times(BT, channels, t0, V.shape[2], m * tw + 2)  # B^T along every tile's rows
        _transform_columns(X, BT, 0, m, V, xp)

    def outputs(products: Callable[[], Any], t0: int, t1: int, channels: slice,
                done: Callable[[slice, int, int], None] | None = None) -> None:
        """Y = A^T M A of tile rows t0 .. t1 and the output ``channels`` to the output grid,
        M = ``products()`` (a^2, channels, n tw): made here, so that it is freed before Y is
        made (a part's memory peaks at two of its buffers, not three); then ``done`` of its
        rows."""
        M = products()
        n, k = t1 - t0, M.shape[1]
        if bias is not None:  # into every output through A^T and A (ONES_POINT)
            M[ONES_POINT * (a + 1)] += bias[channels].reshape(k, 1)
        S = xp.empty((m, a, M[0].size), dtype=src.dtype)
        # A^T along the tiles' rows i, for each column j: a stack over j, so that a block of
        # M's channels (two passes) is read in place
        _transform(AT, M.reshape(a, a, -1).swapaxes(0, 1), S.swapaxes(0, 1), xp)
        del M
        g = _rows_at_once(m, k * n * tw, xp)
        Y = xp.empty((g, k, n, tw, m), dtype=src.dtype)  # output rows i ..: each tile's m columns
        out = out_grid[channels, 1:, 1 : 1 + w]
        whole = min(n, h // m - t0)  # tile rows inside the image: all but a last one at most
        for i in range(0, m, g):  # A^T along the columns of output rows i .. i + r of every tile
            r = min(g, m - i)
            last = min(r, h - m * (t1 - 1) - i)  # these rows of the last tile row in the image
            if not whole and last <= 0:
                break  # these rows of the last tile row, and those after them, lie below it
            Yr = _transform_transposed(S[i : i + r], AT.T, Y[:r].reshape(r, -1, m), xp)
            Yr = Yr.reshape(r, k, n, m * tw)
            if relu:  # here, where Yr is contiguous: into the output's rows it ran at half speed
                xp.maximum(Yr, 0, out=Yr)
            # the rows as they lie in the output, copied
            if whole:
                rows = out[:, m * t0 : m * (t0 + whole)].reshape(k, whole, m, w)[:, :, i : i + r]
                rows[...] = Yr[:, :, :whole, :w].transpose(1, 2, 0, 3)
            if whole < n and last > 0:  # the last tile row reaches past the image
                row = m * (t1 - 1) + i
                out[:, row : row + last] = Yr[:last, :, -1, :w].swapaxes(0, 1)
        finish_rows(dst[channels], h, w, 1 + m * t0, 1 + min(h, m * t1),
                    None if mask is None else mask[channels], xp)
        if done is not None:
            done(channels, m * t0, min(h, m * t1))

    def tile_rows(part: tuple[int, int]) -> None:
        t0, t1 = part
        V = [xp.empty((a * a, c, t1 - t0, tw), dtype=src.dtype)]
        inputs(slice(None), t0, V[0])  # below, V is freed once its products are made
        outputs(lambda: xp.matmul(U, V.pop().reshape(a * a, c, -1)), t0, t1, slice(None))

    pool_in_blocks = rows_done is not None and WINOGRAD_POOL_IN_BLOCKS
    finish = functools.partial(outputs, done=rows_done) if pool_in_blocks else outputs
    row_bytes = a * a * (c + o) * tw * src.dtype.itemsize
    two_passes = _run(workers, xp, U, c, o, th, tw, row_bytes, src.dtype, tile_rows, inputs,
                      finish, src, src_mask, src_fill)
    return two_passes and pool_in_blocks


def _interleaved_columns(B: Any, M: Any, R: Any, g: int, m: int, xp: Any) -> None:
    """``R`` (a, k, n, m tw) = B along the columns of the input gradient's tiles, M (a, a, k n
    tw), where the last tile's offsets m, m + 1 fall past the border: offsets 0 .. m - 1 of
    every tile as one product, written where they lie in the rows (each tile's m values next
    to each other: BLAS writes a column-major matrix whose columns are the tiles), and
    offsets m, m + 1 added onto the next tile's 0, 1. ``g`` rows of the tiles at a time: three
    calls, each releasing the GIL, where a product, a strided copy per offset and a copy of
    the last tile's two took m + 3."""
    a, N = M.shape[0], M.shape[2]
    k, n, tw = R.shape[1], R.shape[2], R.shape[3] // m
    last = xp.empty((g, a - m, N), dtype=M.dtype)
    for i in range(0, a, g):  # rows i .. i + r of every tile
        r = min(g, a - i)
        rows = R[i : i + r]
        _transform(B[:m], M[i : i + r], rows.reshape(r, N, m).swapaxes(-1, -2), xp)
        c = _transform(B[m:], M[i : i + r], last[:r], xp).reshape(r, a - m, k, n, tw)
        onto = rows.reshape(r, k, n, tw, m)[..., 1:, : a - m].transpose(0, 4, 1, 2, 3)
        xp.add(c[..., :-1], onto, out=onto)


def winograd_input_grad(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, workers: Workers,
                        m: int, src_mask: Any = None,
                        src_fill: Callable[[slice], None] | None = None) -> Any:
    """The input gradient of a 3x3 convolution through the transpose of its Winograd F(m x m)
    form: from the output gradient ``src`` (padded flat; written by ``src_fill`` where given,
    then with ``src_mask`` zeroed where it is False, in place, :func:`_run`) to a new padded
    flat buffer.

    The forward pass is Y = A^T [U (B^T d B)] A per tile, so the gradient with respect to the
    input tile d is B [U^T (A dY A^T)] B^T, and the (m + 2)^2 input tiles, which overlap by two
    rows and columns, add up. Only the forward U is needed (transposed in the products). Tiles
    that reach past the image, as in the forward pass, read zeros there for dY, and their
    gradient past the border is dropped. The work is split by tile rows or, on small layers, in
    two passes, as in the forward pass. For F(m x m) whose points have no flipped form
    (:func:`input_grad_as_forward`): the other form writes each output once, and was faster.
    (Longer than most functions here: the two transforms, the two splits and the pass that adds
    the parts' overlapping rows share the overflow rows, and read as one algorithm.)
    """
    th, tw = -(-h // m), -(-w // m)
    co, c = cw.out_channels, cw.in_channels  # co: the forward's input channels
    a = m + 2
    wp, we = w + 2, m * tw + 2  # we: the width of the tile columns' input rows
    grid = src[:, : (h + 2) * wp].reshape(c, h + 2, wp)
    dst = xp.empty((co, padded_length(h, w)), dtype=src.dtype)
    out_grid = dst[:, : (h + 2) * wp].reshape(co, h + 2, wp)
    UT = cw.winograd(m).transpose(0, 2, 1)  # (a^2, co, c): BLAS reads the transpose in place
    BT, AT = _transform_matrices(m, xp, src.dtype)
    B, A = BT.T, AT.T
    tiles = _TileRows(grid, 1, m, m, h + 1, w + 1, xp)  # output tile rows of dY: m every m
    overflow: dict[tuple[int, int], Any] = {}  # per part: its last tile's two rows below it

    def output_grads(channels: slice, t0: int, W: Any) -> None:
        """W (a^2, channels, n, tw) = A dY A^T of the tiles of tile rows t0 .. t0 + n."""
        X = tiles.times(A, channels, t0, W.shape[2], we)  # A along every output tile's rows
        _transform_columns(X, A, 1, m, W, xp)

    def input_grads(products: Callable[[], Any], t0: int, t1: int, channels: slice) -> None:
        """B M B^T of tile rows t0 .. t1 and the input ``channels`` onto the output grid, M =
        ``products()`` (a^2, channels, n tw), made and freed here; overlapping tiles add up."""
        M = products()
        n, k = t1 - t0, M.shape[1]
        M = M.reshape(a, a, -1)
        # B along columns; tile columns overlap by two, so offsets m and m + 1 add onto
        # offsets 0 and 1 of the next tile.
        # On the CPU, where the last tile's offsets m, m + 1 fall past the border, offsets
        # 0 .. m - 1 of every tile go in one product (fewer calls, each releasing the GIL)
        interleave = on_cpu(xp) and m * tw >= wp
        width = m * tw if interleave else we
        R = xp.empty((a, k, n, width), dtype=src.dtype)  # row i of every tile: R[i]
        g = _rows_at_once(a, M.shape[2], xp)
        if interleave:
            _interleaved_columns(B, M, R, g, m, xp)
        else:
            cols = xp.empty((g, a, k, n, tw), dtype=src.dtype)
            for i in range(0, a, g):  # rows i .. i + r of every tile
                r = min(g, a - i)
                c = _transform(B, M[i : i + r], cols[:r].reshape(r, a, -1), xp)
                c = c.reshape(r, a, k, n, tw)
                rows = R[i : i + r]
                for j in range(m):  # strided writes once, not in every step of the transform
                    rows[..., j : j + m * tw : m] = c[:, j]
                # offsets m, m + 1 onto the next tile's 0, 1: one sum whose first operand, c,
                # sets NumPy's loop order (along the tiles, as the writes above)
                onto = rows[..., m : m * tw].reshape(r, k, n, tw - 1, m)[..., :2]
                onto = onto.transpose(4, 0, 1, 2, 3)
                xp.add(c[:, m:, ..., :-1].swapaxes(0, 1), onto, out=onto)
                rows[..., m * tw :] = c[:, m:, ..., -1].transpose(0, 2, 3, 1)
            del cols
        del M
        # B along rows, likewise, as one product over every tile's rows (a product per tile,
        # each a call into BLAS, ran no faster on two threads than on one): rows 0..m-1 of
        # each tile go to the output, rows m and m + 1 add onto the next tile's first two; the
        # last tile's belong to the next part. Rows and columns past the border are the zeros'
        # gradient, dropped.
        Y = _transform(B, R.reshape(a, -1), xp.empty((a, R[0].size), dtype=src.dtype), xp)
        del R
        Y = Y.reshape(a, k, n, width)[..., :wp]
        out = out_grid[channels]
        whole = min(n, (h + 2) // m - t0)  # tile rows whose m rows lie in the grid
        out[:, m * t0 : m * (t0 + whole)].reshape(k, whole, m, wp)[...] = \
            Y[:m, :, :whole].transpose(1, 2, 0, 3)
        if whole < n:  # the last tile row, reaching past the border
            out[:, m * (t1 - 1) :] = Y[: h + 2 - m * (t1 - 1), :, -1].swapaxes(0, 1)
        extra = Y[m:]  # (2, k, n, wp)
        if n > 1:  # onto rows 0 and 1 of the part's next tile rows, in one sum
            onto = _windows(out, 1, m * (t0 + 1), n - 1, 2, m, xp)
            onto += extra[:, :, :-1].transpose(1, 2, 0, 3)
        overflow[t1, channels.start or 0] = extra[:, :, -1].swapaxes(0, 1).copy()

    def tile_rows(part: tuple[int, int]) -> None:
        t0, t1 = part
        W = [xp.empty((a * a, c, t1 - t0, tw), dtype=src.dtype)]
        output_grads(slice(None), t0, W[0])  # below, W is freed once its products are made
        input_grads(lambda: xp.matmul(UT, W.pop().reshape(a * a, c, -1)), t0, t1, slice(None))

    row_bytes = (a * a * (c + co) * tw + a * co * we) * src.dtype.itemsize
    _run(workers, xp, UT, c, co, th, tw, row_bytes, src.dtype, tile_rows, output_grads,
         input_grads, src, src_mask, src_fill)

    def add_overflow(item: tuple[tuple[int, int], Any]) -> None:
        """A part's two overflow rows onto the next part's first two (rows no other part's
        overflow touches, so the parts' additions run at once too)."""
        (t1, first), extra = item
        rows = out_grid[first : first + extra.shape[0], m * t1 : m * t1 + 2]
        if t1 < th:
            rows += extra
        else:  # below the last tile: nobody else's rows, those inside the image kept
            inside = max(0, min(2, h + 1 - m * t1))
            rows[:, :inside] = extra[:, :inside]

    workers.map(add_overflow, list(overflow.items()))
    zero_border(dst, h, w)
    return dst
