// Host emulation of the CUDA built-ins that kernels/cuda/engine.cu uses, so the same source
// compiles with the system C++ compiler. tests/host_cuda.py appends one launcher per kernel that
// runs every (block, thread) of the launch in turn; each sees its own blockIdx and threadIdx, as
// on a GPU. Exact for kernels whose threads never share or exchange data (all of ours); kernels
// using __shared__, __syncthreads or atomics would need more than this.
#pragma once

struct gatys_dim3 {
    unsigned int x, y, z;
};

static gatys_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
