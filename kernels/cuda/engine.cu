// The CUDA engine's own kernels (compiled by kernels/cuda_backend.py with cupy.RawModule, once per
// dtype, real_t being float or double). Activations use the padded flat layout of array_ops: per
// channel, the image with a one-pixel zero border as rows of width wp = W + 2, flattened, plus
// two slack elements: L = (H + 2) wp + 2 per channel.
//
// Every kernel is a grid-stride loop over its outputs, so any launch size covers any problem.

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)
// Kernels over (rows, positions) take the row (a channel) from the grid's y and stride over the
// positions in x, so no thread divides a flat index (64-bit division is a long software routine
// on a GPU, and it was what limited these kernels). What is left of division is 32-bit, on
// positions within one channel, which always fit.
#define ROW_STRIDE(r, rows) for (long long r = blockIdx.y; r < (rows); r += gridDim.y)

// im2col of a 3x3, pad-1 convolution for the output positions c0 .. c0 + k0 - 1 (flat positions
// wp + 1 + c0 ..., i.e. counted from the first interior pixel): row k C + c of ``col`` is tap k
// = 3 dy + dx of channel c, i.e. src[c, dy wp + dx + c0 + j]. With the weights as an (O, 9 C)
// matrix whose column block k is tap k, one GEMM gives the outputs. A thread reads the nine taps
// of one (c, j) and writes them to the nine rows, each write coalesced along j. With ``mask``
// (a ReLU mask of src's shape, or null) a tap is taken as zero where the mask is false: backprop
// through the ReLU that produced src, done here rather than in a pass of its own.
extern "C" __global__ void im2col_padded(const real_t* __restrict__ src,
                                         const bool* __restrict__ mask, real_t* __restrict__ col,
                                         long long C, long long L, long long wp, long long c0,
                                         long long k0) {
    ROW_STRIDE(c, C) {
        GRID_STRIDE(j, k0) {
            long long i = c * L + c0 + j;
            const real_t* t = src + i;
            real_t* out = col + c * k0 + j;
#pragma unroll
            for (int k = 0; k < 9; ++k) {
                long long d = (k / 3) * wp + k % 3;
                out[k * C * k0] = mask && !mask[i + d] ? (real_t)0 : t[d];
            }
        }
    }
}

// Whether flat position p of a padded row of width wp is on the left or right border (the junk
// columns of the flat layout, which must stay zero).
__device__ inline bool on_border(long long p, long long wp) {
    unsigned int x = (unsigned int)p % (unsigned int)wp;
    return x == 0 || x == (unsigned int)wp - 1;
}

// The GEMM's (O, k0) product for output positions c0 .. c0 + k0 - 1 of n into the padded flat
// ``dst``, plus the bias (when has_bias) and ReLU (when relu), over the ``count`` flat positions
// from ``first`` of each row: a chunk's own positions, and for the first and last chunks also
// the top and bottom borders and the slack. Those and the left and right borders get zero, so
// the buffer needs no other pass. With ``mask`` (or null) also writes where the result is > 0,
// the ReLU mask backprop needs.
extern "C" __global__ void store_outputs(const real_t* __restrict__ prod,
                                         const real_t* __restrict__ bias, real_t* __restrict__ dst,
                                         bool* __restrict__ mask, long long O, long long L,
                                         long long wp, long long c0, long long k0, long long n,
                                         long long first, long long count, int has_bias,
                                         int relu) {
    ROW_STRIDE(o, O) {
        real_t b = has_bias ? bias[o] : (real_t)0;
        GRID_STRIDE(i, count) {
            long long p = first + i;
            long long j = p - (wp + 1);  // the output position, counted as in im2col_padded
            real_t v = (real_t)0;
            if (j >= 0 && j < n && !on_border(p, wp)) {
                v = prod[o * k0 + j - c0] + b;
                if (relu && v < (real_t)0) v = (real_t)0;
            }
            dst[o * L + p] = v;
            if (mask) mask[o * L + p] = v > (real_t)0;
        }
    }
}

