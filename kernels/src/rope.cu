#include "common.cuh"
#include "lmw/kernels/rope.h"

namespace lmw::kernels {
namespace {
// One thread per (token, head, i < D/2). The angle is formed in f32 (as the reference does) but its
// sine and cosine are taken in f64: --use_fast_math would otherwise turn sincosf into the
// approximate intrinsics, which lose accuracy at angles of thousands of radians.
__global__ void ropeKernel(__half* qkv, const int32_t* positions, const int32_t* tokenSeq, const float* invFreq,
                           int numTokens, int rotHeads, int stride, int headDim) {
    const int half = headDim / 2;
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t total = int64_t(numTokens) * rotHeads * half;
    if (idx >= total) return;
    const int i = int(idx % half);
    const int h = int((idx / half) % rotHeads);
    const int t = int(idx / (int64_t(half) * rotHeads));
    const float angle = float(positions[t]) * invFreq[int64_t(tokenSeq[t]) * half + i];
    double s, c;
    sincos(double(angle), &s, &c);
    __half* x = qkv + int64_t(t) * stride + int64_t(h) * headDim;
    const float x1 = __half2float(x[i]), x2 = __half2float(x[i + half]);
    x[i] = __float2half(x1 * float(c) - x2 * float(s));
    x[i + half] = __float2half(x2 * float(c) + x1 * float(s));
}
}  // namespace

int ropeRotateHalf(void* qkv, const int32_t* positions, const int32_t* tokenSeq, const float* invFreq,
                   int numTokens, int heads, int kvHeads, int headDim, void* stream) {
    const int64_t total = int64_t(numTokens) * (heads + kvHeads) * (headDim / 2);
    if (total <= 0) return 0;
    ropeKernel<<<detail::ceilDiv(total, 256), 256, 0, detail::asStream(stream)>>>(
        static_cast<__half*>(qkv), positions, tokenSeq, invFreq, numTokens, heads + kvHeads,
        (heads + 2 * kvHeads) * headDim, headDim);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
