"""VGG-19 forward pass to the deepest layer needed, and backprop from there to the pixels."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .kernels import Backend

from .errors import InputError
from .vgg import LAYERS, VGGWeights

POOLS = ("avg", "max")


@dataclass
class Tape:
    """What the forward pass keeps for the backward pass: per layer, in forward order."""

    records: list[tuple] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] = (3, 0, 0)


class Network:
    """A VGG-19 (or any network of the same shape, e.g. with fewer channels) on one backend.

    ``pool`` picks average pooling (the paper's choice) or max pooling (the original network).
    ``dtype`` is float32 for synthesis and float64 for gradient checks.
    """

    def __init__(self, vgg: VGGWeights, backend: Backend, pool: str = "avg",
                 dtype: Any = np.float32) -> None:
        if pool not in POOLS:
            raise InputError(f"unknown pooling {pool!r}: choose avg or max")
        xp = backend.xp
        self.backend, self.pool, self.dtype = backend, pool, np.dtype(dtype)
        self.channels = vgg.channels
        self.source = vgg.source
        self.taps = [backend.conv_taps(xp.asarray(w, dtype=dtype)) for w in vgg.weights]
        self.taps_input_grad = [backend.conv_taps_input_grad(t) for t in self.taps]
        self.biases = [xp.asarray(b, dtype=dtype) for b in vgg.biases]
        pre = vgg.preprocess
        self.preprocess = pre
        self._order = list(pre.order)
        self._scale = xp.asarray(pre.scale, dtype=dtype)[:, None, None]
        self._shift = xp.asarray(pre.shift, dtype=dtype)[:, None, None]

    @staticmethod
    def deepest(names: Iterable[str]) -> str:
        """The deepest of ``names`` in network order."""
        return max(names, key=LAYERS.index)

    def preprocess_image(self, x: Any) -> Any:
        return x[self._order] * self._scale + self._shift

    def forward(self, x: Any, keep: Iterable[str], upto: str | None = None) -> Tape:
        """Run from the RGB image ``x`` (3, H, W) in [0, 1] to ``upto`` (default: deepest of
        ``keep``), keeping the activations named in ``keep`` and what backprop needs."""
        keep = set(keep)
        upto = upto or self.deepest(keep)
        b = self.backend
        tape = Tape(input_shape=tuple(x.shape))
        h = self.preprocess_image(b.asarray(x, dtype=self.dtype))
        conv = 0
        for name in LAYERS[: LAYERS.index(upto) + 1]:
            if name.startswith("conv"):
                h = b.relu(b.conv3x3(h, self.taps[conv], self.biases[conv]))
                tape.records.append(("conv", name, conv, h > 0))
                conv += 1
            elif self.pool == "avg":
                tape.records.append(("pool", name, h.shape, None))
                h = b.avg_pool2(h)
            else:
                in_shape = h.shape
                h, index = b.max_pool2(h)
                tape.records.append(("pool", name, in_shape, index))
            if name in keep:
                tape.features[name] = h
        return tape

    def backward(self, tape: Tape, feature_grads: dict[str, Any]) -> Any:
        """Backprop in one sweep from the deepest layer in ``feature_grads`` to the pixels,
        adding each layer's loss gradient dL/dF as the sweep passes it."""
        b = self.backend
        g = None
        for kind, name, a, c in reversed(tape.records):
            if name in feature_grads:
                g = feature_grads[name] if g is None else g + feature_grads[name]
            if g is None:
                continue
            if kind == "conv":
                g = b.relu_backward(g, c)  # c: the ReLU's mask, saved by the forward pass
                g = b.conv3x3(g, self.taps_input_grad[a])
            elif self.pool == "avg":
                g = b.avg_pool2_backward(g, a)
            else:
                g = b.max_pool2_backward(g, c, a)
        if g is None:
            return b.xp.zeros(tape.input_shape, dtype=self.dtype)
        dx = b.xp.zeros_like(g)
        dx[self._order] = g * self._scale
        return dx

