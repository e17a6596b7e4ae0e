"""The CUDA backend: the same numbers as the CPU engine, and clear errors where it cannot run.

Tests marked needs_cuda skip, saying why, without CuPy or a GPU. The CUDA sources are compiled
with NVRTC wherever NVRTC is installed (it needs no GPU), so a syntax or type error in them
fails here too. The gradient checks and the onnxruntime comparisons on CUDA are in
test_gradients.py, test_reference.py and test_onnx_import.py (parametrised over devices).
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from conftest import needs_cuda
from support.decisions import SharedRelus

from gatys import cli
from gatys.kernels import DeviceUnavailable, get_backend, resolve_device
from gatys.kernels.cuda_backend import C_TYPES, KERNELS, SOURCE
from gatys.kernels.layout import interior


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as e:  # not installed, or its library is missing
        pytest.skip(f"NVRTC not available ({type(e).__name__}): pip install cupy-cuda12x "
                    "nvidia-cuda-nvrtc-cu12")
    return nvrtc


@pytest.mark.parametrize("c_type", sorted(C_TYPES.values()))
def test_cuda_sources_compile_with_nvrtc(c_type):
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(SOURCE.read_text(), SOURCE.name, [], [])
    try:
        nvrtc.compileProgram(program, [f"-Dreal_t={c_type}", "-arch=compute_80"])
    except nvrtc.NVRTCError:
        pytest.fail(nvrtc.getProgramLog(program))
    ptx = nvrtc.getPTX(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    for name in KERNELS:
        assert f".entry {name}(" in ptx, name


@pytest.fixture
def fake_cupy(monkeypatch):
    """Install a stand-in for ``cupy`` (None: not installed) and forget cached backends."""
    def install(module):
        monkeypatch.setitem(sys.modules, "cupy", module)
        get_backend.cache_clear()
    yield install
    get_backend.cache_clear()


def _no_gpu_cupy():
    def count():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=count)))


@pytest.mark.parametrize("module, says", [
    (None, "needs CuPy, which is not installed: pip install 'gatys[cuda13]'"),
    (_no_gpu_cupy(), "sees no CUDA GPU (cudaErrorNoDevice: no CUDA-capable device is detected)"),
])
def test_device_cuda_without_cupy_or_gpu_is_a_one_line_error(fake_cupy, module, says, tmp_path,
                                                              capsys):
    fake_cupy(module)
    with pytest.raises(DeviceUnavailable, match="use --device cpu"):
        get_backend("cuda")
    out = tmp_path / "out.png"
    rc = cli.main(["transfer", "photo.png", "painting.png", "-o", str(out), "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_ERROR
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_auto_uses_the_cpu_where_cuda_is_missing(fake_cupy):
    fake_cupy(_no_gpu_cupy())
    assert resolve_device("auto") == "cpu"
    assert get_backend("auto").name == "cpu"
    fake_cupy(None)
    assert resolve_device("auto") == "cpu"


@pytest.mark.parametrize("flag, message", [
    ("--tf32", "--tf32 is a mode of CUDA's tensor cores"),
    ("--cuda-graphs", "--cuda-graphs records evaluations on a GPU: use it with --device cuda")])
def test_cuda_modes_need_cuda(capsys, tmp_path, flag, message):
    rc = cli.main(["transfer", "a.png", "b.png", "-o", str(tmp_path / "o.png"), "--device", "cpu",
                   flag])
    assert rc == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


# --- on a GPU -----------------------------------------------------------------------------------

def _both():
    return get_backend("cpu"), get_backend("cuda")


@needs_cuda
@pytest.mark.parametrize("c, o, h, w", [(3, 64, 9, 11), (64, 3, 8, 8), (20, 24, 13, 5),
                                        (128, 128, 16, 16), (256, 512, 7, 6)])
def test_conv_matches_the_cpu_engine(c, o, h, w, rng):
    cpu, gpu = _both()
    x = rng.standard_normal((c, h, w))
    weight = rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)
    bias = rng.standard_normal(o)
    for input_grad in (False, True):
        if input_grad:
            x = rng.standard_normal((o, h, w))
        results = []
        for b in (cpu, gpu):
            cw = b.conv_weights(b.asarray(weight), input_grad=input_grad)
            out = b.conv3x3_padded(b.to_padded(b.asarray(x)), h, w, cw,
                                   None if input_grad else b.asarray(bias), relu=not input_grad)
            results.append(b.to_numpy(out))
        np.testing.assert_allclose(results[1], results[0], rtol=1e-10, atol=1e-12)


@needs_cuda
def test_conv_in_several_chunks_matches_one(monkeypatch, rng):
    from gatys.kernels import cuda_backend

    gpu = get_backend("cuda")
    h, w, c, o = 20, 17, 16, 8
    x = gpu.to_padded(gpu.asarray(rng.standard_normal((c, h, w))))
    cw = gpu.conv_weights(gpu.asarray(rng.standard_normal((o, c, 3, 3))))
    whole = gpu.to_numpy(gpu.conv3x3_padded(x, h, w, cw))
    monkeypatch.setattr(cuda_backend, "CHUNK_BYTES", 300 * (9 * c + o) * 8)  # ~2 chunks
    np.testing.assert_array_equal(gpu.to_numpy(gpu.conv3x3_padded(x, h, w, cw)), whole)


@needs_cuda
@pytest.mark.parametrize("h, w", [(8, 10), (9, 7)])
def test_relu_and_pooling_match_the_cpu_engine(h, w, rng):
    cpu, gpu = _both()
    x = rng.standard_normal((5, h, w))
    g = rng.standard_normal((5, h // 2, w // 2))
    pad_c, pad_g = cpu.to_padded(x), gpu.to_padded(gpu.asarray(x))
    np.testing.assert_array_equal(gpu.to_numpy(gpu.relu_mask(pad_g)), cpu.relu_mask(pad_c))
    grad_c, grad_g = cpu.to_padded(x[::-1].copy()), gpu.to_padded(gpu.asarray(x[::-1].copy()))
    np.testing.assert_array_equal(gpu.to_numpy(gpu.relu_backward(grad_g, gpu.relu_mask(pad_g))),
                                  cpu.relu_backward(grad_c, cpu.relu_mask(pad_c)))
    # Pooling reads and writes strided interior views, as the network does.
    inner_c, inner_g = interior(pad_c, h, w), interior(pad_g, h, w)
    np.testing.assert_allclose(gpu.to_numpy(gpu.avg_pool2(inner_g)), cpu.avg_pool2(inner_c),
                               rtol=1e-14)
    pooled_c, index_c = cpu.max_pool2(inner_c)
    pooled_g, index_g = gpu.max_pool2(inner_g)
    np.testing.assert_array_equal(gpu.to_numpy(pooled_g), pooled_c)
    np.testing.assert_array_equal(gpu.to_numpy(index_g), index_c)
    into_g = gpu.padded_zeros(5, h // 2, w // 2, np.float64)  # the network's interior view
    gpu.max_pool2(inner_g, out=interior(into_g, h // 2, w // 2))
    into_c = cpu.padded_zeros(5, h // 2, w // 2, np.float64)
    cpu.max_pool2(inner_c, out=interior(into_c, h // 2, w // 2))
    np.testing.assert_array_equal(gpu.to_numpy(into_g), into_c)
    out_c = cpu.padded_zeros(5, h, w, np.float64)
    out_g = gpu.padded_zeros(5, h, w, np.float64)
    cpu.avg_pool2_backward(g, (5, h, w), out=interior(out_c, h, w))
    gpu.avg_pool2_backward(gpu.asarray(g), (5, h, w), out=interior(out_g, h, w))
    np.testing.assert_allclose(gpu.to_numpy(out_g), out_c, rtol=1e-14)
    np.testing.assert_array_equal(
        gpu.to_numpy(gpu.max_pool2_backward(gpu.asarray(g), index_g, (5, h, w))),
        cpu.max_pool2_backward(g, index_c, (5, h, w)))


def _evaluate(backend, vgg, dtype, p, a, x):
    from gatys.model.network import Network
    from gatys.model.objective import paper_loss_and_gradient

    return paper_loss_and_gradient(Network(vgg, backend, dtype=dtype), p, a, x)


@needs_cuda
def test_cpu_and_cuda_agree_on_the_real_weights(real_weights, rng):
    """Same weights and image, float32, CUDA taking the CPU's ReLU decisions (a pre-activation
    within rounding of zero may go either way: tests/support/decisions.py), at most one in
    10^5 of which it would have made otherwise: loss and gradient within 1e-4 relative; with
    TF32, the error against float64 is printed (run pytest -s) and bounded loosely."""
    from gatys.store.onnx_import import import_vgg19

    vgg = import_vgg19(real_weights)
    p, a, x = (rng.random((3, 64, 80)) for _ in range(3))
    ref_total, ref_grad = _evaluate(get_backend("cpu"), vgg, np.float64, p, a, x)
    errors = {}
    for name, backend in (("cpu", get_backend("cpu")), ("cuda", get_backend("cuda")),
                          ("cuda tf32", get_backend("cuda", tf32=True))):
        total, grad = _evaluate(backend, vgg, np.float32, p, a, x)
        errors[name] = (abs(total - ref_total) / abs(ref_total),
                        np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad))
    print("relative error against float64 (loss, gradient):", errors)
    shared = SharedRelus()
    cpu_total, cpu_grad = _evaluate(shared.recording(get_backend("cpu")), vgg, np.float32, p, a, x)
    gpu_total, gpu_grad = _evaluate(shared.replaying(get_backend("cuda")), vgg, np.float32, p, a, x)
    print("ReLU decisions CUDA would have made otherwise:", shared.differing, "of",
          shared.decisions)
    assert shared.differing <= 1e-5 * shared.decisions
    assert gpu_total == pytest.approx(cpu_total, rel=1e-4)
    assert np.linalg.norm(gpu_grad - cpu_grad) / np.linalg.norm(cpu_grad) < 1e-4
    assert max(errors["cuda tf32"]) < 1e-2


@needs_cuda
@pytest.mark.parametrize("tf32", [False, True])
def test_cuda_graph_replays_equal_plain_evaluations(real_weights, rng, tf32):
    """On the GPU itself: evaluations replayed from a recorded CUDA graph against the same
    evaluations without graphs, on four images of one shape (the first runs as usual, the second
    records, all but the first replay). Same kernels in the same order: equal to float32
    rounding, or nearly (cuBLAS may pick another algorithm inside a recording)."""
    from gatys.model.network import Network
    from gatys.model.objective import paper_objective
    from gatys.store.onnx_import import import_vgg19

    vgg = import_vgg19(real_weights)
    p, a = (rng.random((3, 64, 80)).astype(np.float32) for _ in range(2))
    images = [rng.random((3, 64, 80)).astype(np.float32) for _ in range(4)]
    results = []
    for graphs in (False, True):
        backend = get_backend("cuda", tf32=tf32, cuda_graphs=graphs)
        objective = paper_objective(Network(vgg, backend), p, a)
        results.append([(ev.total, backend.to_numpy(ev.grad))
                        for ev in map(objective.evaluate, images)])
    assert objective._run.replays == 3 and objective._run.failure is None
    for (total, grad), (replayed_total, replayed_grad) in zip(*results):
        assert replayed_total == pytest.approx(total, rel=1e-6)
        assert np.linalg.norm(replayed_grad - grad) <= 1e-5 * np.linalg.norm(grad)


@needs_cuda
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_transfer_runs_on_cuda(tmp_path, real_weights, cuda_graphs):
    from gatys.run import api

    rng = np.random.default_rng(0)
    content, style = (rng.random((48, 64, 3)).astype(np.float32) for _ in range(2))
    result = api.transfer(content, style, tmp_path / "out.png", size=64, iterations=5, seed=0,
                          device="cuda", cuda_graphs=cuda_graphs)
    assert result.parameters["device"] == "cuda"
    assert result.parameters.get("cuda_graphs", False) == cuda_graphs
    assert (tmp_path / "out.png").is_file()
    # Each stage's losses fall; a later stage's are at a larger size, not comparable with the
    # first's (32 then 64 px here: 0.18 after the first iteration, 0.56 after the last, on
    # the CPU too).
    for stage in {h["stage"] for h in result.history}:
        totals = [h["total"] for h in result.history if h["stage"] == stage]
        assert len(totals) == 5 and totals[-1] < totals[0]


def test_gpu_memory_check_names_the_largest_size_that_fits(monkeypatch):
    """The CUDA path's check before a run, against a stand-in GPU with 4 GiB free."""
    import re

    from gatys.errors import InputError
    from gatys.model.vgg import CHANNELS
    from gatys.run import fitting, memory

    free = 4 << 30
    monkeypatch.setattr(fitting, "get_backend", lambda *a, **k: types.SimpleNamespace(
        memory=lambda: (free, 80 << 30)))
    layers = ["conv4_2", "conv1_1", "conv5_1"]
    with pytest.raises(InputError, match="of GPU memory and 4.0 GiB is available") as e:
        fitting.check_shape((2048, 2048), layers, 20, device="cuda")
    side = int(re.search(r"--size (\d+)", str(e.value)).group(1))
    assert memory.estimate_cuda_bytes((side, side), CHANNELS, layers) <= 0.9 * free
    assert memory.estimate_cuda_bytes((side + 1, side + 1), CHANNELS, layers) > 0.9 * free
    fitting.check_shape((side, side), layers, 20, device="cuda")  # fits: no error


