#include "common.cuh"
#include "lmw/kernels/kv_cache.h"

namespace lmw::kernels {
namespace {
constexpr int kInt4FitRounds = 3;  // as the CPU cache (cpu_kv_cache.cpp)

// One warp per (token, K|V, kv head). Lanes own element pairs so int4 codes pack without sharing bytes.
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
    const int slot = pos % L.blockSize;
    const __half2* src = reinterpret_cast<const __half2*>(qkv + int64_t(t) * (heads + 2 * L.kvHeads) * D +
                                                          int64_t(heads + which * L.kvHeads + h) * D);
    uint8_t* section = cache + int64_t(blk) * L.blockBytes() + int64_t(layer * 2 + which) * L.sectionBytes();
    const int64_t row = int64_t(h) * L.blockSize + slot;
    uint8_t* data = section + row * L.dataBytesPerToken();
    const int pairs = D / 2;
    if (L.quant == 0) {
        __half2* d = reinterpret_cast<__half2*>(data);
        for (int p = lane; p < pairs; p += 32) d[p] = src[p];
        return;
    }
    // Keys lose their (layer, kv head) offset first (see Backend::setKvKeyOffsets).
    const float2* off = which == 0 && keyOffsets
                            ? reinterpret_cast<const float2*>(keyOffsets + (int64_t(layer) * L.kvHeads + h) * D)
                            : nullptr;
    auto value = [&](int p) {
        float2 v = __half22float2(src[p]);
        if (off) {
            v.x -= off[p].x;
            v.y -= off[p].y;
        }
        return v;
    };
    float lo = 3.4e38f, hi = -3.4e38f;
    for (int p = lane; p < pairs; p += 32) {
        const float2 v = value(p);
        lo = fminf(lo, fminf(v.x, v.y));
        hi = fmaxf(hi, fmaxf(v.x, v.y));
    }
    lo = -detail::warpMax(-lo);
    hi = detail::warpMax(hi);
    const float qmax = L.quant == 8 ? 255.f : 15.f;
    auto codeOf = [&](float x, float z, float inv) { return fminf(fmaxf(rintf((x - z) * inv), 0.f), qmax); };
    float s = (hi - lo) / qmax, z = lo;
    // int4: least-squares refits of scale and zero to the codes, as the CPU cache does.
    for (int round = 0; round < (L.quant == 4 ? kInt4FitRounds : 0) && s > 0.f; ++round) {
        const float inv = 1.f / s;
        float sc = 0.f, sx = 0.f, scc = 0.f, scx = 0.f;
        for (int p = lane; p < pairs; p += 32) {
            const float2 v = value(p);
            const float a = codeOf(v.x, z, inv), b = codeOf(v.y, z, inv);
            sc += a + b;
            sx += v.x + v.y;
            scc += a * a + b * b;
            scx += a * v.x + b * v.y;
        }
        sc = detail::warpSum(sc);
        sx = detail::warpSum(sx);
        scc = detail::warpSum(scc);
        scx = detail::warpSum(scx);
        const float det = float(D) * scc - sc * sc;
        const float ns = det > 0.f ? (float(D) * scx - sc * sx) / det : 0.f;
        if (!(ns > 0.f)) break;
        s = ns;
        z = (sx - ns * sc) / float(D);
    }
    // Quantize against the f16-rounded scale and zero so stored codes match what is decoded.
    const __half sh = __float2half(s), zh = __float2half(z);
    s = __half2float(sh);
    z = __half2float(zh);
    const float inv = s > 0.f ? 1.f / s : 0.f;
    for (int p = lane; p < pairs; p += 32) {
        const float2 v = value(p);
        const uint32_t a = uint32_t(codeOf(v.x, z, inv)), b = uint32_t(codeOf(v.y, z, inv));
        if (L.quant == 8) {
            data[2 * p] = uint8_t(a);
            data[2 * p + 1] = uint8_t(b);
        } else {
            data[p] = uint8_t(a | (b << 4));
        }
    }
    if (lane == 0) {
        __half2* params = reinterpret_cast<__half2*>(section + int64_t(L.kvHeads) * L.blockSize * L.dataBytesPerToken());
        params[row] = __halves2half2(sh, zh);
    }
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
