#include "kv_store.cuh"
#include "lmw/kernels/kv_cache.h"

namespace lmw::kernels {
namespace {
// One warp per (token, K|V, kv head).
__global__ void kvStoreKernel(uint8_t* cache, KvLayout L, int layer, const __half* qkv, const int32_t* positions,
                              const int32_t* tokenSeq, const int32_t* blockTable, int maxBlocks, int numTokens,
                              int heads, const float* keyOffsets) {
    const int lane = threadIdx.x & 31;
    const int64_t w = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (w >= int64_t(numTokens) * 2 * L.kvHeads) return;
    const int h = int(w % L.kvHeads);
    const int which = int((w / L.kvHeads) % 2);
    const int t = int(w / (2 * L.kvHeads));
    const int D = L.headDim;
    const int pos = positions[t];
    const int blk = blockTable[int64_t(tokenSeq[t]) * maxBlocks + pos / L.blockSize];
    if (blk < 0) return;
    const __half2* src = reinterpret_cast<const __half2*>(qkv + int64_t(t) * (heads + 2 * L.kvHeads) * D +
                                                          int64_t(heads + which * L.kvHeads + h) * D);
    uint8_t* section = cache + int64_t(blk) * L.blockBytes() + int64_t(layer * 2 + which) * L.sectionBytes();
    // Keys lose their (layer, kv head) offset first (see Backend::setKvKeyOffsets).
    detail::kvStoreRow(section, L, int64_t(h) * L.blockSize + pos % L.blockSize, src,
                       which == 0 ? detail::keyOffsetsOf(keyOffsets, L, layer, h) : nullptr, lane);
}
}  // namespace

int kvStore(void* cache, const KvLayout& layout, int layer, const void* qkv, const int32_t* positions,
            const int32_t* tokenSeq, const int32_t* blockTable, int maxBlocks, int numTokens, int heads,
            const float* keyOffsets, void* stream) {
    const int64_t warps = int64_t(numTokens) * 2 * layout.kvHeads;
    if (warps <= 0) return 0;
    if (layout.headDim % 2) return int(cudaErrorInvalidValue);
    kvStoreKernel<<<detail::ceilDiv(warps, 4), 128, 0, detail::asStream(stream)>>>(
        static_cast<uint8_t*>(cache), layout, layer, static_cast<const __half*>(qkv), positions, tokenSeq,
        blockTable, maxBlocks, numTokens, heads, keyOffsets);
    return detail::launchStatus();
}

int kvCopyBlock(void* cache, const KvLayout& layout, int32_t from, int32_t to, void* stream) {
    if (from == to) return 0;
    uint8_t* base = static_cast<uint8_t*>(cache);
    return int(cudaMemcpyAsync(base + int64_t(to) * layout.blockBytes(), base + int64_t(from) * layout.blockBytes(),
                               size_t(layout.blockBytes()), cudaMemcpyDeviceToDevice, detail::asStream(stream)));
}
}  // namespace lmw::kernels
