#include "common.cuh"
#include "lmw/kernels/embedding.h"

namespace lmw::kernels {
namespace {
__global__ void embeddingKernel(__half* out, const __half* table, const int32_t* tokens, int hidden, int64_t vocab) {
    const int t = blockIdx.x;
    const int64_t id = tokens[t];
    __half* o = out + int64_t(t) * hidden;
    if (id < 0 || id >= vocab) {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = __float2half(0.f);
        return;
    }
    const __half* row = table + id * hidden;
    if ((hidden & 7) == 0) {  // 16-byte copies when rows stay aligned
        const uint4* s = reinterpret_cast<const uint4*>(row);
        uint4* d = reinterpret_cast<uint4*>(o);
        for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) d[i] = s[i];
    } else {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = row[i];
    }
}
}  // namespace

int embeddingGather(void* out, const void* table, const int32_t* tokens, int numTokens, int hidden, int64_t vocab,
                    void* stream) {
    if (numTokens <= 0) return 0;
    embeddingKernel<<<numTokens, 128, 0, detail::asStream(stream)>>>(
        static_cast<__half*>(out), static_cast<const __half*>(table), tokens, hidden, vocab);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
