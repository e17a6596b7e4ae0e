"""Pixel optimisation with scipy's L-BFGS-B: float64 at scipy's boundary, float32 inside."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.optimize import fmin_l_bfgs_b
from tqdm import tqdm

from gatys.errors import GatysError
from gatys.io.signals import signum_of
from gatys.kernels.workers import one_blas_thread
from gatys.model.objective import Evaluation, Objective


@dataclass
class Step:
    """The losses after one L-BFGS iteration."""

    iteration: int
    total: float
    content: float
    style: float
    layers: dict[str, float]
    seconds: float  # since the optimisation started
    evaluations: int = 0  # of the loss and gradient so far, line searches' included
    evaluation_seconds: float = 0.0  # spent in them so far; the rest is the optimizer's

    def as_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "total": self.total, "content": self.content,
                "style": self.style, "seconds": self.seconds, "evaluations": self.evaluations,
                "evaluation_seconds": self.evaluation_seconds, **self.layers}


# L-BFGS-B keeps its 2m correction vectors n doubles apart and reads them across, a variable at
# a time; where n doubles are a multiple of 4 KiB (every image whose H W is a multiple of 512)
# that read is slower (docs/performance.md, "L-BFGS-B's columns"). Variables fixed at zero
# (lower = upper bound) past the pixels, which it leaves out of its sums, set the vectors
# apart by this many doubles past a multiple of 512.
LBFGSB_COLUMN_OFFSET = 256


def lbfgsb_padding(n: int) -> int:
    """Fixed variables to append to ``n`` pixels so that L-BFGS-B's vectors lie
    LBFGSB_COLUMN_OFFSET doubles past a multiple of 4 KiB apart (0 to 511)."""
    return (LBFGSB_COLUMN_OFFSET - n) % 512


def lbfgsb_vector(values: Any, size: int) -> np.ndarray:
    """``values`` (any shape) as ``size`` float64 values for L-BFGS-B: a point or gradient of
    the pixels, zero on the padding after them."""
    out = np.empty(size)
    n = values.size
    out[:n] = values.reshape(n)
    out[n:] = 0
    return out


def lbfgsb_bounds(n: int, size: int) -> list[tuple[float, float]]:
    """L-BFGS-B's bounds for ``n`` pixels and the padding up to ``size``: [0, 1] each, and
    (0, 0), which fixes the padding at zero."""
    return [(0.0, 1.0)] * n + [(0.0, 0.0)] * (size - n)


class NonFiniteLoss(GatysError):
    """The loss or its gradient stopped being finite during a run."""


@dataclass
class Outcome:
    x: np.ndarray  # (3, H, W) float32 in [0, 1]
    history: list[Step] = field(default_factory=list)
    evaluations: int = 0  # of the objective, line searches' and callbacks' included
    evaluation_seconds: float = 0.0  # in the objective; the rest of a run is the optimizer's
    message: str = ""
    interrupted: int = 0  # the number of the signal that stopped the run, or 0
    failed: bool = False  # stopped by a non-finite loss; ``x`` is the last finite image


def run_lbfgs(objective: Objective, x0: np.ndarray, iterations: int,
              history: int = 20, progress: bool = False,
              on_step: Callable[[Step, np.ndarray], None] | None = None,
              description: str = "gatys") -> Outcome:
    """Minimise ``objective`` over the pixels of ``x0`` (3, H, W), each kept in [0, 1].

    Runs ``iterations`` L-BFGS iterations (scipy may stop earlier if the line search fails) with
    ``history`` correction pairs. (Its closures share the last evaluation and the outcome, which
    is why they stay in one function.) ``on_step(step, x)`` is called after each iteration. Ctrl-C
    stops the run and returns what was reached, with ``interrupted`` set.
    """
    backend = objective.network.backend
    shape = x0.shape
    n = x0.size
    padded = n + lbfgsb_padding(n)
    start = time.perf_counter()
    last: dict[str, Any] = {}
    outcome = Outcome(np.array(x0, dtype=np.float32))

    def evaluate(z: np.ndarray) -> Evaluation:
        started = time.perf_counter()
        ev = objective.evaluate(backend.asarray(z[:n].reshape(shape), dtype=np.float32))
        last["z"], last["ev"] = z.copy(), ev
        outcome.evaluations += 1
        outcome.evaluation_seconds += time.perf_counter() - started
        return ev

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        ev = evaluate(z)
        started = time.perf_counter()
        grad = lbfgsb_vector(backend.to_numpy(ev.grad), padded)
        outcome.evaluation_seconds += time.perf_counter() - started
        if not (np.isfinite(ev.total) and np.isfinite(grad).all()):
            raise NonFiniteLoss(f"the loss or its gradient became {ev.total!r} after "
                                f"{len(outcome.history)} iterations (weights too large?)")
        return ev.total, grad

    bar = tqdm(total=iterations, desc=description, unit="it", disable=not progress,
               dynamic_ncols=True, leave=True)

    def callback(intermediate_result: Any) -> None:
        z = intermediate_result.x
        # L-BFGS-B's accepted iterate is normally the last point evaluated; if not, re-evaluate.
        ev = last["ev"] if "z" in last and np.array_equal(last["z"], z) else evaluate(z)
        step = Step(len(outcome.history) + 1, ev.total, ev.content, ev.style, ev.layers,
                    time.perf_counter() - start, outcome.evaluations, outcome.evaluation_seconds)
        outcome.history.append(step)
        outcome.x = z[:n].reshape(shape).astype(np.float32)
        bar.update(1)
        bar.set_postfix({"total": f"{ev.total:.4g}", "content": f"{ev.content:.4g}",
                         "style": f"{ev.style:.4g}"}, refresh=False)
        if on_step:
            on_step(step, outcome.x)

    try:
        # BLAS on one thread throughout: the CPU engine runs its parts on all cores itself
        # (Workers.holding_blas), and L-BFGS-B's vector operations are slower on more threads
        # (one_blas_thread), on every backend.
        # scipy's L-BFGS-B through fmin_l_bfgs_b, the routine and options minimize(method=
        # "L-BFGS-B") runs: minimize turns the bounds into a Python list of a (lower, upper)
        # pair of floats per value, alive for the whole run, where here all pixels share one
        # pair (docs/performance.md, "scipy's bounds"), and the padding another.
        with backend.workers.holding_blas(), one_blas_thread():
            x, _, info = fmin_l_bfgs_b(
                fun, lbfgsb_vector(np.asarray(x0), padded), bounds=lbfgsb_bounds(n, padded),
                m=history, factr=0.0, pgtol=0.0, maxiter=iterations,
                maxfun=max(15000, 3 * iterations), callback=callback)
        outcome.x = np.clip(x[:n].reshape(shape), 0, 1).astype(np.float32)
        outcome.message = str(info["task"])
    except KeyboardInterrupt as e:
        outcome.interrupted = signum_of(e)
        outcome.message = f"interrupted after {len(outcome.history)} iterations"
    except NonFiniteLoss as e:  # outcome.x is still the last finite iterate
        outcome.failed = True
        outcome.message = str(e)
    finally:
        bar.close()
    return outcome
