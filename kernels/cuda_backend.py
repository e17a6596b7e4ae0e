"""The CUDA backend: CuPy arrays, cuBLAS products and our kernels in ``cuda/engine.cu``.

Same interface as the NumPy backend, so :mod:`gatys` runs on it unchanged. A 3x3 convolution is
our im2col kernel over the padded flat layout (chunks of output positions, so the column matrix
stays bounded) and one cuBLAS GEMM with the (O, 9C) weight matrix per chunk; a second kernel
stores the product into the next layer's padded buffer with bias, ReLU, zeroed border and the
ReLU's mask, and backprop's ReLU is applied by im2col as it reads (conv1_1 and its input
gradient, three channels wide on one side, run in a direct kernel that does the same). Pooling
has kernels of its own; Gram matrices are cuBLAS products. Only the image and its gradient
cross the bus per evaluation, and the loss values once at its end; activations, weights and
scratch stay on the GPU, in CuPy's memory pool, which reuses freed blocks across evaluations.

(Over this project's ~350 lines a module: :class:`CudaBackend` mirrors :class:`.backend.Backend`
method for method, and was verified as a whole on a GPU; the availability checks, the kernels'
compilation and the graphs' recording already live apart.)
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy

from gatys.errors import DeviceUnavailable

from . import conv, cublas_gemm
from .backend import Backend
from .conv import ConvWeights
from .cublas_gemm import CublasGemm
from .cuda_graph import GraphRecorder, Recording, key_of, plain
from .layout import interior, padded_length
from .relu_pool import Pooling
from .winograd import winograd_tile

SOURCE = Path(__file__).with_name("cuda") / "engine.cu"
KERNELS = ("im2col_padded", "store_outputs", "conv3x3_direct", "relu_mask", "relu_backward",
           "avg_pool2", "avg_pool2_backward", "max_pool2", "max_pool2_backward")
C_TYPES = {numpy.dtype(numpy.float32): "float", numpy.dtype(numpy.float64): "double"}
THREADS = 256  # per block; every kernel is a grid-stride loop
DIRECT_OUT = 4  # output channels per thread of conv3x3_direct (its DIRECT_OUT)
MAX_BLOCKS = 1 << 16  # in all, x times y
MAX_ROWS = 65535  # CUDA's limit on a grid's y
# im2col scratch per GEMM: large enough that cuBLAS runs at full speed (conv1_2 at 512^2 fits in
# one chunk), bounded so that 2048^2 and beyond fit.
CHUNK_BYTES = 1 << 30
# Convolutions this narrow on either side (conv1_1, C = 3, and its input gradient, O = 3) run
# in our direct kernel: im2col's GEMM would be 27 deep or 3 wide, and its columns cost more than
# the arithmetic.
DIRECT_MAX_CHANNELS = 4
INSTALL = ("pip install 'gatys[cuda13]' (or 'gatys[cuda12]' where nvidia-smi shows a CUDA version "
           "below 13)")


def load_cupy() -> Any:
    """CuPy, or DeviceUnavailable saying what is missing and how to get it."""
    try:
        import cupy
    except ImportError as e:
        if getattr(e, "name", None) == "cupy":
            raise DeviceUnavailable(f"--device cuda needs CuPy, which is not installed: {INSTALL}"
                                    " (or use --device cpu)") from None
        raise DeviceUnavailable(f"CuPy is installed but cannot be imported ({e}): reinstall it "
                                f"with {INSTALL}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, driver too old, no device
        raise DeviceUnavailable(f"CuPy is installed but sees no CUDA GPU ({_first_line(e)}): "
                                "check the NVIDIA driver with nvidia-smi, or use --device cpu") \
            from None
    if count < 1:
        raise DeviceUnavailable("CuPy is installed but sees no CUDA GPU: check the NVIDIA driver "
                                "with nvidia-smi and CUDA_VISIBLE_DEVICES, or use --device cpu")
    return cupy


def why_no_cuda() -> str | None:
    """Why ``--device cuda`` would not work here (None: it would): CuPy missing, no GPU visible,
    or our kernels not built. A GPU that is there but unusable is worth a warning; no GPU at all
    is not."""
    try:
        cupy = load_cupy()
    except DeviceUnavailable as e:
        return str(e)
    try:
        _module(cupy, numpy.dtype(numpy.float32))
    except DeviceUnavailable as e:
        logging.getLogger("gatys").warning(f"not using the GPU: {e}")
        return str(e)
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@functools.lru_cache(maxsize=None)
def _module(cupy: Any, dtype: numpy.dtype) -> Any:
    """Our kernels compiled for ``dtype`` (NVRTC, cached by CuPy on disk across runs)."""
    try:
        module = cupy.RawModule(code=SOURCE.read_text(),
                                options=(f"-Dreal_t={C_TYPES[dtype]}",))
        module.get_function(KERNELS[0])  # compiles the module: fail here, not mid-run
    except Exception as e:  # NVRTC missing or failing
        raise DeviceUnavailable(f"could not compile the CUDA kernels ({_first_line(e)}): "
                                f"{INSTALL} installs CUDA's NVRTC compiler") from None
    return module


@functools.lru_cache(maxsize=None)
def _kernel(cupy: Any, dtype: numpy.dtype, name: str) -> Any:
    """Kernel ``name`` of :func:`_module`, looked up once (a launch costs host time, and the GPU
    waits for the host where kernels are short)."""
    return _module(cupy, dtype).get_function(name)


def _i64(v: int) -> numpy.int64:
    return numpy.int64(v)


def _strides(a: Any) -> tuple[int, ...]:
    """Strides in elements of an array whose last axis is contiguous."""
    s = tuple(st // a.itemsize for st in a.strides)
    if s[-1] != 1:
        raise ValueError("the CUDA pooling kernels need the last axis contiguous")
    return s


@dataclass(frozen=True)
class CudaBackend(Backend):
    """The engine on one CUDA GPU through CuPy (``xp``). ``tf32`` lets cuBLAS use TF32 tensor
    cores for float32 products (10-bit mantissa inputs, float32 accumulation); float64 is never
    affected."""

    tf32: bool = False
    # Winograd F(4x4)/F(2x2) on the wide layers through the engine's array code (batched cuBLAS
    # products and CuPy element-wise transforms) instead of im2col + GEMM: an experiment for
    # bench/gpu_check.py, off by default until it is measured faster (docs/cuda.md).
    winograd: bool = False
    # conv1_1 and its input gradient in the direct kernel (DIRECT_MAX_CHANNELS); False sends
    # them through im2col + GEMM like the other layers (for the bench's comparison).
    direct: bool = True
    pools_with_conv: ClassVar[bool] = False  # its pooling is a kernel of its own either way
    # Evaluations recorded once as a CUDA graph and replayed (kernels/cuda_graph.py).
    graphs: bool = False

    # Kernels and products.
    def _function(self, name: str, dtype: Any) -> Any:
        """Our kernel ``name`` for ``dtype``, called as ``kernel(grid, block, args)``. (The seam
        where the tests put the same sources compiled for the host: tests/host_cuda.py.)"""
        return _kernel(self.xp, numpy.dtype(dtype), name)

    def _launch(self, name: str, dtype: Any, n: int, args: tuple, rows: int = 1) -> None:
        """Run kernel ``name`` over ``n`` positions (the grid's x) in each of ``rows`` rows (its
        y); both loops stride, so a smaller grid still covers everything."""
        y = min(rows, MAX_ROWS)
        x = max(1, min(-(-n // THREADS), MAX_BLOCKS // y))
        self._function(name, dtype)((x, y), (THREADS,), args)

    def select_compute_type(self) -> None:
        """Set cuBLAS's float32 compute type (TF32 or not) for the products that follow
        (process-wide in CuPy, so set before each use: two backends may differ)."""
        from cupy._core import _routines_linalg as linalg
        linalg.set_compute_type(numpy.float32, linalg.COMPUTE_TYPE_TF32 if self.tf32
                                else linalg.COMPUTE_TYPE_DEFAULT)  # plain float32 products

    def conv_weights(self, weight: Any, input_grad: bool = False) -> ConvWeights:
        return ConvWeights(weight, self.xp, input_grad, method="gather", winograd=self.winograd)

    def conv3x3_padded(self, src: Any, h: int, w: int, cw: ConvWeights, bias: Any = None,
                       relu: bool = False, src_mask: Any = None) -> Any:
        return self._conv(src, h, w, cw, bias, relu, src_mask, with_mask=False)[0]

    def conv3x3_relu_padded(self, src: Any, h: int, w: int, cw: ConvWeights, bias: Any,
                            pooled: Pooling | None = None) -> tuple[Any, Any]:
        out, mask = self._conv(src, h, w, cw, bias, True, None, with_mask=True)
        if pooled is not None:  # its pooling kernels after the convolution's
            self.pool_into(out, h, w, pooled)
        return out, mask

    def conv3x3_padded_through_pool(self, grad: Any, h: int, w: int, cw: ConvWeights,
                                    src_mask: Any, index: Any = None) -> Any:
        # the pool's backward, a kernel of its own, then the layer's
        return self.conv3x3_padded(self.pool_backward(grad, h, w, index), h, w, cw,
                                   src_mask=src_mask)

    def _conv(self, src: Any, h: int, w: int, cw: ConvWeights, bias: Any, relu: bool,
              src_mask: Any, with_mask: bool) -> tuple[Any, Any]:
        """The convolution into a new padded buffer, border and slack zeroed by the kernels
        that write it, and (``with_mask``) the ReLU mask of the output, written with it;
        ``src_mask`` is applied to ``src`` as it is read."""
        xp = self.xp
        src = xp.ascontiguousarray(src)
        if winograd_tile(cw, h, w):  # only with ``winograd``: the engine's own path on CuPy
            if src_mask is not None:
                src = self.relu_backward(src, src_mask)
            self.select_compute_type()
            dst = conv.conv3x3_padded(src, h, w, cw, xp, bias, relu)
            return dst, self.relu_mask(dst) if with_mask else None
        wp = w + 2
        n = h * wp  # output positions from the first interior pixel, junk columns included
        shape = (cw.out_channels, padded_length(h, w))
        dst = xp.empty(shape, dtype=src.dtype)
        dst_mask = xp.empty(shape, dtype=bool) if with_mask else None
        if self.uses_direct(cw):
            self._conv_direct(src, src_mask, dst, dst_mask, wp, n, cw, bias, relu)
        else:
            self._conv_im2col(src, src_mask, dst, dst_mask, wp, n, cw, bias, relu)
        return dst, dst_mask

    def uses_direct(self, cw: ConvWeights) -> bool:
        """Whether ``cw`` runs in the direct kernel rather than im2col + GEMM."""
        return self.direct and min(cw.in_channels, cw.out_channels) <= DIRECT_MAX_CHANNELS

    def _conv_direct(self, src: Any, src_mask: Any, dst: Any, dst_mask: Any, wp: int, n: int,
                     cw: ConvWeights, bias: Any, relu: bool) -> None:
        o, c, L = cw.out_channels, cw.in_channels, dst.shape[1]
        self._launch("conv3x3_direct", src.dtype, L,
                     (src, src_mask, cw.matrix, bias, dst, dst_mask, _i64(c), _i64(o), _i64(L),
                      _i64(wp), _i64(n), numpy.int32(bias is not None), numpy.int32(relu)),
                     rows=-(-o // DIRECT_OUT))

    def _conv_im2col(self, src: Any, src_mask: Any, dst: Any, dst_mask: Any, wp: int, n: int,
                     cw: ConvWeights, bias: Any, relu: bool) -> None:
        """Chunks of output positions: our im2col kernel, one cuBLAS GEMM with the (O, 9C)
        weight matrix, then store_outputs with bias, ReLU and the border (the first and last
        chunks' stores also cover the top and bottom borders)."""
        xp, L = self.xp, dst.shape[1]
        o, c = cw.out_channels, cw.in_channels
        step = max(256, CHUNK_BYTES // ((9 * c + o) * src.itemsize))
        self.select_compute_type()
        for c0 in range(0, n, step):
            k0 = min(step, n - c0)
            col = xp.empty((9 * c, k0), dtype=src.dtype)
            self._launch("im2col_padded", src.dtype, k0,
                         (src, src_mask, col, _i64(c), _i64(L), _i64(wp), _i64(c0), _i64(k0)),
                         rows=c)
            prod = self._product(cw.matrix, col)
            del col
            first = 0 if c0 == 0 else wp + 1 + c0
            end = L if c0 + k0 == n else wp + 1 + c0 + k0
            self._launch("store_outputs", src.dtype, end - first,
                         (prod, bias, dst, dst_mask, _i64(o), _i64(L), _i64(wp), _i64(c0),
                          _i64(k0), _i64(n), _i64(first), _i64(end - first),
                          numpy.int32(bias is not None), numpy.int32(relu)), rows=o)

    def gram(self, F: Any) -> Any:
        return self._product(F, F.T)

    def grams(self, Fs: Sequence[Any]) -> list[Any]:
        return [self.gram(F) for F in Fs]

    def matmul_columns(self, D: Any, F: Any) -> Any:
        return self._product(D, F)

    def add_product(self, out: Any, D: Any, F: Any) -> None:
        out += self._product(D, F)

    def _product(self, a: Any, b: Any) -> Any:
        """``a @ b`` on cuBLAS: CuPy's ``matmul``, or inside a CUDA graph recording, where CuPy
        refuses cuBLAS calls, the same GEMM called through ctypes (:mod:`.cublas_gemm`)."""
        self.select_compute_type()
        if not self._capturing():
            return self.xp.matmul(a, b)
        out = self.xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
        self._cublas_gemm().matmul(a, b, out, self._stream_pointer(), tf32=self.tf32)
        return out

    # ReLU and pooling.
    def add_to_interior(self, buf: Any, h: int, w: int, x: Any) -> None:
        """One kernel for all channels (the CPU's loop over channels would launch one each)."""
        inner = interior(buf, h, w)
        self.xp.add(inner, x, out=inner)

    def relu_mask(self, x: Any) -> Any:
        x = self.xp.ascontiguousarray(x)
        mask = self.xp.empty(x.shape, dtype=bool)
        self._launch("relu_mask", x.dtype, x.size, (x, mask, _i64(x.size)))
        return mask

    def relu_backward(self, grad: Any, mask: Any) -> Any:
        if not (grad.flags.c_contiguous and mask.flags.c_contiguous):
            raise ValueError("the CUDA ReLU backward works in place on contiguous arrays")
        self._launch("relu_backward", grad.dtype, grad.size, (grad, mask, _i64(grad.size)))
        return grad

    def avg_pool2(self, x: Any, out: Any = None) -> Any:
        c, h, w = x.shape
        if out is None:
            out = self.xp.empty((c, h // 2, w // 2), dtype=x.dtype)
        sx, so = _strides(x), _strides(out)
        self._launch("avg_pool2", x.dtype, (h // 2) * (w // 2),
                     (x, out, _i64(c), _i64(h // 2), _i64(w // 2), _i64(sx[0]), _i64(sx[1]),
                      _i64(so[0]), _i64(so[1])), rows=c)
        return out

    def avg_pool2_backward(self, grad: Any, in_shape: tuple[int, int, int], out: Any = None) -> Any:
        if out is None:
            out = self.xp.zeros(in_shape, dtype=grad.dtype)
        sg, so = _strides(grad), _strides(out)
        c, h2, w2 = grad.shape
        self._launch("avg_pool2_backward", grad.dtype, h2 * w2,
                     (grad, out, _i64(c), _i64(h2), _i64(w2), _i64(sg[0]), _i64(sg[1]),
                      _i64(so[0]), _i64(so[1])), rows=c)
        return out

    def max_pool2(self, x: Any, out: Any = None, index: Any = None) -> tuple[Any, Any]:
        c, h, w = x.shape
        if out is None:
            out = self.xp.empty((c, h // 2, w // 2), dtype=x.dtype)
        if index is None:
            index = self.xp.empty(out.shape, dtype=self.xp.int8)
        elif not index.flags.c_contiguous:
            raise ValueError("the CUDA max pooling writes its winners into a contiguous index")
        sx, so = _strides(x), _strides(out)
        self._launch("max_pool2", x.dtype, (h // 2) * (w // 2),
                     (x, out, index, _i64(c), _i64(h // 2), _i64(w // 2), _i64(sx[0]),
                      _i64(sx[1]), _i64(so[0]), _i64(so[1])), rows=c)
        return out, index

    def max_pool2_backward(self, grad: Any, index: Any, in_shape: tuple[int, int, int],
                           out: Any = None) -> Any:
        if out is None:
            out = self.xp.zeros(in_shape, dtype=grad.dtype)
        sg, so = _strides(grad), _strides(out)
        c, h2, w2 = grad.shape
        self._launch("max_pool2_backward", grad.dtype, h2 * w2,
                     (grad, self.xp.ascontiguousarray(index), out, _i64(c), _i64(h2), _i64(w2),
                      _i64(sg[0]), _i64(sg[1]), _i64(so[0]), _i64(so[1])), rows=c)
        return out

    # Graphs.
    def _capturing(self) -> bool:
        """Whether work queued now is being recorded into a CUDA graph."""
        return self.graphs and self.xp.cuda.get_current_stream().is_capturing()

    def _cublas_gemm(self) -> CublasGemm:
        """cuBLAS's GEMM through ctypes, on CuPy's handle (the seam the host-emulated tests
        give a host library of the same functions)."""
        return cublas_gemm.for_cupy(self.xp, self.xp.cuda.Device().id)

    def _stream_pointer(self) -> int:
        return self.xp.cuda.get_current_stream().ptr

    def recorder(self) -> Callable[[Callable[[Any], tuple], Any], tuple]:
        return GraphRecorder(self.xp, self._record) if self.graphs else plain

    def _record(self, fn: Callable[[Any], tuple], x: Any) -> Recording:
        """``fn`` on a copy of ``x`` captured as a CUDA graph on a stream of its own, its memory
        from a pool of its own (the seam the host-emulated tests replace)."""
        xp = self.xp
        cuda = xp.cuda
        # The usual pool's free blocks (the warm-up's scratch) are not needed again: give them
        # back, so that the recording's pool does not double an evaluation's memory.
        xp.get_default_memory_pool().free_all_blocks()
        # (A capture on a blocking stream would forbid work on the legacy default stream.)
        pool, stream = cuda.MemoryPool(), cuda.Stream(non_blocking=True)
        current = cuda.get_current_stream()
        with cuda.using_allocator(pool.malloc), stream:
            stream.wait_event(current.record())
            source = xp.empty_like(x)
            source[...] = x
            stream.begin_capture()
            try:
                outputs = tuple(fn(source))
            except BaseException:
                try:
                    stream.end_capture()
                except Exception:  # the capture was invalidated by the error: nothing to keep
                    pass
                raise
            graph = stream.end_capture()

        def launch(x: Any) -> None:
            current = cuda.get_current_stream()
            stream.wait_event(current.record())  # x is ready, and the last outputs were copied
            with stream:
                source[...] = x
                graph.launch(stream)
            current.wait_event(stream.record())  # the outputs are read on the current stream

        return Recording(key_of(x), outputs, launch, keep=(graph, pool, stream, source))

    # Host transfers.
    def to_numpy(self, a: Any) -> numpy.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def to_floats(self, values: Sequence[Any]) -> list[float]:
        """Read the 0-d device arrays among ``values`` in one transfer: reading each alone
        would stop the host until the GPU is done, and the GPU until the host has queued more."""
        values = list(values)
        on_device = [i for i, v in enumerate(values) if not isinstance(v, (int, float))]
        if on_device:
            read = self.to_numpy(self.xp.stack([values[i] for i in on_device]))
            for i, v in zip(on_device, read):
                values[i] = v
        return [float(v) for v in values]

    def memory(self) -> tuple[int, int]:
        """(free, total) bytes of the GPU, counting what CuPy's pool holds but does not use."""
        free, total = self.xp.cuda.runtime.memGetInfo()
        pool = self.xp.get_default_memory_pool()
        return free + pool.free_bytes(), total
