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

# Offsets of the nine taps of a 3x3 kernel in row-major order; tap k is weight[:, :, dy, dx].
TAPS = [(dy, dx) for dy in range(3) for dx in range(3)]
# How a convolution is computed (measured on 2 Xeon cores with OpenBLAS, bench/):
# - "gather" when C < GATHER_BELOW_CHANNELS (conv1_1, C = 3): the nine shifted views are copied
#   into one (9C, chunk) matrix and multiplied once, so the product has K = 9C, not K = 3;
# - "scatter" when 9 O <= C (the input gradient of conv1_1, O = 3): one (9O, C) x (C, L) product
#   for all taps, then nine shifted sums of its small (O, .) blocks;
# - "winograd" when C and O >= WINOGRAD_FROM_CHANNELS, C * O >= WINOGRAD_FROM_PRODUCT and H, W are
#   even: Winograd's F(2x2, 3x3)
#   (Lavin & Gray 2016), 16 products of (O, C) x (C, tiles) instead of the 36 multiply-adds per
#   2x2 outputs of the direct method, 2.25x fewer; the transforms are cheap next to the products
#   only when the channels are many;
# - "shift" otherwise: nine (O, C) x (C, chunk) products on shifted views, accumulated.
GATHER_BELOW_CHANNELS = 16
WINOGRAD_FROM_CHANNELS = 64
WINOGRAD_FROM_PRODUCT = 64 * 128  # 64 -> 64 layers at full resolution are faster direct
# Columns per chunk: large chunks keep BLAS efficient on both cores (4 MB chunks were 10-30 %
# slower); the bound keeps scratch memory flat for very large images.
CHUNK_BYTES = 64 << 20


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
    the input). Forms are made on first use, so unused layers and fallbacks cost no memory."""

    def __init__(self, weight: Any, xp: Any, input_grad: bool = False) -> None:
        self.weight, self.xp, self.input_grad = weight, xp, input_grad
        o, c = weight.shape[:2]
        self.out_channels, self.in_channels = (c, o) if input_grad else (o, c)
        o, c = self.out_channels, self.in_channels
        if c < GATHER_BELOW_CHANNELS:
            self.method = "gather"
        elif 9 * o <= c:
            self.method = "scatter"
        else:
            self.method = "shift"
        self.use_winograd = min(o, c) >= WINOGRAD_FROM_CHANNELS and o * c >= WINOGRAD_FROM_PRODUCT
        self._matrix = self._winograd = None

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

    @property
    def winograd(self) -> Any:
        """U = G g G^T for each (o, c): the kernel in the Winograd domain, (16, O, C)."""
        if self._winograd is None:
            xp, taps = self.xp, self.taps()
            o, c = self.out_channels, self.in_channels
            G = xp.asarray([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]],
                           dtype=taps.dtype)
            g = taps.reshape(3, 3, o, c)
            self._winograd = xp.ascontiguousarray(
                xp.einsum("ak,kloc,bl->aboc", G, g, G).reshape(16, o, c))
        return self._winograd


def conv3x3_padded(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, bias: Any = None,
                   relu: bool = False) -> Any:
    """3x3 cross-correlation, stride 1, zero padding 1, from padded flat ``src`` (C, L) to a new
    padded flat (O, L) buffer, optionally adding ``bias`` and applying ReLU, border zeroed."""
    wp = w + 2
    n = h * wp
    o, c = cw.out_channels, cw.in_channels
    dst = xp.empty((o, padded_length(h, w)), dtype=src.dtype)
    if cw.method == "scatter":
        products = cw.matrix @ src  # (9 O, L): every tap's product at every position
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
    if cw.use_winograd and h % 2 == 0 and w % 2 == 0:
        _winograd(src, h, w, cw, dst, xp, bias, relu)
        zero_border(dst, h, w)
        return dst
    row_bytes = (9 * c + o if cw.method == "gather" else c + 2 * o) * src.dtype.itemsize
    chunk = int(min(n, max(256, CHUNK_BYTES // row_bytes)))
    scratch = xp.empty((9 * c if cw.method == "gather" else o, chunk), dtype=src.dtype)
    for c0 in range(0, n, chunk):
        m = min(chunk, n - c0)
        out = dst[:, wp + 1 + c0 : wp + 1 + c0 + m]
        if cw.method == "gather":
            cols = scratch[:, :m]
            for k, (dy, dx) in enumerate(TAPS):
                s = dy * wp + dx + c0
                cols[k * c : (k + 1) * c] = src[:, s : s + m]
            xp.matmul(cw.matrix, cols, out=out)
        else:
            part = scratch[:, :m]
            for k, (dy, dx) in enumerate(TAPS):
                s = dy * wp + dx + c0
                if k == 0:
                    xp.matmul(cw.matrix[0], src[:, s : s + m], out=out)
                else:
                    xp.matmul(cw.matrix[k], src[:, s : s + m], out=part)
                    out += part
        _bias_relu(out, bias, relu, xp)
    zero_border(dst, h, w)
    return dst


def _bias_relu(out: Any, bias: Any, relu: bool, xp: Any) -> None:
    """Add a per-channel ``bias`` to ``out`` (channels first, any shape) and apply ReLU, in place."""
    if bias is not None:
        out += bias.reshape(-1, *([1] * (out.ndim - 1)))
    if relu:
        xp.maximum(out, 0, out=out)


def _winograd(src: Any, h: int, w: int, cw: ConvWeights, dst: Any, xp: Any, bias: Any,
              relu: bool) -> None:
    """F(2x2, 3x3) Winograd convolution of padded flat ``src`` into the interior of ``dst``.

    Output tile (ty, tx) covers rows 2ty, 2ty+1 and columns 2tx, 2tx+1; it reads the 4x4 input
    tile at padded rows 2ty..2ty+3, columns 2tx..2tx+3. Input tiles go through V = B^T d B, the
    16 products M = U V run as one batched matmul, and Y = A^T M A gives the 2x2 outputs. Tile
    rows are processed in chunks so the transformed buffers stay bounded for large images.
    """
    c, o = cw.in_channels, cw.out_channels
    wp = w + 2
    th, tw = h // 2, w // 2
    grid = src[:, : (h + 2) * wp].reshape(c, h + 2, wp)
    out_grid = dst[:, : (h + 2) * wp].reshape(o, h + 2, wp)
    rows_per_chunk = max(1, int(CHUNK_BYTES // (16 * (c + o) * tw * src.dtype.itemsize)))
    for t0 in range(0, th, rows_per_chunk):
        t1 = min(th, t0 + rows_per_chunk)
        n = t1 - t0
        r = [grid[:, 2 * t0 + i : 2 * t1 + i : 2, :] for i in range(4)]  # (c, n, wp) each
        # B^T on rows, then on columns: x0 - x2, x1 + x2, x2 - x1, x1 - x3.
        rows = (r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3])
        V = xp.empty((16, c, n, tw), dtype=src.dtype)
        for a, t in enumerate(rows):
            col = [t[:, :, j : j + 2 * tw : 2] for j in range(4)]
            xp.subtract(col[0], col[2], out=V[4 * a])
            xp.add(col[1], col[2], out=V[4 * a + 1])
            xp.subtract(col[2], col[1], out=V[4 * a + 2])
            xp.subtract(col[1], col[3], out=V[4 * a + 3])
        M = xp.matmul(cw.winograd, V.reshape(16, c, n * tw)).reshape(4, 4, o, n, tw)
        # A^T on rows (x0 + x1 + x2, x1 - x2 - x3), then on columns.
        s0 = M[0] + M[1]
        s0 += M[2]
        s1 = M[1] - M[2]
        s1 -= M[3]
        for i, s in enumerate((s0, s1)):
            y0 = s[0] + s[1]
            y0 += s[2]
            y1 = s[1] - s[2]
            y1 -= s[3]
            _bias_relu(y0, bias, relu, xp)  # while the chunk is in cache
            _bias_relu(y1, bias, relu, xp)
            rows_out = slice(1 + 2 * t0 + i, 1 + 2 * t1 + i, 2)
            out_grid[:, rows_out, 1 : 1 + 2 * tw : 2] = y0
            out_grid[:, rows_out, 2 : 2 + 2 * tw : 2] = y1


def conv3x3(x: Any, weight: Any, bias: Any | None, xp: Any) -> Any:
    """3x3 cross-correlation of a (C, H, W) image with an OIHW ``weight``, stride 1, zero
    padding 1 -> (O, H, W)."""
    _, h, w = x.shape
    out = conv3x3_padded(to_padded(x, xp), h, w, ConvWeights(weight, xp), xp, bias)
    return xp.ascontiguousarray(interior(out, h, w))


def relu(x: Any, xp: Any) -> Any:
    return xp.maximum(x, 0)


def relu_backward(grad: Any, mask: Any, xp: Any) -> Any:
    """Gradient through ReLU, in place: passes where ``mask`` (its output > 0) is set, else 0."""
    grad *= mask
    return grad


def _window(x: Any, i: int, j: int) -> Any:
    """Element (i, j) of every 2x2 window of (C, H, W), as a strided view (C, H//2, W//2); an odd
    last row or column is left out (floor mode). Slicing, unlike reshape, never copies."""
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    return x[:, i : 2 * h2 : 2, j : 2 * w2 : 2]


WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))


def avg_pool2(x: Any, xp: Any) -> Any:
    """2x2 average pooling, stride 2, of a (C, H, W) array or view."""
    out = _window(x, 0, 0) + _window(x, 0, 1)
    out += _window(x, 1, 0)
    out += _window(x, 1, 1)
    out *= 0.25
    return out


def avg_pool2_backward(grad: Any, in_shape: tuple[int, int, int], xp: Any, out: Any = None) -> Any:
    """Spread each output gradient evenly over its 2x2 window; ``out`` (zeroed, in_shape) may be
    a view to write into."""
    if out is None:
        out = xp.zeros(in_shape, dtype=grad.dtype)
    quarter = grad * 0.25
    for i, j in WINDOW:
        _window(out, i, j)[...] = quarter
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


def gram(F: Any) -> Any:
    """Gram matrix G = F F^T of an (N_l, M_l) feature matrix (eq. 3)."""
    return F @ F.T
