"""The paper's losses (eqs. 1-7) and their analytic derivatives (eqs. 2 and 6).

Feature matrices are ``F`` (generated image x), ``P`` (photograph p), each (N_l, M_l): N_l filters
by M_l = height * width positions; ``G`` and ``A`` are the Gram matrices of x and of the artwork a.

Each loss value is returned as a 0-d array of F's array module (on the CPU a NumPy float64, which
is a float): ``float(L)`` reads it, which on a GPU waits for the device, so
:class:`gatys.model.objective.Objective` reads an evaluation's values together, once, at its end.

The derivatives returned are dL/dF. The clause "if F_ij > 0, else 0" of eqs. 2 and 6 is the
derivative of the ReLU that produced F; the backward pass applies it with the ReLU's saved mask,
so it is not repeated here (F >= 0 always, and F = 0 exactly where the mask is 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gatys.kernels import Backend
from gatys.kernels.products import gram, scaled_difference

# How the content term is scaled. "per-position": eq. 1 divided by M_l, a mean over positions,
# which puts it on the footing of eq. 4 (a comparison of Gram matrices per position, G/M_l) and
# makes alpha/beta independent of the image size. "printed": eq. 1 exactly as printed, which
# grows with M_l. docs/loss-scale.md explains why per-position is the default.
CONTENT_SCALES = ("per-position", "printed")


def content_loss(F: Any, P: Any, scale: str = "per-position", weight: float = 1.0,
                 backend: Backend | None = None) -> tuple[Any, Any]:
    """L_content = 1/2 sum_ij (F_ij - P_ij)^2 (eq. 1) and ``weight`` * dL/dF, dL/dF = F - P
    (eq. 2). With ``scale="per-position"`` (the default) both are divided by M_l. Computed by
    ``backend`` when given (on all its threads), else by NumPy's functions."""
    c = 1.0 / F.shape[1] if scale == "per-position" else 1.0
    dF, squares = (backend.scaled_difference(F, P, c * weight) if backend
                   else scaled_difference(F, P, c * weight, np))
    return squares * (0.5 * c), dF


def style_layer_loss(F: Any, A: Any, weight: float = 1.0, backend: Backend | None = None,
                     mask: Any = None, M_r: float | None = None) -> tuple[Any, Any]:
    """E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2 (eq. 4) and ``weight`` * dE/dF (eq. 6),
    dE/dF = 1/(N_l^2 M_l^2) (G - A) F, the transpose of eq. 6's (F^T (G - A))^T since G - A is
    symmetric. G = F F^T (eq. 3), computed by ``backend`` when given (on all its threads).

    With ``mask`` m (M_l,), the guided Gram matrix of Gatys et al. 2017: G_r = (F o m)(F o m)^T,
    each position weighted by m, normalised by the region's own number of positions
    M_r = sum_k m_k^2 in place of M_l (``A`` must be the target for M_r positions); then
    dE/dF = 1/(N_l^2 M_r^2) ((G_r - A) (F o m)) o m. An all-ones mask gives eq. 4 exactly.
    ``M_r`` may be given where the caller already has it (it is summed from the mask if not).
    """
    if mask is None:
        Fm, M = F, F.shape[1]
    else:
        Fm = F * mask
        M = float((mask * mask).sum(dtype="float64")) if M_r is None else M_r
    E, D = style_gram_terms(Fm, A, M, weight=weight, backend=backend)
    dF = backend.matmul_columns(D, Fm) if backend else D @ Fm
    if mask is not None:
        dF *= mask
    return E, dF


def style_gram_terms(F: Any, A: Any, M: float, weight: float = 1.0,
                     backend: Backend | None = None, G: Any = None) -> tuple[Any, Any]:
    """E_l of eq. 4 and D = ``weight`` / (N_l^2 M_l^2) (G - A), so that ``weight`` * dE/dF =
    D F (eq. 6), for M_l = ``M`` positions; F's other columns, if any, must be zeros (the
    padded layout's border), which add nothing to G = F F^T (eq. 3) and leave D F zero there.
    G, unless given (made with other layers' by ``Backend.grams``), is computed by ``backend``
    when given (on all its threads)."""
    N = F.shape[0]
    if G is None:
        G = backend.gram(F) if backend else gram(F)
    D = G - A
    norm = float(N) ** 2 * float(M) ** 2
    E = (D * D).sum(dtype="float64") * (1.0 / (4.0 * norm))
    D *= D.dtype.type(weight / norm)  # scale the small N x N matrix, not the N x M product
    return E, D


def total_variation(x: Any, weight: float = 1.0) -> tuple[Any, Any]:
    """Smoothness term (not in the paper): L_tv = 1/(H W) sum over channels and pixels of the
    squared differences to the right and downward neighbours, and ``weight`` * dL_tv/dx.

    Divided by the number of pixels, like the per-position content term, so a weight means the
    same at every image size.
    """
    _, h, w = x.shape
    dy = x[:, 1:, :] - x[:, :-1, :]
    dx = x[:, :, 1:] - x[:, :, :-1]
    c = 1.0 / (h * w)
    L = ((dy * dy).sum(dtype="float64") + (dx * dx).sum(dtype="float64")) * c
    g = x * 0
    k = x.dtype.type(2.0 * c * weight)
    dy *= k
    dx *= k
    g[:, 1:, :] += dy
    g[:, :-1, :] -= dy
    g[:, :, 1:] += dx
    g[:, :, :-1] -= dx
    return L, g


@dataclass(frozen=True)
class LossWeights:
    """alpha and beta of eq. 7, the content layers with their weights, w_l of eq. 5, and the
    weight of the (optional, not in the paper) total-variation term."""

    alpha: float
    beta: float
    content_layers: dict[str, float]
    style_layers: dict[str, float]
    tv: float = 0.0
