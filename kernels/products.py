"""The losses' passes over whole feature matrices: the Gram matrix of eq. 3 and eq. 6's
(G - A) F, each split into blocks of columns among the workers (BLAS itself is held to one
thread), and eq. 2's F - P with eq. 1's sum of its squares, in blocks of rows."""
from __future__ import annotations

from typing import Any

from .winograd import on_cpu
from .workers import SEQUENTIAL, Workers

# A block of D F that add_product makes before adding it holds at most this much: it stays in
# the cache until it is added, where the whole product written out and read back was two more
# passes over memory (docs/performance.md).
ADDED_BLOCK_BYTES = 4 << 20


def gram(F: Any, workers: Workers = SEQUENTIAL) -> Any:
    """Gram matrix G = F F^T of an (N_l, M_l) feature matrix (eq. 3); with several workers, the
    sum of the Gram matrices of column blocks, one block per thread (on one, through ``map``
    too, so that bench.scaling counts it among the parallel parts at every thread count)."""
    parts = workers.per_thread(F.shape[1])
    partial: list[Any] = [None] * len(parts)

    def block(i: int) -> None:
        a, b = parts[i]
        partial[i] = F[:, a:b] @ F[:, a:b].T

    workers.map(block, range(len(parts)))
    return sum(partial[1:], partial[0])


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
