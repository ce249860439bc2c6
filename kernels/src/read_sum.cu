#include <algorithm>

#include "common.cuh"
#include "lmw/kernels/read_sum.h"

namespace lmw::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // independent 16-byte loads in flight per thread

__device__ __forceinline__ uint64_t words(uint4 v) { return uint64_t(v.x) + v.y + v.z + v.w; }

// Grid-stride over 16-byte vectors, kUnroll loads issued before any is summed; the sum is kept
// (atomicAdd to global) so the compiler cannot drop the loads.
__global__ void __launch_bounds__(kThreads) sumWordsKernel(const uint4* __restrict__ p, int64_t n, uint64_t* sum) {
    const int64_t stride = int64_t(gridDim.x) * kThreads;
    int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    uint64_t acc = 0;
    for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
        uint4 v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) acc += words(v[u]);
    }
    for (; i < n; i += stride) acc += words(__ldcs(p + i));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    __shared__ uint64_t warpSums[kThreads / 32];
    if ((threadIdx.x & 31) == 0) warpSums[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        uint64_t s = 0;
        for (int w = 0; w < kThreads / 32; ++w) s += warpSums[w];
        atomicAdd(reinterpret_cast<unsigned long long*>(sum), static_cast<unsigned long long>(s));
    }
}

}  // namespace

int sumWords32(const void* data, int64_t bytes, uint64_t* sum, void* stream) {
    if (bytes < 0 || bytes % 16 != 0 || reinterpret_cast<uintptr_t>(data) % 16 != 0) return int(cudaErrorInvalidValue);
    const cudaStream_t s = detail::asStream(stream);
    if (const cudaError_t e = cudaMemsetAsync(sum, 0, sizeof(uint64_t), s); e != cudaSuccess) return int(e);
    if (bytes == 0) return 0;
    int device = 0, sms = 0, perSm = 0;
    if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return int(e);
    if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device); e != cudaSuccess)
        return int(e);
    if (const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, sumWordsKernel, kThreads, 0);
        e != cudaSuccess)
        return int(e);
    // One resident wave: every SM full, no tail of a second wave.
    const int64_t n = bytes / 16;
    const int grid = int(std::max<int64_t>(1, std::min<int64_t>(int64_t(sms) * perSm, detail::ceilDiv(n, kThreads))));
    sumWordsKernel<<<grid, kThreads, 0, s>>>(static_cast<const uint4*>(data), n, sum);
    return detail::launchStatus();
}

}  // namespace lmw::kernels