class _FakeCuda:
    """CuPy's streams, events, graphs and pools as far as CudaBackend._record uses them, logging
    each call, so that the recording's order of work is checked where there is no GPU (on a
    GPU, test_cuda_graph_replays_equal_plain_evaluations runs the real thing)."""

    def __init__(self, end_error: Exception | None = None) -> None:
        self.log: list[tuple] = []
        self.main = self.Stream(self, "main")
        self.current = [self.main]
        self.allocator = ["default"]
        self.end_error = end_error
        self.cuda = self
        self.ndarray, self.empty_like = np.ndarray, np.empty_like

    class Stream:
        def __init__(self, fake: "_FakeCuda" = None, name: str = "capture",
                     non_blocking: bool = False) -> None:
            self.fake, self.name, self.capturing = fake, name, False
            self.non_blocking = non_blocking

        def __enter__(self):
            self.fake.current.append(self)
            return self

        def __exit__(self, *exc):
            self.fake.current.pop()

        def record(self):
            return ("event of", self.name)

        def is_capturing(self):
            return self.capturing

        @property
        def ptr(self):
            return 0x5000 + len(self.name)  # the stream's handle, as cuBLAS is given it

        def wait_event(self, event):
            self.fake.log.append(("wait", self.name, event))

        def begin_capture(self):
            self.capturing = True
            self.fake.log.append(("begin", self.name))

        def end_capture(self):
            self.capturing = False
            self.fake.log.append(("end", self.name))
            if self.fake.end_error:
                raise self.fake.end_error
            return types.SimpleNamespace(launch=lambda stream: self.fake.log.append(
                ("launch", stream.name)))

    def get_current_stream(self):
        return self.current[-1]

    def MemoryPool(self):
        return types.SimpleNamespace(malloc="recording pool")

    def get_default_memory_pool(self):
        return types.SimpleNamespace(free_all_blocks=lambda: self.log.append(("free blocks",)))

    def using_allocator(self, malloc):
        import contextlib

        @contextlib.contextmanager
        def using():
            self.allocator.append(malloc)
            try:
                yield
            finally:
                self.allocator.pop()
        return using()


