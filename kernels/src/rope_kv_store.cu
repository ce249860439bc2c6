#include "kv_store.cuh"
#include "lmw/kernels/rope_kv_store.h"
#include "rope.cuh"

namespace lmw::kernels {
namespace {
constexpr int kWarps = 8;          // heads per block
constexpr int kMaxHalf = 128;      // headDim / 2 at most

// Grid (token, group of kWarps heads); one warp per head of the token: q heads (rotate), k heads
// (rotate, store), v heads (store). The block computes the token's (cos, sin) once for all its heads.
__global__ void __launch_bounds__(kWarps * 32)
    ropeKvStoreKernel(uint8_t* cache, KvLayout L, int layer, __half* qkv, const int32_t* positions,
                      const int32_t* tokenSeq, const float* invFreq, const int32_t* blockTable, int maxBlocks,
                      int heads, const float* keyOffsets) {
    __shared__ float2 cs[kMaxHalf];
    __shared__ __half2 rotatedKey[kWarps][kMaxHalf];  // a rotated key head as written back, for the store
    detail::allowDependents();
    // The step's metadata (positions, sequences, invFreq, block table) is copied from the host before the
    // step's first kernel: (cos, sin) and the block id come before the wait for the kernel before, which
    // writes qkv.
    const int t = blockIdx.x;
    const int D = L.headDim, half = D / 2, KVH = L.kvHeads;
    const int pos = positions[t], seq = tokenSeq[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) cs[i] = detail::ropeCosSin(pos, invFreq[int64_t(seq) * half + i]);
    const int blk = blockTable[int64_t(seq) * maxBlocks + pos / L.blockSize];
    detail::waitPriorGrid();
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int head = blockIdx.y * kWarps + warp;  // warp-uniform from here on
    if (head >= heads + 2 * KVH) return;
    __half* x = qkv + int64_t(t) * (heads + 2 * KVH) * D + int64_t(head) * D;
    const bool isValue = head >= heads + KVH, isKey = head >= heads && !isValue;
    if (!isValue) {
        __half* r = reinterpret_cast<__half*>(rotatedKey[warp]);
        for (int i = lane; i < half; i += 32) {
            __half a = x[i], b = x[i + half];
            detail::ropeRotatePair(a, b, cs[i]);
            x[i] = a;
            x[i + half] = b;
            if (isKey) {
                r[i] = a;
                r[i + half] = b;
            }
        }
    }
    if (head < heads) return;

    const int which = isValue ? 1 : 0;
    const int h = head - heads - which * KVH;
    if (blk < 0) return;
    __syncwarp();  // the store's lanes read pairs other lanes rotated
    uint8_t* section = cache + int64_t(blk) * L.blockBytes() + int64_t(layer * 2 + which) * L.sectionBytes();
    const __half2* src = isValue ? reinterpret_cast<const __half2*>(x) : rotatedKey[warp];
    detail::kvStoreRow(section, L, int64_t(h) * L.blockSize + pos % L.blockSize, src,
                       isValue ? nullptr : detail::keyOffsetsOf(keyOffsets, L, layer, h), lane);
}
}  // namespace

int ropeKvStore(void* cache, const KvLayout& layout, int layer, void* qkv, const int32_t* positions,
                const int32_t* tokenSeq, const float* invFreq, const int32_t* blockTable, int maxBlocks,
                int numTokens, int heads, const float* keyOffsets, void* stream) {
    if (numTokens <= 0) return 0;
    if (layout.headDim % 2 || layout.headDim / 2 > kMaxHalf || heads < 0 || layout.kvHeads <= 0)
        return int(cudaErrorInvalidValue);
    const dim3 grid(unsigned(numTokens), unsigned(detail::ceilDiv(heads + 2 * layout.kvHeads, kWarps)));
    return detail::launchOverlapped(ropeKvStoreKernel, grid, dim3(kWarps * 32), 0, detail::asStream(stream),
                                    static_cast<uint8_t*>(cache), layout, layer, static_cast<__half*>(qkv), positions,
                                    tokenSeq, invFreq, blockTable, maxBlocks, heads, keyOffsets);
}
}  // namespace lmw::kernels
