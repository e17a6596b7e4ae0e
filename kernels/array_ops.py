"""Compute primitives of the engine, written once over an array module ``xp``.

Activations live in a *padded flat* layout: a (C, L) array holding, per channel, the image with a
one-pixel zero border as rows of width W + 2, flattened, plus two slack elements, so
L = (H + 2) (W + 2) + 2. In that layout a 3x3 convolution is a sum over nine taps of
(O, C) x (C, H (W + 2)) matrix products whose right-hand side is a shifted, strided view of the
input that BLAS reads in place: no im2col of the whole image, and the product lands directly in
the next layer's padded buffer (its two junk columns per row fall on the border, which is then
zeroed). Pooling and losses use the interior view, (C, H, W) without the border.

Functions work in the dtype of their inputs (float32 for synthesis, float64 for gradient checks).
NumPy and CuPy both provide every call used here.
"""
from __future__ import annotations

from typing import Any

from .workers import SEQUENTIAL, Workers

# Offsets of the nine taps of a 3x3 kernel in row-major order; tap k is weight[:, :, dy, dx].
TAPS = [(dy, dx) for dy in range(3) for dx in range(3)]
# How a convolution is computed (measured on 2 Xeon cores with OpenBLAS, bench/):
# - "gather" when C < GATHER_BELOW_CHANNELS (conv1_1, C = 3): the nine shifted views are copied
#   into one (9C, chunk) matrix and multiplied once, so the product has K = 9C, not K = 3;
# - "scatter" when 9 O <= C (the input gradient of conv1_1, O = 3): one (9O, C) x (C, L) product
#   for all taps, then nine shifted sums of its small (O, .) blocks;
# - "winograd" when C and O >= WINOGRAD_FROM_CHANNELS and the image has room for tiles: Winograd's
#   F(m x m, 3x3) (Lavin & Gray 2016), m = 4 where it can (36 products of (O, C) x (C, tiles) per
#   4x4 outputs instead of the direct method's 144 multiply-adds per (o, c), 4x fewer), else
#   m = 2 (2.25x fewer); the transforms are cheap next to the products only when the channels
#   are many. Rows and columns beyond the last whole tile go to the direct method. On 2 cores
#   F(4x4) is 1.4-2.2x faster than the direct method for every layer of VGG-19 from conv1_2 on.
#   The input gradient runs the same algorithm transposed (``_winograd_input_grad``), on the
#   forward kernels' own transform U: no second copy of the kernels in the Winograd domain;
# - "shift" otherwise: nine (O, C) x (C, chunk) products on shifted views, accumulated.
GATHER_BELOW_CHANNELS = 16
WINOGRAD_FROM_CHANNELS = 64
# Columns per chunk: large chunks keep BLAS efficient on both cores (4 MB chunks were 10-30 %
# slower); the bound keeps scratch memory flat for very large images.
CHUNK_BYTES = 64 << 20
WINOGRAD_CHUNK_BYTES = 32 << 20  # per part; smaller parts starve the products (bench/)
WINOGRAD_TILES = (4, 2)  # the largest m of F(m x m, 3x3) the image has room for is used
WINOGRAD_FROM_SIDE = 2  # tiles per side at least, or the remainder costs more than it saves
# Whole tiles a layer needs for each m: every part of a layer reads all of U, and F(4x4)'s U is
# 2.25x F(2x2)'s, so on small layers F(4x4) is slower (512 channels, forward + input gradient
# on 2 cores: 20 ms against 15 at 16x24, even at 28x28, 27 against 30 at 32x32; bench/).
WINOGRAD_MIN_TILES = {4: 64, 2: 1}


def padded_length(h: int, w: int) -> int:
    return (h + 2) * (w + 2) + 2


def interior(buf: Any, h: int, w: int) -> Any:
    """The (C, H, W) view of the image inside a padded flat buffer."""
    return buf[:, : (h + 2) * (w + 2)].reshape(buf.shape[0], h + 2, w + 2)[:, 1 : h + 1, 1 : w + 1]


