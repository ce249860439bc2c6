#include "lmw/kernels/rope.h"
#include "rope.cuh"

namespace lmw::kernels {
namespace {
// One thread per (token, head, i < D/2).
__global__ void ropeKernel(__half* qkv, const int32_t* positions, const int32_t* tokenSeq, const float* invFreq,
                           int numTokens, int rotHeads, int stride, int headDim) {
    const int half = headDim / 2;
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t total = int64_t(numTokens) * rotHeads * half;
    if (idx >= total) return;
    const int i = int(idx % half);
    const int h = int((idx / half) % rotHeads);
    const int t = int(idx / (int64_t(half) * rotHeads));
    const float2 cs = detail::ropeCosSin(positions[t], invFreq[int64_t(tokenSeq[t]) * half + i]);
    __half* x = qkv + int64_t(t) * stride + int64_t(h) * headDim;
    detail::ropeRotatePair(x[i], x[i + half], cs);
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
