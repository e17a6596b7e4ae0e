"""The backend interface: an array module and the engine's primitives bound to it.

The algorithm in :mod:`gatys.model` talks to a :class:`Backend` only, so it is written once and
runs on any device that provides one (NumPy here; CuPy in :mod:`.cuda_backend`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy

from . import conv, cuda_graph, layout, products, relu_pool
from .conv import ConvWeights
from .layout import interior, padded_length
from .workers import SEQUENTIAL, Workers


@dataclass(frozen=True)
class Backend:
    """An array module ``xp`` plus the engine's primitives bound to it."""

    name: str
    xp: Any
    workers: Workers = field(default=SEQUENTIAL, compare=False)
    # Whether a conv layer's passes should be given the pool after it: its forward pass the
    # pool's output to make (:meth:`conv3x3_relu_padded`'s ``pooled``), its input gradient the
    # pool's output gradient to spread (:meth:`conv3x3_padded_through_pool`), both from the
    # cache where the layer's blocks allow. Where that gains nothing, each pool's pass of its
    # own holds less memory at once (the layer's input, or the pool's output gradient, is
    # freed by then).
    pools_with_conv: ClassVar[bool] = True

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> numpy.ndarray:
        return numpy.asarray(a)

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); the CPU has none."""

    def recorder(self) -> Callable[[Callable[[Any], tuple], Any], tuple]:
        """What runs an evaluation's device work, called as ``recorder(fn, x)``: ``fn(x)`` on
        the CPU; on CUDA with graphs, a replay of ``fn`` recorded as a CUDA graph
        (:mod:`.cuda_graph`). One per evaluated function (it keeps that function's recording)."""
        return cuda_graph.plain

    def to_floats(self, values: Sequence[Any]) -> list[float]:
        """Scalars (floats or 0-d arrays of ``xp``, such as the losses) as floats."""
        return [float(v) for v in values]

    # Convolution.
    def conv_weights(self, weight: Any, input_grad: bool = False) -> ConvWeights:
        return ConvWeights(weight, self.xp, input_grad)

    def conv3x3(self, x: Any, weight: Any, bias: Any | None = None) -> Any:
        """3x3 cross-correlation of a (C, H, W) image with an OIHW ``weight``, stride 1, zero
        padding 1 -> (O, H, W), through this backend's own kernels."""
        _, h, w = x.shape
        out = self.conv3x3_padded(self.to_padded(x), h, w, self.conv_weights(weight), bias)
        return self.xp.ascontiguousarray(self.interior(out, h, w))

    def conv3x3_padded(self, src: Any, h: int, w: int, cw: ConvWeights, bias: Any = None,
                       relu: bool = False, src_mask: Any = None) -> Any:
        """The convolution of the padded flat ``src`` (H, W inside) into a new padded buffer,
        plus ``bias``, then ReLU when ``relu``. With ``src_mask`` (a ReLU mask of ``src``'s
        shape) ``src`` is taken as zero where the mask is false: backprop through the ReLU that
        produced the layer, ahead of the convolution's transpose (``src`` may be zeroed there
        in place, as here; CUDA applies the mask as it reads)."""
        return conv.conv3x3_padded(src, h, w, cw, self.xp, bias, relu, self.workers,
                                   src_mask=src_mask)

    def conv3x3_padded_through_pool(self, grad: Any, h: int, w: int, cw: ConvWeights,
                                    src_mask: Any, index: Any = None) -> Any:
        """:meth:`conv3x3_padded` of the gradient at a layer's output whose 2x2 pooling came
        next, from ``grad``, the padded flat gradient at the pool's output (H // 2 x W // 2
        inside): the pool's backward pass (each gradient spread evenly over its window, or
        sent to its maximum, ``index`` as :meth:`max_pool2` gave it) is written a block of
        channels at a time, then masked by ``src_mask``, just before the convolution reads it
        (by the blocks of a Winograd layer's two passes, else in a map of its own)."""
        xp, (h2, w2) = self.xp, (h // 2, w // 2)
        src = self.padded_empty(grad.shape[0], h, w, grad.dtype)
        inner, spread = interior(src, h, w), interior(grad, h2, w2)

        def fill(b: slice) -> None:
            relu_pool.pool_backward_block(spread[b], None if index is None else index[b],
                                          inner[b], xp)
            layout.zero_border(src[b], h, w, written=(2 * h2, 2 * w2))

        return conv.conv3x3_padded(src, h, w, cw, xp, workers=self.workers, src_mask=src_mask,
                                   src_fill=fill)

    def conv3x3_relu_padded(self, src: Any, h: int, w: int, cw: ConvWeights, bias: Any,
                            pooled: relu_pool.Pooling | None = None) -> tuple[Any, Any]:
        """A conv layer forward: the convolution plus ``bias``, ReLU, and the ReLU's mask (where
        the output is > 0, all backprop needs of it; False on the border). With ``pooled``,
        also the output's 2x2 pooling into it, border zeroed: the next layer's input where a
        pool follows, made while the output is in the cache where the layer allows
        (:func:`.conv.conv3x3_padded`)."""
        mask = self.xp.empty((cw.out_channels, src.shape[1]), dtype=bool)
        out = conv.conv3x3_padded(src, h, w, cw, self.xp, bias, True, self.workers, mask,
                                  pooled=pooled)
        return out, mask

    # Layout.
    def to_padded(self, x: Any) -> Any:
        return layout.to_padded(x, self.xp)

    def interior(self, buf: Any, h: int, w: int) -> Any:
        return interior(buf, h, w)

    def padded_zeros(self, c: int, h: int, w: int, dtype: Any) -> Any:
        return self.xp.zeros((c, padded_length(h, w)), dtype=dtype)

    def padded_empty(self, c: int, h: int, w: int, dtype: Any) -> Any:
        """A padded flat buffer left unset, for a pass that writes its interior and then
        :meth:`zero_border`: zeroing it all first is one more pass over it, on one thread."""
        return self.xp.empty((c, padded_length(h, w)), dtype=dtype)

    def zero_border(self, buf: Any, h: int, w: int, written: tuple[int, int] | None = None) -> None:
        """:func:`.layout.zero_border`, a block of channels per thread: on the main thread
        alone it was a serial share of each pool's pass (docs/performance.md)."""
        self.workers.by_channels(lambda b: layout.zero_border(buf[b], h, w, written),
                                 buf.shape[0])

    def interior_copy(self, buf: Any, h: int, w: int) -> Any:
        """The (C, H, W) image inside a padded flat buffer, as a new contiguous array (copied
        by all workers: at conv1_1 it is 64 MB at 512^2)."""
        out = self.xp.empty((buf.shape[0], h, w), dtype=buf.dtype)
        self.workers.by_channels(lambda b: self.xp.copyto(out[b], interior(buf[b], h, w)),
                                 buf.shape[0])
        return out

    def add_to_interior(self, buf: Any, h: int, w: int, x: Any) -> None:
        """Add ``x`` (C, H, W) to the image inside the padded flat ``buf``, in place."""
        def channels(b: slice) -> None:
            inner = interior(buf[b], h, w)
            self.xp.add(inner, x[b], out=inner)

        self.workers.by_channels(channels, buf.shape[0], plane=h * w)

    # ReLU and pooling.
    def relu(self, x: Any) -> Any:
        return relu_pool.relu(x, self.xp)

    def relu_mask(self, x: Any) -> Any:
        return relu_pool.relu_mask(x, self.xp, self.workers)

    def relu_backward(self, grad: Any, mask: Any) -> Any:
        return relu_pool.relu_backward(grad, mask, self.xp, self.workers)

    def pool_backward(self, grad: Any, h: int, w: int, index: Any = None) -> Any:
        """The input gradient of a 2x2 pooling of an H x W image, padded flat, from ``grad``,
        the padded flat gradient at its output: each value spread evenly over its window, or
        sent to its maximum (``index`` as :meth:`max_pool2` gave it); the border, and an odd
        last row or column, zero."""
        c, h2, w2 = grad.shape[0], h // 2, w // 2
        out = self.padded_empty(c, h, w, grad.dtype)
        g, into = self.interior(grad, h2, w2), self.interior(out, h, w)
        if index is None:
            self.avg_pool2_backward(g, (c, h, w), out=into)
        else:
            self.max_pool2_backward(g, index, (c, h, w), out=into)
        self.zero_border(out, h, w, written=(2 * h2, 2 * w2))
        return out

    def pool_into(self, src: Any, h: int, w: int, pooled: relu_pool.Pooling) -> None:
        """The 2x2 pooling of the padded flat ``src`` (H x W inside) into ``pooled``, border
        zeroed, in passes of its own: this backend's pooling, then its border."""
        inner, into = self.interior(src, h, w), self.interior(pooled.out, h // 2, w // 2)
        if pooled.index is None:
            self.avg_pool2(inner, out=into)
        else:
            self.max_pool2(inner, out=into, index=pooled.index)
        self.zero_border(pooled.out, h // 2, w // 2)

    def avg_pool2(self, x: Any, out: Any = None) -> Any:
        return relu_pool.avg_pool2(x, self.xp, out, self.workers)

    def avg_pool2_backward(self, grad: Any, in_shape: tuple[int, int, int], out: Any = None) -> Any:
        return relu_pool.avg_pool2_backward(grad, in_shape, self.xp, out, self.workers)

    def max_pool2(self, x: Any, out: Any = None, index: Any = None) -> tuple[Any, Any]:
        return relu_pool.max_pool2(x, self.xp, self.workers, out, index)

    def max_pool2_backward(self, grad: Any, index: Any, in_shape: tuple[int, int, int],
                           out: Any = None) -> Any:
        return relu_pool.max_pool2_backward(grad, index, in_shape, self.xp, out, self.workers)

    def gram(self, F: Any) -> Any:
        return products.gram(F, self.workers)

    def grams(self, Fs: Sequence[Any]) -> list[Any]:
        """The Gram matrices F F^T (eq. 3) of several feature matrices, shared among the
        workers all at once."""
        return products.grams(Fs, self.workers)

    def matmul_columns(self, D: Any, F: Any) -> Any:
        """D @ F (the product of eq. 6), shared among the workers."""
        return products.matmul_columns(D, F, self.xp, self.workers)

    def add_product(self, out: Any, D: Any, F: Any) -> None:
        """``out`` += D @ F in place (eq. 6's product added to a gradient), shared among the
        workers in blocks that stay in the cache."""
        products.add_product(out, D, F, self.xp, self.workers)

    def scaled_difference(self, F: Any, P: Any, k: float) -> tuple[Any, Any]:
        """k (F - P) and the sum of (F - P)^2 (eqs. 1 and 2), shared among the workers."""
        return products.scaled_difference(F, P, k, self.xp, self.workers)
