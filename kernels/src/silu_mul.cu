#include "common.cuh"
#include "lmw/kernels/silu_mul.h"

namespace lmw::kernels {
namespace {
__global__ void siluMulKernel(__half* out, const __half* gu, int rows, int ffn) {
    detail::allowDependents();
    detail::waitPriorGrid();  // launched overlapped: gateUp comes from the kernel before
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= int64_t(rows) * ffn) return;
    const int64_t r = idx / ffn, f = idx % ffn;
    const float g = __half2float(gu[r * 2 * ffn + f]);
    const float u = __half2float(gu[r * 2 * ffn + ffn + f]);
    out[idx] = __float2half(detail::siluTimes(g, u));
}
}  // namespace

int siluMul(void* out, const void* gateUp, int rows, int ffn, void* stream) {
    const int64_t n = int64_t(rows) * ffn;
    if (n <= 0) return 0;
    return detail::launchOverlapped(siluMulKernel, dim3(detail::ceilDiv(n, 256)), dim3(256), 0, detail::asStream(stream),
                                    static_cast<__half*>(out), static_cast<const __half*>(gateUp), rows, ffn);
}
}  // namespace lmw::kernels