def _fake_cuda_backend(fake):
    from gatys.kernels.cuda_backend import CudaBackend

    stream_class = fake.Stream
    fake.Stream = lambda non_blocking=False: stream_class(fake, non_blocking=non_blocking)
    return CudaBackend("cuda", fake, graphs=True)


def test_a_recording_captures_on_its_own_stream_and_pool_and_replays_in_order():
    fake = _FakeCuda()
    backend = _fake_cuda_backend(fake)
    seen = []

    def fn(x):
        stream = fake.get_current_stream()
        seen.append((stream.name, stream.capturing, fake.allocator[-1], x.copy(),
                     stream.non_blocking))
        return x * 2, 1.5

    x = np.arange(6.0).reshape(1, 2, 3)
    recording = backend._record(fn, x)
    assert seen[0][:3] == ("capture", True, "recording pool")  # captured, on its own memory
    assert seen[0][4]  # a non-blocking stream: the legacy default stream stays usable
    np.testing.assert_array_equal(seen[0][3], x)  # the input copied in before the capture
    assert fake.log == [("free blocks",), ("wait", "capture", ("event of", "main")),
                        ("begin", "capture"), ("end", "capture")]
    assert recording.key == ((1, 2, 3), "float64") and recording.outputs[1] == 1.5
    fake.log.clear()
    source = recording.keep[3]
    recording.launch(x + 10)
    np.testing.assert_array_equal(source, x + 10)  # the next input, where the graph reads it
    assert fake.log == [("wait", "capture", ("event of", "main")), ("launch", "capture"),
                        ("wait", "main", ("event of", "capture"))]
    assert len(seen) == 1 and fake.allocator == ["default"] and fake.current == [fake.main]


