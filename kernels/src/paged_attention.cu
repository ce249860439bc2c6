// Paged attention: one CTA per (query token, kv head, group chunk of GC query heads, partition of
// `part` context tokens, 64..kAttentionPartition). The GC query heads that share a kv head are processed
// together so each K/V row is read once per CTA. A "lane group" of TPT lanes owns one cached token at a time, each
// lane 8 elements of the head (one 16-byte f16 load, 8 bytes int8, 4 bytes int4).
#include <cfloat>

#include "common.cuh"
#include "lmw/kernels/paged_attention.h"

namespace lmw::kernels {
namespace {
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxPart = kAttentionPartition;
constexpr int kMinPart = 64;
constexpr int kUnroll = 8;
constexpr int kBlock = 64;  // tokens per cache block (the launcher refuses others)
static_assert(kMinPart % kBlock == 0 && kMaxPart % kMinPart == 0, "partitions start on block starts");
// Grids smaller than this get smaller partitions: two waves of an H200's 132 SMs (several CTAs of 128
// threads share an SM, so this is about the least that keeps every SM's loads in flight).
constexpr int64_t kTargetCtas = 2 * 132;

// The query heads one CTA takes: the largest chunk <= 8 that divides the group.
int groupChunk(int group) {
    int gc = 8;
    while (group % gc) --gc;
    return gc;
}

// The one place the launch and the workspace size get the partition from.
int partitionOf(const PagedAttentionParams& p) {
    return p.partition ? p.partition : pagedAttentionPartition(p.numTokens, p.heads, p.layout.kvHeads, p.maxContext);
}

// Bytes from a token's data row (kv head row kvhRow + slot) to its (scale, zero) pair.
__device__ __forceinline__ int64_t paramDelta(const KvLayout& L, int64_t dpt, int64_t kvhRow, int slot) {
    return (int64_t(L.kvHeads) * kBlock - kvhRow - slot) * dpt + (kvhRow + slot) * 4;
}

// Raw bits of one lane's 8 elements of a cached row (loaded first, decoded later, so that many loads are
// in flight before the first use).
template <int Q>
struct RawRow;
template <>
struct RawRow<0> {
    uint4 d;
};
template <>
struct RawRow<8> {
    uint2 d;
    __half2 sz;
};
template <>
struct RawRow<4> {
    uint32_t d;
    __half2 sz;
};

// `row` points at this kv head's row of the token in its block section; its (scale, zero) pair sits
// `paramDelta` bytes further on (see kv_cache.h).
template <int Q>
__device__ __forceinline__ RawRow<Q> loadRow(const uint8_t* row, int64_t paramDelta, int slot, int sub) {
    RawRow<Q> r;
    if constexpr (Q == 0) {
        r.d = __ldg(reinterpret_cast<const uint4*>(row + sub * 16));
    } else {
        r.sz = __ldg(reinterpret_cast<const __half2*>(row + paramDelta));
        if constexpr (Q == 8)
            r.d = __ldg(reinterpret_cast<const uint2*>(row + sub * 8));
        else
            r.d = __ldg(reinterpret_cast<const uint32_t*>(row + sub * 4));
    }
    return r;
}

// Starts an L2 fill of [p, p + bytes rounded up to 16) on the copy engine, no registers held; a hint,
// skipped for an address that is not 16-byte aligned.
__device__ __forceinline__ void prefetchL2(const void* p, uint32_t bytes) {
    if (reinterpret_cast<uintptr_t>(p) & 15) return;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"((bytes + 15u) & ~15u) : "memory");
}

template <int Q>
__device__ __forceinline__ RawRow<Q> zeroRow() {
    RawRow<Q> r{};
    return r;
}

// float(code) via the exponent trick (0x4B000000 | c is 2^23 + c): integer-to-float conversion runs at a
// quarter of the FMA rate on Hopper, the OR and the subtraction at full rate.
__device__ __forceinline__ float codeToFloat(uint32_t c) { return __uint_as_float(0x4B000000u | c) - 8388608.f; }

template <int Q>
__device__ __forceinline__ void decodeRow(const RawRow<Q>& r, float v[8]) {
    if constexpr (Q == 0) {
        const __half2* h = reinterpret_cast<const __half2*>(&r.d);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f = __half22float2(h[i]);
            v[2 * i] = f.x;
            v[2 * i + 1] = f.y;
        }
    } else {
        const float s = __low2float(r.sz), z = __high2float(r.sz);
        if constexpr (Q == 8) {
#pragma unroll
            for (int i = 0; i < 4; ++i) v[i] = codeToFloat(__byte_perm(r.d.x, 0, 0x4440 + i)) * s + z;
#pragma unroll
            for (int i = 0; i < 4; ++i) v[4 + i] = codeToFloat(__byte_perm(r.d.y, 0, 0x4440 + i)) * s + z;
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = codeToFloat((r.d >> (4 * i)) & 0xf) * s + z;
        }
    }
}

// out[t, h, d] from the nParts partials of (t, h) in the workspace: their sums rescaled to the largest
// partition maximum, over the total. Loads through L2 (__ldcg): other CTAs of the grid may have written
// them during this launch.
__device__ __forceinline__ void combinePartitions(const PagedAttentionParams& p, int t, int h, int d, int maxParts,
                                                  int nParts) {
    const int D = p.layout.headDim;
    const float* ws = static_cast<const float*>(p.workspace);
    const float* ml = ws + int64_t(p.numTokens) * p.heads * maxParts * D;
    const int64_t slot0 = (int64_t(t) * p.heads + h) * maxParts;
    float m = -FLT_MAX;
    for (int i = 0; i < nParts; ++i) m = fmaxf(m, __ldcg(ml + 2 * (slot0 + i)));
    float l = 0.f, s = 0.f;
    for (int i = 0; i < nParts; ++i) {
        const float e = __expf(__ldcg(ml + 2 * (slot0 + i)) - m);
        l += __ldcg(ml + 2 * (slot0 + i) + 1) * e;
        s += __ldcg(ws + (slot0 + i) * D + d) * e;
    }
    static_cast<__half*>(p.out)[int64_t(t) * p.heads * D + int64_t(h) * D + d] = __float2half(s / l);
}

template <int Q, int GC>
__global__ void __launch_bounds__(kThreads) pagedAttentionKernel(PagedAttentionParams p, int chunks, int tpt,
                                                                  int tpt1, int maxParts, int part) {
    extern __shared__ float smem[];
    const KvLayout& L = p.layout;
    const int D = L.headDim;        // q, out and workspace rows
    const int Dp = L.storedDim();   // cached rows and the shared buffers: whole vectors of 8
    float* qs = smem;                      // [GC][Dp], zero past D
    float* logits = qs + GC * Dp;          // [GC][part]
    float* red = logits + GC * part;       // [kWarps][GC][Dp]
    float* stats = red + kWarps * GC * Dp; // [GC][2] max, sum

    const int t = blockIdx.x;
    const int kvh = blockIdx.y / chunks;
    const int h0 = kvh * (p.heads / L.kvHeads) + (blockIdx.y % chunks) * GC;
    const int partIdx = blockIdx.z;
    const int start = partIdx * part;
    // Launched overlapped (PDL). positions, tokenSeq and the block table are the step's metadata, copied
    // from the host before the step's first kernel, so they are read before griddepcontrol.wait, and so
    // is the L2 prefetch of the K and V rows: rows of earlier steps are complete, and the row the kernel
    // before writes (this step's) is written through L2, which a prefetch cannot make stale. q, k, v
    // and everything this kernel writes come after the wait, which every CTA reaches before it returns
    // (a grid must not end before its predecessor: the next kernel relies on it).
    detail::allowDependents();
    const int ctx = p.positions[t] + 1;
    const int seq = p.tokenSeq[t];
    const bool active = start < ctx;
    const int n = active ? min(ctx, start + part) - start : 0;
    const int nParts = (ctx + part - 1) / part;
    // This partition's K rows of this kv head, one pointer per block (blocks of kBlock tokens), so the
    // K/V loads neither wait on a dependent table load nor redo 64-bit address arithmetic per token.
    __shared__ const uint8_t* blocks[kMaxPart / kBlock + 1];
    const int firstBlock = start / kBlock;
    const int numBlocks = active ? (start + n - 1) / kBlock - firstBlock + 1 : 0;
    const int64_t dpt = L.dataBytesPerToken();
    const int64_t vDelta = L.sectionBytes();
    const int64_t kvhRow = int64_t(kvh) * kBlock;
    for (int i = threadIdx.x; i < numBlocks; i += kThreads) {
        const uint8_t* b = static_cast<const uint8_t*>(p.cache) +
                           int64_t(p.blockTable[int64_t(seq) * p.maxBlocks + firstBlock + i]) * L.blockBytes() +
                           int64_t(p.layer) * 2 * L.sectionBytes() + kvhRow * dpt;
        blocks[i] = b;
        // Partitions start on block starts (kMinPart % kBlock == 0), so this CTA's rows of a block are one
        // run from its row 0, as are their (scale, zero) pairs. Fetching K and V into L2 now lets the
        // loads after the wait hit L2 instead of paying DRAM round trips. Only for the small partitions,
        // which only small grids get: there what is in flight (about 2 x kTargetCtas CTAs of at most 128
        // rows of K and V) stays well inside L2; large grids hide latency by numbers.
        if (part < kMaxPart) {
            const uint32_t rows = uint32_t(min(kBlock, start + n - (firstBlock + i) * kBlock));
            prefetchL2(b, rows * uint32_t(dpt));
            prefetchL2(b + vDelta, rows * uint32_t(dpt));
            if constexpr (Q != 0) {
                const uint8_t* pz = b + paramDelta(L, dpt, kvhRow, 0);
                prefetchL2(pz, rows * 4);
                prefetchL2(pz + vDelta, rows * 4);
            }
        }
    }
    detail::waitPriorGrid();
    if (!active) return;

    const int stride = (p.heads + 2 * L.kvHeads) * D;
    const __half* q = static_cast<const __half*>(p.qkv) + int64_t(t) * stride + int64_t(h0) * D;
    for (int i = threadIdx.x; i < GC * Dp; i += kThreads) {
        const int g = i / Dp, d = i % Dp;
        qs[i] = d < D ? __half2float(q[g * D + d]) * p.scale : 0.f;
    }
    __syncthreads();

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int sub = lane % tpt;
    const int groupsPerBlock = kThreads / tpt;
    const int grp = threadIdx.x / tpt;

    // Phase 1: scores. Here a lane takes kV1 vectors of 8 elements of a token (fewer lanes per token,
    // so fewer shuffles per multiply-add) as long as the q registers stay affordable.
    {
        constexpr int kV1 = GC <= 4 ? 2 : 1;
        constexpr int kU1 = kUnroll / kV1;
        const int sub1 = lane % tpt1;
        const int groups1 = kThreads / tpt1;
        const int grp1 = threadIdx.x / tpt1;
        float q1[GC][kV1 * 8];
#pragma unroll
        for (int g = 0; g < GC; ++g)
#pragma unroll
            for (int v = 0; v < kV1; ++v)
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    const int d = (sub1 * kV1 + v) * 8 + e;
                    q1[g][v * 8 + e] = d < Dp ? qs[g * Dp + d] : 0.f;
                }
        // Loop bounds stay warp-uniform (the shuffles below need every lane).
        for (int base = grp1 - grp1 % (32 / tpt1); base < n; base += groups1 * kU1) {
            RawRow<Q> raw[kU1][kV1];
#pragma unroll
            for (int u = 0; u < kU1; ++u) {
                const int tt = base + grp1 % (32 / tpt1) + u * groups1;
                const int tok = start + tt;
                const int slot = tok & (kBlock - 1);
                const uint8_t* row = tt < n ? blocks[tok / kBlock - firstBlock] + slot * dpt : nullptr;
#pragma unroll
                for (int v = 0; v < kV1; ++v) {
                    raw[u][v] = zeroRow<Q>();
                    if (row && (sub1 * kV1 + v) * 8 < Dp)
                        raw[u][v] = loadRow<Q>(row, paramDelta(L, dpt, kvhRow, slot), slot, sub1 * kV1 + v);
                }
            }
#pragma unroll
            for (int u = 0; u < kU1; ++u) {
                const int tt = base + grp1 % (32 / tpt1) + u * groups1;
                float kv[kV1 * 8];
#pragma unroll
                for (int v = 0; v < kV1; ++v) decodeRow<Q>(raw[u][v], kv + v * 8);
#pragma unroll
                for (int g = 0; g < GC; ++g) {
                    float d = 0.f;
#pragma unroll
                    for (int e = 0; e < kV1 * 8; ++e) d += q1[g][e] * kv[e];
                    for (int o = tpt1 >> 1; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                    if (sub1 == 0 && tt < n) logits[g * part + tt] = d;
                }
            }
        }
    }
    __syncthreads();

    // Phase 2: softmax statistics of this partition, one warp per head.
    for (int g = warp; g < GC; g += kWarps) {
        float m = -FLT_MAX;
        for (int i = lane; i < n; i += 32) m = fmaxf(m, logits[g * part + i]);
        m = detail::warpMax(m);
        float s = 0.f;
        for (int i = lane; i < n; i += 32) {
            const float e = __expf(logits[g * part + i] - m);
            logits[g * part + i] = e;
            s += e;
        }
        s = detail::warpSum(s);
        if (lane == 0) {
            stats[2 * g] = m;
            stats[2 * g + 1] = s;
        }
    }
    __syncthreads();

    // Phase 3: probabilities times V; a lane owns kV3 vectors of 8 elements of a token.
    constexpr int kV3 = GC <= 2 ? 2 : 1;
    constexpr int kU3 = kUnroll / kV3;
    float acc[GC][kV3 * 8];
#pragma unroll
    for (int g = 0; g < GC; ++g)
#pragma unroll
        for (int e = 0; e < kV3 * 8; ++e) acc[g][e] = 0.f;
    for (int base = grp; base < n; base += groupsPerBlock * kU3) {
        RawRow<Q> raw[kU3][kV3];
#pragma unroll
        for (int u = 0; u < kU3; ++u) {
            const int tt = base + u * groupsPerBlock;
            const int tok = start + tt;
            const int slot = tok & (kBlock - 1);
            const uint8_t* row = tt < n ? blocks[tok / kBlock - firstBlock] + vDelta + slot * dpt : nullptr;
#pragma unroll
            for (int v = 0; v < kV3; ++v) {
                raw[u][v] = zeroRow<Q>();
                if (row && (sub * kV3 + v) * 8 < Dp)
                    raw[u][v] = loadRow<Q>(row, paramDelta(L, dpt, kvhRow, slot), slot, sub * kV3 + v);
            }
        }
#pragma unroll
        for (int u = 0; u < kU3; ++u) {
            const int tt = base + u * groupsPerBlock;
            if (tt < n) {
                float vv[kV3 * 8];
#pragma unroll
                for (int v = 0; v < kV3; ++v) decodeRow<Q>(raw[u][v], vv + v * 8);
#pragma unroll
                for (int g = 0; g < GC; ++g) {
                    const float pr = logits[g * part + tt];
#pragma unroll
                    for (int e = 0; e < kV3 * 8; ++e) acc[g][e] += pr * vv[e];
                }
            }
        }
    }
    // Lane groups of one warp hold different tokens: fold them, then fold the warps through shared memory.
#pragma unroll
    for (int g = 0; g < GC; ++g)
#pragma unroll
        for (int e = 0; e < kV3 * 8; ++e)
            for (int o = tpt; o < 32; o <<= 1) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    if (lane < tpt) {
#pragma unroll
        for (int g = 0; g < GC; ++g)
#pragma unroll
            for (int e = 0; e < kV3 * 8; ++e) {
                const int d = sub * kV3 * 8 + e;
                if (d < Dp) red[(warp * GC + g) * Dp + d] = acc[g][e];
            }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < GC * D; i += kThreads) {
        const int g = i / D, d = i % D;
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) s += red[(w * GC + g) * Dp + d];
        const int h = h0 + g;
        if (nParts == 1) {
            static_cast<__half*>(p.out)[int64_t(t) * p.heads * D + int64_t(h) * D + d] =
                __float2half(s / stats[2 * g + 1]);
        } else {
            const int64_t slot = (int64_t(t) * p.heads + h) * maxParts + partIdx;
            float* ws = static_cast<float*>(p.workspace);
            ws[slot * D + d] = s;
            if (d == 0) {
                float* ml = ws + int64_t(p.numTokens) * p.heads * maxParts * D;
                ml[2 * slot] = stats[2 * g];
                ml[2 * slot + 1] = stats[2 * g + 1];
            }
        }
    }
    if (nParts == 1 || !p.counters) return;
    // The last of the token's partitions of these heads to get here combines them (the partials of the
    // others are visible to it: each CTA fences its writes before it counts, and the last one reads
    // them through L2) and leaves the counter zero for the next launch.
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int* c = p.counters + int64_t(t) * gridDim.y + blockIdx.y;
        last = atomicAdd(c, 1) == nParts - 1;
        if (last) *c = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = threadIdx.x; i < GC * D; i += kThreads) combinePartitions(p, t, h0 + i / D, i % D, maxParts, nParts);
}

