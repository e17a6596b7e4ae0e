"""Finite-difference checks, in float64, of every op's backward and of each loss's gradient.

Each check compares the analytic derivative along random directions v, <grad f(x), v>, with the
central difference (f(x + eps v) - f(x - eps v)) / (2 eps). Networks are small random VGG-19s
(same layers, few channels), so the whole table takes seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gatys.kernels import Backend
from gatys.kernels.winograd import winograd_tile
from gatys.model.guidance import GuidedStyle
from gatys.model.losses import LossWeights, content_loss, style_layer_loss, total_variation
from gatys.model.network import POOLS, Network
from gatys.model.objective import Objective, content_targets, style_targets
from gatys.model.vgg import PREPROCESS, VGGWeights

TOLERANCE = 1e-6
TINY_CHANNELS = (4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8)


@dataclass
class Check:
    name: str
    max_abs_error: float
    max_rel_error: float

    @property
    def passed(self) -> bool:
        return self.max_rel_error < TOLERANCE


def random_vgg(channels: tuple[int, ...] = TINY_CHANNELS, seed: int = 0,
               preprocess: str = "torch") -> VGGWeights:
    """A VGG-19-shaped network with He-initialised random weights (for tests and checks)."""
    rng = np.random.default_rng(seed)
    weights, biases, c_in = [], [], 3
    for c_out in channels:
        he = np.sqrt(2.0 / (9 * c_in))
        weights.append((rng.standard_normal((c_out, c_in, 3, 3)) * he).astype(np.float32))
        biases.append((rng.standard_normal(c_out) * 0.1).astype(np.float32))
        c_in = c_out
    return VGGWeights(weights, biases, PREPROCESS[preprocess], source=f"random(seed={seed})")


def directional_check(name: str, f: Callable[[Any], Any], grad: Any, x: Any, xp: Any,
                      directions: int = 4, eps: float = 1e-5, seed: int = 0) -> Check:
    """Compare <grad, v> with central differences of ``f`` along random unit directions ``v``."""
    rng = np.random.default_rng(seed)
    max_abs = max_rel = 0.0
    for _ in range(directions):
        v = xp.asarray(rng.standard_normal(x.shape))
        v /= float(xp.sqrt((v * v).sum()))
        numeric = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
        analytic = float((grad * v).sum())
        err = abs(numeric - analytic)
        max_abs = max(max_abs, err)
        max_rel = max(max_rel, err / max(abs(numeric), abs(analytic), 1e-300))
    return Check(name, max_abs, max_rel)


def op_checks(backend: Backend, seed: int = 0) -> list[Check]:
    """Backward of each primitive: f(x) = <op(x), R> for a random R, so grad f = op^T R."""
    xp = backend.xp
    rng = np.random.default_rng(seed)
    arr = lambda *shape: xp.asarray(rng.standard_normal(shape))  # noqa: E731
    checks = []
    # One case per method of the input-gradient convolution (O and C swap there): gather,
    # shift, scatter, Winograd F(2x2), F(2x2) with a row beyond its tiles, F(4x4) (which
    # needs 64 tiles) with a row and two columns beyond its tiles, and F(6x6) (the same), on
    # whole tiles and with its last tiles reaching 4 rows and 3 columns past the image.
    for c, o, h, w in ((20, 3, 9, 11), (24, 20, 9, 11), (2, 20, 9, 11), (128, 128, 6, 8),
                       (128, 128, 7, 8), (64, 64, 33, 34), (64, 64, 48, 48), (64, 64, 50, 51)):
        x, weight, R = arr(c, h, w), arr(o, c, 3, 3) / np.sqrt(9 * c), arr(o, h, w)
        back = backend.conv_weights(weight, input_grad=True)
        m = winograd_tile(back, h, w)
        method = f"winograd F({m}x{m})" if m else back.method
        grad = xp.ascontiguousarray(backend.interior(
            backend.conv3x3_padded(backend.to_padded(R), h, w, back), h, w))
        # f is linear in x, so central differences have no truncation error, only rounding,
        # which a larger step shrinks.
        checks.append(directional_check(
            f"conv3x3 input grad ({method}, C={c}, O={o}, {h}x{w})",
            lambda z: float((backend.conv3x3(z, weight) * R).sum()), grad, x, xp, eps=1e-2))
    x = arr(5, 9, 11)
    R = arr(5, 9, 11)
    checks.append(directional_check(
        "relu", lambda z: float((backend.relu(z) * R).sum()),
        backend.relu_backward(R.copy(), backend.relu(x) > 0), x, xp))
    R = arr(5, 4, 5)
    checks.append(directional_check(
        "avg pool 2x2", lambda z: float((backend.avg_pool2(z) * R).sum()),
        backend.avg_pool2_backward(R, x.shape), x, xp))
    _, index = backend.max_pool2(x)
    checks.append(directional_check(
        "max pool 2x2", lambda z: float((backend.max_pool2(z)[0] * R).sum()),
        backend.max_pool2_backward(R, index, x.shape), x, xp))
    F, R = arr(6, 20), arr(6, 6)
    checks.append(directional_check(
        "gram (eq. 3)", lambda z: float((backend.gram(z) * R).sum()), (R + R.T) @ F, F, xp))
    F, P = xp.abs(arr(6, 20)), xp.abs(arr(6, 20))
    for scale in ("per-position", "printed"):
        checks.append(directional_check(
            f"content loss, {scale} (eqs. 1-2)",
            lambda z: content_loss(z, P, scale, backend=backend)[0],
            content_loss(F, P, scale, backend=backend)[1], F, xp))
    x = arr(3, 7, 9)
    checks.append(directional_check(
        "total variation", lambda z: total_variation(z)[0], total_variation(x)[1], x, xp))
    G0 = xp.abs(arr(6, 20))
    A = G0 @ G0.T
    checks.append(directional_check(
        "style layer loss (eqs. 4, 6)", lambda z: style_layer_loss(z, A)[0],
        style_layer_loss(F, A)[1], F, xp))
    m = xp.asarray(rng.random(20))  # a soft mask, one position outside the region
    m[3] = 0
    Gm = G0 * m
    A = Gm @ Gm.T
    checks.append(directional_check(
        "guided style layer loss (2017)", lambda z: style_layer_loss(z, A, mask=m)[0],
        style_layer_loss(F, A, mask=m)[1], F, xp))
    return checks


def two_regions(shape: tuple[int, int], style_shape: tuple[int, int], seed: int = 0
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Soft masks of two overlapping regions over an image of ``shape`` (the left one fading
    out, the right one a hard-edged rectangle; a band at the bottom in neither), and a mask
    selecting part of a painting of ``style_shape`` for each."""
    h, w = shape
    left = np.clip(1.5 - 2.5 * np.linspace(0, 1, w), 0, 1)[None, :].repeat(h, 0)
    right = np.zeros(shape)
    right[:, w // 3:] = 1
    for m in (left, right):
        m[h - 3:] = 0
    rng = np.random.default_rng(seed)
    painting_masks = [rng.random(style_shape), np.ones(style_shape)]
    painting_masks[1][: style_shape[0] // 2] = 0
    return [left, right], painting_masks


def network_checks(backend: Backend, seed: int = 0,
                   shape: tuple[int, int] = (26, 21)) -> list[Check]:
    """Gradient of the total loss (eq. 7) with respect to the pixels, through the whole
    network, for content only, style only and both, with average and max pooling."""
    rng = np.random.default_rng(seed)
    xp = backend.xp
    vgg = random_vgg(seed=seed)
    content = xp.asarray(rng.random((3, *shape)))
    style = xp.asarray(rng.random((3, shape[0] + 5, shape[1] - 3)))
    x = xp.asarray(rng.random((3, *shape)))
    style_layers = {n: 0.2 for n in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")}
    cases = [
        ("content conv4_2", LossWeights(1.0, 0.0, {"conv4_2": 1.0}, {})),
        ("content conv1_2 + conv3_1", LossWeights(1.0, 0.0, {"conv1_2": 1.0, "conv3_1": 0.5}, {})),
        ("style conv1_1..conv5_1", LossWeights(0.0, 1.0, {}, style_layers)),
        ("total (eq. 7)", LossWeights(1e-2, 1.0, {"conv4_2": 1.0}, style_layers)),
        ("total + total variation", LossWeights(1e-2, 1.0, {"conv4_2": 1.0}, style_layers, tv=0.3)),
    ]
    masks, painting_masks = two_regions(shape, tuple(style.shape[1:]), seed)
    checks = []
    for pool in POOLS:
        net = Network(vgg, backend, pool=pool, dtype=np.float64)
        for label, w in cases:
            P = content_targets(net, content, list(w.content_layers)) if w.content_layers else {}
            A = style_targets(net, style, list(w.style_layers)) if w.style_layers else {}
            obj = Objective(net, w, P, A)
            checks.append(directional_check(
                f"d/dpixels {label}, {pool} pool", lambda z: obj.evaluate(z).total,
                obj.evaluate(x).grad, x, xp, seed=seed))
        w = cases[3][1]
        regions = [GuidedStyle(m, style_targets(net, style, list(w.style_layers), pm))
                   for m, pm in zip(masks, painting_masks)]
        obj = Objective(net, w, content_targets(net, content, ["conv4_2"]), {},
                        regions=regions)
        checks.append(directional_check(
            f"d/dpixels total, two guided regions (2017), {pool} pool",
            lambda z: obj.evaluate(z).total, obj.evaluate(x).grad, x, xp, seed=seed))
    return checks


def all_checks(backend: Backend, seed: int = 0) -> list[Check]:
    """Every check, in float64, on ``backend``."""
    return op_checks(backend, seed) + network_checks(backend, seed)


def format_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  {'max abs err':>11}  {'max rel err':>11}  pass",
             "-" * (width + 32)]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.max_abs_error:11.2e}  {c.max_rel_error:11.2e}  "
                     f"{'yes' if c.passed else 'NO'}")
    lines.append(f"{sum(c.passed for c in checks)} of {len(checks)} passed "
                 f"(relative error < {TOLERANCE:g}, float64 central differences)")
    return "\n".join(lines)
