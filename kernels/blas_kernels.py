"""Which kernels BLAS multiplies with: the engine cuts its Winograd layers to suit them."""
from __future__ import annotations

import functools

# OpenBLAS's names (threadpoolctl's ``architecture``) for its AVX-512 kernels, in lower case.
AVX512_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


@functools.lru_cache(maxsize=1)
def avx512_products() -> bool:
    """Whether the BLAS that NumPy loaded multiplies with AVX-512 kernels (all of its libraries
    do; False where threadpoolctl is missing or names none). OPENBLAS_CORETYPE chooses them,
    so this is read from the library, once per process."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    kinds = [str(lib.get("architecture", "")).lower()
             for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    return bool(kinds) and all(kind in AVX512_KERNELS for kind in kinds)
