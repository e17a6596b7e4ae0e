"""VGG-19 forward pass to the deepest layer needed, and backprop from there to the pixels."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from gatys.errors import InputError
from gatys.kernels import Backend, Pooling
from gatys.model.vgg import LAYERS, VGGWeights, check_reaches, walk

POOLS = ("avg", "max")


@dataclass
class ConvRecord:
    """A conv layer on the tape: which convolution, the shape (H, W) of its output, and where
    its ReLU output is > 0 (all backprop needs of it: the "if F > 0" of eqs. 2 and 6)."""

    name: str
    index: int
    mask: Any
    hw: tuple[int, int]

    def backward(self, net: "Network", g: Any) -> Any:
        """dL/d(input) from dL/d(output) ``g`` (padded flat, or a pool's
        :class:`SpreadGradient`): through the ReLU, then the convolution's transpose (the
        rotated kernel, channels swapped)."""
        h, w = self.hw
        cw = net.conv_input_grad[self.index]
        if isinstance(g, SpreadGradient):  # the pool's backward written as it is read
            return net.backend.conv3x3_padded_through_pool(g.g, h, w, cw, self.mask,
                                                           g.pool.argmax)
        return net.backend.conv3x3_padded(g, h, w, cw, src_mask=self.mask)


@dataclass
class PoolRecord:
    """A 2x2 pool on the tape: its input's shape (C, H, W), its output's (H/2, W/2), and for
    max pooling which element of each window won (None for average pooling)."""

    name: str
    in_shape: tuple[int, int, int]
    argmax: Any
    hw: tuple[int, int]

    def backward(self, net: "Network", g: Any) -> Any:
        """Average pooling spreads each gradient evenly over its window, max pooling sends it
        to the window's maximum: left to the conv layer before the pool, which writes it as
        it reads it, where the backend pools with its conv layers (a :class:`SpreadGradient`);
        else :meth:`spread`."""
        return SpreadGradient(g, self) if net.backend.pools_with_conv else self.spread(net, g)

    def spread(self, net: "Network", g: Any) -> Any:
        """dL/d(input) from dL/d(output) ``g`` (padded flat), whole."""
        _, h_in, w_in = self.in_shape
        return net.backend.pool_backward(g, h_in, w_in, self.argmax)


@dataclass
class SpreadGradient:
    """dL/d(input) of a pool, not yet written: ``g``, the gradient at its output, to be
    spread over each 2x2 window (:meth:`PoolRecord.spread`) by the conv layer before the pool
    as its input gradient reads it (``Backend.conv3x3_padded_through_pool``), or whole
    (:meth:`written`, where a loss term is added there first)."""

    g: Any
    pool: PoolRecord

    def written(self, net: "Network") -> Any:
        """The pool's input gradient, padded flat, whole."""
        return self.pool.spread(net, self.g)


@dataclass
class PaddedFeatures:
    """A layer's activations as the forward pass left them, in the padded flat layout (C, L):
    the feature matrix F^l with zero columns besides its M_l = H W positions (the border and
    slack), which add nothing to F F^T (eq. 3) nor to D F (eq. 6)."""

    F: Any
    hw: tuple[int, int]

    @property
    def M(self) -> int:
        return self.hw[0] * self.hw[1]


@dataclass
class ProductGrad:
    """dL/dF^l = D F^l for a layer the tape holds padded (eq. 6's (G - A) F, D scaled): added
    to the gradient as the backward sweep passes the layer, in blocks that stay in the cache
    (``Backend.add_product``), where dF written out whole was read back there."""

    D: Any
    F: Any


@dataclass
class Tape:
    """What the forward pass keeps for the backward pass: per layer, in forward order; and
    the layers asked for, as (C, H, W) copies (``features``) or as left (``padded``)."""

    records: list[ConvRecord | PoolRecord] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    padded: dict[str, PaddedFeatures] = field(default_factory=dict)
    input_shape: tuple[int, int, int] = (3, 0, 0)


class LayerTimer:
    """Seconds spent per layer in forward and backward passes (for ``bench``); ``sync`` waits
    for a device's queued work at each start and stop."""

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.forward: dict[str, float] = {}
        self.backward: dict[str, float] = {}
        self._start = 0.0
        self._sync = sync

    def start(self) -> None:
        self._sync()
        self._start = time.perf_counter()

    def stop(self, table: dict[str, float], name: str) -> None:
        self._sync()
        table[name] = table.get(name, 0.0) + time.perf_counter() - self._start


