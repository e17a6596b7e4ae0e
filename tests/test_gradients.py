"""Finite-difference checks in float64 of each op's backward and of the loss gradient with
respect to the pixels, plus the ops' forward passes against direct definitions."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
from conftest import needs_cuda
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import correlate

from gatys.kernels import blas_kernels, conv, get_backend, layout, products, relu_pool, winograd
from gatys.kernels.backend import Backend
from gatys.kernels.relu_pool import Pooling
from gatys.kernels.conv import conv3x3_padded
from gatys.kernels.layout import interior, padded_length, to_padded
from gatys.kernels.winograd import winograd_tile
from gatys.kernels.workers import Workers
from gatys.model import gradcheck
from gatys.model.losses import content_loss, style_layer_loss
from gatys.run import gradcheck_command

backend = get_backend("cpu")


@pytest.mark.parametrize("check", gradcheck.op_checks(backend), ids=lambda c: c.name)
def test_op_backward(check):
    assert check.max_rel_error < 1e-6, check


@pytest.mark.parametrize("check", gradcheck.network_checks(backend), ids=lambda c: c.name)
def test_loss_gradient_wrt_pixels(check):
    assert check.max_rel_error < 1e-6, check


@needs_cuda
def test_every_gradient_check_passes_on_cuda():
    """The same op and network checks (float64) on the CUDA backend's kernels."""
    checks = gradcheck_command.run("cuda")
    assert len(checks) == len(gradcheck.op_checks(backend)) + len(gradcheck.network_checks(backend))
    assert [c for c in checks if not c.passed] == []


def test_gradient_check_detects_a_wrong_gradient(rng):
    """The checker itself fails on a gradient that is off by a little."""
    x = rng.standard_normal((3, 5, 4))
    f = lambda z: float((z ** 3).sum())  # noqa: E731
    good = gradcheck.directional_check("good", f, 3 * x ** 2, x, np)
    bad = gradcheck.directional_check("bad", f, 3 * x ** 2 * 1.0001, x, np)
    assert good.passed and not bad.passed


@pytest.fixture
def large_tiles_on_small_images(monkeypatch):
    """F(4x4) and F(6x6) from two tiles per side, so the kernels' cases stay small (the engine
    keeps them for layers of 64 tiles or more; test_winograd_tile_policy checks that)."""
    monkeypatch.setitem(winograd.WINOGRAD_MIN_TILES, 4, 1)
    monkeypatch.setitem(winograd.WINOGRAD_MIN_TILES, 6, 1)


SHAPES = {  # (positions, C, O, tile rows) of F(6x6), F(4x4) for conv5_1, at 512 px
    "conv1_2": (64, 64, 64, 86), "conv2_2": (64, 128, 128, 43), "conv3_x": (64, 256, 256, 22),
    "conv4_1": (64, 256, 512, 11), "conv4_x": (64, 512, 512, 11), "conv5_1": (36, 512, 512, 8)}


def _split(threads: int, layer: str, scale: int = 1, xp=np):
    """The forward pass's parts of tile rows and its choice of two passes, as the engine makes
    them for ``layer`` at 512 px times ``scale``."""
    a2, c, o, th = SHAPES[layer]
    th = scale * th
    workers = Workers(1)
    workers.threads = threads  # only the cut is asked for
    U = np.empty((a2, o, c), np.float32)
    tiles = a2 * th * th * 4  # one channel's transformed tiles, float32
    row = a2 * (c + o) * th * 4  # a tile row's V and M
    parts, moved = winograd._parts(workers, th, row, U, xp)
    most = max(t1 - t0 for t0, t1 in parts) * row
    return parts, winograd._blocks(workers, c, o, tiles, U, moved, most, xp is np)


@pytest.fixture
def parts_by(monkeypatch):
    """Sets how the CPU's Winograd parts are sized, whatever kernels this machine's BLAS has:
    a thread's share (False) or to fit the cache (True)."""
    return lambda cache: monkeypatch.setattr(winograd, "WINOGRAD_CACHE_PARTS", cache)