// Combines the partitions of tokens whose context spans more than one (no counters given).
__global__ void combineKernel(PagedAttentionParams p, int maxParts, int part) {
    const int t = blockIdx.x, h = blockIdx.y;
    detail::allowDependents();
    detail::waitPriorGrid();  // the workspace comes from the kernel before; see there for the early return
    const int nParts = (p.positions[t] + 1 + part - 1) / part;
    if (nParts <= 1) return;
    for (int d = threadIdx.x; d < p.layout.headDim; d += blockDim.x) combinePartitions(p, t, h, d, maxParts, nParts);
}

template <int Q, int GC>
int launch(const PagedAttentionParams& p, int group, cudaStream_t stream) {
    const int Dp = p.layout.storedDim();
    const int chunks = group / GC;
    constexpr int kV3 = GC <= 2 ? 2 : 1;  // must match the kernel's phase 3
    int tpt = 1;  // lanes per token in phase 3 (kV3 * 8 elements each)
    while (tpt * 8 * kV3 < Dp) tpt <<= 1;
    constexpr int kV1 = GC <= 4 ? 2 : 1;  // must match the kernel's phase 1
    int tpt1 = 1;
    while (tpt1 * 8 * kV1 < Dp) tpt1 <<= 1;
    const int part = partitionOf(p);
    const int maxParts = (p.maxContext + part - 1) / part;
    const size_t smem = size_t(GC * Dp + GC * part + kWarps * GC * Dp + 2 * GC) * sizeof(float);
    static bool raised = false;  // the opt-in above 48 KB is per kernel, once
    if (!raised && smem > 48 * 1024) {
        const cudaError_t e =
            cudaFuncSetAttribute(pagedAttentionKernel<Q, GC>, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024);
        if (e != cudaSuccess) return int(e);
        raised = true;
    }
    dim3 grid(p.numTokens, p.layout.kvHeads * chunks, maxParts);
    if (const int e = detail::launchOverlapped(pagedAttentionKernel<Q, GC>, grid, dim3(kThreads), smem, stream, p,
                                               chunks, tpt, tpt1, maxParts, part))
        return e;
    if (maxParts > 1 && !p.counters)
        return detail::launchOverlapped(combineKernel, dim3(p.numTokens, p.heads), dim3(128), 0, stream, p, maxParts,
                                        part);
    return 0;
}