// A direct 3x3, pad-1 convolution for layers with few input or output channels (conv1_1: C = 3;
// its input gradient: O = 3), where im2col's GEMM is 27 deep or 3 wide and its columns cost more
// than the arithmetic. ``weights`` is the (O, 9 C) matrix of the im2col GEMM (column k C + c: tap
// k = 3 dy + dx of channel c). A thread computes DIRECT_OUT consecutive output channels (group g
// from the grid's y) at one flat position p of the whole padded buffer, so a warp reads
// consecutive inputs and the same weights. Interior positions get bias and ReLU as in
// store_outputs; the border and the slack get zero, so the buffer needs no other pass.
// ``src_mask`` and ``dst_mask`` (each may be null) are as im2col_padded's ``mask`` and
// store_outputs' ``mask``. In a last, partial group the missing channels repeat the last one,
// so the inner loop has no branch; they are computed but not stored.
#define DIRECT_OUT 4
extern "C" __global__ void conv3x3_direct(const real_t* __restrict__ src,
                                          const bool* __restrict__ src_mask,
                                          const real_t* __restrict__ weights,
                                          const real_t* __restrict__ bias,
                                          real_t* __restrict__ dst, bool* __restrict__ dst_mask,
                                          long long C, long long O, long long L, long long wp,
                                          long long n, int has_bias, int relu) {
    ROW_STRIDE(g, (O + DIRECT_OUT - 1) / DIRECT_OUT) {
        long long o0 = g * DIRECT_OUT;
        int outs = (int)(O - o0 < DIRECT_OUT ? O - o0 : DIRECT_OUT);
        const real_t* rows[DIRECT_OUT];
#pragma unroll
        for (int q = 0; q < DIRECT_OUT; ++q)
            rows[q] = weights + (o0 + (q < outs ? q : outs - 1)) * 9 * C;
        GRID_STRIDE(p, L) {
            long long j = p - (wp + 1);  // the output position, counted as in im2col_padded
            bool inside = j >= 0 && j < n && !on_border(p, wp);
            real_t acc[DIRECT_OUT];
#pragma unroll
            for (int q = 0; q < DIRECT_OUT; ++q) acc[q] = (real_t)0;
            if (inside) {
                const real_t* s = src + j;
                const bool* m = src_mask ? src_mask + j : nullptr;
                for (long long c = 0; c < C; ++c, s += L) {
#pragma unroll
                    for (int k = 0; k < 9; ++k) {
                        real_t v = s[(k / 3) * wp + k % 3];
                        if (m && !m[(k / 3) * wp + k % 3]) v = (real_t)0;
#pragma unroll
                        for (int q = 0; q < DIRECT_OUT; ++q) acc[q] += rows[q][k * C + c] * v;
                    }
                    if (m) m += L;
                }
            }
            for (int q = 0; q < outs; ++q) {
                real_t v = (real_t)0;
                if (inside) {
                    v = acc[q];
                    if (has_bias) v += bias[o0 + q];
                    if (relu && v < (real_t)0) v = (real_t)0;
                }
                dst[(o0 + q) * L + p] = v;
                if (dst_mask) dst_mask[(o0 + q) * L + p] = v > (real_t)0;
            }
        }
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
// axis is contiguous: x has strides (sxc, sxy, 1), out (soc, soy, 1); outputs (C, H2, W2), the
// channel from the grid's y, r = y W2 + x0 within it.
#define WINDOW(r, W2, y, x0) \
    unsigned int y = (unsigned int)(r) / (unsigned int)(W2); \
    long long x0 = (r) - (long long)y * (W2)

extern "C" __global__ void avg_pool2(const real_t* __restrict__ x, real_t* __restrict__ out, long long C,
                                     long long H2, long long W2, long long sxc, long long sxy,
                                     long long soc, long long soy) {
    ROW_STRIDE(c, C) {
        GRID_STRIDE(r, H2 * W2) {
            WINDOW(r, W2, y, x0);
            const real_t* w = x + c * sxc + 2 * y * sxy + 2 * x0;
            out[c * soc + y * soy + x0] = (real_t)0.25 * (w[0] + w[1] + w[sxy] + w[sxy + 1]);
        }
    }
}

// Spread each output gradient evenly over its window (out: the input's shape, strided).
extern "C" __global__ void avg_pool2_backward(const real_t* __restrict__ g, real_t* __restrict__ out,
                                              long long C, long long H2, long long W2,
                                              long long sgc, long long sgy, long long soc,
                                              long long soy) {
    ROW_STRIDE(c, C) {
        GRID_STRIDE(r, H2 * W2) {
            WINDOW(r, W2, y, x0);
            real_t q = (real_t)0.25 * g[c * sgc + y * sgy + x0];
            real_t* w = out + c * soc + 2 * y * soy + 2 * x0;
            w[0] = q;
            w[1] = q;
            w[soy] = q;
            w[soy + 1] = q;
        }
    }
}

// Max over each window into a contiguous (C, H2, W2) ``out``, with the index 0..3 (row-major in
// the window) of the first maximum.
extern "C" __global__ void max_pool2(const real_t* __restrict__ x, real_t* __restrict__ out,
                                     signed char* __restrict__ index, long long C, long long H2,
                                     long long W2, long long sxc, long long sxy, long long soc,
                                     long long soy) {
    ROW_STRIDE(c, C) {
        GRID_STRIDE(r, H2 * W2) {
            WINDOW(r, W2, y, x0);
            const real_t* w = x + c * sxc + 2 * y * sxy + 2 * x0;
            real_t v[4] = {w[0], w[1], w[sxy], w[sxy + 1]};
            int best = 0;
            for (int k = 1; k < 4; ++k)
                if (v[k] > v[best]) best = k;
            out[c * soc + y * soy + x0] = v[best];
            index[c * H2 * W2 + r] = (signed char)best;
        }
    }
}

// Route each output gradient to its window's maximum; the other three get zero.
extern "C" __global__ void max_pool2_backward(const real_t* __restrict__ g,
                                              const signed char* __restrict__ index,
                                              real_t* __restrict__ out, long long C, long long H2,
                                              long long W2, long long sgc, long long sgy,
                                              long long soc, long long soy) {
    ROW_STRIDE(c, C) {
        GRID_STRIDE(r, H2 * W2) {
            WINDOW(r, W2, y, x0);
            real_t v = g[c * sgc + y * sgy + x0];
            int best = index[c * H2 * W2 + r];
            real_t* w = out + c * soc + 2 * y * soy + 2 * x0;
            w[0] = best == 0 ? v : (real_t)0;
            w[1] = best == 1 ? v : (real_t)0;
            w[soy] = best == 2 ? v : (real_t)0;
            w[soy + 1] = best == 3 ? v : (real_t)0;
        }
    }
}
