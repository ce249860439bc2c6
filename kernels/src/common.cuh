#pragma once
// Small device helpers shared by the kernels (not part of the public launcher headers).
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <utility>

namespace lmw::kernels::detail {

inline cudaStream_t asStream(void* s) { return static_cast<cudaStream_t>(s); }

// Launchers return the launch status so the caller can attribute errors to its own file:line.
inline int launchStatus() { return int(cudaGetLastError()); }

inline int ceilDiv(int64_t a, int64_t b) { return int((a + b - 1) / b); }

// Programmatic dependent launch (Hopper): a kernel launched with launchOverlapped may start while the
// kernel before it on the stream is still running, so it can stream data that does not depend on that
// kernel (weights) during the other's tail and its own launch latency. Such a kernel MUST call
// waitPriorGrid() before it reads anything the previous kernel writes, or writes anything the previous
// kernel reads (activations, workspaces): that call returns once the previous grid is complete and its
// memory visible. A kernel launched the ordinary way waits for the previous one as always, and calling
// waitPriorGrid() in it is a no-op. Captured into CUDA graphs as programmatic edges.
__device__ __forceinline__ void waitPriorGrid() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
// Lets the next kernel (if launched with launchOverlapped) be scheduled before this grid ends. Kernels
// call it first thing, before waitPriorGrid(): the next kernel still waits for this grid's completion
// before it touches activations, so only its weight loads (or nothing) run ahead, and a chain of such
// kernels is scheduled while the slow one runs instead of paying one launch latency per kernel.
__device__ __forceinline__ void allowDependents() { asm volatile("griddepcontrol.launch_dependents;" :::); }

template <class... KArgs, class... Args>
int launchOverlapped(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     Args&&... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return int(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// silu(g) * u in f32. The one expression for silu_mul.cu and the GEMMs that fuse it into their input:
// they round the same f32 value, so fused and unfused results are bit for bit equal. expf, not __expf
// (the build's fast math makes it the approximate exp anyway): silu of large negative gates must go to
// 0 without NaN.
__device__ __forceinline__ float siluTimes(float g, float u) { return g / (1.f + expf(-g)) * u; }

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
