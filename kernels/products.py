"""The losses' passes over whole feature matrices: the Gram matrix of eq. 3 and eq. 6's
(G - A) F, each split into blocks of columns among the workers (BLAS itself is held to one
thread), and eq. 2's F - P with eq. 1's sum of its squares, in blocks of rows."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy

from .winograd import on_cpu
from .workers import SEQUENTIAL, Workers, cut

# A block of D F that add_product makes before adding it holds at most this much: it stays in
# the cache until it is added, where the whole product written out and read back was two more
# passes over memory (docs/performance.md).
ADDED_BLOCK_BYTES = 4 << 20


# How the Gram matrices of eq. 3 are cut into blocks of columns (:func:`gram_blocks`): blocks of
# at most 1/GRAM_BLOCKS_PER_SHARE of a thread's share of all of them, so that the threads end
# close together, but at least GRAM_BLOCK_COLUMNS_PER_ROW columns per row of F, so that a block's
# partial N x N product, written and then summed, stays a small part of its work. A block's work
# is reckoned as N (N + GRAM_READ_WORK) per column: its N^2 multiply-adds, and reading F, which
# the first layers' narrow products pay for more than their multiply-adds say (fitted to the
# five style layers' products on one core; docs/performance.md, "The Gram matrices in one map,
# and small borders in one release").
GRAM_BLOCKS_PER_SHARE = 8
GRAM_BLOCK_COLUMNS_PER_ROW = 8
GRAM_READ_WORK = 180


def gram(F: Any, workers: Workers = SEQUENTIAL) -> Any:
    """Gram matrix G = F F^T of an (N_l, M_l) feature matrix (eq. 3), as :func:`grams`."""
    return grams([F], workers)[0]


def grams(Fs: Sequence[Any], workers: Workers = SEQUENTIAL) -> list[Any]:
    """The Gram matrices G = F F^T of (N_l, M_l) feature matrices (eq. 3), all in one
    map: each F cut into blocks of columns (:func:`gram_blocks`), whose partial products, a
    stack of them per F, are summed in one call (a call per partial took the GIL once for
    each). The largest blocks go first and the small ones last, so a thread free early takes
    the small ones; on one thread each G is one product (through ``map`` too, so that
    bench.scaling counts it among the parallel parts at every thread count)."""
    cuts = gram_blocks([F.shape for F in Fs], workers.threads)
    # empty_like keeps each stack on its F's device: a CuPy F (a style loss computed without a
    # backend, as the gradient checks do on CUDA) dispatches to CuPy.
    stacks = [numpy.empty_like(F, shape=(len(c), F.shape[0], F.shape[0]), order="C")
              for F, c in zip(Fs, cuts)]
    blocks = [(i, j, a, b) for i, c in enumerate(cuts) for j, (a, b) in enumerate(c)]
    blocks.sort(key=lambda block: -_gram_work(Fs[block[0]].shape[0], block[3] - block[2]))

    def product(k: int) -> None:
        i, j, a, b = blocks[k]
        numpy.matmul(Fs[i][:, a:b], Fs[i][:, a:b].T, out=stacks[i][j])

    workers.map(product, range(len(blocks)))
    return [stack[0] if len(stack) == 1 else stack.sum(axis=0) for stack in stacks]


def gram_blocks(shapes: Sequence[tuple[int, ...]], threads: int) -> list[list[tuple[int, int]]]:
    """For each (N, M) shape, the (start, stop) blocks of columns that :func:`grams` cuts it
    into on ``threads`` threads. A matrix is cut into enough blocks that none has more than a
    thread's share of all the matrices' work; into more, up to GRAM_BLOCKS_PER_SHARE per share,
    while its blocks keep at least GRAM_BLOCK_COLUMNS_PER_ROW N columns. On one thread every
    matrix is one block."""
    if threads < 2:
        return [[(0, M)] for _, M in shapes]
    work = [_gram_work(N, M) for N, M in shapes]
    share = max(1, sum(work)) / threads
    cuts = []
    for (N, M), w in zip(shapes, work):
        least = math.ceil(w / share)
        wanted = min(math.ceil(GRAM_BLOCKS_PER_SHARE * w / share),
                     M // max(1, GRAM_BLOCK_COLUMNS_PER_ROW * N))
        cuts.append(cut(M, max(1, least, wanted)) or [(0, M)])
    return cuts


def _gram_work(N: int, columns: int) -> int:
    """The work of a block of ``columns`` columns of an N-row F in its Gram matrix, in
    multiply-adds (GRAM_READ_WORK)."""
    return N * (N + GRAM_READ_WORK) * columns


def matmul_columns(D: Any, F: Any, xp: Any, workers: Workers = SEQUENTIAL) -> Any:
    """D @ F, its columns computed in blocks, one per thread."""
    out = xp.empty((D.shape[0], F.shape[1]), dtype=F.dtype)
    workers.map(lambda p: xp.matmul(D, F[:, p[0] : p[1]], out=out[:, p[0] : p[1]]),
                workers.per_thread(F.shape[1]))
    return out


def add_product(out: Any, D: Any, F: Any, xp: Any, workers: Workers = SEQUENTIAL) -> None:
    """``out`` += D @ F, in place, in blocks of columns of at most ADDED_BLOCK_BYTES on the CPU
    (one on other devices), shared among the workers."""
    most = max(1, ADDED_BLOCK_BYTES // (D.shape[0] * F.itemsize)) if on_cpu(xp) else F.shape[1]

    def block(p: tuple[int, int]) -> None:
        columns = out[:, p[0] : p[1]]
        xp.add(columns, xp.matmul(D, F[:, p[0] : p[1]]), out=columns)

    workers.map(block, workers.split(F.shape[1], most))


def scaled_difference(F: Any, P: Any, k: float, xp: Any,
                      workers: Workers = SEQUENTIAL) -> tuple[Any, Any]:
    """k (F - P) and sum (F - P)^2 (accumulated in float64, a 0-d array of ``xp``), in one pass
    per block of rows, one block per thread."""
    out = xp.empty_like(F)
    parts = workers.per_thread(F.shape[0])
    squares: list[Any] = [None] * len(parts)

    def rows(i: int) -> None:
        a, b = parts[i]
        d = xp.subtract(F[a:b], P[a:b], out=out[a:b])
        squares[i] = (d * d).sum(dtype="float64")
        d *= d.dtype.type(k)

    workers.map(rows, range(len(parts)))
    return out, sum(squares[1:], squares[0])
