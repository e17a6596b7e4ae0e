"""The CUDA backend's own code on the host: our kernels compiled for the CPU, CuPy replaced by
NumPy.

``kernels/cuda/engine.cu`` is compiled unchanged with the system C++ compiler through
``host_cuda/shim.h`` (which defines ``__global__`` and the thread and block indices), plus one
generated launcher per kernel that runs every (block, thread) pair of the launch's grid in turn.
:class:`HostEmulatedCudaBackend` is :class:`CudaBackend` with the array module set to NumPy and
its one seam, ``_function``, returning those launchers: its launch arithmetic, im2col chunking,
strides, border zeroing and argument marshalling all run as written. Left out: cuBLAS (the
products are NumPy's, except inside a CUDA graph recording, where they are
``kernels/cublas_gemm.py``'s ctypes calls into ``host_cuda/cublas_host.cpp``, a host library
with cuBLAS's C signatures) and CuPy's memory pool.

Marshalling is checked as strictly as a GPU would need it: each array's dtype must be the one the
kernel's parameter points to, each scalar a NumPy integer of the parameter's C type (what CuPy
passes for it), and ``None`` only for a pointer.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gatys.kernels import cuda_backend
from gatys.kernels.cublas_gemm import CublasGemm
from gatys.kernels.cuda_backend import C_TYPES, CudaBackend
from gatys.kernels.cuda_graph import Recording, key_of

SHIM = Path(__file__).with_name("host_cuda") / "shim.h"
CUBLAS_HOST = Path(__file__).with_name("host_cuda") / "cublas_host.cpp"
HOST_HANDLE, HOST_STREAM = 0x6A75, 0x57AE  # what the host cuBLAS is given for a handle and stream
_SIGNATURE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
# Parameter type (qualifiers dropped) -> what the host launcher takes and what CuPy would get.
_POINTEES = {"bool": np.dtype(np.bool_), "signed char": np.dtype(np.int8)}
_SCALARS = {"long long": (ctypes.c_longlong, np.dtype(np.int64)),
            "int": (ctypes.c_int, np.dtype(np.int32))}


def compiler() -> str | None:
    """The system C++ compiler, or None."""
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@dataclass(frozen=True)
class Parameter:
    name: str
    c_type: str  # without const / __restrict__
    pointer: bool


def kernel_signatures(source: str) -> dict[str, list[Parameter]]:
    """Each ``extern "C" __global__`` kernel's parameters, in order."""
    kernels = {}
    for name, params in _SIGNATURE.findall(source):
        parsed = []
        for p in params.split(","):
            words = p.replace("*", " * ").split()
            pointer = "*" in words
            c_type = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__", "*"))
            parsed.append(Parameter(words[-1], c_type, pointer))
        kernels[name] = parsed
    return kernels


def _launcher(name: str, params: list[Parameter]) -> str:
    declared = ", ".join(f"{p.c_type}{'*' if p.pointer else ''} {p.name}" for p in params)
    passed = ", ".join(p.name for p in params)
    return (f'extern "C" void launch_{name}(unsigned int grid_x, unsigned int grid_y, '
            f"unsigned int block, {declared}) {{\n"
            "    gridDim = {grid_x, grid_y, 1};\n    blockDim = {block, 1, 1};\n"
            "    for (unsigned int by = 0; by < grid_y; ++by)\n"
            "        for (unsigned int b = 0; b < grid_x; ++b)\n"
            "            for (unsigned int t = 0; t < block; ++t) {\n"
            "                blockIdx = {b, by, 0};\n                threadIdx = {t, 0, 0};\n"
            f"                {name}({passed});\n            }}\n}}\n")


def build(source_path: Path, c_type: str, out_dir: Path) -> Path:
    """Compile ``source_path`` for the host with ``real_t`` = ``c_type``; the shared library's
    path (named after a hash of the sources, so an edit rebuilds it)."""
    source = source_path.read_text()
    unit = (f'#include "{SHIM}"\n#include "{source_path.resolve()}"\n'
            + "".join(_launcher(n, p) for n, p in kernel_signatures(source).items()))
    return _compile(unit, source + SHIM.read_text(), f"engine_{c_type}", out_dir,
                    ["-Wno-unknown-pragmas", f"-Dreal_t={c_type}"])  # #pragma unroll


