// The CUDA engine's own kernels (compiled by kernels/cuda_backend.py with cupy.RawModule, once per
// dtype, real_t being float or double). Activations use the padded flat layout of array_ops: per
// channel, the image with a one-pixel zero border as rows of width wp = W + 2, flattened, plus
// two slack elements: L = (H + 2) wp + 2 per channel.
//
// Every kernel is a grid-stride loop over its outputs, so any launch size covers any problem.

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// im2col of a 3x3, pad-1 convolution for the output positions c0 .. c0 + k0 - 1 (flat positions
// wp + 1 + c0 ..., i.e. counted from the first interior pixel): row k C + c of ``col`` is tap k
// = 3 dy + dx of channel c, i.e. src[c, dy wp + dx + c0 + j]. With the weights as an (O, 9 C)
// matrix whose column block k is tap k, one GEMM gives the outputs.
extern "C" __global__ void im2col_padded(const real_t* __restrict__ src, real_t* __restrict__ col,
                                         long long C, long long L, long long wp, long long c0,
                                         long long k0) {
    GRID_STRIDE(i, 9 * C * k0) {
        long long row = i / k0, j = i - row * k0;
        long long k = row / C, c = row - k * C;
        long long dy = k / 3, dx = k - 3 * dy;
        col[i] = src[c * L + dy * wp + dx + c0 + j];
    }
}

// The GEMM's (O, k0) product into the padded flat ``dst`` at the same positions, plus the bias
// (when has_bias), ReLU (when relu), and zero where a position falls on the left or right border
// (the junk columns of the flat layout).
extern "C" __global__ void store_outputs(const real_t* __restrict__ prod, const real_t* __restrict__ bias,
                                         real_t* __restrict__ dst, long long O, long long L,
                                         long long wp, long long c0, long long k0, int has_bias,
                                         int relu) {
    GRID_STRIDE(i, O * k0) {
        long long o = i / k0, j = i - o * k0;
        long long p = wp + 1 + c0 + j;
        long long x = p % wp;
        real_t v = prod[i];
        if (has_bias) v += bias[o];
        if (relu && v < (real_t)0) v = (real_t)0;
        dst[o * L + p] = (x == 0 || x == wp - 1) ? (real_t)0 : v;
    }
}

// What backprop through a ReLU needs of its output: where it is > 0.
extern "C" __global__ void relu_mask(const real_t* __restrict__ x, bool* __restrict__ mask,
                                     long long n) {
    GRID_STRIDE(i, n) { mask[i] = x[i] > (real_t)0; }
}

// The "if F > 0" of eqs. 2 and 6, in place.
extern "C" __global__ void relu_backward(real_t* __restrict__ grad, const bool* __restrict__ mask,
                                         long long n) {
    GRID_STRIDE(i, n) {
        if (!mask[i]) grad[i] = (real_t)0;
    }
}

// Pooling over 2x2 windows, stride 2, floor mode, between strided (C, H, W) views whose last
// axis is contiguous: x has strides (sxc, sxy, 1), out (soc, soy, 1); outputs (C, H2, W2).
extern "C" __global__ void avg_pool2(const real_t* __restrict__ x, real_t* __restrict__ out, long long C,
                                     long long H2, long long W2, long long sxc, long long sxy,
                                     long long soc, long long soy) {
    GRID_STRIDE(i, C * H2 * W2) {
        long long c = i / (H2 * W2), r = i - c * H2 * W2, y = r / W2, x0 = r - y * W2;
        const real_t* w = x + c * sxc + 2 * y * sxy + 2 * x0;
        out[c * soc + y * soy + x0] = (real_t)0.25 * (w[0] + w[1] + w[sxy] + w[sxy + 1]);
    }
}

// Spread each output gradient evenly over its window (out: the input's shape, strided).
extern "C" __global__ void avg_pool2_backward(const real_t* __restrict__ g, real_t* __restrict__ out,
                                              long long C, long long H2, long long W2,
                                              long long sgc, long long sgy, long long soc,
                                              long long soy) {
    GRID_STRIDE(i, C * H2 * W2) {
        long long c = i / (H2 * W2), r = i - c * H2 * W2, y = r / W2, x0 = r - y * W2;
        real_t q = (real_t)0.25 * g[c * sgc + y * sgy + x0];
        real_t* w = out + c * soc + 2 * y * soy + 2 * x0;
        w[0] = q;
        w[1] = q;
        w[soy] = q;
        w[soy + 1] = q;
    }
}

// Max over each window into a contiguous (C, H2, W2) ``out``, with the index 0..3 (row-major in
// the window) of the first maximum.
extern "C" __global__ void max_pool2(const real_t* __restrict__ x, real_t* __restrict__ out,
                                     signed char* __restrict__ index, long long C, long long H2,
                                     long long W2, long long sxc, long long sxy) {
    GRID_STRIDE(i, C * H2 * W2) {
        long long c = i / (H2 * W2), r = i - c * H2 * W2, y = r / W2, x0 = r - y * W2;
        const real_t* w = x + c * sxc + 2 * y * sxy + 2 * x0;
        real_t v[4] = {w[0], w[1], w[sxy], w[sxy + 1]};
        int best = 0;
        for (int k = 1; k < 4; ++k)
            if (v[k] > v[best]) best = k;
        out[i] = v[best];
        index[i] = (signed char)best;
    }
}

// Route each output gradient to its window's maximum; the other three get zero.
extern "C" __global__ void max_pool2_backward(const real_t* __restrict__ g,
                                              const signed char* __restrict__ index,
                                              real_t* __restrict__ out, long long C, long long H2,
                                              long long W2, long long sgc, long long sgy,
                                              long long soc, long long soy) {
    GRID_STRIDE(i, C * H2 * W2) {
        long long c = i / (H2 * W2), r = i - c * H2 * W2, y = r / W2, x0 = r - y * W2;
        real_t v = g[c * sgc + y * sgy + x0];
        int best = index[i];
        real_t* w = out + c * soc + 2 * y * soy + 2 * x0;
        w[0] = best == 0 ? v : (real_t)0;
        w[1] = best == 1 ? v : (real_t)0;
        w[soy] = best == 2 ? v : (real_t)0;
        w[soy + 1] = best == 3 ? v : (real_t)0;
    }
}
