#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

#include "lmw/kernels/kv_cache.h"

namespace lmw::kernels {

// The rotary embedding and the KV-cache write of one attention step in one kernel: rotates the q and k
// heads of qkv [T, (heads + 2*kvHeads) * D] in place (as ropeRotateHalf), then stores the rotated k and
// the v rows into the cache of `layer` (as kvStore: keys minus keyOffsets for quantized caches, tokens
// whose block id is negative skipped; their q and k are still rotated). The same bits as ropeRotateHalf
// followed by kvStore, in qkv and in the cache. Requires an even headDim <= 256.
int ropeKvStore(void* cache, const KvLayout& layout, int layer, void* qkv, const int32_t* positions,
                const int32_t* tokenSeq, const float* invFreq, const int32_t* blockTable, int maxBlocks,
                int numTokens, int heads, const float* keyOffsets, void* stream);

}  // namespace lmw::kernels