def _compile(unit: str, included: str, name: str, out_dir: Path, flags: list[str]) -> Path:
    """``unit`` compiled into a shared library in ``out_dir``, named after a hash of it and of
    the text it includes (so an edit rebuilds it)."""
    key = hashlib.sha256((unit + included + " ".join(flags)).encode()).hexdigest()[:16]
    library = out_dir / f"{name}_{key}.so"
    if not library.exists():
        cpp = out_dir / f"{name}_{key}.cpp"
        cpp.write_text(unit)
        done = subprocess.run([compiler() or "g++", "-std=c++17", "-O2", "-shared", "-fPIC",
                               "-Wall", "-Werror", *flags, "-o", str(library), str(cpp)],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"host compile of {name} failed:\n{done.stderr}")
    return library


class HostKernel:
    """One kernel's host launcher, called as CuPy calls a RawKernel: ``kernel(grid, block,
    args)``."""

    def __init__(self, library: ctypes.CDLL, name: str, params: list[Parameter],
                 real: np.dtype) -> None:
        self.name, self.params, self.real = name, params, real
        self.function = getattr(library, f"launch_{name}")
        self.function.restype = None
        self.function.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint] + [
            ctypes.c_void_p if p.pointer else _SCALARS[p.c_type][0] for p in params]
        self.launches: list[tuple[tuple[int, ...], int]] = []  # (grid, block)

    def __call__(self, grid: tuple[int], block: tuple[int], args: tuple) -> None:
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        # CUDA's limits: a 1-D block of at most 1024 threads, a grid's y at most 65535.
        if not (len(grid) in (1, 2) and len(block) == 1 and min(grid) >= 1
                and grid[1:2] <= (65535,) and 1 <= block[0] <= 1024):
            raise ValueError(f"{self.name}: bad launch grid={grid} block={block}")
        values = [self._value(p, a) for p, a in zip(self.params, args)]
        self.launches.append((grid, block[0]))
        self.function(grid[0], grid[1] if len(grid) == 2 else 1, block[0], *values)

    def _value(self, p: Parameter, a: Any) -> Any:
        where = f"{self.name}({p.name})"
        if p.pointer:
            if a is None:
                return None
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{where}: expected an array, got {type(a).__name__}")
            want = self.real if p.c_type == "real_t" else _POINTEES[p.c_type]
            if a.dtype != want:
                raise TypeError(f"{where}: expected {want}, got {a.dtype}")
            return a.ctypes.data
        want = _SCALARS[p.c_type][1]
        if not (isinstance(a, np.generic) and a.dtype == want):
            raise TypeError(f"{where}: expected a {want} scalar, got {a!r}")
        return int(a)


def _out_dir() -> Path:
    out_dir = Path(tempfile.gettempdir()) / "gatys-host-cuda"
    out_dir.mkdir(exist_ok=True)
    return out_dir


@functools.lru_cache(maxsize=None)
def host_kernels(dtype: np.dtype, source_path: Path = cuda_backend.SOURCE) -> dict[str, HostKernel]:
    """Every kernel of ``source_path`` compiled for the host with ``real_t`` of ``dtype``."""
    c_type = C_TYPES[np.dtype(dtype)]
    library = ctypes.CDLL(str(build(source_path, c_type, _out_dir())))
    return {name: HostKernel(library, name, params, np.dtype(dtype))
            for name, params in kernel_signatures(source_path.read_text()).items()}


