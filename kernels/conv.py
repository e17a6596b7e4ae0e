"""3x3 convolutions (stride 1, zero padding 1) in the padded flat layout, and the choice of
method per layer, over an array module ``xp``.

- "gather" when C < GATHER_BELOW_CHANNELS (conv1_1, C = 3): the nine shifted views are copied
  into one (9C, chunk) matrix and multiplied once, so the product has K = 9C, not K = 3;
- "scatter" when 9 O <= C (the input gradient of conv1_1, O = 3): per part of the output rows,
  one (9O, C) x (C, .) product for all taps of the columns they read, then nine shifted sums of
  its small (O, .) blocks;
- "winograd" when C and O >= WINOGRAD_FROM_CHANNELS and the image has room for tiles
  (kernels/winograd.py; tiles that reach past the image read zeros there);
- "shift" otherwise: nine (O, C) x (C, chunk) products on shifted views, accumulated.

Functions work in the dtype of their inputs (float32 for synthesis, float64 for gradient
checks). NumPy and CuPy both provide every call used here.
"""
from __future__ import annotations

from typing import Any, Callable

from .layout import finish_rows, interior, padded_length, zero_border, zero_border_rows
from .relu_pool import (
    Pooling,
    avg_pool2,
    bias_relu,
    max_pool2,
    pool_block,
    relu_mask,
    written_and_masked,
)
from .winograd import (
    WINOGRAD_G,
    input_grad_as_forward,
    on_cpu,
    winograd_forward,
    winograd_input_grad,
    winograd_tile,
    winograd_tiles,
)
from .workers import SEQUENTIAL, Workers

# Offsets of the nine taps of a 3x3 kernel in row-major order; tap k is weight[:, :, dy, dx].
TAPS = [(dy, dx) for dy in range(3) for dx in range(3)]
GATHER_BELOW_CHANNELS = 16
# What a part of the direct methods' output rows moves at most (its scratch and output): large
# enough to keep BLAS efficient, bounded so that scratch memory stays flat for very large
# images; on the CPU small enough that its output is still in cache when its bias, ReLU,
# border and mask are written (docs/performance.md).
CHUNK_BYTES = 64 << 20
CPU_CHUNK_BYTES = 4 << 20


def conv_taps(weight: Any, xp: Any) -> Any:
    """Rearrange an OIHW 3x3 weight into nine contiguous (O, C) matrices, shape (9, O, C)."""
    o, c = weight.shape[:2]
    return xp.ascontiguousarray(weight.reshape(o, c, 9).transpose(2, 0, 1))


def conv_taps_input_grad(taps: Any, xp: Any) -> Any:
    """Taps of the convolution that maps an output gradient to the input gradient.

    The gradient of a stride-1, pad-1 correlation with respect to its input is the correlation of
    the output gradient with the kernel rotated by 180 degrees and with in/out channels swapped.
    """
    return xp.ascontiguousarray(taps[::-1].transpose(0, 2, 1))



