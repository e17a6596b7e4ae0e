// cuBLAS's entry points that kernels/cublas_gemm.py calls through ctypes, with cuBLAS's C
// signatures and documented semantics (column-major storage, op(A) of m x k, op(B) of k x n,
// leading dimensions at least the stored rows, host or device pointer mode), computed on the
// host for the host-emulated tests. It refuses what cuBLAS refuses, plus host scalars read in
// device pointer mode (which on a GPU would read the host address as a device one), and counts
// its GEMMs. It starts in device pointer mode, so a caller that does not set host mode fails.
#include <cstdint>

namespace {

enum Status { SUCCESS = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, NOT_SUPPORTED = 15 };
enum { R_32F = 0, R_64F = 1, COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77, COMPUTE_64F = 70 };

void* last_stream = nullptr;
int pointer_mode = 1;
long gemm_calls = 0;

int at_least_one(int v) { return v > 1 ? v : 1; }

template <typename T>
void gemm(int transa, int transb, int m, int n, int k, const void* alpha, const void* A, int lda,
          const void* B, int ldb, const void* beta, void* C, int ldc) {
    const T* a = static_cast<const T*>(A);
    const T* b = static_cast<const T*>(B);
    T* c = static_cast<T*>(C);
    const double al = *static_cast<const T*>(alpha), be = *static_cast<const T*>(beta);
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            double sum = 0.0;
            for (int l = 0; l < k; ++l) {
                const double x = transa ? a[l + (int64_t)i * lda] : a[i + (int64_t)l * lda];
                const double y = transb ? b[j + (int64_t)l * ldb] : b[l + (int64_t)j * ldb];
                sum += x * y;
            }
            T& out = c[i + (int64_t)j * ldc];
            out = static_cast<T>(al * sum + (be == 0.0 ? 0.0 : be * out));
        }
}

}  // namespace

extern "C" {

int cublasSetStream_v2(void* handle, void* stream) {
    if (!handle) return NOT_INITIALIZED;
    last_stream = stream;
    return SUCCESS;
}

int cublasGetPointerMode_v2(void* handle, int* mode) {
    if (!handle) return NOT_INITIALIZED;
    *mode = pointer_mode;
    return SUCCESS;
}

int cublasSetPointerMode_v2(void* handle, int mode) {
    if (!handle) return NOT_INITIALIZED;
    if (mode != 0 && mode != 1) return INVALID_VALUE;
    pointer_mode = mode;
    return SUCCESS;
}

int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                 const void* A, int Atype, int lda, const void* B, int Btype, int ldb,
                 const void* beta, void* C, int Ctype, int ldc, int computeType, int algo) {
    if (!handle) return NOT_INITIALIZED;
    if (pointer_mode != 0) return INVALID_VALUE;  // alpha and beta here are host values
    if (transa < 0 || transa > 1 || transb < 0 || transb > 1 || m < 0 || n < 0 || k < 0)
        return INVALID_VALUE;
    if (lda < at_least_one(transa ? k : m) || ldb < at_least_one(transb ? n : k) ||
        ldc < at_least_one(m))
        return INVALID_VALUE;
    if (Atype != Btype || Btype != Ctype || algo != -1) return NOT_SUPPORTED;
    if (Atype == R_32F && (computeType == COMPUTE_32F || computeType == COMPUTE_32F_FAST_TF32))
        gemm<float>(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (Atype == R_64F && computeType == COMPUTE_64F)
        gemm<double>(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        return NOT_SUPPORTED;
    ++gemm_calls;
    return SUCCESS;
}

long host_gemm_calls() { return gemm_calls; }
void* host_last_stream() { return last_stream; }
int host_pointer_mode() { return pointer_mode; }
}