def zero_border(buf: Any, h: int, w: int) -> None:
    """Zero the border and slack of a padded flat buffer (where junk columns land)."""
    grid = buf[:, : (h + 2) * (w + 2)].reshape(buf.shape[0], h + 2, w + 2)
    grid[:, 0, :] = 0
    grid[:, h + 1, :] = 0
    grid[:, :, 0] = 0
    grid[:, :, w + 1] = 0
    buf[:, (h + 2) * (w + 2) :] = 0


def to_padded(x: Any, xp: Any) -> Any:
    """(C, H, W) -> padded flat (C, L)."""
    c, h, w = x.shape
    buf = xp.zeros((c, padded_length(h, w)), dtype=x.dtype)
    interior(buf, h, w)[...] = x
    return buf


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
    ``method`` forces one method (the CUDA backend's im2col + GEMM uses "gather" everywhere).
    Both directions' Winograd method uses the forward kernels' U (see ``for_input_grad``)."""

    def __init__(self, weight: Any, xp: Any, input_grad: bool = False,
                 method: str | None = None) -> None:
        self.weight, self.xp, self.input_grad = weight, xp, input_grad
        self._forced_method = method
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
        self.winograd_tiles = winograd_tiles(c, o) if method is None else ()
        self._matrix = None
        self._winograd: tuple[int, Any] | None = None

    def for_input_grad(self) -> ConvWeights:
        """The weights of this convolution's input gradient, sharing this object's Winograd form
        (so a network holds each layer's U once for both passes)."""
        other = ConvWeights(self.weight, self.xp, input_grad=True, method=self._forced_method)
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
        shape ((m + 2)^2, O, C). Only the last m asked for is kept (a run at one size uses one)."""
        if self._forward is not None:
            return self._forward.winograd(m)
        if self._winograd is None or self._winograd[0] != m:
            self._winograd = None  # free the other form first
            xp, taps = self.xp, conv_taps(self.weight, self.xp)
            o, c = taps.shape[1:]
            G = xp.asarray(WINOGRAD_G[m], dtype=taps.dtype)
            g = taps.reshape(3, 3, o, c)
            self._winograd = m, xp.ascontiguousarray(
                xp.einsum("ak,kloc,bl->aboc", G, g, G).reshape((m + 2) ** 2, o, c))
        return self._winograd[1]


# Winograd's minimal filtering (Lavin & Gray 2016): F(m x m, 3x3) turns (m + 2)^2 input tiles
# into m x m outputs with Y = A^T [(G g G^T) * (B^T d B)] A; G here, B^T and A^T as code below.
WINOGRAD_G = {
    2: [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
    4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
}


def _input_transform_2(d: list, xp: Any, out: list | None = None) -> list:
    """B^T d for F(2x2, 3x3) along a list of 4 arrays: d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    out = out if out is not None else [None] * 4
    return [xp.subtract(d[0], d[2], out=out[0]), xp.add(d[1], d[2], out=out[1]),
            xp.subtract(d[2], d[1], out=out[2]), xp.subtract(d[1], d[3], out=out[3])]


def _output_transform_2(m: list, xp: Any) -> list:
    """A^T m for F(2x2, 3x3): m0 + m1 + m2, m1 - m2 - m3."""
    y0 = m[0] + m[1]
    y0 += m[2]
    y1 = m[1] - m[2]
    y1 -= m[3]
    return [y0, y1]


def _input_transform_4(d: list, xp: Any, out: list | None = None) -> list:
    """B^T d for F(4x4, 3x3) along a list of 6 arrays, rows of B^T being
    (4 0 -5 0 1 0), (0 -4 -4 1 1 0), (0 4 -4 -1 1 0), (0 -2 -1 2 1 0), (0 2 -1 -2 1 0),
    (0 4 0 -5 0 1); shared sums keep it to 21 array operations."""
    out = out if out is not None else [None] * 6
    v0 = xp.multiply(d[0], 4, out=out[0])
    v0 += d[4]
    v0 -= 5 * d[2]
    v5 = xp.multiply(d[1], 4, out=out[5])
    v5 += d[5]
    v5 -= 5 * d[3]
    v1 = xp.add(d[1], d[2], out=out[1])
    v1 *= -4
    v1 += d[3]
    v1 += d[4]
    v2 = xp.subtract(d[1], d[2], out=out[2])
    v2 *= 4
    v2 += d[4]
    v2 -= d[3]
    f = d[4] - d[2]
    g = d[3] - d[1]
    g *= 2
    v3 = xp.add(f, g, out=out[3])
    v4 = xp.subtract(f, g, out=out[4])
    return [v0, v1, v2, v3, v4, v5]


def _output_transform_4(m: list, xp: Any) -> list:
    """A^T m for F(4x4, 3x3), rows of A^T being (1 1 1 1 1 0), (0 1 -1 2 -2 0), (0 1 1 4 4 0),
    (0 1 -1 8 -8 1)."""
    a = m[1] + m[2]
    b = m[1] - m[2]
    c = m[3] + m[4]
    d = m[3] - m[4]
    y0 = m[0] + a
    y0 += c
    y1 = 2 * d
    y1 += b
    y2 = 4 * c
    y2 += a
    d *= 8
    y3 = b + d
    y3 += m[5]
    return [y0, y1, y2, y3]


WINOGRAD_TRANSFORMS = {2: (_input_transform_2, _output_transform_2),
                       4: (_input_transform_4, _output_transform_4)}


# The transposed transforms, for the input gradient: A (from m arrays to m + 2) on the output
# gradient and B (m + 2 to m + 2) on the products. An ``out`` entry may be None; an output that
# equals an input is then that input itself (callers only read it).

def _put(x: Any, out: Any, xp: Any) -> Any:
    if out is None:
        return x
    xp.copyto(out, x)
    return out


def _output_transform_2_transposed(y: list, xp: Any, out: list | None = None) -> list:
    """A y for F(2x2, 3x3): y0, y0 + y1, y0 - y1, -y1."""
    out = out if out is not None else [None] * 4
    return [_put(y[0], out[0], xp), xp.add(y[0], y[1], out=out[1]),
            xp.subtract(y[0], y[1], out=out[2]), xp.negative(y[1], out=out[3])]


def _input_transform_2_transposed(v: list, xp: Any, out: list | None = None) -> list:
    """B v for F(2x2, 3x3): v0, v1 - v2 + v3, v1 + v2 - v0, -v3."""
    out = out if out is not None else [None] * 4
    d1 = xp.subtract(v[1], v[2], out=out[1])
    d1 += v[3]
    d2 = xp.add(v[1], v[2], out=out[2])
    d2 -= v[0]
    return [_put(v[0], out[0], xp), d1, d2, xp.negative(v[3], out=out[3])]


def _output_transform_4_transposed(y: list, xp: Any, out: list | None = None) -> list:
    """A y for F(4x4, 3x3), columns of A^T: y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3,
    y0 + 2 y1 + 4 y2 + 8 y3, y0 - 2 y1 + 4 y2 - 8 y3, y3."""
    out = out if out is not None else [None] * 6
    even = y[0] + y[2]
    odd = y[1] + y[3]
    w1 = xp.add(even, odd, out=out[1])
    w2 = xp.subtract(even, odd, out=out[2])
    even = xp.multiply(y[2], 4, out=even)
    even += y[0]
    odd = xp.multiply(y[3], 4, out=odd)
    odd += y[1]
    odd *= 2
    w3 = xp.add(even, odd, out=out[3])
    w4 = xp.subtract(even, odd, out=out[4])
    return [_put(y[0], out[0], xp), w1, w2, w3, w4, _put(y[3], out[5], xp)]


def _input_transform_4_transposed(v: list, xp: Any, out: list | None = None) -> list:
    """B v for F(4x4, 3x3), columns of B^T: 4 v0, -4 v1 + 4 v2 - 2 v3 + 2 v4 + 4 v5,
    -5 v0 - 4 v1 - 4 v2 - v3 - v4, v1 - v2 + 2 v3 - 2 v4 - 5 v5, v0 + v1 + v2 + v3 + v4, v5."""
    out = out if out is not None else [None] * 6
    p = v[1] - v[2]
    q = v[3] - v[4]
    q *= 2
    r = v[1] + v[2]
    s = v[3] + v[4]
    d1 = xp.subtract(v[5], p, out=out[1])
    d1 *= 4
    d1 -= q
    d3 = xp.add(p, q, out=out[3])
    d3 -= 5 * v[5]
    d2 = xp.multiply(r, -4, out=out[2])
    d2 -= s
    d2 -= 5 * v[0]
    d4 = xp.add(r, s, out=out[4])
    d4 += v[0]
    return [xp.multiply(v[0], 4, out=out[0]), d1, d2, d3, d4, _put(v[5], out[5], xp)]


WINOGRAD_TRANSFORMS_TRANSPOSED = {
    2: (_input_transform_2_transposed, _output_transform_2_transposed),
    4: (_input_transform_4_transposed, _output_transform_4_transposed)}


def conv3x3_padded(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, bias: Any = None,
                   relu: bool = False, workers: Workers = SEQUENTIAL) -> Any:
    """3x3 cross-correlation, stride 1, zero padding 1, from padded flat ``src`` (C, L) to a new
    padded flat (O, L) buffer, optionally adding ``bias`` and applying ReLU, border zeroed.
    ``workers`` run independent parts of the image at once."""
    wp = w + 2
    n = h * wp
    o, c = cw.out_channels, cw.in_channels
    dst = xp.empty((o, padded_length(h, w)), dtype=src.dtype)
    if cw.method == "scatter":
        products = matmul_columns(cw.matrix, src, xp, workers)  # (9 O, L): every tap, everywhere
        out = dst[:, wp + 1 : wp + 1 + n]
        for k, (dy, dx) in enumerate(TAPS):
            s = dy * wp + dx
            block = products[k * o : (k + 1) * o, s : s + n]
            if k == 0:
                out[...] = block
            else:
                out += block
        _bias_relu(out, bias, relu, xp)
        zero_border(dst, h, w)
        return dst
    first = 0  # the first flat output position left to the direct method
    m = winograd_tile(cw, h, w)
    if m and cw.input_grad:
        return _winograd_input_grad(src, h, w, cw, xp, workers, m)
    if m:
        # Winograd on the largest block of whole m x m tiles; the direct method for the
        # remainder: the last h % m rows (contiguous in the flat layout, so below) and, beside
        # the block, the last w % m columns (through a small copy of their input).
        hm, wm = h - h % m, w - w % m
        _winograd(src, h, w, cw, dst, xp, bias, relu, workers, m, hm // m, wm // m)
        if wm < w:
            r = w - wm
            side = xp.zeros((c, padded_length(hm, r)), dtype=src.dtype)
            side[:, : (hm + 2) * (r + 2)].reshape(c, hm + 2, r + 2)[...] = \
                src[:, : (h + 2) * wp].reshape(c, h + 2, wp)[:, : hm + 2, wm:]
            part = conv3x3_padded(side, hm, r, cw, xp, bias, relu, workers)
            interior(dst, h, w)[:, :hm, wm:] = interior(part, hm, r)
        first = hm * wp
    gather = cw.method == "gather"
    row_bytes = (9 * c + o if gather else c + 2 * o) * src.dtype.itemsize

    def columns(part: tuple[int, int]) -> None:
        c0, c1 = first + part[0], first + part[1]
        k0 = c1 - c0
        out = dst[:, wp + 1 + c0 : wp + 1 + c1]
        scratch = xp.empty((9 * c if gather else o, k0), dtype=src.dtype)
        for k, (dy, dx) in enumerate(TAPS):
            s = dy * wp + dx + c0
            if gather:
                scratch[k * c : (k + 1) * c] = src[:, s : s + k0]
            elif k == 0:
                xp.matmul(cw.matrix[0], src[:, s : s + k0], out=out)
            else:
                xp.matmul(cw.matrix[k], src[:, s : s + k0], out=scratch)
                out += scratch
        if gather:
            xp.matmul(cw.matrix, scratch, out=out)
        _bias_relu(out, bias, relu, xp)

    if first < n:
        workers.map(columns, workers.split(n - first, max(256, CHUNK_BYTES // row_bytes), 256))
    zero_border(dst, h, w)
    return dst


def _bias_relu(out: Any, bias: Any, relu: bool, xp: Any) -> None:
    """Add a per-channel ``bias`` to ``out`` (channels first, any shape) and apply ReLU, in place."""
    if bias is not None:
        out += bias.reshape(-1, *([1] * (out.ndim - 1)))
    if relu:
        xp.maximum(out, 0, out=out)


def winograd_tiles(c: int, o: int) -> tuple[int, ...]:
    """The m of F(m x m, 3x3), largest first, that a C -> O convolution may use (none: direct)."""
    if min(c, o) < WINOGRAD_FROM_CHANNELS:
        return ()
    return WINOGRAD_TILES


def winograd_tile(cw: ConvWeights, h: int, w: int) -> int:
    """m of the F(m x m, 3x3) Winograd method for this layer and image (0: not Winograd)."""
    return next((m for m in cw.winograd_tiles if min(h, w) >= WINOGRAD_FROM_SIDE * m
                 and (h // m) * (w // m) >= WINOGRAD_MIN_TILES[m]), 0)


def _columns(rows: Any, first: int, count: int, tiles: int, m: int, xp: Any) -> list:
    """Columns first + j, first + j + m, ... (``tiles`` of them) of ``rows`` for j < ``count``,
    each copied once into a contiguous array: the transforms then read them several times at
    unit stride, which made those steps 1.4-1.6x faster than reading the strided views."""
    return [xp.ascontiguousarray(rows[..., first + j : first + j + m * tiles : m])
            for j in range(count)]


def _winograd(src: Any, h: int, w: int, cw: ConvWeights, dst: Any, xp: Any, bias: Any,
              relu: bool, workers: Workers, m: int, th: int, tw: int) -> None:
    """F(m x m, 3x3) Winograd convolution of padded flat ``src`` into the top-left ``th`` x ``tw``
    tiles of m x m outputs in the interior of ``dst``.

    Output tile (ty, tx) covers rows m ty .. m ty + m - 1 and the same columns; it reads the
    (m + 2)^2 input tile at padded rows and columns m ty .. m ty + m + 1. Input tiles go through
    V = B^T d B, the (m + 2)^2 products M = U V run as one batched matmul, and Y = A^T M A gives
    the m x m outputs. Tile rows are processed in parts, so the transformed buffers stay small
    (bounded for large images) and the parts run on all workers.
    """
    c, o = cw.in_channels, cw.out_channels
    a = m + 2
    wp = w + 2
    grid = src[:, : (h + 2) * wp].reshape(c, h + 2, wp)
    out_grid = dst[:, : (h + 2) * wp].reshape(o, h + 2, wp)
    U = cw.winograd(m)
    input_transform, output_transform = WINOGRAD_TRANSFORMS[m]

    def tile_rows(part: tuple[int, int]) -> None:
        t0, t1 = part
        n = t1 - t0
        rows = input_transform([grid[:, m * t0 + i : m * t1 + i : m, :] for i in range(a)], xp)
        V = xp.empty((a * a, c, n, tw), dtype=src.dtype)
        for i, t in enumerate(rows):  # (c, n, wp) each: now B^T along columns
            input_transform(_columns(t, 0, a, tw, m, xp), xp, out=list(V[a * i : a * (i + 1)]))
        del rows
        M = xp.matmul(U, V.reshape(a * a, c, n * tw)).reshape(a, a, o, n, tw)
        del V
        for i, s in enumerate(output_transform(list(M), xp)):  # A^T along rows, then columns
            for j, y in enumerate(output_transform(list(s), xp)):
                _bias_relu(y, bias, relu, xp)  # while the part is in cache
                out_grid[:, 1 + m * t0 + i : 1 + m * t1 + i : m, 1 + j : 1 + j + m * tw : m] = y

    row_bytes = a * a * (c + o) * tw * src.dtype.itemsize
    workers.map(tile_rows, workers.split(th, max(1, WINOGRAD_CHUNK_BYTES // row_bytes)))


def _winograd_input_grad(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, workers: Workers,
                         m: int) -> Any:
    """The input gradient of a 3x3 convolution through the transpose of its Winograd F(m x m)
    form: from the output gradient ``src`` (padded flat) to a new padded flat buffer.

    The forward pass is Y = A^T [U (B^T d B)] A per tile, so the gradient with respect to the
    input tile d is B [U^T (A dY A^T)] B^T, and the (m + 2)^2 input tiles, which overlap by two
    rows and columns, add up. Only the forward U is needed (transposed in the products). Where
    the image is not a whole number of tiles, the output gradient is extended by zeros to one.
    """
    th, tw = -(-h // m), -(-w // m)
    co, c = cw.out_channels, cw.in_channels  # co: the forward's input channels
    if (th * m, tw * m) != (h, w):
        he, we = th * m, tw * m
        whole = xp.zeros((c, padded_length(he, we)), dtype=src.dtype)
        interior(whole, he, we)[:, :h, :w] = interior(src, h, w)
        full = _winograd_input_grad(whole, he, we, cw, xp, workers, m)
        del whole
        dst = xp.empty((co, padded_length(h, w)), dtype=src.dtype)
        interior(dst, h, w)[...] = interior(full, he, we)[:, :h, :w]
        zero_border(dst, h, w)
        return dst
    a = m + 2
    wp = w + 2
    grid = src[:, : (h + 2) * wp].reshape(c, h + 2, wp)
    dst = xp.empty((co, padded_length(h, w)), dtype=src.dtype)
    out_grid = dst[:, : (h + 2) * wp].reshape(co, h + 2, wp)
    UT = cw.winograd(m).transpose(0, 2, 1)  # (a^2, co, c): BLAS reads the transpose in place
    input_transposed, output_transposed = WINOGRAD_TRANSFORMS_TRANSPOSED[m]
    overflow: dict[int, list] = {}  # per part: its last tile's two rows beyond the part

    def tile_rows(part: tuple[int, int]) -> None:
        t0, t1 = part
        n = t1 - t0
        rows = output_transposed([grid[:, 1 + m * t0 + i : 1 + m * t1 + i : m, :]
                                  for i in range(m)], xp)
        W = xp.empty((a * a, c, n, tw), dtype=src.dtype)
        for i, r in enumerate(rows):  # (c, n, wp) each: now A along columns
            output_transposed(_columns(r, 1, m, tw, m, xp), xp, out=list(W[a * i : a * (i + 1)]))
        del rows
        M = xp.matmul(UT, W.reshape(a * a, c, n * tw)).reshape(a, a, co, n, tw)
        del W
        # B along columns; tile columns overlap by two, so offsets m and m + 1 add onto
        # offsets 0 and 1 of the next tile.
        R = xp.empty((a, co, n, wp), dtype=src.dtype)
        for i in range(a):
            cols = input_transposed(list(M[i]), xp)
            for j in range(m):  # strided writes once, not in every step of the transform
                R[i, :, :, j : j + m * tw : m] = cols[j]
            for k in range(2):
                R[i, :, :, m + k : m * tw + k : m] += cols[m + k][..., :-1]
                R[i, :, :, m * tw + k] = cols[m + k][..., -1]
        del M
        # B along rows, likewise; the last tile's two extra rows belong to the next part.
        out = [out_grid[:, m * t0 + i : m * t1 + i : m, :] for i in range(m)]
        rows = input_transposed(list(R), xp, out=out + [None, None])
        for k in range(2):
            out_grid[:, m * t0 + m + k : m * t1 + k : m, :] += rows[m + k][:, :-1]
        overflow[t1] = [rows[m + k][:, -1].copy() for k in range(2)]

    row_bytes = (a * a * (c + co) * tw + a * co * wp) * src.dtype.itemsize
    workers.map(tile_rows, workers.split(th, max(1, WINOGRAD_CHUNK_BYTES // row_bytes)))
    for t1, extra in overflow.items():
        for k in range(2):
            if t1 < th:
                out_grid[:, m * t1 + k] += extra[k]
            else:  # below the last tile: rows h and h + 1 (the border), nobody else's
                out_grid[:, m * t1 + k] = extra[k]
    zero_border(dst, h, w)
    return dst


def relu(x: Any, xp: Any) -> Any:
    return xp.maximum(x, 0)


def relu_mask(x: Any, xp: Any, workers: Workers = SEQUENTIAL) -> Any:
    """Where ``x`` > 0, as booleans: what backprop through a ReLU needs of its output."""
    mask = xp.empty(x.shape, dtype=bool)
    workers.by_channels(lambda b: xp.greater(x[b], 0, out=mask[b]), x.shape[0])
    return mask


def relu_backward(grad: Any, mask: Any, xp: Any, workers: Workers = SEQUENTIAL) -> Any:
    """Gradient through ReLU, in place: passes where ``mask`` (its output > 0) is set, else 0."""
    workers.by_channels(lambda b: xp.multiply(grad[b], mask[b], out=grad[b]), grad.shape[0])
    return grad


def _window(x: Any, i: int, j: int) -> Any:
    """Element (i, j) of every 2x2 window of (C, H, W), as a strided view (C, H//2, W//2); an odd
    last row or column is left out (floor mode). Slicing, unlike reshape, never copies."""
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    return x[:, i : 2 * h2 : 2, j : 2 * w2 : 2]


WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))


def avg_pool2(x: Any, xp: Any, out: Any = None, workers: Workers = SEQUENTIAL) -> Any:
    """2x2 average pooling, stride 2, of a (C, H, W) array or view (into ``out`` if given)."""
    if out is None:
        out = xp.empty((x.shape[0], x.shape[1] // 2, x.shape[2] // 2), dtype=x.dtype)

    def channels(b: slice) -> None:
        xs, o = x[b], out[b]
        xp.add(_window(xs, 0, 0), _window(xs, 0, 1), out=o)
        o += _window(xs, 1, 0)
        o += _window(xs, 1, 1)
        o *= 0.25

    workers.by_channels(channels, x.shape[0])
    return out


def avg_pool2_backward(grad: Any, in_shape: tuple[int, int, int], xp: Any, out: Any = None,
                       workers: Workers = SEQUENTIAL) -> Any:
    """Spread each output gradient evenly over its 2x2 window; ``out`` (zeroed, in_shape) may be
    a view to write into."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)

    def channels(b: slice) -> None:
        quarter = grad[b] * 0.25
        for i, j in WINDOW:
            _window(out[b], i, j)[...] = quarter

    workers.by_channels(channels, grad.shape[0])
    return out


def max_pool2(x: Any, xp: Any) -> tuple[Any, Any]:
    """2x2 max pooling, stride 2. Returns the output and the index (0..3) of each maximum
    (the first one on ties)."""
    windows = xp.stack([_window(x, i, j) for i, j in WINDOW], axis=3)
    index = windows.argmax(axis=3).astype(xp.int8)
    return xp.take_along_axis(windows, index[..., None].astype(xp.intp), axis=3)[..., 0], index


def max_pool2_backward(grad: Any, index: Any, in_shape: tuple[int, int, int], xp: Any,
                       out: Any = None) -> Any:
    """Route each output gradient to the input that was the maximum of its window; ``out``
    (zeroed, in_shape) may be a view to write into."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)
    for k, (i, j) in enumerate(WINDOW):
        _window(out, i, j)[...] = grad * (index == k)
    return out


def gram(F: Any, workers: Workers = SEQUENTIAL) -> Any:
    """Gram matrix G = F F^T of an (N_l, M_l) feature matrix (eq. 3); with several workers, the
    sum of the Gram matrices of column blocks, one block per thread."""
    parts = workers.per_thread(F.shape[1])
    if len(parts) < 2:
        return F @ F.T
    partial = [None] * len(parts)

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