class ConvWeights:
    """A 3x3 convolution's weights in the form its kernel consumes, built from the OIHW
    ``weight`` (for ``input_grad``: of the convolution that maps an output gradient back to
    the input). Forms are made on first use, so unused layers and fallbacks cost no memory.
    ``method`` forces one method (the CUDA backend's im2col + GEMM uses "gather" everywhere);
    ``winograd`` lets layers wide enough use Winograd even then (None: only when no method is
    forced). Both directions' Winograd method uses the forward kernels' U (``for_input_grad``)."""

    def __init__(self, weight: Any, xp: Any, input_grad: bool = False,
                 method: str | None = None, winograd: bool | None = None) -> None:
        self.weight, self.xp, self.input_grad = weight, xp, input_grad
        self._forced_method, self._allow_winograd = method, winograd
        self._forward: ConvWeights | None = None  # where an input gradient's U lives
        o, c = weight.shape[:2]
        self.out_channels, self.in_channels = (c, o) if input_grad else (o, c)
        o, c = self.out_channels, self.in_channels
        if method is not None:
            self.method = method
        elif c < GATHER_BELOW_CHANNELS:
            self.method = "gather"
        elif 9 * o <= c:
            self.method = "scatter"
        else:
            self.method = "shift"
        allowed = method is None if winograd is None else winograd
        self.winograd_tiles = winograd_tiles(c, o) if allowed else ()
        self._matrix = None
        self._winograd: tuple[int, Any] | None = None

    def for_input_grad(self) -> ConvWeights:
        """The weights of this convolution's input gradient, sharing this object's Winograd form
        (so a network holds each layer's U once for both passes)."""
        other = ConvWeights(self.weight, self.xp, input_grad=True, method=self._forced_method,
                            winograd=self._allow_winograd)
        other._forward = self
        return other

    def taps(self) -> Any:
        taps = conv_taps(self.weight, self.xp)
        return conv_taps_input_grad(taps, self.xp) if self.input_grad else taps

    @property
    def matrix(self) -> Any:
        """gather: (O, 9C), column block k = tap k; scatter: (9O, C); shift: (9, O, C)."""
        if self._matrix is None:
            taps, xp = self.taps(), self.xp
            o, c = self.out_channels, self.in_channels
            if self.method == "gather":
                self._matrix = xp.ascontiguousarray(taps.transpose(1, 0, 2).reshape(o, 9 * c))
            elif self.method == "scatter":
                self._matrix = taps.reshape(9 * o, c)
            else:
                self._matrix = taps
        return self._matrix

    def winograd(self, m: int) -> Any:
        """U = G g G^T for each (o, c) of the *forward* convolution (also for an input
        gradient, which uses U transposed): the kernel in the domain of Winograd's F(m x m, 3x3),
        shape ((m + 2)^2, O, C). Only the last m asked for is kept (a run at one size uses one).

        U[a, b] = sum over k, l of G[a, k] G[b, l] g[k, l]: one product of the Kronecker
        product G (x) G (its entries rounded once, from float64) with the nine taps: an einsum
        over the four indices took several times as long, in each run's first pass
        (docs/performance.md)."""
        if self._forward is not None:
            return self._forward.winograd(m)
        if self._winograd is None or self._winograd[0] != m:
            self._winograd = None  # free the other form first
            xp, taps = self.xp, conv_taps(self.weight, self.xp)
            o, c = taps.shape[1:]
            G = xp.asarray(WINOGRAD_G[m], dtype=xp.float64)
            GG = xp.kron(G, G).astype(taps.dtype)  # row a (m + 2) + b, column 3 k + l
            self._winograd = m, xp.matmul(GG, taps.reshape(9, o * c)).reshape((m + 2) ** 2, o, c)
        return self._winograd[1]


def shifted_taps(x: Any, first: int, rows: int, block: int, wp: int, k0: int, xp: Any) -> Any:
    """The nine taps' windows of ``x`` (., N) as one (3, 3, ``rows``, k0) view: tap (dy, dx)
    is rows ``block`` (3 dy + dx) onward and columns first + dy wp + dx onward (``block`` 0:
    every tap reads the same rows). One view, so that one NumPy call copies or sums all nine
    (each call takes the GIL again). Windows past the end of ``x`` are refused."""
    if 8 * block + rows > x.shape[0] or first + 2 * wp + 2 + k0 > x.shape[1]:
        raise ValueError(f"the nine taps' ({rows}, {k0}) windows from column {first} pass "
                         f"the end of a {tuple(x.shape)} array")
    s0, s1 = x.strides
    return xp.lib.stride_tricks.as_strided(
        x[:, first:], shape=(3, 3, rows, k0),
        strides=(3 * block * s0 + wp * s1, block * s0 + s1, s0, s1))


