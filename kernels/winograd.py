"""Winograd's minimal filtering for 3x3 convolutions (Lavin & Gray 2016), forward and its
transpose for the input gradient, over an array module ``xp``.

F(m x m, 3x3) turns (m + 2)^2 input tiles into m x m outputs with Y = A^T [(G g G^T) * (B^T d B)] A:
(m + 2)^2 products of (O, C) x (C, tiles) per tile instead of the direct method's 9 m^2
multiply-adds per (o, c), so 4x fewer for m = 4 and 2.25x for m = 2. The transforms are
element-wise passes over memory and pay off only when the channels are many.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .layout import interior, padded_length, zero_border
from .relu_pool import bias_relu
from .workers import Workers

if TYPE_CHECKING:
    from .conv import ConvWeights

WINOGRAD_FROM_CHANNELS = 64  # below, the transforms cost more than the products save
WINOGRAD_CHUNK_BYTES = 32 << 20  # per part; smaller parts starve the products
WINOGRAD_TILES = (4, 2)  # the largest m of F(m x m, 3x3) the image has room for is used
WINOGRAD_FROM_SIDE = 2  # tiles per side at least, or the remainder costs more than it saves
# Whole tiles a layer needs for each m: every part of a layer reads all of U, and F(4x4)'s U is
# 2.25x F(2x2)'s, so on small layers F(4x4) is the slower one (docs/performance.md).
WINOGRAD_MIN_TILES = {4: 64, 2: 1}

# G of U = G g G^T for each m; B^T and A^T are the transforms' code below.
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



def winograd_tiles(c: int, o: int) -> tuple[int, ...]:
    """The m of F(m x m, 3x3), largest first, that a C -> O convolution may use (none: direct)."""
    if min(c, o) < WINOGRAD_FROM_CHANNELS:
        return ()
    return WINOGRAD_TILES


def winograd_tile(cw: ConvWeights, h: int, w: int) -> int:
    """m of the F(m x m, 3x3) Winograd method for this layer and image (0: not Winograd)."""
    return next((m for m in cw.winograd_tiles if min(h, w) >= WINOGRAD_FROM_SIDE * m
                 and (h // m) * (w // m) >= WINOGRAD_MIN_TILES[m]), 0)


def tile_columns(rows: Any, first: int, count: int, tiles: int, m: int, xp: Any) -> list:
    """Columns first + j, first + j + m, ... (``tiles`` of them) of ``rows`` for j < ``count``,
    each copied once into a contiguous array: the transforms then read them several times, and
    at unit stride that is faster than through the strided views (docs/performance.md)."""
    return [xp.ascontiguousarray(rows[..., first + j : first + j + m * tiles : m])
            for j in range(count)]


def winograd_forward(src: Any, h: int, w: int, cw: ConvWeights, dst: Any, xp: Any, bias: Any,
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
            input_transform(tile_columns(t, 0, a, tw, m, xp), xp, out=list(V[a * i : a * (i + 1)]))
        del rows
        M = xp.matmul(U, V.reshape(a * a, c, n * tw)).reshape(a, a, o, n, tw)
        del V
        for i, s in enumerate(output_transform(list(M), xp)):  # A^T along rows, then columns
            for j, y in enumerate(output_transform(list(s), xp)):
                bias_relu(y, bias, relu, xp)  # while the part is in cache
                out_grid[:, 1 + m * t0 + i : 1 + m * t1 + i : m, 1 + j : 1 + j + m * tw : m] = y

    row_bytes = a * a * (c + o) * tw * src.dtype.itemsize
    workers.map(tile_rows, workers.split(th, max(1, WINOGRAD_CHUNK_BYTES // row_bytes)))


def winograd_input_grad(src: Any, h: int, w: int, cw: ConvWeights, xp: Any, workers: Workers,
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
        return _input_grad_of_whole_tiles(src, h, w, cw, xp, workers, m)
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
            output_transposed(tile_columns(r, 1, m, tw, m, xp), xp, out=list(W[a * i : a * (i + 1)]))
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


def _input_grad_of_whole_tiles(src: Any, h: int, w: int, cw: ConvWeights, xp: Any,
                               workers: Workers, m: int) -> Any:
    """:func:`winograd_input_grad` of an image that is not a whole number of m x m tiles: the
    output gradient extended by zeros to whole tiles, the result cut back to H x W."""
    he, we = -(-h // m) * m, -(-w // m) * m
    whole = xp.zeros((cw.in_channels, padded_length(he, we)), dtype=src.dtype)
    interior(whole, he, we)[:, :h, :w] = interior(src, h, w)
    full = winograd_input_grad(whole, he, we, cw, xp, workers, m)
    del whole
    dst = xp.empty((cw.out_channels, padded_length(h, w)), dtype=src.dtype)
    interior(dst, h, w)[...] = interior(full, he, we)[:, :h, :w]
    zero_border(dst, h, w)
    return dst