template <int Q>
int dispatchGroup(const PagedAttentionParams& p, cudaStream_t stream) {
    const int group = p.heads / p.layout.kvHeads;
    switch (groupChunk(group)) {
        case 1: return launch<Q, 1>(p, group, stream);
        case 2: return launch<Q, 2>(p, group, stream);
        case 3: return launch<Q, 3>(p, group, stream);
        case 4: return launch<Q, 4>(p, group, stream);
        case 5: return launch<Q, 5>(p, group, stream);
        case 6: return launch<Q, 6>(p, group, stream);
        case 7: return launch<Q, 7>(p, group, stream);
        default: return launch<Q, 8>(p, group, stream);
    }
}
}  // namespace

bool pagedAttentionSupports(int headDim, int heads, int kvHeads) {
    return headDim > 0 && headDim % 2 == 0 && headDim <= 256 && kvHeads > 0 && heads % kvHeads == 0;
}

int pagedAttentionContextBucket(int maxContext) {
    int bucket = kAttentionPartition;
    while (bucket < maxContext) bucket *= 2;
    return bucket;
}

int pagedAttentionPartition(int numTokens, int heads, int kvHeads, int maxContext) {
    if (numTokens <= 0 || kvHeads <= 0 || heads % kvHeads) return kMaxPart;
    const int group = heads / kvHeads;
    const int64_t ctasPerPart = int64_t(numTokens) * kvHeads * (group / groupChunk(group));
    const int64_t ctx = pagedAttentionContextBucket(maxContext);
    int part = kMaxPart;
    while (part > kMinPart && ctasPerPart * ((ctx + part - 1) / part) < kTargetCtas) part /= 2;
    return part;
}