def conv3x3_padded(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, bias: Any = None,
                   relu: bool = False, workers: Workers = SEQUENTIAL, mask: Any = None,
                   src_mask: Any = None, pooled: Pooling | None = None,
                   src_fill: Callable[[slice], None] | None = None) -> Any:
    """3x3 cross-correlation, stride 1, zero padding 1, from padded flat ``src`` (C, L) to a new
    padded flat (O, L) buffer, optionally adding ``bias`` and applying ReLU, border zeroed;
    where it is > 0 into ``mask`` (bool, (O, L)) if given. With ``src_mask`` (bool, (C, L)),
    ``src`` is taken as zero where it is False (backprop through the ReLU that made ``src``;
    ``src`` may be zeroed there in place). With ``src_fill``, ``src`` is written by
    ``src_fill(channels)`` first, a block of channels at a time: by each block that a
    Winograd layer's two passes transform, as they read it, else in a map of its own (then
    masked in the same block). With ``pooled``, also the output's 2x2 pooling into it,
    border zeroed: by each block of output channels where Winograd runs in two passes
    (:func:`pool_rows`), else in passes of its own after the convolution
    (:func:`pool_whole`). ``workers`` run independent parts of the image at once."""
    dst, pooled_done = _convolve(src, h, w, cw, xp, bias, relu, workers, mask, src_mask,
                                 pooled, src_fill)
    if pooled is not None and not pooled_done:
        pool_whole(dst, h, w, pooled, xp, workers)
    return dst


def _convolve(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, bias: Any, relu: bool,
              workers: Workers, mask: Any, src_mask: Any, pooled: Pooling | None,
              src_fill: Callable[[slice], None] | None) -> tuple[Any, bool]:
    """:func:`conv3x3_padded` without a pooling after the convolution: the output, and whether
    ``pooled`` was made (by a Winograd layer's two passes, :func:`pool_rows`)."""
    m = winograd_tile(cw, h, w)
    # Winograd's layers (kernels.winograd._run) write and mask src themselves, the scatter
    # parts mask it as they read it
    if not m:
        masks_as_read = cw.method == "scatter"
        written_and_masked(src, None if masks_as_read else src_mask, src_fill, xp, workers)
        src_fill = None
        if not masks_as_read:
            src_mask = None
    o, c = cw.out_channels, cw.in_channels
    if m and cw.input_grad and not input_grad_as_forward(m):
        dst = winograd_input_grad(src, h, w, cw, xp, workers, m, src_mask, src_fill)
        if mask is not None:  # the other methods' parts fill it as they go
            relu_mask(dst, xp, workers, out=mask)
        return dst, False
    dst = xp.empty((o, padded_length(h, w)), dtype=src.dtype)
    if m:  # its parts zero the border beside the rows they write, and fill their mask
        rows_done = None if pooled is None else (
            lambda channels, first, stop: pool_rows(dst, h, w, pooled, channels, first, stop,
                                                    xp))
        done = winograd_forward(src, h, w, cw, dst, xp, bias, relu, workers, m, mask, src_mask,
                                rows_done, src_fill)
        return dst, done
    wp, size = w + 2, src.dtype.itemsize
    if cw.method == "scatter":
        def scatter(out: Any, c0: int, k0: int) -> None:
            """One (9 O, C) x (C, .) product of the columns the nine taps read (the masked
            gradient, while in cache), then its nine shifted (O, .) blocks summed into out in
            one call."""
            read = slice(c0, c0 + k0 + 2 * wp + 2)
            block = src[:, read] if src_mask is None else xp.multiply(src[:, read],
                                                                      src_mask[:, read])
            products = xp.matmul(cw.matrix, block)
            xp.sum(shifted_taps(products, 0, o, o, wp, k0, xp), axis=(0, 1), out=out)

        _by_rows(dst, h, w, xp, workers, (c + 9 * o) * size * wp, scatter, bias, relu, mask)
        return dst, False
    gather = cw.method == "gather"

    def taps(out: Any, c0: int, k0: int) -> None:
        """gather: the nine shifted views copied into one (9 C, .) matrix (one copy) and
        multiplied once; shift: nine products on shifted views, summed."""
        scratch = xp.empty((9 * c if gather else o, k0), dtype=src.dtype)
        if gather:
            scratch.reshape(3, 3, c, k0)[...] = shifted_taps(src, c0, c, 0, wp, k0, xp)
            xp.matmul(cw.matrix, scratch, out=out)
            return
        for k, (dy, dx) in enumerate(TAPS):
            s = dy * wp + dx + c0
            if k == 0:
                xp.matmul(cw.matrix[0], src[:, s : s + k0], out=out)
            else:
                xp.matmul(cw.matrix[k], src[:, s : s + k0], out=scratch)
                out += scratch

    row_bytes = (9 * c + o if gather else c + 2 * o) * size * wp
    _by_rows(dst, h, w, xp, workers, row_bytes, taps, bias, relu, mask)
    return dst, False


