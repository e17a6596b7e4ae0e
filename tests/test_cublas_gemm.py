"""kernels/cublas_gemm.py, cuBLAS's GEMM through ctypes (the products inside a CUDA graph
recording), against NumPy's products: its calls run on tests/host_cuda/cublas_host.cpp, which
has cuBLAS's C signatures and computes and checks its arguments by cuBLAS's documented
column-major rules. On a GPU, test_cuda.py's graph tests run it on cuBLAS itself."""
from __future__ import annotations

import numpy as np
import pytest
from host_cuda import HOST_STREAM, compiler, host_cublas, host_gemm
from hypothesis import given, settings
from hypothesis import strategies as st

from gatys.kernels.cublas_gemm import CublasError, gemm_arguments

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++) to build the "
                                                            "host cuBLAS: apt-get install g++")


def _operand(rng, shape, order, dtype):
    return np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(1, 9),
       a_order=st.sampled_from("CF"), b_order=st.sampled_from("CF"),
       dtype=st.sampled_from([np.float32, np.float64]), tf32=st.booleans(),
       seed=st.integers(0, 2**16))
def test_products_equal_numpys_for_either_layout_of_either_operand(m, n, k, a_order, b_order,
                                                                  dtype, tf32, seed):
    rng = np.random.default_rng(seed)
    a, b = _operand(rng, (m, k), a_order, dtype), _operand(rng, (k, n), b_order, dtype)
    out = np.full((m, n), np.nan, dtype=dtype)
    host_gemm().matmul(a, b, out, HOST_STREAM, tf32=tf32)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_products_of_the_engine(rng, dtype):
    """The three products of the CUDA backend, with the shapes of a layer: the Gram matrix
    (F F^T, with F.T a view), D F (eq. 6) and a convolution's weights times im2col columns."""
    F = _operand(rng, (64, 300), "C", dtype)
    D = _operand(rng, (64, 64), "C", dtype)
    W, col = _operand(rng, (128, 9 * 64), "C", dtype), _operand(rng, (9 * 64, 257), "C", dtype)
    gemm = host_gemm()
    for a, b in [(F, F.T), (D, F), (W, col)]:
        out = np.empty((a.shape[0], b.shape[1]), dtype=dtype)
        gemm.matmul(a, b, out, HOST_STREAM)
        expected = a @ b
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.abs(expected).max())


def test_arguments_are_cublas_column_major_form_of_the_row_major_product():
    F = np.zeros((4, 10), np.float32)
    g = gemm_arguments(F, F.T)  # F F^T: out^T = (F^T)^T F^T, no copy of either operand
    assert (g.transa, g.transb, g.m, g.n, g.k, g.lda, g.ldb, g.ldc) == (1, 0, 4, 4, 10, 10, 10, 4)
    W, col = np.zeros((8, 27), np.float32), np.zeros((27, 5), np.float32)
    g = gemm_arguments(W, col)
    assert g.first is col and g.second is W
    assert (g.transa, g.transb, g.m, g.n, g.k, g.lda, g.ldb, g.ldc) == (0, 0, 5, 8, 27, 5, 27, 5)


def test_the_stream_is_set_and_the_pointer_mode_is_restored():
    """alpha and beta are host values: host pointer mode for the GEMM (the host library starts
    in device mode and refuses host scalars there), and back to the caller's mode after."""
    library = host_cublas()
    before = library.host_gemm_calls()
    a = np.ones((2, 3), np.float32)
    out = np.empty((2, 2), np.float32)
    host_gemm(library).matmul(a, a.T, out, 0x1234)
    assert library.host_last_stream() == 0x1234 and library.host_pointer_mode() == 1
    assert library.host_gemm_calls() == before + 1
    np.testing.assert_array_equal(out, np.full((2, 2), 3.0, np.float32))


def test_what_it_cannot_multiply_is_refused_before_any_call():
    a = np.ones((6, 4), np.float32)
    gemm, calls = host_gemm(), host_cublas().host_gemm_calls()
    cases = [(a[:, ::2], np.ones((2, 3), np.float32), np.empty((6, 3), np.float32)),  # strided
             (a, np.ones((4, 3), np.float64), np.empty((6, 3), np.float32)),  # mixed dtypes
             (a, np.ones((4, 3), np.float32), np.empty((3, 6), np.float32).T),  # out not C
             (a, np.ones((5, 3), np.float32), np.empty((6, 3), np.float32)),  # 4 against 5
             (a.astype(np.int32), np.ones((4, 3), np.int32), np.empty((6, 3), np.int32))]
    for x, y, out in cases:
        with pytest.raises(ValueError):
            gemm.matmul(x, y, out, HOST_STREAM)
    assert host_cublas().host_gemm_calls() == calls


def test_a_cublas_error_status_is_raised_with_its_name():
    from gatys.kernels.cublas_gemm import CublasGemm

    a = np.ones((2, 2), np.float32)
    no_handle = CublasGemm(host_cublas(), 0, lambda x: x.ctypes.data)
    with pytest.raises(CublasError, match="cublasSetStream failed: CUBLAS_STATUS_NOT_INITIALIZED"):
        no_handle.matmul(a, a, np.empty((2, 2), np.float32), HOST_STREAM)
