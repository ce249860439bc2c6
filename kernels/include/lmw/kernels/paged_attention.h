#pragma once
// Paged causal GQA attention over the KV cache (plain C++ launcher).
// Each query token t of sequence tokenSeq[t] attends to cached positions [0, positions[t]] of its
// sequence (so one kernel serves decode, one token per sequence, and prefill, several). The work is
// split over the context in partitions (64, 128 or 256 tokens, pagedAttentionPartition) and combined
// afterwards.
#include <cstddef>
#include <cstdint>

#include "lmw/kernels/kv_cache.h"

namespace lmw::kernels {

// The largest partition, and the floor of pagedAttentionContextBucket.
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
    void* workspace = nullptr;  // pagedAttentionWorkspaceBytes(*this) bytes, device
    // Optional, device, pagedAttentionCounters(*this) ints that are zero on entry (the kernel leaves
    // them zero): with them the last partition of a head to finish combines the partitions itself, and
    // no second kernel runs. Without them (null) a combine kernel follows. The same bits either way.
    int* counters = nullptr;
    // Context tokens per partition: 0 = pagedAttentionPartition of this launch's shape; 64, 128 or 256
    // force one (tests). A token's result depends on the partition only, not on maxContext.
    int partition = 0;
};

// Supported: headDim even, headDim <= 256, heads % kvHeads == 0, layout.blockSize == 64.
bool pagedAttentionSupports(int headDim, int heads, int kvHeads);
// maxContext rounded up to a power of two, at least kAttentionPartition: the context bucket that
// CUDA-graph replays record their launches with.
int pagedAttentionContextBucket(int maxContext);
// The partition for a launch shape: 256, halved (down to 64) while the grid would have fewer than about
// two waves of CTAs on an H200, so that a small batch still streams from every SM. It depends on
// maxContext through its bucket only, so an eager step and its graph replay get the same bits. A row's
// result thus depends on the step's token count and context bucket (a regime, like the linears' T).
int pagedAttentionPartition(int numTokens, int heads, int kvHeads, int maxContext);
// Reads numTokens, heads, layout (kvHeads, headDim), maxContext and partition.
size_t pagedAttentionWorkspaceBytes(const PagedAttentionParams& p);
// The counters a launch of this shape uses (numTokens and heads): at most numTokens * heads.
size_t pagedAttentionCounters(const PagedAttentionParams& p);
int pagedAttention(const PagedAttentionParams& p, void* stream);

}  // namespace lmw::kernels
