"""The CUDA backend's own code, host-emulated: kernels/cuda/engine.cu compiled unchanged for the
CPU (tests/host_cuda.py) and CudaBackend run on NumPy arrays through it, against the NumPy
engine. These run everywhere a C++ compiler is; what they leave out (cuBLAS, CuPy's pool, the
GPU itself) is what test_cuda.py checks on a GPU and bench/gpu_check.py measures.
"""
from __future__ import annotations

import numpy as np
import pytest
from host_cuda import HOST_STREAM, compiler, emulated_backend, host_cublas, host_kernels

from gatys.kernels import Pooling, cuda_backend, get_backend
from gatys.kernels.layout import interior, padded_length
from gatys.model import gradcheck
from gatys.model.network import Network
from gatys.model.objective import paper_objective

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++) to build the "
                                                            "host emulation: apt-get install g++")
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(scope="module")
def emulated():
    return emulated_backend()


cpu = get_backend("cpu")


def test_every_kernel_of_the_source_has_a_host_launcher():
    for dtype in DTYPES:
        assert set(host_kernels(np.dtype(dtype))) == set(cuda_backend.KERNELS)


def _conv_both(emulated, x, weight, bias, h, w, input_grad, dtype):
    results = []
    for b in (cpu, emulated):
        cw = b.conv_weights(b.asarray(weight, dtype), input_grad=input_grad)
        out = b.conv3x3_padded(b.to_padded(b.asarray(x, dtype)), h, w, cw,
                               None if bias is None else b.asarray(bias, dtype),
                               relu=bias is not None)
        results.append(b.to_numpy(out))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c, o, h, w", [(3, 64, 9, 11), (64, 3, 8, 8), (20, 24, 13, 5),
                                        (128, 128, 16, 16), (256, 512, 7, 6), (5, 7, 1, 1)])
