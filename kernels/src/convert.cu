#include <cuda_bf16.h>

#include "common.cuh"
#include "lmw/kernels/convert.h"

namespace lmw::kernels {
namespace {
__device__ __forceinline__ float load(const void* src, int type, int64_t i) {
    if (type == 0) return static_cast<const float*>(src)[i];
    if (type == 1) return __half2float(static_cast<const __half*>(src)[i]);
    return __bfloat162float(static_cast<const __nv_bfloat16*>(src)[i]);
}
__global__ void toHalfKernel(__half* dst, const void* src, int type, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dst[i] = __float2half_rn(load(src, type, i));
}
__global__ void toFloatKernel(float* dst, const void* src, int type, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        dst[i] = load(src, type, i);
}
int gridFor(int64_t n) { return int(n / 256 + 1 < 65536 ? n / 256 + 1 : 65536); }
}  // namespace

int convertToHalf(void* dst, const void* src, SrcType type, int64_t n, void* stream) {
    if (n <= 0) return 0;
    toHalfKernel<<<gridFor(n), 256, 0, detail::asStream(stream)>>>(static_cast<__half*>(dst), src, int(type), n);
    return detail::launchStatus();
}

int convertToFloat(float* dst, const void* src, SrcType type, int64_t n, void* stream) {
    if (n <= 0) return 0;
    toFloatKernel<<<gridFor(n), 256, 0, detail::asStream(stream)>>>(dst, src, int(type), n);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