def _by_rows(dst: Any, h: int, w: int, xp: Any, workers: Workers, row_bytes: int,
             fill: Callable[[Any, int, int], None], bias: Any, relu: bool, mask: Any) -> None:
    """The direct methods in parts of whole output rows, each moving at most
    :func:`chunk_bytes` (``row_bytes`` a row): ``fill(out, c0, k0)`` writes the convolution
    into ``out``, its k0 columns from c0 on in the flat output positions, then the part adds
    ``bias``, applies the ReLU, zeroes the border beside its rows and fills their ``mask``
    while they are in cache. The columns written end before the last row's right border,
    which is the next part's."""
    wp = w + 2

    def image_rows(part: tuple[int, int]) -> None:
        r0, r1 = part
        c0, k0 = r0 * wp, (r1 - r0) * wp - 2
        out = dst[:, wp + 1 + c0 : wp + 1 + c0 + k0]
        fill(out, c0, k0)
        bias_relu(out, bias, relu, xp)
        finish_rows(dst, h, w, 1 + r0, 1 + r1, mask, xp)

    workers.map(image_rows, workers.split(h, max(1, chunk_bytes(xp) // row_bytes)))


def pool_whole(dst: Any, h: int, w: int, pooled: Pooling, xp: Any, workers: Workers) -> None:
    """The 2x2 pooling of the padded flat ``dst`` (H x W inside) into ``pooled`` (an odd last
    row or column left out), in passes of its own after the convolution: the pooling, then
    the border, each a block of channels per thread."""
    h2, w2 = h // 2, w // 2
    out = interior(pooled.out, h2, w2)
    if pooled.index is None:
        avg_pool2(interior(dst, h, w), xp, out, workers)
    else:
        max_pool2(interior(dst, h, w), xp, workers, out, pooled.index)
    workers.by_channels(lambda b: zero_border(pooled.out[b], h2, w2), pooled.out.shape[0])


def pool_rows(dst: Any, h: int, w: int, pooled: Pooling, channels: slice, first: int,
              stop: int, xp: Any) -> None:
    """The 2x2 pooling of image rows ``first`` .. ``stop`` - 1 (``first`` even) of the padded
    flat ``dst``'s ``channels`` into the rows they cover of ``pooled`` (as
    :func:`pool_whole`), whose border is zeroed within their span
    (:func:`.layout.zero_border_rows`), while they are in the cache."""
    if first % 2:
        raise ValueError(f"a 2x2 pooling of rows from {first}: they must start on an even row")
    h2, w2 = h // 2, w // 2
    p0, p1 = first // 2, stop // 2
    buf = pooled.out[channels]
    if p1 <= p0:  # an odd last row alone: the rows above zeroed the bottom ones
        if not h2:  # no rows at all: nobody else zeroes them
            zero_border(buf, h2, w2)
        return
    index = None if pooled.index is None else pooled.index[channels, p0:p1]
    pool_block(interior(dst[channels], h, w)[:, 2 * p0 : 2 * p1],
               interior(buf, h2, w2)[:, p0:p1], index, xp)
    zero_border_rows(buf, h2, w2, 1 + p0, 1 + p1)


def chunk_bytes(xp: Any) -> int:
    """What a part of the direct methods' rows moves at most: CPU_CHUNK_BYTES with NumPy,
    CHUNK_BYTES elsewhere."""
    return CPU_CHUNK_BYTES if on_cpu(xp) else CHUNK_BYTES