class Network:
    """A VGG-19 (or any network of the same shape, e.g. with fewer channels) on one backend.

    ``pool`` picks average pooling (the paper's choice) or max pooling (the original network).
    ``dtype`` is float32 for synthesis and float64 for gradient checks. Activations and their
    gradients travel in the backend's padded flat layout (see ``kernels.layout``).
    """

    def __init__(self, vgg: VGGWeights, backend: Backend, pool: str = "avg",
                 dtype: Any = np.float32) -> None:
        if pool not in POOLS:
            raise InputError(f"unknown pooling {pool!r}: choose avg or max")
        xp = backend.xp
        self.backend, self.pool, self.dtype = backend, pool, np.dtype(dtype)
        self.channels = vgg.channels
        self.last_layer = vgg.last_layer  # not the VGGWeights: their host arrays need not stay
        self.source = vgg.source
        weights = [xp.asarray(w, dtype=dtype) for w in vgg.weights]
        self.conv = [backend.conv_weights(w) for w in weights]
        self.conv_input_grad = [cw.for_input_grad() for cw in self.conv]  # U shared
        self.biases = [xp.asarray(b, dtype=dtype) for b in vgg.biases]
        pre = vgg.preprocess
        self.preprocess = pre
        # An index array on the device: a list would be copied there at every evaluation.
        self._order = xp.asarray(pre.order, dtype=np.intp)
        self._scale = xp.asarray(pre.scale, dtype=dtype)[:, None, None]
        self._shift = xp.asarray(pre.shift, dtype=dtype)[:, None, None]

    @staticmethod
    def deepest(names: Iterable[str]) -> str:
        """The deepest of ``names`` in network order."""
        return max(names, key=LAYERS.index)

    def preprocess_image(self, x: Any) -> Any:
        return x[self._order] * self._scale + self._shift

    def forward(self, x: Any, keep: Iterable[str], timer: LayerTimer | None = None,
                keep_padded: Iterable[str] = ()) -> Tape:
        """Run from the RGB image ``x`` (3, H, W) in [0, 1] to the deepest layer of ``keep``
        and ``keep_padded``, keeping those layers' activations (as (C, H, W) copies, or as
        left in the padded layout, not copied) and what backprop needs: each conv layer's
        ReLU mask and each max pool's winners; on the threads for the image's size
        (``Workers.for_image``, as ``Objective.evaluate``)."""
        with self.backend.workers.for_image(x.shape[-2] * x.shape[-1]):
            return self._forward(x, set(keep), set(keep_padded), timer)

    def _forward(self, x: Any, keep: set[str], keep_padded: set[str],
                 timer: LayerTimer | None) -> Tape:
        upto = self.deepest(keep | keep_padded)
        check_reaches(upto, self.last_layer)
        b = self.backend
        tape = Tape(input_shape=tuple(x.shape))
        _, h, w = x.shape
        buf = b.to_padded(self.preprocess_image(b.asarray(x, dtype=self.dtype)))
        layers = list(walk(upto))
        pooled = None  # the pool next, made by the conv layer before it
        for k, (name, conv) in enumerate(layers):
            if timer:
                timer.start()
            if conv is not None:
                # A pool next is made with the convolution, from the cache where its blocks
                # allow (its time then counts here, the pool's own as none).
                if b.pools_with_conv and k + 1 < len(layers) and layers[k + 1][1] is None:
                    pooled = self._pooling(self.conv[conv].out_channels, h // 2, w // 2)
                # The mask is a quarter of the output's memory, and False on the border, so
                # applying it also clears the junk columns there.
                buf, mask = b.conv3x3_relu_padded(buf, h, w, self.conv[conv], self.biases[conv],
                                                  pooled=pooled)
                tape.records.append(ConvRecord(name, conv, mask, (h, w)))
            else:
                c = buf.shape[0]
                if pooled is None:  # not made by the conv layer before it
                    pooled = self._pooling(c, h // 2, w // 2)
                    b.pool_into(buf, h, w, pooled)
                buf, argmax, pooled = pooled.out, pooled.index, None
                tape.records.append(PoolRecord(name, (c, h, w), argmax, (h // 2, w // 2)))
                h, w = h // 2, w // 2
            if timer:
                timer.stop(timer.forward, name)
            if name in keep:
                tape.features[name] = b.interior_copy(buf, h, w)
            if name in keep_padded:  # no later pass writes to a layer's output
                tape.padded[name] = PaddedFeatures(buf, (h, w))
        return tape

    def _pooling(self, c: int, h: int, w: int) -> Pooling:
        """Where a conv layer of ``c`` channels writes the pool after it, H x W inside: a
        padded flat buffer, and for max pooling the index of each window's winner."""
        b = self.backend
        index = b.xp.empty((c, h, w), dtype=np.int8) if self.pool == "max" else None
        return Pooling(b.padded_empty(c, h, w, self.dtype), index)

    def backward(self, tape: Tape, feature_grads: dict[str, Any],
                 timer: LayerTimer | None = None) -> Any:
        """Backprop in one sweep from the deepest layer in ``feature_grads`` to the pixels,
        adding each layer's loss gradient dL/dF (a (C, H, W) array or a :class:`ProductGrad`,
        or a list of them) as the sweep passes it, and dropping it from ``feature_grads``, so
        that its memory is freed as the sweep goes."""
        b = self.backend
        g = None  # gradient with respect to the current layer's output, padded flat (or a
        # pool's input, not yet spread over its windows: a SpreadGradient)
        for record in reversed(tape.records):
            h, w = record.hw
            if record.name in feature_grads:
                terms = feature_grads.pop(record.name)
                for term in terms if isinstance(terms, list) else [terms]:
                    g = self._add_feature_grad(g, term, h, w)
                terms = term = None  # a ProductGrad holds its layer's output
            if g is None:
                continue
            if timer:
                timer.start()
            g = record.backward(self, g)
            if timer:
                timer.stop(timer.backward, record.name)
        _, h, w = tape.input_shape
        if g is None:
            return b.xp.zeros(tape.input_shape, dtype=self.dtype)
        dx = b.xp.empty(tape.input_shape, dtype=self.dtype)
        dx[self._order] = b.interior(g, h, w) * self._scale
        return dx

    def _add_feature_grad(self, g: Any, term: Any, h: int, w: int) -> Any:
        """``g`` (padded flat, a :class:`SpreadGradient`, or None for zeros) plus one layer's
        loss gradient ``term``."""
        b = self.backend
        if isinstance(g, SpreadGradient):
            g = g.written(self)
        if isinstance(term, ProductGrad):
            if g is None:  # zero on the border, as F is
                return b.matmul_columns(term.D, term.F)
            b.add_product(g, term.D, term.F)
            return g
        if g is None:
            g = b.padded_zeros(term.shape[0], h, w, self.dtype)
        b.add_to_interior(g, h, w, term)
        return g