def test_conv_matches_the_numpy_engine(emulated, c, o, h, w, dtype, rng):
    """Forward (bias, ReLU, zeroed border) and input gradient (no bias), the whole padded buffer
    compared: border, junk columns and slack included."""
    weight = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    forward = _conv_both(emulated, rng.standard_normal((c, h, w)), weight,
                         rng.standard_normal(o), h, w, False, dtype)
    np.testing.assert_allclose(forward[1], forward[0], **TOL[dtype])
    backward = _conv_both(emulated, rng.standard_normal((o, h, w)), weight, None, h, w, True, dtype)
    np.testing.assert_allclose(backward[1], backward[0], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c, o, h, w", [(3, 64, 9, 11), (64, 3, 8, 8), (2, 5, 3, 1), (4, 9, 1, 6)])
def test_direct_kernel_matches_im2col(emulated, c, o, h, w, dtype, rng):
    """conv1_1's direct kernel (either side at most DIRECT_MAX_CHANNELS wide) and im2col + GEMM
    give the same padded buffers, forward with bias and ReLU and as an input gradient; output
    channel counts that are not a multiple of DIRECT_OUT included."""
    im2col = emulated_backend(direct=False)
    weight = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    for input_grad, channels, bias in ((False, c, rng.standard_normal(o)), (True, o, None)):
        x = rng.standard_normal((channels, h, w)).astype(dtype)
        results = []
        for b in (emulated, im2col):
            cw = b.conv_weights(b.asarray(weight, dtype), input_grad=input_grad)
            assert b.uses_direct(cw) == (b is emulated)
            out = b.conv3x3_padded(b.to_padded(b.asarray(x, dtype)), h, w, cw,
                                   None if bias is None else b.asarray(bias, dtype),
                                   relu=bias is not None)
            results.append(out)
        np.testing.assert_allclose(results[0], results[1], **TOL[dtype])
    wide = emulated.conv_weights(np.zeros((8, 8, 3, 3), dtype))
    assert not emulated.uses_direct(wide) and not emulated.uses_direct(wide.for_input_grad())


@pytest.mark.parametrize("chunks", ["one", "several"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c, o", [(3, 8), (8, 3), (16, 8)])  # direct, direct backward, im2col
def test_conv_layer_writes_its_relu_mask_and_backprop_applies_one(emulated, monkeypatch, c, o,
                                                                   dtype, chunks, rng):
    """A layer's forward gives the ReLU mask with its output (the store and the direct kernel
    write it), and the input gradient applies a mask as it reads (im2col and the direct kernel),
    as the NumPy engine's separate relu_mask and relu_backward do; in one im2col chunk and in
    several (the first and last chunks also write the top and bottom borders)."""
    if chunks == "several":
        monkeypatch.setattr(cuda_backend, "CHUNK_BYTES", 1)
    h, w = 21, 17
    weight = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    x = rng.standard_normal((c, h, w)).astype(dtype)
    g = rng.standard_normal((o, h, w)).astype(dtype)
    bias = rng.standard_normal(o)
    results = []
    for b in (cpu, emulated):
        cw = b.conv_weights(b.asarray(weight, dtype))
        out, mask = b.conv3x3_relu_padded(b.to_padded(b.asarray(x)), h, w, cw,
                                          b.asarray(bias, dtype))
        back = b.conv3x3_padded(b.to_padded(b.asarray(g)), h, w, cw.for_input_grad(),
                                src_mask=mask)
        results.append([b.to_numpy(a) for a in (out, mask, back)])
    (out_c, mask_c, back_c), (out_e, mask_e, back_e) = results
    np.testing.assert_array_equal(mask_e, out_e > 0)
    np.testing.assert_array_equal(mask_e, mask_c)
    np.testing.assert_allclose(out_e, out_c, **TOL[dtype])
    np.testing.assert_allclose(back_e, back_c, **TOL[dtype])
    assert 0.3 < mask_e.mean() < 0.6 and not np.array_equal(back_c, cpu.conv3x3_padded(
        cpu.to_padded(g), h, w, cpu.conv_weights(weight.astype(dtype)).for_input_grad()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_in_several_im2col_chunks_equals_one(emulated, monkeypatch, dtype, rng):
    h, w, c, o = 20, 17, 16, 8
    x = emulated.to_padded(rng.standard_normal((c, h, w)).astype(dtype))
    cw = emulated.conv_weights(rng.standard_normal((o, c, 3, 3)).astype(dtype))
    im2col = emulated._function("im2col_padded", dtype)
    whole = emulated.conv3x3_padded(x, h, w, cw)
    before = len(im2col.launches)
    # 256 positions per chunk (the backend's minimum): 20 x 19 = 380 positions -> 2 chunks.
    monkeypatch.setattr(cuda_backend, "CHUNK_BYTES", 1)
    chunked = emulated.conv3x3_padded(x, h, w, cw)
    assert len(im2col.launches) - before == 2
    # The chunks' products are narrower than the whole one, and BLAS may round a product of
    # another width differently (OpenBLAS's Haswell sgemm does): equal to the last few bits of
    # the largest output, where a misplaced chunk would be off by the outputs' own size.
    np.testing.assert_allclose(chunked, whole, rtol=0,
                               atol=64 * np.finfo(dtype).eps * float(np.abs(whole).max()))


def test_a_grid_smaller_than_the_work_still_covers_it(emulated, monkeypatch, rng):
    """Every kernel is a grid-stride loop: capped at a single block, each thread takes many
    elements and the results are the same."""
    h, w = 9, 7
    x = emulated.to_padded(rng.standard_normal((6, h, w)))
    cw = emulated.conv_weights(rng.standard_normal((5, 6, 3, 3)))
    full = (emulated.conv3x3_padded(x, h, w, cw, relu=True), emulated.relu_mask(x),
            emulated.avg_pool2(interior(x, h, w)), emulated.max_pool2(interior(x, h, w))[0])
    monkeypatch.setattr(cuda_backend, "MAX_BLOCKS", 1)
    monkeypatch.setattr(cuda_backend, "MAX_ROWS", 2)  # fewer than the channels, too
    capped = (emulated.conv3x3_padded(x, h, w, cw, relu=True), emulated.relu_mask(x),
              emulated.avg_pool2(interior(x, h, w)), emulated.max_pool2(interior(x, h, w))[0])
    assert emulated._function("im2col_padded", np.float64).launches[-1] == ((1, 2), 256)
    for a, b in zip(full, capped):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h, w", [(8, 10), (9, 7), (3, 2)])
def test_relu_and_pooling_match_the_numpy_engine(emulated, h, w, dtype, rng):
    """On strided interior views of padded buffers, as the network uses them."""
    c = 5
    x = rng.standard_normal((c, h, w)).astype(dtype)
    g = rng.standard_normal((c, h // 2, w // 2)).astype(dtype)
    pad_c, pad_e = cpu.to_padded(x), emulated.to_padded(x)
    mask_c, mask_e = cpu.relu_mask(pad_c), emulated.relu_mask(pad_e)
    np.testing.assert_array_equal(mask_e, mask_c)
    grad = cpu.to_padded(x[::-1].copy())
    np.testing.assert_array_equal(emulated.relu_backward(grad.copy(), mask_e),
                                  cpu.relu_backward(grad.copy(), mask_c))
    inner_c, inner_e = interior(pad_c, h, w), interior(pad_e, h, w)
    np.testing.assert_allclose(emulated.avg_pool2(inner_e), cpu.avg_pool2(inner_c), rtol=1e-6)
    pooled_c, index_c = cpu.max_pool2(inner_c)
    pooled_e, index_e = emulated.max_pool2(inner_e)
    np.testing.assert_array_equal(pooled_e, pooled_c)
    np.testing.assert_array_equal(index_e, index_c)
    pooled = []  # into the interior of a padded buffer, as the network pools
    for b, inner in ((cpu, inner_c), (emulated, inner_e)):
        out = b.padded_zeros(c, h // 2, w // 2, dtype)
        _, index = b.max_pool2(inner, out=interior(out, h // 2, w // 2))
        np.testing.assert_array_equal(index, index_c)
        pooled.append(out)
    np.testing.assert_array_equal(pooled[1], pooled[0])
    np.testing.assert_array_equal(interior(pooled[0], h // 2, w // 2), pooled_c)
    outs = []
    for b in (cpu, emulated):
        out = b.padded_zeros(c, h, w, dtype)
        b.avg_pool2_backward(g, (c, h, w), out=interior(out, h, w))
        outs.append(out)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
    np.testing.assert_array_equal(emulated.max_pool2_backward(g, index_e, (c, h, w)),
                                  cpu.max_pool2_backward(g, index_c, (c, h, w)))


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_a_layer_given_its_pool_and_its_gradient_through_it_match_the_numpy_engine(
        emulated, pool, rng):
    """The CUDA backend's forward pass given the pool after it (pooled by its kernel after the
    convolution's; the network pools after the call there, ``pools_with_conv``), and the input
    gradient from the pool's output gradient (its backward kernel first), as the NumPy
    engine's, which may make both in the convolution's blocks."""
    assert cpu.pools_with_conv and not emulated.pools_with_conv
    h, w, c, o = 13, 10, 6, 5
    weight = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    g = rng.standard_normal((o, h // 2, w // 2)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    results = []
    for b in (cpu, emulated):
        cw = b.conv_weights(b.asarray(weight))
        index = b.xp.full((o, h // 2, w // 2), 9, dtype=np.int8) if pool == "max" else None
        pooled = Pooling(b.xp.full((o, padded_length(h // 2, w // 2)), np.nan, np.float32),
                         index)
        out, mask = b.conv3x3_relu_padded(b.to_padded(b.asarray(x)), h, w, cw, b.asarray(bias),
                                          pooled=pooled)
        back = b.conv3x3_padded_through_pool(b.to_padded(b.asarray(g)), h, w,
                                             cw.for_input_grad(), mask, pooled.index)
        results.append([b.to_numpy(a) for a in (out, pooled.out, back)])
        if pool == "max":
            results[-1].append(b.to_numpy(pooled.index))
    for e, c_ in zip(results[1], results[0]):
        np.testing.assert_allclose(e, c_, rtol=1e-5, atol=1e-6)
    assert np.isfinite(results[1][1]).all()  # the pooled buffer's border zeroed too


def test_arguments_are_marshalled_as_the_kernels_declare_them(emulated):
    """The checks the emulation makes of each call (what CuPy would pass through unchecked)."""
    kernel = host_kernels(np.dtype(np.float32))["relu_mask"]
    x, mask = np.zeros(4, np.float32), np.zeros(4, bool)
    kernel((1,), (32,), (x, mask, np.int64(4)))
    with pytest.raises(TypeError, match="expected a int64 scalar"):
        kernel((1,), (32,), (x, mask, 4))
    with pytest.raises(TypeError, match="expected float32, got float64"):
        kernel((1,), (32,), (x.astype(np.float64), mask, np.int64(4)))


def _evaluate(backend, vgg, dtype, pool, p, a, x):
    net = Network(vgg, backend, pool=pool, dtype=dtype)
    objective = paper_objective(net, p.astype(dtype), a.astype(dtype))
    tape = net.forward(x.astype(dtype), keep=["conv1_1", "conv3_2", "conv5_1"])
    features = {k: backend.to_numpy(v) for k, v in tape.features.items()}
    ev = objective.evaluate(x.astype(dtype))
    return features, ev.total, backend.to_numpy(ev.grad).astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_whole_network_matches_the_numpy_engine(emulated, random_full_vgg, pool, dtype, rng):
    """VGG-19 with the real layer sizes on an odd-sized image: features, L_total and dL/dx,
    against the NumPy engine in float64. (Not against the NumPy engine in float32: on this very
    case its Winograd rounding flips one max-pool choice at pool3, which moves its own float32
    gradient 1e-3 away from float64's, while the emulated path stays 5e-6 away.)"""
    h, w = 37, 45
    p, a, x = rng.random((3, h, w)), rng.random((3, h + 4, w - 6)), rng.random((3, h, w))
    f_ref, total_ref, grad_ref = _evaluate(cpu, random_full_vgg, np.float64, pool, p, a, x)
    f_emu, total_emu, grad_emu = _evaluate(emulated, random_full_vgg, dtype, pool, p, a, x)
    rel = 1e-4 if dtype == np.float32 else 1e-10
    for name in f_ref:
        assert np.linalg.norm(f_emu[name] - f_ref[name]) <= rel * np.linalg.norm(f_ref[name]), name
    assert total_emu == pytest.approx(total_ref, rel=rel)
    assert np.linalg.norm(grad_emu - grad_ref) <= rel * np.linalg.norm(grad_ref)


def test_the_paper_weights_agree_in_float32(emulated, real_weights, rng):
    """The target the GPU check measures on a GPU: CPU and CUDA code within 1e-4 relative."""
    from gatys.store.onnx_import import import_vgg19

    vgg = import_vgg19(real_weights)
    p, a, x = (rng.random((3, 40, 52)) for _ in range(3))
    _, total_cpu, grad_cpu = _evaluate(cpu, vgg, np.float32, "avg", p, a, x)
    _, total_emu, grad_emu = _evaluate(emulated, vgg, np.float32, "avg", p, a, x)
    assert total_emu == pytest.approx(total_cpu, rel=1e-4)
    assert np.linalg.norm(grad_emu - grad_cpu) <= 1e-4 * np.linalg.norm(grad_cpu)


def test_every_gradient_check_passes_host_emulated(emulated):
    """`gatys gradcheck`'s op and network checks (float64) on the CUDA backend's code."""
    checks = gradcheck.op_checks(emulated) + gradcheck.network_checks(emulated)
    assert [c for c in checks if not c.passed] == []


@pytest.mark.parametrize("good, broken, c", [
    # im2col reading one element to the right (C = O = 8: im2col + GEMM)
    ("long long d = (k / 3) * wp + k % 3;", "long long d = (k / 3) * wp + k % 3 + 1;", 8),
    # the direct kernel (C = 3) reading each row of taps mirrored (inside the buffer)
    ("real_t v = s[(k / 3) * wp + k % 3];", "real_t v = s[(k / 3) * wp + 2 - k % 3];", 3),
])
def test_a_broken_index_in_a_kernel_is_caught(tmp_path, rng, good, broken, c):
    """The comparisons can fail: a kernel reading the wrong input must not pass."""
    source = cuda_backend.SOURCE.read_text()
    assert good in source
    mutant = tmp_path / "engine.cu"
    mutant.write_text(source.replace(good, broken))
    weight = rng.standard_normal((8, c, 3, 3))  # O = 8: only C decides the method
    x = rng.standard_normal((c, 6, 7))
    ok, bad = (b.conv3x3(b.asarray(x), weight)
               for b in (emulated_backend(), emulated_backend(mutant)))
    np.testing.assert_allclose(ok, cpu.conv3x3(x, weight), rtol=1e-10)
    assert not np.allclose(bad, ok)


# --- the Winograd experiment (CudaBackend(winograd=True)) ----------------------------------------

@pytest.fixture(scope="module")
def emulated_winograd():
    return emulated_backend(winograd=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_winograd_variant_matches_the_numpy_engine(emulated_winograd, random_full_vgg, pool,
                                                   dtype, rng):
    """The wide layers through the engine's Winograd code on the CUDA backend's arrays, the
    others through im2col: the same features, loss and gradient."""
    h, w = 37, 45
    p, a, x = rng.random((3, h, w)), rng.random((3, h + 4, w - 6)), rng.random((3, h, w))
    f_ref, total_ref, grad_ref = _evaluate(cpu, random_full_vgg, np.float64, pool, p, a, x)
    f_emu, total_emu, grad_emu = _evaluate(emulated_winograd, random_full_vgg, dtype, pool,
                                           p, a, x)
    rel = 1e-4 if dtype == np.float32 else 1e-10
    for name in f_ref:
        assert np.linalg.norm(f_emu[name] - f_ref[name]) <= rel * np.linalg.norm(f_ref[name]), name
    assert total_emu == pytest.approx(total_ref, rel=rel)
    # In float32 with max pooling, Winograd's rounding flips a near-tie at pool3 here, as it
    # does for the CPU engine (see test_whole_network_matches_the_numpy_engine): 1e-3, not 1e-4.
    grad_rel = 2e-3 if (pool, dtype) == ("max", np.float32) else rel
    assert np.linalg.norm(grad_emu - grad_ref) <= grad_rel * np.linalg.norm(grad_ref)


def test_winograd_variant_uses_winograd_on_wide_layers_only(emulated_winograd):
    from gatys.kernels.winograd import winograd_tile

    wide = emulated_winograd.conv_weights(np.zeros((128, 128, 3, 3)))
    narrow = emulated_winograd.conv_weights(np.zeros((64, 3, 3, 3)))
    assert winograd_tile(wide, 64, 64) == 6 and winograd_tile(narrow, 64, 64) == 0
    assert wide.method == narrow.method == "gather"  # im2col's form where Winograd is not used
    plain = emulated_backend().conv_weights(np.zeros((128, 128, 3, 3)))
    assert winograd_tile(plain, 64, 64) == 0


def test_every_gradient_check_passes_with_the_winograd_variant(emulated_winograd):
    checks = gradcheck.op_checks(emulated_winograd) + gradcheck.network_checks(emulated_winograd)
    assert [c for c in checks if not c.passed] == []


def test_to_floats_reads_device_scalars_together_and_keeps_host_ones(emulated, monkeypatch):
    """0-d arrays are read in one transfer (one to_numpy of their stack); floats stay as they
    are; the order is kept."""
    reads = []
    real = type(emulated).to_numpy
    monkeypatch.setattr(type(emulated), "to_numpy", lambda self, a: reads.append(a.shape) or
                        real(self, a))
    values = [np.array(1.5), 2.0, np.array(-3.0, np.float32), 4, np.array(0.25)]
    assert emulated.to_floats(values) == [1.5, 2.0, -3.0, 4.0, 0.25]
    assert reads == [(3,)]
    assert emulated.to_floats([0.0, 1]) == [0.0, 1.0] and reads == [(3,)]


# --- evaluations replayed as CUDA graphs (CudaBackend(graphs=True), kernels/cuda_graph.py) -----

def _graph_case(backend, rng, tv=0.0):
    """An objective on a small random VGG (content, five style layers and, with ``tv``, the
    total variation) and four images of one shape."""
    from gatys.model.losses import LossWeights
    from gatys.model.objective import Objective, content_targets, style_targets

    network = Network(gradcheck.random_vgg(seed=5), backend, dtype=np.float32)
    p, a = (rng.random((3, 20, 28)).astype(np.float32) for _ in range(2))
    styles = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    w = LossWeights(1e-3, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in styles}, tv=tv)
    objective = Objective(network, w, content_targets(network, p, ["conv4_2"]),
                          style_targets(network, a, styles))
    return objective, [rng.random((3, 20, 28)).astype(np.float32) for _ in range(4)]


def _assert_equal_to_float32_rounding(got, expected) -> None:
    """A replayed evaluation against a plain one: its products were another GEMM's."""
    assert got.total == pytest.approx(expected.total, rel=1e-6)
    assert np.linalg.norm(got.grad - expected.grad) <= 1e-5 * np.linalg.norm(expected.grad)


@pytest.mark.parametrize("tv", [0.0, 0.5])
def test_graph_replays_give_the_evaluations_of_the_plain_backend(rng, tv):
    """The first evaluation at a shape runs as usual, the second records and replays, later ones
    replay: each equals the backend without graphs on the same image, and each gradient
    returned stays as it was after later replays (a copy, not the recording's buffer). Inside
    the recording, and only there, the products are cuBLAS's GEMM called through ctypes (here
    on the host's stand-in library), on the recording's stream, the pointer mode restored after
    each; so replays equal plain evaluations to float32 rounding, not bit for bit."""
    library = host_cublas()
    graphed, _ = _graph_case(emulated_backend(graphs=True), np.random.default_rng(1), tv)
    plain, images = _graph_case(emulated_backend(), np.random.default_rng(1), tv)
    expected = [plain.evaluate(x) for x in images]
    calls = [library.host_gemm_calls()]
    got = []
    for x in images:
        got.append(graphed.evaluate(x))
        calls.append(library.host_gemm_calls())
    assert graphed._run.replays == 3 and graphed._run.failure is None
    products = np.diff(calls)  # ctypes GEMMs per evaluation: none in the first, plain one
    assert products[0] == 0 and products[1] == 2 * products[2] > 0  # recorded, then replayed
    assert products[2] == products[3]
    assert library.host_last_stream() == HOST_STREAM and library.host_pointer_mode() == 1
    for e, g in zip(expected, got):
        _assert_equal_to_float32_rounding(g, e)
        assert g.layers == pytest.approx(e.layers, rel=1e-5)
    assert got[0].total == expected[0].total  # the first runs as usual: CuPy's matmul
    assert len(got[0].layers) == (7 if tv else 6)
    assert not np.shares_memory(got[2].grad, got[3].grad)


def test_a_new_shape_drops_the_recording_and_is_recorded_on_its_second_evaluation(rng):
    objective, images = _graph_case(emulated_backend(graphs=True), rng)
    recorder = objective._run
    objective.evaluate(images[0])
    objective.evaluate(images[1])
    assert recorder.recording.key == ((3, 20, 28), "float32")
    small = images[2][:, :16, :24].copy()
    first = objective.evaluate(small)  # as usual, and the old recording is let go
    assert recorder.recording is None and recorder.replays == 1
    second = objective.evaluate(small)
    assert recorder.recording.key == ((3, 16, 24), "float32") and recorder.replays == 2
    _assert_equal_to_float32_rounding(second, first)


def test_a_failed_recording_is_logged_once_and_evaluation_goes_on_without_graphs(rng, caplog):
    objective, images = _graph_case(emulated_backend(graphs=True, fail_recording=True),
                                    np.random.default_rng(2))
    with caplog.at_level("WARNING", logger="gatys"):
        results = [objective.evaluate(x) for x in images]
    warnings = [r.getMessage() for r in caplog.records if "CUDA graph" in r.getMessage()]
    assert len(warnings) == 1 and "cudaErrorStreamCaptureUnsupported" in warnings[0]
    assert objective._run.replays == 0 and objective._run.recording is None
    plain, _ = _graph_case(emulated_backend(), np.random.default_rng(2))
    for x, r in zip(images, results):
        assert r.total == plain.evaluate(x).total


def test_a_timed_evaluation_runs_without_the_graph(rng):
    """A LayerTimer waits for the device at every layer, which a recording cannot hold."""
    from gatys.model.network import LayerTimer

    objective, images = _graph_case(emulated_backend(graphs=True), rng)
    objective.evaluate(images[0])
    objective.evaluate(images[1])
    timer = LayerTimer()
    timed = objective.evaluate(images[1], timer=timer)
    assert objective._run.replays == 1 and "conv5_1" in timer.forward
    again = objective.evaluate(images[1])
    assert again.total == pytest.approx(timed.total, rel=1e-6) and objective._run.replays == 2


def test_the_cpu_and_the_plain_cuda_backend_run_evaluations_as_they_are(emulated):
    from gatys.kernels.cuda_graph import plain

    assert cpu.recorder() is plain and emulated.recorder() is plain
    assert emulated_backend(graphs=True).recorder() is not plain
