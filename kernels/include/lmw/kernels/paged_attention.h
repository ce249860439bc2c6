#pragma once
// Paged causal GQA attention over the KV cache (plain C++ launcher).
// Each query token t of sequence tokenSeq[t] attends to cached positions [0, positions[t]] of its
// sequence (so one kernel serves decode, one token per sequence, and prefill, several). The work is
// split over the context in partitions of kAttentionPartition tokens and combined afterwards.
#include <cstddef>
#include <cstdint>

#include "lmw/kernels/kv_cache.h"

namespace lmw::kernels {

constexpr int kAttentionPartition = 256;

struct PagedAttentionParams {
    void* out = nullptr;        // [T, heads*D] f16
    const void* qkv = nullptr;  // [T, (heads+2*kvHeads)*D] f16 (q heads first)
    const void* cache = nullptr;
    KvLayout layout;
    int layer = 0;
    const int32_t* blockTable = nullptr;  // [S, maxBlocks]
    int maxBlocks = 0;
    const int32_t* tokenSeq = nullptr;   // [T]
    const int32_t* positions = nullptr;  // [T]
    int numTokens = 0;
    int heads = 0;
    int maxContext = 0;   // >= positions[t] + 1 for every t (sizes the partitions)
    float scale = 0.f;    // usually 1/sqrt(D)
    void* workspace = nullptr;  // pagedAttentionWorkspaceBytes(...) bytes, device
};

// Supported: headDim even, headDim <= 256, heads % kvHeads == 0, layout.blockSize == 64.
bool pagedAttentionSupports(int headDim, int heads, int kvHeads);
size_t pagedAttentionWorkspaceBytes(int numTokens, int heads, int headDim, int maxContext);
int pagedAttention(const PagedAttentionParams& p, void* stream);

}  // namespace lmw::kernels