size_t pagedAttentionWorkspaceBytes(const PagedAttentionParams& p) {
    const int part = partitionOf(p);
    const int64_t maxParts = (p.maxContext + part - 1) / part;
    if (maxParts <= 1) return 0;
    return size_t(int64_t(p.numTokens) * p.heads * maxParts * (p.layout.headDim + 2)) * sizeof(float);
}

size_t pagedAttentionCounters(const PagedAttentionParams& p) {
    const int group = p.layout.kvHeads > 0 ? p.heads / p.layout.kvHeads : 0;
    return group > 0 ? size_t(p.numTokens) * p.layout.kvHeads * (group / groupChunk(group)) : 0;
}

int pagedAttention(const PagedAttentionParams& p, void* stream) {
    if (p.numTokens <= 0) return 0;
    if (!pagedAttentionSupports(p.layout.headDim, p.heads, p.layout.kvHeads) || p.layout.blockSize != kBlock ||
        (p.partition != 0 && p.partition != kMinPart && p.partition != 2 * kMinPart && p.partition != kMaxPart))
        return int(cudaErrorInvalidValue);
    const cudaStream_t s = detail::asStream(stream);
    switch (p.layout.quant) {
        case 0: return dispatchGroup<0>(p, s);
        case 8: return dispatchGroup<8>(p, s);
        case 4: return dispatchGroup<4>(p, s);
        default: return int(cudaErrorInvalidValue);
    }
}
}  // namespace lmw::kernels
