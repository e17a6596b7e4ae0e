"""The total loss of eq. 7 and its gradient with respect to the pixels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gatys.errors import InputError
from gatys.model.guidance import GuidedStyle, layer_masks
from gatys.model.losses import (
    LossWeights,
    content_loss,
    style_gram_terms,
    style_layer_loss,
    total_variation,
)
from gatys.model.network import LayerTimer, Network, ProductGrad

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


def style_targets(network: Network, image: Any, layers: list[str],
                  mask: Any = None) -> dict[str, Any]:
    """A^l / M_l of the artwork for each style layer: its Gram matrix per position.

    Multiplied by the generated image's M_l this is eq. 3's A^l when both images have the same
    size, and it lets a painting of another size or shape be used (its Gram matrix is rescaled to
    the generated image's number of positions). With ``mask`` (H, W) over the painting, the
    guided Gram matrix (F o m)(F o m)^T per masked position, sum_k m_k^2 (Gatys et al. 2017).
    """
    tape = network.forward(image, keep=layers)
    masks = layer_masks(mask, layers) if mask is not None else {}
    out = {}
    # the Gram matrices on the threads the painting's size gets, as its forward pass
    with network.backend.workers.for_image(image.shape[-2] * image.shape[-1]):
        for name in layers:
            F = feature_matrix(tape.features[name])
            M = float(F.shape[1])
            if name in masks:
                m = masks[name]
                M = float((m * m).sum())
                if M == 0:
                    raise InputError(f"the painting's mask selects too little of it: nothing is "
                                     f"left at {name}, after its poolings; select a larger part "
                                     "or use a larger --style-scale")
                F = F * network.backend.asarray(m, dtype=F.dtype)
            out[name] = network.backend.gram(F) / F.dtype.type(M)
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
    plus tv * L_tv when a total-variation weight is set.

    With ``regions`` (spatial control, Gatys et al. 2017) each style layer's E_l is instead
    sum_r lambda_r E_l,r over the regions r, E_l,r the guided eq. 4 of region r against its own
    painting (see :func:`gatys.model.losses.style_layer_loss`) and lambda_r = M_r / M_l its share of
    the positions, so each pixel feels the style as strongly as without regions, whatever its
    region's size; ``A_per_position`` is then unused.
    """

    def __init__(self, network: Network, weights: LossWeights, P: dict[str, Any],
                 A_per_position: dict[str, Any], content_scale: str = "per-position",
                 regions: list[GuidedStyle] | None = None) -> None:
        self.network, self.weights = network, weights
        self.P, self.A_per_position, self.content_scale = P, A_per_position, content_scale
        self.regions = regions
        self.layers = [*weights.content_layers, *weights.style_layers]
        self._A: dict[tuple[Any, ...], Any] = {}  # eq. 3's A^l for the generated image's M_l
        self._masks: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
        # The loss values' names, in the order _device_work returns them.
        self._value_names = [*(f"content:{n}" for n in weights.content_layers),
                             *(f"style:{n}" for n in weights.style_layers),
                             *(["tv"] if weights.tv else [])]
        self._run = network.backend.recorder()  # replays a recorded _device_work on CUDA graphs

    def _region(self, region: int) -> GuidedStyle:
        assert self.regions is not None  # asked for only with regions
        return self.regions[region]

    def target_gram(self, name: str, M: float, dtype: Any, region: int | None = None) -> Any:
        """A^l scaled to ``M`` positions of the generated image (of ``region``), computed once
        per size."""
        key = (name, M, region)
        if key not in self._A:
            A = self.A_per_position if region is None else self._region(region).A_per_position
            self._A[key] = A[name] * dtype.type(M)
        return self._A[key]

    def layer_masks(self, region: int, shape: tuple[int, ...],
                    dtype: Any) -> dict[str, tuple[Any, float]]:
        """Region ``region``'s mask at each style layer, for an image of ``shape``, with its
        number of positions M_r = sum_k m_k^2 (computed once, not at every evaluation)."""
        key = (region, shape)
        if key not in self._masks:
            mask = self._region(region).mask
            if mask.shape != shape[1:]:
                raise ValueError(f"region {region + 1}'s mask is {mask.shape}, the image "
                                 f"{shape[1:]}")
            self._masks[key] = {
                name: (self.network.backend.asarray(m, dtype=dtype), float((m * m).sum()))
                for name, m in layer_masks(mask, self.weights.style_layers).items()}
        return self._masks[key]

    def style_layer(self, name: str, F: Any, weight: float, shape: tuple[int, ...],
                    M: int | None = None, G: Any = None) -> tuple[Any, Any]:
        """E_l and ``weight`` * dE_l/dF for the style layer ``name``: eq. 4, or with regions the
        sum of each region's share of its guided E_l,r. F is (N_l, M_l); without regions it
        may also be a layer's output in the padded layout (``PaddedFeatures.F``, M its M_l, G
        its Gram matrix if already made), and the gradient is then a :class:`ProductGrad`
        that the backward sweep adds."""
        backend = self.network.backend
        if self.regions is None:
            A = self.target_gram(name, M or F.shape[1], F.dtype)
            if M is None:
                return style_layer_loss(F, A, weight=weight, backend=backend)
            E, D = style_gram_terms(F, A, M, weight=weight, backend=backend, G=G)
            return E, ProductGrad(D, F)
        E, dF = 0.0, None
        for r in range(len(self.regions)):
            m, M_r = self.layer_masks(r, shape, F.dtype)[name]
            if M_r == 0:  # the region vanished at this depth: its share lambda_r is 0
                continue
            share = M_r / F.shape[1]
            A = self.target_gram(name, M_r, F.dtype, region=r)
            E_r, g = style_layer_loss(F, A, weight=weight * share, backend=backend, mask=m,
                                      M_r=M_r)
            E += share * E_r
            dF = g if dF is None else dF + g
        return E, (F * 0 if dF is None else dF)

    def evaluate(self, x: Any, timer: LayerTimer | None = None) -> Evaluation:
        """Loss and its gradient with respect to the RGB image ``x`` (3, H, W)."""
        backend = self.network.backend
        x = backend.asarray(x, dtype=self.network.dtype)
        with backend.workers.holding_blas(), backend.workers.for_image(x.shape[-2] * x.shape[-1]):
            # A timer waits for the device at every layer: no graph then.
            grad, *values = (self._device_work(x, timer) if timer is not None
                             else self._run(self._device_work, x))
            per_layer = dict(zip(self._value_names, backend.to_floats(values)))
        w = self.weights
        L_content = sum((weight * per_layer[f"content:{name}"]
                         for name, weight in w.content_layers.items()), 0.0)
        L_style = sum((w_l * per_layer[f"style:{name}"] for name, w_l in w.style_layers.items()),
                      0.0)
        total = w.alpha * L_content + w.beta * L_style + w.tv * per_layer.get("tv", 0.0)
        return Evaluation(total, L_content, L_style, grad, per_layer)

    def _device_work(self, x: Any, timer: LayerTimer | None = None) -> tuple[Any, ...]:
        """The gradient and the loss values (as arrays, in ``_value_names``' order, none read
        back here: on a GPU a read stops the host until the device is done, and a CUDA graph
        cannot record it)."""
        w = self.weights
        # Without regions the style layers' outputs are used as the forward pass left them: a
        # copy of each was two passes over memory more, and their gradients D F (eq. 6) are
        # added in the backward sweep in blocks that stay in the cache.
        padded = list(w.style_layers) if self.regions is None else []
        copied = list(w.content_layers) if padded else self.layers
        tape = self.network.forward(x, keep=copied, keep_padded=padded, timer=timer)
        grads: dict[str, list[Any]] = {}
        values: list[Any] = []

        def add(name: str, g: Any) -> None:
            grads.setdefault(name, []).append(g)

        for name, weight in w.content_layers.items():
            h = tape.features[name]
            L, dF = content_loss(feature_matrix(h), self.P[name], self.content_scale,
                                 weight=w.alpha * weight, backend=self.network.backend)
            values.append(L)
            add(name, dF.reshape(h.shape))

        # The padded style layers' Gram matrices (eq. 3) in one go: their blocks shared among
        # the threads at once, where a map per layer left threads waiting at each one's end.
        G = dict(zip(tape.padded, self.network.backend.grams([f.F for f in tape.padded.values()])))

        def style(name: str, weight: float) -> Any:
            """E_l, with its gradient added to ``grads`` (and no reference to it left here)."""
            if name in tape.padded:
                f = tape.padded[name]
                E, g = self.style_layer(name, f.F, weight, tuple(x.shape), M=f.M, G=G.pop(name))
            else:
                h = tape.features[name]
                E, dF = self.style_layer(name, feature_matrix(h), weight, tuple(x.shape))
                g = dF.reshape(h.shape)
            add(name, g)
            return E

        for name, w_l in w.style_layers.items():
            values.append(style(name, w.beta * w_l))
        # The losses are computed: the feature copies are freed before backprop, and each
        # layer's padded output once its ProductGrad is added.
        tape.features.clear()
        tape.padded.clear()
        grad = self.network.backward(tape, grads, timer=timer)
        if w.tv:
            L_tv, g_tv = total_variation(x, w.tv)
            values.append(L_tv)
            grad += g_tv
        return (grad, *values)


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


def paper_loss_and_gradient(network: Network, photo: Any, painting: Any,
                            x: Any) -> tuple[float, np.ndarray]:
    """L_total of :func:`paper_objective` at ``x`` and dL/dx as float64 on the host, each image
    cast to the network's dtype first: what engines and precisions are compared by."""
    cast = [network.backend.asarray(np.asarray(im), dtype=network.dtype)
            for im in (photo, painting, x)]
    ev = paper_objective(network, cast[0], cast[1]).evaluate(cast[2])
    return float(ev.total), network.backend.to_numpy(ev.grad).astype(np.float64)
