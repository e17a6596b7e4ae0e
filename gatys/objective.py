"""The total loss of eq. 7 and its gradient with respect to the pixels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .losses import LossWeights, content_loss, style_layer_loss, total_variation
from .network import LayerTimer, Network

# The paper's layers: content on conv4_2, style on conv1_1 ... conv5_1 (Figs. 2, 3).
DEFAULT_CONTENT_LAYER = "conv4_2"
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def feature_matrix(h: Any) -> Any:
    """Activations (N_l, H, W) as the paper's F^l, shape (N_l, M_l)."""
    return h.reshape(h.shape[0], -1)


def content_targets(network: Network, image: Any, layers: list[str]) -> dict[str, Any]:
    """P^l of the photograph for each content layer."""
    tape = network.forward(image, keep=layers)
    return {name: feature_matrix(tape.features[name]) for name in layers}


def style_targets(network: Network, image: Any, layers: list[str]) -> dict[str, Any]:
    """A^l / M_l of the artwork for each style layer: its Gram matrix per position.

    Multiplied by the generated image's M_l this is eq. 3's A^l when both images have the same
    size, and it lets a painting of another size or shape be used (its Gram matrix is rescaled to
    the generated image's number of positions).
    """
    tape = network.forward(image, keep=layers)
    out = {}
    for name in layers:
        F = feature_matrix(tape.features[name])
        out[name] = network.backend.gram(F) / F.dtype.type(F.shape[1])
    return out


@dataclass
class Evaluation:
    total: float
    content: float
    style: float
    grad: Any
    layers: dict[str, float]


class Objective:
    """L_total = alpha L_content + beta L_style (eq. 7), with L_style = sum_l w_l E_l (eq. 5),
    plus tv * L_tv when a total-variation weight is set."""

    def __init__(self, network: Network, weights: LossWeights, P: dict[str, Any],
                 A_per_position: dict[str, Any], content_scale: str = "per-position") -> None:
        self.network, self.weights = network, weights
        self.P, self.A_per_position, self.content_scale = P, A_per_position, content_scale
        self.layers = [*weights.content_layers, *weights.style_layers]
        self._A: dict[tuple[str, int], Any] = {}  # eq. 3's A^l for the generated image's M_l

    def target_gram(self, name: str, M: int, dtype: Any) -> Any:
        """A^l scaled to ``M`` positions of the generated image, computed once per size."""
        if (name, M) not in self._A:
            self._A[name, M] = self.A_per_position[name] * dtype.type(M)
        return self._A[name, M]

    def evaluate(self, x: Any, timer: LayerTimer | None = None) -> Evaluation:
        """Loss and its gradient with respect to the RGB image ``x`` (3, H, W)."""
        with self.network.backend.workers.holding_blas():
            return self._evaluate(x, timer)

    def _evaluate(self, x: Any, timer: LayerTimer | None) -> Evaluation:
        w = self.weights
        tape = self.network.forward(x, keep=self.layers, timer=timer)
        grads: dict[str, Any] = {}
        per_layer: dict[str, float] = {}
        L_content = L_style = 0.0

        def add(name: str, g: Any) -> None:
            grads[name] = grads[name] + g if name in grads else g

        for name, weight in w.content_layers.items():
            h = tape.features[name]
            L, dF = content_loss(feature_matrix(h), self.P[name], self.content_scale,
                                 weight=w.alpha * weight)
            per_layer[f"content:{name}"] = L
            L_content += weight * L
            add(name, dF.reshape(h.shape))
        for name, w_l in w.style_layers.items():
            h = tape.features[name]
            F = feature_matrix(h)
            A = self.target_gram(name, F.shape[1], F.dtype)
            E, dF = style_layer_loss(F, A, weight=w.beta * w_l, backend=self.network.backend)
            per_layer[f"style:{name}"] = E
            L_style += w_l * E
            add(name, dF.reshape(h.shape))
        tape.features.clear()  # the losses are computed: free the feature copies before backprop
        grad = self.network.backward(tape, grads, timer=timer)
        total = w.alpha * L_content + w.beta * L_style
        if w.tv:
            L_tv, g_tv = total_variation(self.network.backend.asarray(x, dtype=grad.dtype), w.tv)
            per_layer["tv"] = L_tv
            total += w.tv * L_tv
            grad += g_tv
        return Evaluation(total, L_content, L_style, grad, per_layer)


def paper_objective(network: Network, photo: Any, painting: Any, alpha: float = 1e-3,
                    beta: float = 1.0, content_layer: str = DEFAULT_CONTENT_LAYER,
                    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS,
                    content_scale: str = "per-position") -> Objective:
    """Eq. 7 for ``photo`` and ``painting`` (RGB (3, H, W) in [0, 1], in the network's dtype):
    one content layer of weight 1 and the style layers with w_l = 1/L, as in the paper."""
    styles = list(style_layers)
    w = LossWeights(alpha, beta, {content_layer: 1.0}, {n: 1.0 / len(styles) for n in styles})
    return Objective(network, w, content_targets(network, photo, [content_layer]),
                     style_targets(network, painting, styles), content_scale)
