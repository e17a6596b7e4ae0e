"""cuBLAS's GEMM called through ctypes: the products of an evaluation recorded as a CUDA graph.

CuPy refuses every cuBLAS call while the current stream is capturing: its
``cublas.setStream``, which each of its cuBLAS wrappers calls first, raises
``NotImplementedError`` then (CuPy 14; its ``test_stream_capture_failure_cublas``, and its issue
6290 on library support under capture). cuBLAS itself can be captured: with the host pointer
mode, the values of ``alpha`` and ``beta`` are recorded with the launch (cuBLAS's "CUDA Graphs
support"; from CUDA 12.2 on, its workspace under capture comes from ``cudaMallocAsync``). So
inside a recording the CUDA backend's products call ``cublasGemmEx`` here, on CuPy's own cuBLAS
handle and library, on the capturing stream; outside one they stay CuPy's ``matmul``.

The arrays are row-major; cuBLAS is column-major. A C-contiguous (r, c) array is, to cuBLAS, its
transpose, (c, r), with leading dimension c; an F-contiguous one is itself with leading
dimension r. So ``out = a @ b`` is computed as ``out^T = b^T a^T``, which needs no copy for
either kind of operand (the Gram matrix's ``F.T`` is F-contiguous).
"""
from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy

# From cublas_api.h and library_types.h (the values are part of CUDA's ABI).
OP_N, OP_T = 0, 1
POINTER_MODE_HOST = 0
DATA_TYPES = {numpy.dtype(numpy.float32): 0, numpy.dtype(numpy.float64): 1}  # CUDA_R_32F, _64F
COMPUTE_32F, COMPUTE_32F_FAST_TF32, COMPUTE_64F = 68, 77, 70
GEMM_DEFAULT = -1
STATUS_NAMES = {1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
                7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH",
                13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR",
                15: "CUBLAS_STATUS_NOT_SUPPORTED"}


class CublasError(RuntimeError):
    """A cuBLAS call returned an error status."""


@dataclass(frozen=True)
class GemmArguments:
    """``cublasGemmEx``'s shape arguments for the row-major ``a @ b``: ``first`` and ``second``
    are the arrays passed as its A and B (``b`` and ``a``), each with its operation and leading
    dimension."""

    transa: int
    transb: int
    m: int
    n: int
    k: int
    first: Any
    lda: int
    second: Any
    ldb: int
    ldc: int


def _operand(x: Any) -> tuple[int, int]:
    """(operation, leading dimension) giving cuBLAS the transpose of the row-major ``x``."""
    rows, cols = x.shape
    if x.flags.c_contiguous:
        return OP_N, max(1, cols)
    if x.flags.f_contiguous:
        return OP_T, max(1, rows)
    raise ValueError("cuBLAS's GEMM here needs C- or F-contiguous operands")


def gemm_arguments(a: Any, b: Any) -> GemmArguments:
    """The column-major form of ``a @ b`` for (M, K) ``a``, (K, N) ``b`` and a C-contiguous
    (M, N) result: ``cublasGemmEx(transa, transb, N, M, K, b, lda, a, ldb, out, N)``."""
    (m, k), (k_b, n) = a.shape, b.shape
    if k != k_b:
        raise ValueError(f"cannot multiply {a.shape} by {b.shape}")
    transa, lda = _operand(b)
    transb, ldb = _operand(a)
    return GemmArguments(transa, transb, n, m, k, b, lda, a, ldb, max(1, n))


class CublasGemm:
    """``cublasGemmEx`` of one loaded cuBLAS library on one of its handles. ``pointer(x)`` is
    the device address of an array (``x.data.ptr`` for CuPy's)."""

    def __init__(self, library: ctypes.CDLL, handle: int, pointer: Callable[[Any], int]) -> None:
        self.handle, self.pointer = ctypes.c_void_p(handle), pointer
        p, i = ctypes.c_void_p, ctypes.c_int
        self._set_stream = self._function(library, "cublasSetStream_v2", [p, p])
        self._get_mode = self._function(library, "cublasGetPointerMode_v2",
                                        [p, ctypes.POINTER(i)])
        self._set_mode = self._function(library, "cublasSetPointerMode_v2", [p, i])
        self._gemm = self._function(library, "cublasGemmEx",
                                    [p, i, i, i, i, i, p, p, i, i, p, i, i, p, p, i, i, i, i])

    @staticmethod
    def _function(library: ctypes.CDLL, name: str, argtypes: list) -> Any:
        f = getattr(library, name)
        f.argtypes, f.restype = argtypes, ctypes.c_int
        return f

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status:
            raise CublasError(f"{what} failed: {STATUS_NAMES.get(status, status)}")

    def matmul(self, a: Any, b: Any, out: Any, stream: int, tf32: bool = False) -> None:
        """``out = a @ b`` queued on ``stream`` (2-D float32 or float64 arrays of one dtype,
        ``out`` C-contiguous); ``tf32`` lets float32 products use TF32 tensor cores."""
        dtype = numpy.dtype(out.dtype)
        if not (a.dtype == b.dtype == dtype and dtype in DATA_TYPES and out.flags.c_contiguous
                and out.shape == (a.shape[0], b.shape[1])):
            raise ValueError(f"cuBLAS's GEMM here takes {a.dtype} {a.shape} @ {b.dtype} "
                             f"{b.shape} into a C-contiguous {dtype} {out.shape}")
        g = gemm_arguments(a, b)
        data = DATA_TYPES[dtype]
        compute = (COMPUTE_64F if dtype == numpy.float64
                   else COMPUTE_32F_FAST_TF32 if tf32 else COMPUTE_32F)
        scalar = ctypes.c_double if dtype == numpy.float64 else ctypes.c_float
        alpha, beta = scalar(1.0), scalar(0.0)
        self._check(self._set_stream(self.handle, ctypes.c_void_p(stream)), "cublasSetStream")
        mode = ctypes.c_int()
        self._check(self._get_mode(self.handle, ctypes.byref(mode)), "cublasGetPointerMode")
        # alpha and beta are host values: recorded with the launch when capturing
        self._check(self._set_mode(self.handle, POINTER_MODE_HOST), "cublasSetPointerMode")
        try:
            self._check(self._gemm(
                self.handle, g.transa, g.transb, g.m, g.n, g.k, ctypes.byref(alpha),
                self.pointer(g.first), data, g.lda, self.pointer(g.second), data, g.ldb,
                ctypes.byref(beta), self.pointer(out), data, g.ldc, compute, GEMM_DEFAULT),
                "cublasGemmEx")
        finally:
            self._set_mode(self.handle, mode.value)  # as CuPy left it


def _library() -> ctypes.CDLL:
    """The cuBLAS library CuPy has loaded (its handles are valid in that copy only)."""
    try:  # how CuPy 14 finds and loads it
        from cuda.pathfinder import load_nvidia_dynamic_lib
        path = load_nvidia_dynamic_lib("cublas").abs_path
        if path:
            return ctypes.CDLL(path)
    except Exception:  # no cuda-pathfinder, or it does not know where the library is
        pass
    for soname in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
        try:
            return ctypes.CDLL(soname)  # the copy already loaded, where one is
        except OSError:
            continue
    raise CublasError("could not load cuBLAS through ctypes")


@functools.lru_cache(maxsize=None)
def for_cupy(cupy: Any, device: int) -> CublasGemm:
    """The GEMM on CuPy's cuBLAS handle of ``device``."""
    return CublasGemm(_library(), cupy.cuda.device.get_cublas_handle(),
                      lambda x: x.data.ptr)
