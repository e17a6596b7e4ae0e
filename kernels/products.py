"""The matrix products of the losses: the Gram matrix of eq. 3 and eq. 6's (G - A) F, each
split into blocks of columns among the workers (BLAS itself is held to one thread)."""
from __future__ import annotations

from typing import Any

from .workers import SEQUENTIAL, Workers


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