@functools.lru_cache(maxsize=None)
def host_cublas() -> ctypes.CDLL:
    """``host_cuda/cublas_host.cpp`` compiled: the cuBLAS functions that
    ``kernels/cublas_gemm.py`` calls, on the host, with counters for the tests."""
    library = ctypes.CDLL(str(_compile(CUBLAS_HOST.read_text(), "", "cublas_host", _out_dir(),
                                       [])))
    library.host_last_stream.restype = ctypes.c_void_p
    library.host_gemm_calls.restype = ctypes.c_long
    return library


def host_gemm(library: ctypes.CDLL | None = None) -> CublasGemm:
    """The ctypes GEMM on the host library, with NumPy arrays' addresses."""
    return CublasGemm(library or host_cublas(), HOST_HANDLE, lambda a: a.ctypes.data)


@dataclass(frozen=True)
class HostEmulatedCudaBackend(CudaBackend):
    """:class:`CudaBackend` on NumPy arrays, its kernels compiled for the host; inside a
    recording its products go through the ctypes GEMM, on :func:`host_cublas`."""

    source: Path = field(default=cuda_backend.SOURCE, compare=False)
    fail_recording: bool = False
    state: dict = field(default_factory=dict, compare=False, repr=False)  # "capturing"

    def _function(self, name: str, dtype: Any) -> HostKernel:
        return host_kernels(np.dtype(dtype), self.source)[name]

    def select_compute_type(self) -> None:
        pass  # cuBLAS's setting; the products here are NumPy's

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def synchronize(self) -> None:
        pass

    def _capturing(self) -> bool:
        return self.graphs and self.state.get("capturing", False)

    def _cublas_gemm(self) -> CublasGemm:
        return host_gemm()

    def _stream_pointer(self) -> int:
        return HOST_STREAM

    def _record(self, fn: Any, x: Any) -> Recording:
        """A CUDA graph's semantics on the host: the outputs are written at their recorded
        addresses by each replay, from the input buffer recorded (garbage before the first), and
        a plain number among them is a constant of the recording: one that would differ at a
        replay is an error here. ``fail_recording`` makes it fail as a driver would."""
        if self.fail_recording:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted "
                               "when stream is capturing")
        source = x.copy()

        def recorded(x: Any) -> tuple:  # fn as the graph runs it: queued on a capturing stream
            self.state["capturing"] = True
            try:
                return fn(x)
            finally:
                self.state["capturing"] = False

        # NumPy's sums are scalars, CuPy's 0-d arrays, which a replay writes to: make them so.
        outputs = tuple(np.array(o) if isinstance(o, np.generic) else o
                        for o in recorded(source))
        for o in outputs:
            if isinstance(o, np.ndarray):
                o.fill(True if o.dtype == bool else np.nan)  # a recording computes nothing

        def launch(new_x: Any) -> None:
            source[...] = new_x
            for kept, now in zip(outputs, recorded(source), strict=True):
                if isinstance(kept, np.ndarray):
                    kept[...] = now
                elif kept != now:
                    raise AssertionError(f"a replay would return the recorded {kept!r}, "
                                         f"not {now!r}")

        return Recording(key_of(x), outputs, launch, keep=source)


class DirtyNumPy(types.ModuleType):
    """NumPy, except that ``empty`` hands out memory full of garbage (NaN; True for bool; -1 for
    integers), as CuPy's pool does with the blocks it reuses: a kernel that leaves part of its
    output unwritten then shows, where fresh zero pages from the OS would hide it."""

    def __init__(self) -> None:
        super().__init__("dirty_numpy")

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def empty(shape: Any, dtype: Any = float, order: str = "C") -> np.ndarray:
        a = np.empty(shape, dtype, order)
        kind = a.dtype.kind
        a.fill(True if kind == "b" else -1 if kind in "iu" else np.nan)
        return a


def emulated_backend(source: Path = cuda_backend.SOURCE, winograd: bool = False,
                     direct: bool = True, graphs: bool = False,
                     fail_recording: bool = False) -> HostEmulatedCudaBackend:
    return HostEmulatedCudaBackend("cuda", DirtyNumPy(), winograd=winograd, direct=direct,
                                   graphs=graphs, source=source, fail_recording=fail_recording)