@pytest.mark.parametrize("end_error", [None, RuntimeError("cudaErrorStreamCaptureInvalidated")])
def test_an_error_inside_a_recording_ends_the_capture_and_is_the_one_raised(end_error):
    fake = _FakeCuda(end_error)
    backend = _fake_cuda_backend(fake)

    def fn(x):
        raise ValueError("a host read inside the recording")

    with pytest.raises(ValueError, match="a host read"):
        backend._record(fn, np.zeros((1, 2, 2)))
    assert fake.log[-1] == ("end", "capture") and fake.current == [fake.main]
    assert fake.allocator == ["default"]


def test_products_inside_a_recording_are_the_ctypes_gemm_on_the_capturing_stream(monkeypatch):
    """CudaBackend's own _product on the stand-in CuPy: CuPy's matmul outside a recording, where
    CuPy allows cuBLAS; inside, where it refuses it, the ctypes GEMM on the capturing stream
    (here the host library with cuBLAS's C signatures, tests/host_cuda/cublas_host.cpp)."""
    from host_cuda import compiler, host_cublas, host_gemm

    from gatys.kernels import cublas_gemm

    if compiler() is None:
        pytest.skip("no C++ compiler for the host cuBLAS")
    fake = _FakeCuda()
    fake.matmul, fake.empty = np.matmul, np.empty
    fake.Device = lambda: types.SimpleNamespace(id=0)
    monkeypatch.setattr(cublas_gemm, "for_cupy", lambda cupy, device: host_gemm())
    backend = _fake_cuda_backend(fake)
    library = host_cublas()
    F = np.random.default_rng(0).standard_normal((8, 30)).astype(np.float32)
    calls = library.host_gemm_calls()
    np.testing.assert_allclose(backend.gram(F), F @ F.T, rtol=1e-6)
    for G, part in zip(backend.grams([F, F[:3]]), (F, F[:3])):  # one by one
        np.testing.assert_allclose(G, part @ part.T, rtol=1e-6)
    assert library.host_gemm_calls() == calls  # not recording: CuPy's matmul

    def fn(x):
        return backend.gram(x), backend.matmul_columns(x @ x.T, x)

    recording = backend._record(fn, F)
    assert library.host_gemm_calls() == calls + 2
    assert library.host_last_stream() == 0x5000 + len("capture")  # the recording's stream
    G, DF = recording.outputs
    np.testing.assert_allclose(G, F @ F.T, rtol=1e-5)
    np.testing.assert_allclose(DF, (F @ F.T) @ F, rtol=1e-5)