def test_winograd_parts_are_a_threads_share_with_several_threads(parts_by):
    """On one thread a part moves WINOGRAD_CHUNK_BYTES or WINOGRAD_PART_U times U, up to
    part_bytes(T); with several, a thread's whole share of the tile rows up to part_bytes(T)
    of V and M (more parts ran slower with AVX2 products), so that all threads' parts hold
    WINOGRAD_HELD_BYTES at most; off the CPU WINOGRAD_CHUNK_BYTES or U."""
    parts_by(False)
    parts = {T: _split(T, "conv2_2")[0] for T in (1, 2, 4)}
    row = 64 * 256 * 43 * 4  # conv2_2's V and M per tile row; its U is 4.2 MB
    assert len(parts[1]) == -(-43 // (winograd.WINOGRAD_CHUNK_BYTES // row)) == 9
    # conv3_x: 4 U (64 MiB, part_bytes(1) too) holds all 22 tile rows (2.75 MiB each)
    assert _split(1, "conv3_x")[0] == [(0, 22)]
    device = type("cupy", (), {"__name__": "cupy"})
    assert len(_split(1, "conv3_x", xp=device)[0]) == 5  # U (16 MiB): 5 tile rows a part
    assert [t1 - t0 for t0, t1 in parts[2]] == [22, 21]  # a share each, within the bound
    assert [t1 - t0 for t0, t1 in parts[4]] == [11, 11, 11, 10]
    large = _split(2, "conv2_2", scale=2)[0]  # at 1024 px a share would be 86 MB of V and M
    most = winograd.part_bytes(2) // (2 * row)
    assert len(large) == 8 and max(t1 - t0 for t0, t1 in large) <= most
    assert large[0][0] == 0 and large[-1][1] == 86
    assert [winograd.part_bytes(T) >> 20 for T in (1, 2, 4, 8, 16)] == [64, 64, 32, 16, 8]
    four = _split(4, "conv2_2", scale=2)[0]  # a share would be 124 MB: parts of 32 MB at most
    assert len(four) == 20 and max(t1 - t0 for t0, t1 in four) * 2 * row <= 32 << 20
    # on 16 threads the bound (8 MB) is below WINOGRAD_CHUNK_BYTES: parts of 16 MB, 2 tile
    # rows of 5.6 MB, not a share of 6 rows
    assert len(_split(16, "conv2_2", scale=2)[0]) == 48
    assert len(_split(2, "conv2_2", xp=device)[0]) == 10  # as on one thread, rounded to 2


def test_winograd_parts_fit_the_cache_where_blas_has_avx512_kernels(parts_by, monkeypatch):
    """Where the products run at AVX-512 speed, a part moves WINOGRAD_CACHED_PART_BYTES or
    WINOGRAD_PART_U times U, up to part_bytes(T), on any number of threads, never a thread's
    share: conv1_2 (U 1 MiB) two tile rows a part (whole rounds of one or two where threads
    are many), conv2_2 (U 4 MiB) five; conv3_x's 4 U holds the whole layer as before. Unset,
    the BLAS kernels choose."""
    parts_by(True)
    conv1_2 = {T: _split(T, "conv1_2")[0] for T in (1, 2, 16)}
    assert [len(conv1_2[T]) for T in (1, 2, 16)] == [43, 44, 48]
    row = 64 * 128 * 86 * 4  # conv1_2's V and M per tile row
    assert max(t1 - t0 for T in conv1_2 for t0, t1 in conv1_2[T]) * row \
        <= winograd.WINOGRAD_CACHED_PART_BYTES
    assert [len(_split(T, "conv2_2")[0]) for T in (1, 2, 4)] == [9, 10, 12]
    assert max(t1 - t0 for t0, t1 in _split(2, "conv2_2")[0]) == 5  # a share would be 22
    assert _split(1, "conv3_x")[0] == [(0, 22)]
    assert _split(2, "conv3_x")[0] == [(0, 11), (11, 22)]  # a part per thread at least
    parts_by(None)
    for avx512 in (False, True):
        monkeypatch.setattr(winograd, "avx512_products", lambda: avx512)
        assert winograd.cache_parts() is avx512
        assert len(_split(2, "conv1_2")[0]) == (44 if avx512 else 4)


def test_parts_move_twice_u_from_eight_threads(parts_by, monkeypatch):
    """Parts move at least four times U up to seven threads and twice from eight: on eight
    threads that cuts conv2_2 (U 4 MiB) into three parts a thread, as twelve threads do, where
    four times U made two; no other layer's cut at 512 px moves."""
    parts_by(True)
    assert [winograd.part_u(T) for T in (0, 1, 2, 7, 8, 16)] == [4, 4, 4, 4, 2, 2]
    assert len(_split(8, "conv2_2")[0]) == len(_split(12, "conv2_2")[0]) == 24
    cuts = {layer: _split(8, layer) for layer in SHAPES}
    monkeypatch.setattr(winograd, "WINOGRAD_PART_U", {1: 4})
    assert len(_split(8, "conv2_2")[0]) == 16
    assert [layer for layer in SHAPES if _split(8, layer) != cuts[layer]] == ["conv2_2"]


@pytest.mark.parametrize("kinds, avx512", [
    (["SkylakeX", "Cooperlake"], True), (["SkylakeX", "Haswell"], False), (["Zen"], False),
    ([None], False), ([], False)])
def test_avx512_products_are_read_from_every_blas_library(kinds, avx512, monkeypatch):
    """OpenBLAS's AVX-512 core names, in any case, from every BLAS library loaded."""
    import threadpoolctl
    libs = [{"user_api": "blas", "architecture": k} for k in kinds]
    monkeypatch.setattr(threadpoolctl, "threadpool_info",
                        lambda: [{"user_api": "openmp"}, *libs])
    blas_kernels.avx512_products.cache_clear()
    try:
        assert blas_kernels.avx512_products() is avx512
    finally:
        blas_kernels.avx512_products.cache_clear()


@pytest.mark.parametrize("cache", [False, True])
def test_winograd_split_policy(cache, parts_by):
    """Where parts are sized to a thread's share (AVX2 products), a layer runs in parts of
    tile rows (each part reading all of U, which BLAS packs) unless two passes (V written and
    read back, U read once, the products M written and read back) move less and their V and M
    fit in WINOGRAD_HELD_BYTES: at 512 px on two threads conv4_x and conv5_1, conv4_1 too (its
    two parts read U twice), but not conv1_2 to conv3_x; on 16, conv3_x to conv5_1; at 1024 px
    on 16, conv4_x but not conv2_2; never on one thread; a block of channels per thread.
    Where parts are cut to fit the cache (AVX-512 products), a layer whose U makes its parts
    hold more than WINOGRAD_TWO_PASS_FROM_PART_BYTES takes two passes on any number of threads
    where its V and M fit: at 512 px conv2_2 to conv4_x, conv5_1 too from two threads on (where
    two passes move less) but not on one (its one part is smaller), on 8 threads conv2_2 not
    (parts of 8.4 MB), on 16 again (its parts are smaller still, and there two passes move
    less); at 1024 px conv4_x; in blocks of channels of :func:`winograd._pass_blocks`."""
    parts_by(cache)

    def blocks(threads: int, layer: str, scale: int = 1) -> tuple[int, int, int] | None:
        return _split(threads, layer, scale)[1]

    def passes(threads: int, layer: str, scale: int = 1) -> tuple[int, int, int]:
        a2, c, o, th = SHAPES[layer]
        tiles = a2 * (scale * th) ** 2 * 4
        return (winograd._pass_blocks(threads, c, tiles), winograd._pass_blocks(threads, o, tiles),
                1)

    names = list(SHAPES)
    if cache:
        for T in (1, 2, 8, 16):
            conv2_2 = None if T == 8 else passes(T, "conv2_2")
            conv5_1 = None if T == 1 else passes(T, "conv5_1")  # on one thread a part fits
            assert [blocks(T, k) for k in names] == [None, conv2_2] + [
                passes(T, k) for k in names[2:-1]] + [conv5_1]
        assert [blocks(T, "conv4_x", 2) for T in (1, 2, 16)] == [
            passes(T, "conv4_x", 2) for T in (1, 2, 16)]
        assert [blocks(2, k, 2) for k in ("conv2_2", "conv3_x")] == [None, None]  # too large
        # a thread's share of conv3_x's transformed tiles (124 KB a channel) in blocks of
        # about T x 1 MB: 8 or 9 channels a block on one thread, 16 on two, on 8 and 16 a
        # share each; conv2_2's (473 KB a channel) in two or three on one and four or five on
        # two
        assert [passes(T, "conv3_x") for T in (1, 2, 8, 16)] == [(30, 30, 1), (16, 16, 1),
                                                                 (8, 8, 1), (16, 16, 1)]
        assert [passes(T, "conv2_2") for T in (1, 2)] == [(58, 58, 1), (28, 28, 1)]
    else:
        assert [blocks(2, k) for k in names] == [None, None, None] + [(2, 2, 1)] * 3
        assert [blocks(16, k) for k in names] == [None, None] + [(16, 16, 1)] * 4
        assert [blocks(16, k, 2) for k in ("conv2_2", "conv4_x")] == [None, (16, 16, 1)]
        assert [blocks(2, k, 2) for k in ("conv4_1", "conv4_x")] == [None, None]  # V, M > U
        assert [blocks(1, k) for k in names] == [None] * 6


def test_two_pass_blocks_are_whole_rounds_of_blocks_near_the_size_per_thread():
    """A thread's share of the channels in blocks of about T x WINOGRAD_TWO_PASS_BLOCK_BYTES
    of transformed tiles, one at least, in whole rounds of the threads, never more blocks
    than channels."""
    block = winograd.WINOGRAD_TWO_PASS_BLOCK_BYTES
    assert winograd._pass_blocks(1, 64, block // 4) == 16
    assert winograd._pass_blocks(2, 64, block // 4) == 8  # blocks of twice the bytes
    assert winograd._pass_blocks(16, 64, block // 4) == 16  # a block per thread
    assert winograd._pass_blocks(4, 3, block) == 3
    assert winograd._pass_blocks(3, 10, 1) == 3


def test_the_bias_point_reaches_every_output_once():
    """The forward pass adds its bias to the products at (+1, +1): that column of A^T is all
    ones for every F(m x m, 3x3), so Y = A^T M A adds it to each output once, exactly."""
    for m in winograd.WINOGRAD_TILES:
        AT = np.asarray(winograd.WINOGRAD_AT[m])
        M = np.zeros((m + 2, m + 2))
        M[winograd.ONES_POINT, winograd.ONES_POINT] = 1
        np.testing.assert_array_equal(AT @ M @ AT.T, np.ones((m, m)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_kernels_are_g_g_gt_of_each_filter(dtype):
    """U[:, o, c] is G g G^T of filter (o, c), for every m, in the weights' dtype, contiguous."""
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    cw = backend.conv_weights(weight)
    for m in (2, 4, 6):
        U = cw.winograd(m)
        G = np.array(winograd.WINOGRAD_G[m])
        want = np.stack([[G @ weight[o, c].astype(np.float64) @ G.T for c in range(2)]
                         for o in range(3)])  # (O, C, a, a)
        assert U.dtype == dtype and U.flags.c_contiguous and U.shape == ((m + 2) ** 2, 3, 2)
        tol = 1e-13 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(U, want.transpose(2, 3, 0, 1).reshape(-1, 3, 2), rtol=tol,
                                   atol=tol)


def test_winograd_tile_policy():
    """F(6x6) on layers of at least 64 whole 6x6 tiles (the last tile row and column may reach
    past the image), else F(4x4) on layers of at least 64 whole 4x4 tiles, F(2x2) on smaller
    ones with two 2x2 tiles per side, the direct method below that, and none with fewer than
    64 channels."""
    wide = backend.conv_weights(np.zeros((512, 512, 3, 3)))
    assert [winograd_tile(wide, h, w) for h, w in ((48, 48), (96, 48), (42, 54), (48, 49),
                                                   (36, 36))] == [6, 6, 4, 6, 4]
    assert [winograd_tile(wide, h, w) for h, w in ((64, 64), (32, 32), (32, 35), (28, 28),
                                                   (16, 24), (4, 9), (3, 9))] == [6, 4, 4, 2, 2, 2, 0]
    assert winograd_tile(wide.for_input_grad(), 48, 48) == 6
    assert winograd_tile(wide.for_input_grad(), 32, 32) == 4
    assert winograd_tile(backend.conv_weights(np.zeros((64, 32, 3, 3))), 64, 64) == 0


def direct_correlation(x, weight, b):
    """The 3x3 convolution (a correlation, zero padding 1) by scipy, channel by channel."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    return np.stack([sum(correlate(padded[i], weight[j, i], mode="valid")
                         for i in range(weight.shape[1])) + b[j] for j in range(weight.shape[0])])


def numpy_with_garbage() -> types.ModuleType:
    """NumPy whose ``empty`` hands out NaNs, as a reused buffer may hold anything: a kernel
    that leaves part of a buffer it made unwritten shows it."""
    xp = types.ModuleType("numpy")
    xp.__dict__.update(np.__dict__)
    xp.empty = lambda shape, dtype=float: np.full(shape, np.nan, dtype=dtype)
    return xp


def pooled_reference(out_padded, h, w, pool="avg"):
    """The 2x2 pooling (floor mode) of a padded flat output, padded flat, by reshaping:
    independent of the engine's strided passes; for max pooling with each window's winner,
    0..3 in row-major order within the window, the first on ties."""
    x = interior(out_padded, h, w)
    h2, w2 = h // 2, w // 2
    windows = x[:, : 2 * h2, : 2 * w2].reshape(x.shape[0], h2, 2, w2, 2)
    if pool == "avg":
        return to_padded(windows.mean(axis=(2, 4)), np), None
    windows = windows.transpose(0, 1, 3, 2, 4).reshape(x.shape[0], h2, w2, 4)
    return to_padded(windows.max(axis=-1), np), windows.argmax(axis=-1)


def garbage_pooling(c, h, w, pool="avg"):
    """Where a forward pass of ``c`` channels writes its 2x2 pooling of H x W, unset (NaNs,
    and for max pooling winners out of range)."""
    index = np.full((c, h // 2, w // 2), 9, dtype=np.int8) if pool == "max" else None
    return Pooling(numpy_with_garbage().empty((c, padded_length(h // 2, w // 2))), index)


def assert_pooled(pooled, out_padded, h, w, pool="avg"):
    """``pooled`` holds the pooling of ``out_padded`` (:func:`pooled_reference`), border and
    all."""
    want, index = pooled_reference(out_padded, h, w, pool)
    np.testing.assert_allclose(pooled.out, want, rtol=1e-10, atol=1e-10)
    if pool == "max":
        np.testing.assert_array_equal(pooled.index, index)


def flipped_correlation(R, weight):
    """The input gradient of that convolution for the output gradient R: R correlated with the
    kernel rotated by 180 degrees, its channels swapped."""
    padded = np.pad(R, ((0, 0), (1, 1), (1, 1)))
    return np.stack([sum(correlate(padded[j], weight[j, i, ::-1, ::-1], mode="valid")
                         for j in range(weight.shape[0])) for i in range(weight.shape[1])])


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("c,o,h,w,method", [
    (3, 4, 7, 9, "gather"), (20, 4, 1, 1, "shift"), (24, 20, 16, 5, "shift"), (40, 3, 6, 7, "scatter"),
    (128, 130, 8, 6, "winograd 2"), (128, 130, 8, 12, "winograd 4"), (130, 128, 8, 8, "winograd 4"),
    (257, 256, 8, 8, "winograd 4"), (128, 130, 9, 6, "odd height: winograd 2"),
    (96, 100, 11, 14, "3 rows and 2 columns beyond the tiles: winograd 4"),
    (64, 64, 13, 9, "1 row and 1 column beyond the tiles: winograd 4"), (128, 130, 3, 5, "shift"),
    (64, 70, 12, 18, "winograd 6"), (130, 128, 18, 12, "winograd 6"),
    (64, 64, 18, 20, "2 columns beyond 6x6 tiles: winograd 6"),
    (64, 70, 13, 17, "1 row and 5 columns beyond 6x6 tiles: winograd 6"),
    (70, 64, 16, 15, "4 rows and 3 columns beyond 6x6 tiles: winograd 6"),
    (64, 64, 14, 12, "2 rows beyond 6x6 tiles: winograd 6")])
@pytest.mark.parametrize("threads,split,pool", [(1, None, "avg"), (3, "rows", "max"),
                                                (3, "channels", "avg"), (4, (2, 2), "max"),
                                                (6, (2, 3), "avg"), (3, "channels", "max")])
def test_conv3x3_matches_direct_correlation(c, o, h, w, method, threads, split, pool, rng,
                                            monkeypatch):
    monkeypatch.setattr(winograd, "WINOGRAD_SPLIT", split)
    x = rng.standard_normal((c, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    b = rng.standard_normal(o)
    cw = backend.conv_weights(weight)
    kind = method.split(": ")[-1]
    assert winograd_tile(cw, h, w) == (int(kind.split()[1]) if kind.startswith("winograd") else 0)
    assert kind.startswith("winograd") or cw.method == kind
    garbage = numpy_with_garbage()
    mask = garbage.empty((o, padded_length(h, w)), dtype=bool)  # all True
    pooled = garbage_pooling(o, h, w, pool)
    got = conv3x3_padded(to_padded(x, np), h, w, cw, garbage, b, workers=Workers(threads),
                         mask=mask, pooled=pooled)
    want = to_padded(direct_correlation(x, weight, b), np)  # its border zeroed too
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(mask, got > 0)  # filled with the output, the border False
    # pooled too (by two passes' blocks as they finish them), an odd last row left out
    assert_pooled(pooled, want, h, w, pool)


@pytest.mark.parametrize("c,o,h,w,method", [(3, 4, 7, 9, "gather"), (24, 20, 6, 5, "shift"),
                                             (40, 3, 6, 7, "scatter")])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_direct_methods_in_parts_of_a_row_fill_every_row_its_border_and_mask(
        c, o, h, w, method, threads, masked, rng, monkeypatch):
    """Parts of one output row each (the smallest chunk): each writes its row, the border
    beside it and its mask, never into the next part's row; with a mask of the input (the
    ReLU's, in backprop), the input is zero where it is False. Its 2x2 average pooling, asked
    for, follows (an odd last row left out, the border zeroed)."""
    monkeypatch.setattr(conv, "CPU_CHUNK_BYTES", 1)
    x, weight, b = (rng.standard_normal((c, h, w)), rng.standard_normal((o, c, 3, 3)),
                    rng.standard_normal(o))
    cw = backend.conv_weights(weight)
    assert cw.method == method and not winograd_tile(cw, h, w)
    src_mask = to_padded(rng.random((c, h, w)) < 0.5, np) if masked else None
    garbage = numpy_with_garbage()
    mask = garbage.empty((o, padded_length(h, w)), dtype=bool)
    pooled = garbage_pooling(o, h, w, "max" if masked else "avg")
    got = conv3x3_padded(to_padded(x, np), h, w, cw, garbage, b, relu=True,
                         workers=Workers(threads), mask=mask, src_mask=src_mask, pooled=pooled)
    seen = x * interior(src_mask, h, w) if masked else x
    want = to_padded(np.maximum(direct_correlation(seen, weight, b), 0), np)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(mask, got > 0)
    assert_pooled(pooled, want, h, w, "max" if masked else "avg")


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("c,o,h,w,m,as_forward", [
    (*case, as_forward) for case in [
        (128, 130, 8, 6, 2), (130, 128, 9, 7, 2), (64, 64, 16, 11, 4), (96, 100, 11, 14, 4),
        (64, 70, 13, 9, 4), (257, 256, 8, 8, 4), (64, 70, 12, 18, 6), (130, 128, 18, 12, 6),
        (64, 70, 13, 17, 6), (70, 64, 16, 15, 6), (64, 64, 14, 12, 6), (64, 64, 15, 20, 6)]
    for as_forward in ((True, False) if winograd.flipped_points(case[4]) else (False,))])
@pytest.mark.parametrize("threads,split", [(1, None), (3, "rows"), (3, "channels"),
                                           (4, (2, 2)), (6, (2, 3))])
@pytest.mark.parametrize("masked", [False, True])
def test_winograd_input_gradient_matches_flipped_correlation(c, o, h, w, m, threads, split,
                                                            masked, as_forward, rng,
                                                            monkeypatch):
    """The input gradient through either Winograd form, the flipped kernel's forward pass
    (F(2x2), F(6x6)) or the transposed one (every m; its tiles overlap; parts of the image meet
    on shared rows, of the channels on none, blocks of both on shared rows; tiles that reach
    past the image read zeros there), equals the correlation of the output gradient with the
    kernel rotated by 180 degrees and its channels swapped, and it uses the forward kernels' U,
    not a copy. With the ReLU's mask of the output gradient (backprop through the ReLU), the
    gradient is taken as zero where the mask is False."""
    monkeypatch.setattr(winograd, "WINOGRAD_SPLIT", split)
    monkeypatch.setattr(winograd, "WINOGRAD_INPUT_GRAD_AS_FORWARD", as_forward)
    assert winograd.input_grad_as_forward(m) == as_forward
    R = rng.standard_normal((o, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    forward = backend.conv_weights(weight)
    back = forward.for_input_grad()
    assert winograd_tile(back, h, w) == m
    src_mask = to_padded(rng.random((o, h, w)) < 0.5, np) if masked else None
    pooled = garbage_pooling(c, h, w, "max" if masked else "avg")
    got = conv3x3_padded(to_padded(R, np), h, w, back, numpy_with_garbage(),
                         workers=Workers(threads), src_mask=src_mask, pooled=pooled)
    want = to_padded(flipped_correlation(R * interior(src_mask, h, w) if masked else R,
                                         weight), np)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert back.winograd(m) is forward.winograd(m)
    # pooled too: by two passes' blocks (the flipped kernel's forward pass), or after the
    # transposed form, whose parts' rows overlap
    assert_pooled(pooled, want, h, w, "max" if masked else "avg")


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("m,w,as_forward", [(6, 17, True), (4, 9, False)])
@pytest.mark.parametrize("split,in_blocks,maps_of_its_own", [
    ("rows", True, 1), ("channels", True, 0), ((2, 2), True, 0), ("channels", False, 1)])
def test_the_relu_mask_of_the_gradient_is_applied_by_two_passes_blocks_in_no_map_of_its_own(
        m, w, as_forward, split, in_blocks, maps_of_its_own, rng, monkeypatch):
    """Backprop through the ReLU ahead of a Winograd input gradient: parts of tile rows, which
    read overlapping rows, need the masked gradient whole first (a map of its own); two
    passes mask each block of channels in the transform that reads it (unless
    WINOGRAD_MASK_IN_BLOCKS is off), and the gradient is the same (either form of the input
    gradient)."""
    monkeypatch.setattr(winograd, "WINOGRAD_SPLIT", split)
    monkeypatch.setattr(winograd, "WINOGRAD_MASK_IN_BLOCKS", in_blocks)
    monkeypatch.setattr(winograd, "WINOGRAD_INPUT_GRAD_AS_FORWARD", as_forward)
    own_maps = []  # the calls that mask (or write) the gradient in a map of their own

    def written_and_masked(grad, mask, fill, *args):
        if mask is not None or fill is not None:
            own_maps.append(mask)
        relu_pool.written_and_masked(grad, mask, fill, *args)

    monkeypatch.setattr(winograd, "written_and_masked", written_and_masked)
    c, o, h = 64, 70, 13
    R = rng.standard_normal((o, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    back = backend.conv_weights(weight).for_input_grad()
    assert winograd_tile(back, h, w) == m
    src_mask = to_padded(rng.random((o, h, w)) < 0.5, np)
    got = conv3x3_padded(to_padded(R, np), h, w, back, numpy_with_garbage(),
                         workers=Workers(3), src_mask=src_mask)
    want = to_padded(flipped_correlation(R * interior(src_mask, h, w), weight), np)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert len(own_maps) == maps_of_its_own


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("c,o,h,w,split", [(3, 64, 14, 9, None), (64, 70, 13, 17, "rows"),
                                           (64, 70, 12, 18, "channels")])
@pytest.mark.parametrize("in_blocks", [True, False])
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_two_passes_pool_each_block_of_channels_in_no_map_of_its_own(c, o, h, w, split,
                                                                     in_blocks, pool, rng,
                                                                     monkeypatch):
    """A forward pass given a buffer to pool into: in two passes (unless
    WINOGRAD_POOL_IN_BLOCKS is off), each block of output channels is pooled as it is
    finished, in as many maps as without the pooling; the direct methods and Winograd's parts
    of tile rows pool after them, in a map for the pooling and one for its border."""
    monkeypatch.setattr(winograd, "WINOGRAD_SPLIT", split)
    monkeypatch.setattr(winograd, "WINOGRAD_POOL_IN_BLOCKS", in_blocks)
    maps_more = 0 if split == "channels" and in_blocks else 2
    x, weight, b = (rng.standard_normal((c, h, w)), rng.standard_normal((o, c, 3, 3)),
                    rng.standard_normal(o))
    cw = backend.conv_weights(weight)
    workers = Workers(3)
    maps = []
    real_map = Workers.map
    monkeypatch.setattr(Workers, "map", lambda self, *a: maps.append(real_map(self, *a)))
    conv3x3_padded(to_padded(x, np), h, w, cw, np, b, relu=True, workers=workers)
    without = len(maps)
    pooled = garbage_pooling(o, h, w, pool)
    got = conv3x3_padded(to_padded(x, np), h, w, cw, np, b, relu=True, workers=workers,
                         pooled=pooled)
    assert len(maps) - without == without + maps_more
    assert_pooled(pooled, got, h, w, pool)


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("c,o,h,w,split,as_forward", [
    (3, 64, 10, 7, None, True), (20, 24, 6, 9, None, True), (64, 70, 13, 17, "rows", True),
    (64, 70, 12, 18, "channels", True), (64, 70, 12, 18, (2, 2), True),
    (64, 70, 16, 11, "channels", False), (64, 70, 16, 11, "rows", False)])
@pytest.mark.parametrize("in_blocks", [True, False])
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_an_input_gradient_written_block_by_block_as_two_passes_read_it(
        c, o, h, w, split, as_forward, in_blocks, pool, rng, monkeypatch):
    """An input gradient whose output gradient comes from a pool (each value spread evenly
    over its 2x2 window, or sent to its maximum, then masked by the layer's ReLU) written a
    block of channels at a time: by the blocks that two passes transform (unless
    WINOGRAD_POOL_IN_BLOCKS is off), in no map of their own, else in one map of its own, for
    the direct methods and Winograd's parts of tile rows too; the same gradient as from the
    spread and masked gradient whole."""
    monkeypatch.setattr(winograd, "WINOGRAD_SPLIT", split)
    monkeypatch.setattr(winograd, "WINOGRAD_INPUT_GRAD_AS_FORWARD", as_forward)
    monkeypatch.setattr(winograd, "WINOGRAD_POOL_IN_BLOCKS", in_blocks)
    weight = rng.standard_normal((o, c, 3, 3))
    back = backend.conv_weights(weight).for_input_grad()
    R = rng.standard_normal((o, h // 2, w // 2))
    spread = np.zeros((o, h, w))
    index = rng.integers(0, 4, R.shape).astype(np.int8) if pool == "max" else None
    if pool == "avg":
        spread[:, : 2 * (h // 2), : 2 * (w // 2)] = np.kron(R, np.ones((2, 2))) / 4
    else:  # each value to its window's winner, k = 2 i + j
        for k in range(4):
            spread[:, k // 2 : 2 * (h // 2) : 2, k % 2 : 2 * (w // 2) : 2] = R * (index == k)
    src_mask = to_padded(rng.random((o, h, w)) < 0.5, np)
    want = to_padded(flipped_correlation(spread * interior(src_mask, h, w), weight), np)
    workers = Workers(3)
    maps = []
    real_map = Workers.map
    monkeypatch.setattr(Workers, "map", lambda self, *a: maps.append(real_map(self, *a)))
    conv3x3_padded(to_padded(spread, np), h, w, back, np, workers=workers,
                   src_mask=src_mask.copy())
    without = len(maps)
    got = Backend("numpy", np, workers=workers).conv3x3_padded_through_pool(
        to_padded(R, np), h, w, back, src_mask, index)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # the mask's map, where there was one, now writes the gradient too; where the mask is
    # applied as the gradient is read (two passes' blocks, the scatter method's parts), the
    # gradient is written in a map of its own, but by two passes' blocks
    two_passes = winograd_tile(back, h, w) and split not in (None, "rows")
    maps_more = int(back.method == "scatter" or (two_passes and not in_blocks))
    assert len(maps) - without == without + maps_more


@pytest.mark.parametrize("m", [2, 4, 6])
def test_flipped_points_turn_g_of_a_reversed_kernel_row_into_a_permutation_and_scaling(m, rng):
    """Where F(m x m)'s interpolation points are closed under p -> 1/p (F(2x2), F(6x6)), G
    times a reversed 3-vector is D P G times the vector, which lets the input gradient run as
    the forward pass with the forward's U; F(4x4)'s points (0, +-1, +-2) are not, and have
    none."""
    found = winograd.flipped_points(m)
    assert (found is None) == (m == 4)
    G, v = np.array(winograd.WINOGRAD_G[m]), rng.standard_normal((3, 5))
    if found is None:
        return
    pi, d = found
    np.testing.assert_allclose(G @ v[::-1], np.array(d)[:, None] * (G @ v)[list(pi)],
                               rtol=1e-13, atol=1e-15)


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("h,w,m", [(16, 11, 4), (12, 18, 6), (13, 17, 6)])
@pytest.mark.parametrize("stacked", [False, True])
def test_winograd_transforms_in_blocks_of_a_few_columns_give_the_same_convolutions(
        threads, h, w, m, stacked, rng, monkeypatch):
    """Blocks of 7 columns put a block's edge inside every transform (the products along
    columns, plain and transposed), forward and in the input gradient; the tile rows go one at
    a time or several in one call (here 2 to 6 of 4 to 8 rows, some leaving a shorter last
    group)."""
    monkeypatch.setattr(winograd, "TRANSFORM_COLUMNS", 7)
    stack = (2500 if threads == 1 else 700) if stacked else 7
    for budget in ("TRANSFORM_STACK_COLUMNS", "CACHED_PARTS_STACK_COLUMNS"):  # either cut's
        monkeypatch.setattr(winograd, budget, stack)
    groups = []  # (rows, rows per call) of every transform's loop
    chosen = winograd._rows_at_once

    def rows_at_once(rows: int, columns: int, xp: object) -> int:
        groups.append((rows, chosen(rows, columns, xp)))
        return groups[-1][1]

    monkeypatch.setattr(winograd, "_rows_at_once", rows_at_once)
    c, o = 64, 70
    x, R = rng.standard_normal((c, h, w)), rng.standard_normal((o, h, w))
    weight, b = rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    forward = backend.conv_weights(weight)
    assert winograd_tile(forward, h, w) == m
    got = interior(conv3x3_padded(to_padded(x, np), h, w, forward, np, b,
                                  workers=Workers(threads)), h, w)
    np.testing.assert_allclose(got, direct_correlation(x, weight, b), rtol=1e-10, atol=1e-10)
    back = forward.for_input_grad()
    got = interior(conv3x3_padded(to_padded(R, np), h, w, back, np, workers=Workers(threads)), h, w)
    np.testing.assert_allclose(got, flipped_correlation(R, weight), rtol=1e-10, atol=1e-10)
    if stacked:
        assert any(1 < g < rows for rows, g in groups)
    else:
        assert {g for _, g in groups} == {1}


def test_cache_sized_parts_stack_more_tile_rows_per_transform_call(parts_by):
    """conv2_2's parts at 512 px (5 tile rows, 128 x 43 columns each): two rows a call where a
    part is a thread's share, all five where parts fit the cache, which bound the stack; off
    the CPU all rows, whatever the parts."""
    columns = 128 * 5 * 43
    parts_by(False)
    assert winograd._rows_at_once(5, columns, np) == 2 == \
        winograd.TRANSFORM_STACK_COLUMNS // columns
    parts_by(True)
    assert winograd._rows_at_once(5, columns, np) == 5
    assert winograd._rows_at_once(50, columns, np) == 9 == \
        winograd.CACHED_PARTS_STACK_COLUMNS // columns
    assert winograd._rows_at_once(5, 10 ** 9, np) == 1  # one row at least
    device = type("cupy", (), {"__name__": "cupy"})
    assert winograd._rows_at_once(50, columns, device) == 50


@pytest.mark.parametrize("n,width", [(64, 16), (70, 14), (56, 14), (63, 9), (61, 16), (48, 16)])
def test_transform_blocks_divide_the_columns_where_half_a_block_or_more_does(n, width, rng,
                                                                             monkeypatch):
    """Blocks of 16 columns: 70 columns go in five blocks of 14, 56 in four and 63 in seven of
    9 (no shorter last block in a call of its own); 61, prime, in blocks of 16 and the rest;
    the products are the same either way, plain and transposed."""
    monkeypatch.setattr(winograd, "TRANSFORM_COLUMNS", 16)
    assert winograd._block_width(n) == width
    T, X = rng.standard_normal((6, 8)), rng.standard_normal((3, 8, n))
    got = winograd._transform(T, X, np.empty((3, 6, n)), np)
    np.testing.assert_allclose(got, T @ X, rtol=1e-13, atol=1e-13)
    got = winograd._transform_transposed(X, T.T, np.empty((3, n, 6)), np)
    np.testing.assert_allclose(got, (T @ X).swapaxes(-1, -2), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("columns", [1, 150, 10 ** 6], ids=["a channel", "a few", "all"])
@pytest.mark.parametrize("first,rows,m,end,end_col", [(0, 8, 6, 16, 11), (1, 6, 6, 15, 10),
                                                     (0, 4, 2, 9, 12)])
def test_tile_rows_times_a_matrix_in_blocks_of_channels(first, rows, m, end, end_col, columns, rng,
                                                       monkeypatch):
    """The transforms' products along every tile's rows (forward: m + 2 rows every m, from
    row 0; input gradient: m rows every m, from row 1), a block of channels at a time: one, a
    few (2 to 5; of the 9 channels from tile row 1, the last block is shorter) or all of them,
    equal T times each tile row of the grid with rows from ``end`` and columns from ``end_col``
    on read as zeros, from a tile row inside the grid to one reaching past ``end``."""
    monkeypatch.setattr(winograd, "TRANSFORM_COLUMNS", columns)
    c, W, width = 12, 13, 14
    grid = rng.standard_normal((c, end + 2, W))
    T = rng.standard_normal((rows + 1, rows))
    zeros_past = np.zeros_like(grid)
    zeros_past[:, :end, :end_col] = grid[:, :end, :end_col]
    zeros_past = np.pad(zeros_past, ((0, 0), (0, rows), (0, width - W)))
    tiles = winograd._TileRows(grid, first, rows, m, end, end_col, np)
    n = -(-(end - first) // m)  # the last tile row reaches past ``end``
    assert first + m * (n - 1) + rows > end
    for t0, channels in ((0, slice(None)), (1, slice(2, 11))):
        got = tiles.times(T, channels, t0, n - t0, width)
        want = np.stack([np.einsum("pr,crw->pcw", T, zeros_past[channels, first + m * t :
                                                                 first + m * t + rows])
                         for t in range(t0, n)], axis=2)  # (p, channels, n, width)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tile_rows_times_keeps_a_buffer_per_thread_with_its_zeros(rng, monkeypatch):
    """A thread's products along the tile rows land in one buffer for the layer, its columns
    past ``end_col`` zeroed once: the next call of the same shape on that thread returns the
    same buffer (its caller is through with it), still zero there; another thread gets its
    own; a buffer larger than WINOGRAD_CACHED_PART_BYTES is not kept."""
    import threading

    c, end, end_col, W, width = 5, 20, 11, 13, 14
    grid = rng.standard_normal((c, end + 2, W))
    T = rng.standard_normal((8, 8))
    zeros_past = np.zeros((c, end + 8, width))
    zeros_past[:, :end, :end_col] = grid[:, :end, :end_col]

    def want(t: int) -> np.ndarray:
        return np.einsum("pr,crw->pcw", T, zeros_past[:, 6 * t : 6 * t + 8])[:, :, None]

    garbage = numpy_with_garbage()  # a buffer's zeros are its own, not a fresh page's
    tiles = winograd._TileRows(grid, 0, 8, 6, end, end_col, garbage)
    first = tiles.times(T, slice(None), 0, 1, width)
    np.testing.assert_allclose(first, want(0), rtol=1e-12, atol=1e-12)
    second = tiles.times(T, slice(None), 2, 1, width)
    assert second is first
    np.testing.assert_allclose(second, want(2), rtol=1e-12, atol=1e-12)
    other: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: other.append(tiles.times(T, slice(None), 1, 1,
                                                                        width)))
    thread.start()
    thread.join()
    assert other[0] is not first
    np.testing.assert_allclose(other[0], want(1), rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(winograd, "WINOGRAD_CACHED_PART_BYTES", first.nbytes - 1)
    tiles = winograd._TileRows(grid, 0, 8, 6, end, end_col, garbage)
    assert tiles.times(T, slice(None), 0, 1, width) is not tiles.times(T, slice(None), 0, 1, width)


def _kept(h: int, w: int, rows: int, cols: int) -> np.ndarray:
    """The positions of a channel of a padded flat buffer that zeroing its border keeps: the
    first ``rows`` rows and ``cols`` columns of the interior."""
    keep = np.zeros((h + 2, w + 2), dtype=bool)
    keep[1 : rows + 1, 1 : cols + 1] = True
    return np.concatenate([keep.ravel(), [False, False]])


@pytest.mark.parametrize("h, w, written", [(5, 7, None), (6, 6, None), (5, 7, (4, 6)),
                                             (7, 5, (7, 4)), (7, 5, (6, 5)), (1, 1, None)])
def test_zero_border_zeroes_the_border_slack_and_unwritten_interior_only(h, w, written, rng,
                                                                         monkeypatch):
    """Every way of zeroing the border (on NumPy one indexed assignment, by channel and
    position or, for a small contiguous block, by flat position; three strided passes for
    CuPy; all run here on NumPy) zeroes exactly the positions outside the first ``written``
    rows and columns of the interior, the border and the two slack positions, and keeps the
    rest; also in a block of channels that is not contiguous, which no flat index reaches."""
    keep = _kept(h, w, *(written or (h, w)))
    whole = rng.standard_normal((6, padded_length(h, w))) + 5.0
    for buf in (whole[:3], whole[::2]):
        for flat in (0, 1 << 20):
            monkeypatch.setattr(layout, "FLAT_BORDER_POSITIONS", flat)
            for zero in (layout.zero_border, layout._zero_border_in_passes):
                got = buf.copy(order="K") if buf.flags.c_contiguous else whole.copy()[::2]
                zero(got, h, w, written)
                np.testing.assert_array_equal(got[:, keep], buf[:, keep])
                np.testing.assert_array_equal(got[:, ~keep], 0.0)
    flat = layout.flat_border_positions(h, w, written, 3, whole.shape[1])
    np.testing.assert_array_equal(np.sort(flat) % whole.shape[1],
                                  np.tile(layout.border_positions(h, w, written), 3))


@pytest.mark.parametrize("h, w, cuts", [(5, 7, (1, 6)), (5, 7, (1, 3, 6)), (6, 6, (1, 2, 5, 7)),
                                         (1, 1, (1, 2))])
def test_zero_border_rows_spans_tile_the_buffer_and_zero_the_border_within_them(h, w, cuts,
                                                                              rng):
    """Passes that write rows ``cuts[i]`` .. ``cuts[i + 1]`` - 1 each zero only within the span
    they return, the spans tile the buffer without overlapping, and between them they zero
    exactly the border and slack: whether one pass wrote every row (the whole border at once)
    or several passes shared them."""
    keep = _kept(h, w, h, w)
    buf = rng.standard_normal((3, padded_length(h, w))) + 5.0
    got, covered = buf.copy(), np.zeros(buf.shape[1], dtype=bool)
    for first, stop in zip(cuts, cuts[1:]):
        before = got.copy()
        inside = np.zeros_like(covered)
        inside[layout.zero_border_rows(got, h, w, first, stop)] = True
        assert not (got != before).any(axis=0)[~inside].any()
        assert not covered[inside].any()
        covered |= inside
    assert covered.all()
    np.testing.assert_array_equal(got[:, keep], buf[:, keep])
    np.testing.assert_array_equal(got[:, ~keep], 0.0)


def test_shifted_taps_are_the_nine_windows_and_refuse_to_pass_the_end(rng):
    """The nine taps' windows as one view: tap (dy, dx) starts dy wp + dx columns on, and
    ``block`` rows down per tap; windows that would read past the array are refused."""
    wp, k0, x = 7, 10, rng.standard_normal((18, 40))
    for rows, block in ((18, 0), (2, 2)):
        view = conv.shifted_taps(x, 3, rows, block, wp, k0, np)
        for k, (dy, dx) in enumerate(conv.TAPS):
            start = 3 + dy * wp + dx
            np.testing.assert_array_equal(view[dy, dx],
                                          x[k * block : k * block + rows, start : start + k0])
    with pytest.raises(ValueError, match="pass the end"):
        conv.shifted_taps(x, 40 - 2 * wp - 2 - k0 + 1, 18, 0, wp, k0, np)
    with pytest.raises(ValueError, match="pass the end"):
        conv.shifted_taps(x, 0, 3, 2, wp, k0, np)


@pytest.mark.parametrize("axis, first, n, size, step", [(-1, 0, 4, 4, 2), (-1, 1, 3, 3, 3),
                                                         (1, 2, 2, 3, 1), (0, 0, 1, 2, 5)])
def test_windows_are_the_same_views_of_contiguous_and_strided_arrays(axis, first, n, size,
                                                                      step, rng):
    """winograd._windows: window t, item i is item first + step t + i of the axis, whether the
    array is contiguous (a view made directly on its memory) or a strided view (as_strided);
    it is a view, never a copy, and windows past the axis' end are refused."""
    x = rng.standard_normal((2, 6, 11))
    strided = np.zeros((2, 6, 14))[:, :, 1:12]
    strided[...] = x
    for a in (x, strided):
        view = winograd._windows(a, axis, first, n, size, step, np)
        assert view.shape == (*a.shape[: axis % 3], n, size, *a.shape[axis % 3 + 1 :])
        assert np.shares_memory(view, a)
        for t in range(n):
            for i in range(size):
                np.testing.assert_array_equal(np.take(np.moveaxis(view, axis % 3, 0)[t], i,
                                                      axis=axis % 3),
                                              np.take(a, first + step * t + i, axis=axis))
        past = a.shape[axis] - (first + step * (n - 1) + size) + 1  # the last window one on
        with pytest.raises(ValueError, match="pass the"):
            winograd._windows(a, axis, first + past, n, size, step, np)


def test_conv3x3_float32_stays_float32(rng):
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    assert backend.conv3x3(x, w).dtype == np.float32


@pytest.mark.parametrize("threads", [1, 3])
def test_max_pool_picks_the_first_maximum_of_each_window(threads, rng):
    """The index of each window's maximum is numpy's argmax over the window in WINDOW order
    (the first on ties, which the CUDA kernel and the gradient rely on), on any thread count;
    the gradient goes to that element only."""
    from gatys.kernels import relu_pool

    x = np.round(rng.standard_normal((5, 9, 11)) * 1.5).clip(0)  # many ties, zeros included
    out, index = relu_pool.max_pool2(x, np, Workers(threads))
    windows = np.stack([relu_pool._window(x, i, j) for i, j in relu_pool.WINDOW], axis=3)
    assert index.dtype == np.int8
    np.testing.assert_array_equal(index, windows.argmax(axis=3))
    np.testing.assert_array_equal(out, windows.max(axis=3))
    g = rng.standard_normal(out.shape)
    back = relu_pool.max_pool2_backward(g, index, x.shape, np, workers=Workers(threads))
    for k, (i, j) in enumerate(relu_pool.WINDOW):
        np.testing.assert_array_equal(relu_pool._window(back, i, j), np.where(index == k, g, 0))
    assert not back[:, 8:, :].any() and not back[:, :, 10:].any()


def test_pools_on_odd_sizes_match_definitions(rng):
    x = rng.standard_normal((2, 5, 7))
    avg = backend.avg_pool2(x)
    mx, _ = backend.max_pool2(x)
    assert avg.shape == mx.shape == (2, 2, 3)
    for i in range(2):
        for j in range(3):
            block = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            np.testing.assert_allclose(avg[:, i, j], block.mean(axis=(1, 2)))
            np.testing.assert_allclose(mx[:, i, j], block.max(axis=(1, 2)))
    # The dropped last row and column get no gradient.
    g = backend.avg_pool2_backward(np.ones_like(avg), x.shape)
    assert np.all(g[:, 4, :] == 0) and np.all(g[:, :, 6] == 0) and np.all(g[:, :4, :6] == 0.25)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("block_elements", [1, 3 * 7 * 9, 1 << 19])
def test_average_pool_in_blocks_of_channels_matches_the_mean(threads, block_elements, rng,
                                                             monkeypatch):
    """The average pool and its backward, in blocks of channels (one channel, up to three,
    all eleven, as the threads' rounds allow) on one thread or several, into strided views of
    larger buffers: every window's mean, and a quarter of its gradient in each of its elements, the
    rest of the buffers as they were."""
    from gatys.kernels import relu_pool, workers

    monkeypatch.setattr(workers, "CHANNEL_BLOCK_ELEMENTS", block_elements)
    x = rng.standard_normal((11, 7, 9))  # odd: the last row and column are left out
    buf = np.full((11, 5, 6), 7.0)
    relu_pool.avg_pool2(x, np, out=buf[:, 1:4, 1:5], workers=Workers(threads))
    expected = x[:, :6, :8].reshape(11, 3, 2, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(buf[:, 1:4, 1:5], expected, rtol=1e-14)
    buf[:, 1:4, 1:5] = 7.0
    assert np.all(buf == 7.0)

    g = rng.standard_normal((11, 3, 4))
    back = np.full((11, 9, 11), 7.0)
    relu_pool.avg_pool2_backward(g, x.shape, np, out=back[:, 1:8, 1:10],
                                 workers=Workers(threads))
    spread = np.repeat(np.repeat(g / 4, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(back[:, 1:7, 1:9], spread)
    back[:, 1:7, 1:9] = 7.0
    assert np.all(back == 7.0)


@pytest.mark.parametrize("threads", [1, 3])
def test_content_loss_in_blocks_of_rows_matches_eqs_1_and_2(threads, rng):
    """With a backend, F - P, its sum of squares and its scaling run in blocks of rows among
    the threads (7 rows in 3 blocks here), and give eqs. 1 and 2 per position."""
    from gatys.kernels import Backend

    F, P = np.abs(rng.standard_normal((7, 30))), np.abs(rng.standard_normal((7, 30)))
    L, dF = content_loss(F, P, weight=2.0, backend=Backend("cpu", np, Workers(threads)))
    assert L == pytest.approx(0.5 * ((F - P) ** 2).sum() / 30, rel=1e-12)
    np.testing.assert_allclose(dF, 2.0 * (F - P) / 30, rtol=1e-12)


def test_eq2_content_derivative_as_printed(rng):
    """Eq. 2: dL/dF_ij = (F - P)_ij if F_ij > 0, else 0, once the ReLU's mask is applied."""
    pre = rng.standard_normal((6, 30))
    F, P = np.maximum(pre, 0), np.abs(rng.standard_normal((6, 30)))
    _, dF = content_loss(F, P, "printed")
    masked = backend.relu_backward(dF.copy(), F > 0)
    expected = np.where(F > 0, F - P, 0.0)
    np.testing.assert_array_equal(masked, expected)
    L, _ = content_loss(F, P, "printed")
    assert L == pytest.approx(0.5 * ((F - P) ** 2).sum(), rel=1e-12)  # eq. 1
    L_pos, dF_pos = content_loss(F, P, "per-position")
    assert L_pos == pytest.approx(L / F.shape[1], rel=1e-12)
    np.testing.assert_allclose(dF_pos, dF / F.shape[1])


def test_eq6_style_derivative_as_printed(rng):
    """Eq. 6: dE_l/dF_ij = 1/(N^2 M^2) ((F^T (G - A))^T)_ij if F_ij > 0, else 0."""
    N, M = 5, 12
    F = np.maximum(rng.standard_normal((N, M)), 0)
    Fa = np.abs(rng.standard_normal((N, M + 3)))
    A = Fa @ Fa.T
    E, dF = style_layer_loss(F, A)
    G = np.einsum("ik,jk->ij", F, F)  # eq. 3 written out
    assert E == pytest.approx(((G - A) ** 2).sum() / (4 * N ** 2 * M ** 2), rel=1e-12)  # eq. 4
    expected = np.where(F > 0, (F.T @ (G - A)).T / (N ** 2 * M ** 2), 0.0)
    np.testing.assert_allclose(backend.relu_backward(dF, F > 0), expected, rtol=1e-12, atol=1e-15)


def test_threaded_engine_matches_one_thread(random_full_vgg, rng):
    """Work split over threads (parts of the image, channel blocks) gives the same loss and
    gradient as one thread, through every layer kind: Winograd F(4x4) and F(2x2), shifted
    products, gather, scatter, pooling and ReLU masks, and the Gram products of eqs. 3 and 6."""
    from gatys.kernels import Backend
    from gatys.model.losses import LossWeights
    from gatys.model.network import Network
    from gatys.model.objective import Objective, content_targets, style_targets

    p, a, x = (rng.random((3, 32, 40)) for _ in range(3))  # conv1_x: 80 tiles of 4x4
    styles = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    w = LossWeights(1e-3, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in styles})
    results = []
    for threads in (1, 3):
        net = Network(random_full_vgg, Backend("cpu", np, Workers(threads)), dtype=np.float64)
        objective = Objective(net, w, content_targets(net, p, ["conv4_2"]), style_targets(net, a, styles))
        results.append(objective.evaluate(x))
    assert results[0].total == pytest.approx(results[1].total, rel=1e-12)
    np.testing.assert_allclose(results[1].grad, results[0].grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("threads", [1, 3])
def test_add_product_adds_d_f_in_blocks_of_columns(threads, rng, monkeypatch):
    """``out`` += D F in blocks of a few columns (17 blocks of 16 here, the last shorter),
    shared among the threads, is the product added whole."""
    from gatys.kernels import Backend, products

    monkeypatch.setattr(products, "ADDED_BLOCK_BYTES", 6 * 16 * 8)
    D, F, out = rng.standard_normal((6, 6)), rng.standard_normal((6, 263)), rng.standard_normal((6, 263))
    expected = out + D @ F
    Backend("cpu", np, Workers(threads)).add_product(out, D, F)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_grams_in_one_map_are_each_matrix_times_its_transpose(threads, rng):
    """Several Gram matrices made at once, their blocks of columns shared among the threads and
    their partial products summed, are each F F^T (eq. 3): matrices of few rows and many
    columns (cut in many blocks), of many rows and few columns (one block), of one column."""
    from gatys.kernels import Backend

    Fs = [rng.standard_normal(shape) for shape in [(3, 700), (40, 50), (6, 1), (2, 331)]]
    workers = Workers(threads)
    made = Backend("cpu", np, workers).grams(Fs)
    assert len(made) == len(Fs)
    for G, F in zip(made, Fs):
        np.testing.assert_allclose(G, F @ F.T, rtol=1e-12, atol=1e-12)
    if threads > 1:
        assert len(products.gram_blocks([F.shape for F in Fs], threads)[0]) > threads
    np.testing.assert_allclose(products.gram(Fs[0], workers), Fs[0] @ Fs[0].T, rtol=1e-12)
    assert products.grams([], workers) == []


@given(shapes=st.lists(st.tuples(st.integers(1, 600), st.integers(1, 300_000)), min_size=1,
                       max_size=6),
       threads=st.integers(1, 32))
def test_gram_blocks_tile_each_matrix_none_over_a_share_none_too_narrow(shapes, threads):
    """Each matrix's blocks tile its columns in order. On one thread a matrix is one block; on
    more, no block has more than a thread's share of all the matrices' work (give or take a
    column), and a matrix cut finer than that asks keeps blocks of at least
    GRAM_BLOCK_COLUMNS_PER_ROW N columns."""
    cuts = products.gram_blocks(shapes, threads)
    assert len(cuts) == len(shapes)
    share = sum(products._gram_work(N, M) for N, M in shapes) / threads
    for (N, M), blocks in zip(shapes, cuts):
        assert blocks[0][0] == 0 and blocks[-1][1] == M
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        widths = [stop - start for start, stop in blocks]
        assert min(widths) >= 1
        if threads == 1:
            assert blocks == [(0, M)]
            continue
        assert products._gram_work(N, max(widths)) <= share + products._gram_work(N, 1)
        if len(blocks) > math.ceil(products._gram_work(N, M) / share):
            assert min(widths) >= products.GRAM_BLOCK_COLUMNS_PER_ROW * N


def test_an_evaluation_makes_the_style_layers_grams_at_once(random_full_vgg, rng, monkeypatch):
    """Without regions, one evaluation makes the Gram matrices of all its style layers (held
    padded) in one call, which shares their blocks among the threads at once."""
    from gatys.kernels import Backend
    from gatys.model.losses import LossWeights
    from gatys.model.network import Network
    from gatys.model.objective import Objective, content_targets, style_targets

    p, a, x = (rng.random((3, 24, 20)) for _ in range(3))
    styles = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    w = LossWeights(1e-2, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in styles})
    net = Network(random_full_vgg, Backend("cpu", np, Workers(2)), dtype=np.float64)
    objective = Objective(net, w, content_targets(net, p, ["conv4_2"]),
                          style_targets(net, a, styles))
    calls: list[list[tuple[int, ...]]] = []
    grams = Backend.grams
    monkeypatch.setattr(Backend, "grams",
                        lambda self, Fs: calls.append([F.shape for F in Fs]) or grams(self, Fs))
    objective.evaluate(x)
    assert [len(shapes) for shapes in calls] == [len(styles)]
    assert [N for N, _ in calls[0]] == [64, 128, 256, 512, 512]


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_style_layers_as_left_padded_match_their_copies(random_full_vgg, rng, pool, monkeypatch):
    """The style layers' Gram matrices taken over their padded outputs (the border's zeros
    included) and their D F added in the backward sweep give the loss and gradient of the
    layers copied out of the padding, on an odd-sized image through every layer kind; a
    layer that is both a content and a style layer gets both terms."""
    from gatys.kernels import Backend
    from gatys.model.losses import LossWeights
    from gatys.model.network import Network
    from gatys.model.objective import Objective, content_targets, style_targets

    p, a, x = (rng.random((3, 37, 27)) for _ in range(3))
    styles = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    w = LossWeights(1e-2, 1.0, {"conv4_2": 1.0, "conv3_1": 0.5}, {n: 0.2 for n in styles})

    def evaluate():
        net = Network(random_full_vgg, Backend("cpu", np, Workers(2)), dtype=np.float64,
                      pool=pool)
        objective = Objective(net, w, content_targets(net, p, list(w.content_layers)),
                              style_targets(net, a, styles))
        return objective.evaluate(x)

    added = []
    add_product = Backend.add_product
    monkeypatch.setattr(Backend, "add_product",
                        lambda self, *args: added.append(1) or add_product(self, *args))
    padded = evaluate()
    assert len(added) == len(styles) - 1  # conv5_1's, the deepest, starts the sweep's gradient
    forward = Network.forward

    def copies_only(self, x, keep, timer=None, keep_padded=()):
        return forward(self, x, [*keep, *keep_padded], timer)

    monkeypatch.setattr(Network, "forward", copies_only)
    copied = evaluate()
    assert len(added) == len(styles) - 1
    assert padded.style == pytest.approx(copied.style, rel=1e-12)
    assert padded.total == pytest.approx(copied.total, rel=1e-12)
    np.testing.assert_allclose(padded.grad, copied.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_pooled_buffers_are_written_whole_without_zeroing_first(random_full_vgg, rng, pool,
                                                                 monkeypatch):
    """The pools' output buffers (forward) and input-gradient buffers (backward) are not zeroed
    before they are written: on an odd-sized image, where floor mode leaves a last row and
    column out of every window, buffers handed out full of NaN give the same features, loss and
    gradient as buffers of zeros, so every element is either written or zeroed."""
    from gatys.kernels import Backend
    from gatys.model.losses import LossWeights
    from gatys.model.network import Network
    from gatys.model.objective import Objective, content_targets, style_targets

    p, a, x = (rng.random((3, 37, 27)) for _ in range(3))  # 37 x 27, 18 x 13, 9 x 6, 4 x 3
    styles = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    w = LossWeights(1e-3, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in styles})
    handed = []

    def evaluate():
        net = Network(random_full_vgg, Backend("cpu", np, Workers(2)), dtype=np.float64,
                      pool=pool)
        objective = Objective(net, w, content_targets(net, p, ["conv4_2"]),
                              style_targets(net, a, styles))
        return objective.evaluate(x)

    zeroed = evaluate()

    def nan_filled(self, c, h, w, dtype):
        handed.append((c, h, w))
        return np.full((c, (h + 2) * (w + 2) + 2), np.nan, dtype=dtype)

    monkeypatch.setattr(Backend, "padded_empty", nan_filled)
    unset = evaluate()
    # the photograph's forward to conv4_2 (3 pools), the painting's and x's to conv5_1 (4 each),
    # x's backward (4)
    assert len(handed) == 3 + 4 + 4 + 4
    assert np.isfinite(unset.grad).all() and np.isfinite(unset.total)
    assert unset.total == zeroed.total
    np.testing.assert_array_equal(unset.grad, zeroed.grad)


def blas_threads() -> list[int]:
    """The thread count of each BLAS library loaded (threadpoolctl's view)."""
    import threadpoolctl
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]


def test_holding_blas_is_reentrant_and_restores_the_thread_count():
    pytest.importorskip("threadpoolctl")
    before = blas_threads()
    if not before or max(before) < 2:
        pytest.skip("BLAS runs on one thread here: nothing to hold")
    workers = Workers(2)
    with workers.holding_blas():
        with workers.holding_blas():
            workers.map(lambda part: None, [(0, 1), (1, 2)])
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == [1] * len(before)  # the inner exit does not release it
    assert blas_threads() == before


def test_a_run_holds_blas_to_one_thread_on_a_backend_without_worker_threads():
    """scipy's L-BFGS-B is slower on more BLAS threads (python -m bench.lbfgsb), and the CUDA
    backend has no worker threads to hold BLAS for it: the run itself holds it, and lets go
    after."""
    import types

    pytest.importorskip("threadpoolctl")
    from gatys.kernels import Backend
    from gatys.model.objective import Evaluation
    from gatys.model.optimize import run_lbfgs

    before = blas_threads()
    if not before or max(before) < 2:
        pytest.skip("BLAS runs on one thread here: nothing to hold")
    seen = []

    class Quadratic:
        network = types.SimpleNamespace(backend=Backend("like-cuda", np))  # one worker thread

        def evaluate(self, x):
            seen.append(blas_threads())
            d = np.asarray(x, np.float64) - 0.3
            return Evaluation(float((d * d).sum()), 0.0, 0.0, (2 * d).astype(np.float32), {})

    outcome = run_lbfgs(Quadratic(), np.zeros((3, 4, 5), np.float32), iterations=3)
    assert seen and all(counts == [1] * len(before) for counts in seen)
    assert np.allclose(outcome.x, 0.3, atol=1e-3)
    assert blas_threads() == before


def test_an_evaluation_reads_its_loss_values_once_at_its_end(rng):
    """The losses stay arrays of the backend until Objective reads them all in one
    ``to_floats`` after backprop (on a GPU each read of a value stops the host until the device
    is done). Here the features are arrays that refuse to become floats, so any earlier read
    fails; the result equals the plain CPU evaluation's."""
    from dataclasses import dataclass

    from gatys.kernels import Backend
    from gatys.model.network import Network
    from gatys.model.objective import paper_objective

    class Unread(np.ndarray):
        def __float__(self):
            raise AssertionError("a loss value was read before the evaluation's end")

    reads = []

    @dataclass(frozen=True)
    class Watched(Backend):
        def interior_copy(self, buf, h, w):
            return super().interior_copy(buf, h, w).view(Unread)

        def to_floats(self, values):
            reads.append(len(values))
            return [np.asarray(v).item() for v in values]

    vgg = gradcheck.random_vgg(seed=3)
    p, a, x = (rng.random((3, 24, 20)) for _ in range(3))
    results = []
    for backend in (get_backend("cpu"), Watched("cpu", np)):
        network = Network(vgg, backend, dtype=np.float64)
        results.append(paper_objective(network, p, a).evaluate(x))
    assert reads == [6]  # conv4_2 and the five style layers
    plain, watched = results
    assert watched.total == pytest.approx(plain.total, rel=1e-12)
    assert watched.layers == pytest.approx(plain.layers, rel=1e-12)
    np.testing.assert_allclose(watched.grad, plain.grad, rtol=1e-12)


@pytest.mark.usefixtures("large_tiles_on_small_images")
@pytest.mark.parametrize("split", ["channels", (2, 2), "rows"])
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_pools_made_and_spread_in_the_two_passes_blocks_leave_the_loss_and_gradient_as_they_were(
        split, pool, rng, monkeypatch):
    """A network wide enough for Winograd's two passes (here forced, 64 channels a layer):
    the pools made by the blocks of output channels that their conv layers finish,
    and spread by the blocks that the layers' input gradients read, give the loss and its
    gradient that the pools in passes of their own give (WINOGRAD_POOL_IN_BLOCKS off), on
    three threads; and with parts of tile rows, which pool after them."""
    from gatys.model.network import Network
    from gatys.model.objective import paper_objective

    monkeypatch.setattr(winograd, "WINOGRAD_SPLIT", split)
    vgg = gradcheck.random_vgg((64,) * 16, seed=4)
    p, a, x = (rng.random((3, 40, 36)) for _ in range(3))
    network = Network(vgg, Backend("numpy", np, workers=Workers(3)), pool=pool,
                      dtype=np.float64)
    assert winograd_tile(network.conv[1], 40, 36) and winograd_tile(network.conv[3], 20, 18)
    results = []
    for in_blocks in (True, False):
        monkeypatch.setattr(winograd, "WINOGRAD_POOL_IN_BLOCKS", in_blocks)
        results.append(paper_objective(network, p, a).evaluate(x))
    fused, apart = results
    assert fused.total == pytest.approx(apart.total, rel=1e-12)
    np.testing.assert_allclose(fused.grad, apart.grad, rtol=1e-10, atol=1e-14)
