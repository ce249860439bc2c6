#pragma once
// Small device helpers shared by the kernels (not part of the public launcher headers).
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>

namespace lmw::kernels::detail {

inline cudaStream_t asStream(void* s) { return static_cast<cudaStream_t>(s); }

// Launchers return the launch status so the caller can attribute errors to its own file:line.
inline int launchStatus() { return int(cudaGetLastError()); }

inline int ceilDiv(int64_t a, int64_t b) { return int((a + b - 1) / b); }

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block of blockDim.x threads (multiple of 32, <= 1024). `red` needs 32 floats.
__device__ __forceinline__ float blockSum(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warpSum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    const int nw = blockDim.x >> 5;
    v = lane < nw ? red[lane] : 0.f;
    return warpSum(v);
}

}  // namespace lmw::kernels::detail
