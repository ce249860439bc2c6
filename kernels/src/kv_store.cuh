#pragma once
// Writing one cached row (one token's K or V of one kv head), shared by kvStore and ropeKvStore so that
// both leave the same bytes in the cache.
#include "common.cuh"
#include "lmw/kernels/kv_cache.h"

namespace lmw::kernels::detail {

constexpr int kInt4FitRounds = 3;  // as the CPU cache (cpu_kv_cache.cpp)

// Called by all 32 lanes of a warp, lane owning the element pairs lane, lane + 32, ... of
// src[headDim / 2] (f16 pairs, any memory space). `section` is the layer's K or V section of the block,
// `row` = kvHead * blockSize + slot. Quantized caches store src minus off[headDim / 2] (null: none).
__device__ __forceinline__ void kvStoreRow(uint8_t* section, const KvLayout& L, int64_t row, const __half2* src,
                                           const float2* off, int lane) {
    const int D = L.headDim;
    uint8_t* data = section + row * L.dataBytesPerToken();
    const int pairs = D / 2;
    if (L.quant == 0) {
        __half2* d = reinterpret_cast<__half2*>(data);
        for (int p = lane; p < pairs; p += 32) d[p] = src[p];
        return;
    }
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
    lo = -warpMax(-lo);
    hi = warpMax(hi);
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
        sc = warpSum(sc);
        sx = warpSum(sx);
        scc = warpSum(scc);
        scx = warpSum(scx);
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

// The (layer, kv head) key offset pairs that kvStoreRow subtracts from a key row (null: none).
__device__ __forceinline__ const float2* keyOffsetsOf(const float* keyOffsets, const KvLayout& L, int layer, int kvHead) {
    return keyOffsets ? reinterpret_cast<const float2*>(keyOffsets + (int64_t(layer) * L.kvHeads + kvHead) * L.headDim)
                      : nullptr;
}

}  // namespace lmw::kernels::detail
