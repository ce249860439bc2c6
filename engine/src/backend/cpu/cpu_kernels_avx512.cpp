// AVX-512 (F/BW/DQ/VL) + VNNI kernels; this file is compiled with -march=x86-64-v4 -mavx512vnni.
//
// Dense rows: 32 weights per step as two 16-float halves, each (row, token) summed in one f32
// chain. BF16 needs no shuffle: a 32-bit lane holds two bf16, the even one is lane << 16 and the
// odd one lane & 0xffff0000, so prepareX stores each block of 32 activations as its 16 even then
// its 16 odd ones. Each load prefetches the same part of the row two tiles further (rows are short:
// 2 KiB ahead in the row would land in the tile's own next row; one tile ahead is too close: 100m
// BF16 batch 1 went 70% -> 80% of the read bandwidth with one tile, 85% with two, 75% with three).
// AWQ rows: 128 int4 weights per 64-byte load, low and high nibbles against int8 activations with
// vpdpbusd (u8 x s8), one int32 sum per chunk, scaled in f32 by the chunk's d and the group's scale;
// the rows of a task are contiguous, so each load prefetches the same chunk two row tiles on.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_tiles.h"

namespace lmw::engine {

namespace {

constexpr int64_t kPrefetch = 2048;

template <DType DT>
struct Rows;
template <>
struct Rows<DType::F32> {
    static constexpr int64_t kBytes = 4;
    static void load(const uint8_t* p, __m512& a, __m512& b) {
        a = _mm512_loadu_ps(p);
        b = _mm512_loadu_ps(p + 64);
    }
    static void loadTail(const uint8_t* p, int n, __m512& a, __m512& b) {
        const __mmask16 lo = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
        const __mmask16 hi = n > 16 ? __mmask16((1u << (n - 16)) - 1) : __mmask16(0);
        a = _mm512_maskz_loadu_ps(lo, p);
        b = _mm512_maskz_loadu_ps(hi, p + 64);
    }
};
template <>
struct Rows<DType::F16> {
    static constexpr int64_t kBytes = 2;
    static void split(__m512i v, __m512& a, __m512& b) {
        a = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
        b = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
    }
    static void load(const uint8_t* p, __m512& a, __m512& b) {
        split(_mm512_loadu_si512(p), a, b);
    }
    static void loadTail(const uint8_t* p, int n, __m512& a, __m512& b) {
        split(_mm512_maskz_loadu_epi16(__mmask32((uint64_t(1) << n) - 1), p), a, b);
    }
};
template <>
struct Rows<DType::BF16> {
    static constexpr int64_t kBytes = 2;
    static void split(__m512i v, __m512& a, __m512& b) {
        a = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        b = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
    }
    static void load(const uint8_t* p, __m512& a, __m512& b) {
        split(_mm512_loadu_si512(p), a, b);
    }
    static void loadTail(const uint8_t* p, int n, __m512& a, __m512& b) {
        split(_mm512_maskz_loadu_epi16(__mmask32((uint64_t(1) << n) - 1), p), a, b);
    }
};

void prepareX(DType dt, const float* x, int64_t T, int64_t in, float* xp) {
    const int64_t ld = cpuXStride(in);
    for (int64_t t = 0; t < T; ++t) {
        float* dst = xp + t * ld;
        std::memcpy(dst, x + t * in, size_t(in) * 4);
        std::memset(dst + in, 0, size_t(ld - in) * 4);
        if (dt != DType::BF16) continue;
        for (int64_t b = 0; b < ld; b += 32) {
            float block[32];
            std::memcpy(block, dst + b, sizeof block);
            for (int k = 0; k < 16; ++k) dst[b + k] = block[2 * k], dst[b + 16 + k] = block[2 * k + 1];
        }
    }
}

// ahead[r]: where row r's stream continues (that row two tiles on), prefetched as w[r] is read.
template <DType DT, int R, int TT>
void denseTile(const uint8_t* const* w, const uint8_t* const* ahead, int64_t in, const float* xp, int64_t ld,
               float* out) {
    using W = Rows<DT>;
    __m512 acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t) acc[r][t] = _mm512_setzero_ps();
    auto step = [&](int64_t k, const __m512 (&wa)[R], const __m512 (&wb)[R]) {
        for (int t = 0; t < TT; ++t) {
            const __m512 xa = _mm512_loadu_ps(xp + t * ld + k), xb = _mm512_loadu_ps(xp + t * ld + k + 16);
            for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wb[r], xb, _mm512_fmadd_ps(wa[r], xa, acc[r][t]));
        }
    };
    const int64_t full = in / 32 * 32;
    for (int64_t k = 0; k < full; k += 32) {
        __m512 wa[R], wb[R];
        for (int r = 0; r < R; ++r) {
            for (int64_t line = 0; line < 32 * W::kBytes; line += 64)
                _mm_prefetch(reinterpret_cast<const char*>(ahead[r]) + k * W::kBytes + line, _MM_HINT_T0);
            W::load(w[r] + k * W::kBytes, wa[r], wb[r]);
        }
        step(k, wa, wb);
    }
    if (full < in) {
        __m512 wa[R], wb[R];
        for (int r = 0; r < R; ++r) W::loadTail(w[r] + full * W::kBytes, int(in - full), wa[r], wb[r]);
        step(full, wa, wb);
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t) out[r * TT + t] = _mm512_reduce_add_ps(acc[r][t]);
}

template <DType DT>
void denseRows(const uint8_t* const* rows, int64_t n, int64_t in, const float* xp, int64_t T, float* y, int64_t ldy) {
    const int64_t ld = cpuXStride(in);
    tiles::forTilesInto<4>(n, T, tiles::tokenBlock(ld * 4), y, ldy, [&]<int R, int TT>(int64_t i, int64_t t, float* out) {
        const uint8_t* ahead[R];
        for (int r = 0; r < R; ++r) ahead[r] = i + 2 * R + r < n ? rows[i + 2 * R + r] : rows[i + r] + kPrefetch;
        denseTile<DT, R, TT>(rows + i, ahead, in, xp + t * ld, ld, out);
    });
}

void dense(DType dt, const uint8_t* const* rows, int64_t n, int64_t in, const float* xp, int64_t T, float* y,
           int64_t ldy) {
    switch (dt) {
        case DType::F16: return denseRows<DType::F16>(rows, n, in, xp, T, y, ldy);
        case DType::BF16: return denseRows<DType::BF16>(rows, n, in, xp, T, y, ldy);
        default: return denseRows<DType::F32>(rows, n, in, xp, T, y, ldy);
    }
}

template <int R, int TT>
void awqTile(const AwqRows& w, int64_t r0, const QuantizedX& x, int64_t t0, float* out) {
    const __m512i nibble = _mm512_set1_epi8(0x0f);
    const int64_t chunksPerGroup = w.groupSize / kAwqChunk;
    __m512 acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t) acc[r][t] = _mm512_setzero_ps();
    for (int64_t g = 0; g < w.groups; ++g) {
        float scale[R];
        for (int r = 0; r < R; ++r) scale[r] = w.scale[(r0 + r) * w.groups + g];
        for (int64_t c = g * chunksPerGroup; c < (g + 1) * chunksPerGroup; ++c) {
            __m512i lo[R], hi[R];
            for (int r = 0; r < R; ++r) {
                const uint8_t* p = w.q + (r0 + r) * w.rowBytes + c * 64;
                _mm_prefetch(reinterpret_cast<const char*>(p) + 2 * R * w.rowBytes, _MM_HINT_T0);  // two tiles on
                const __m512i v = _mm512_loadu_si512(p);
                lo[r] = _mm512_and_si512(v, nibble);
                hi[r] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
            }
            // The chunk's f32 factor per (row, token), read back as an embedded broadcast.
            alignas(64) float ds[R][TT];
            const float* d = x.d + c * x.ldd + t0;
            for (int r = 0; r < R; ++r)
                for (int t = 0; t < TT; ++t) ds[r][t] = d[t] * scale[r];
            for (int t = 0; t < TT; ++t) {
                const int8_t* xq = x.q + (t0 + t) * x.ldq + c * kAwqChunk;
                const __m512i xl = _mm512_loadu_si512(xq), xh = _mm512_loadu_si512(xq + 64);
                for (int r = 0; r < R; ++r) {
                    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[r], xl), hi[r], xh);
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(ds[r][t]), acc[r][t]);
                }
            }
        }
    }
    // The zero points: sum over groups of scale * zero * (the group's dequantized activation sum).
    for (int r = 0; r < R; ++r) {
        const float* scale = w.scale + (r0 + r) * w.groups;
        const float* zero = w.zero + (r0 + r) * w.groups;
        for (int t = 0; t < TT; ++t) {
            const float* sum = x.sum + (t0 + t) * x.lds;
            __m512 z = _mm512_setzero_ps();
            for (int64_t g = 0; g < w.groups; g += 16) {
                const __mmask16 m = w.groups - g >= 16 ? __mmask16(0xffff) : __mmask16((1u << (w.groups - g)) - 1);
                z = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, scale + g), _mm512_maskz_loadu_ps(m, zero + g)),
                                    _mm512_maskz_loadu_ps(m, sum + g), z);
            }
            out[r * TT + t] = _mm512_reduce_add_ps(acc[r][t]) - _mm512_reduce_add_ps(z);
        }
    }
}

void awq(const AwqRows& w, int64_t r0, int64_t r1, const QuantizedX& x, int64_t T, float* y, int64_t ldy) {
    tiles::forTilesInto<4>(r1 - r0, T, tiles::tokenBlock(x.ldq), y, ldy, [&]<int R, int TT>(int64_t i, int64_t t, float* out) {
        awqTile<R, TT>(w, r0 + i, x, t, out);
    });
}

float dot(const float* a, const float* b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// out[d] = sum over j of w[j] * v[j][d], 16 columns at a time; four chains over j (j % 4) added
// at the end, so the loads of four rows are in flight at once.
void weightedSum(const float* w, const float* const* v, int64_t n, int64_t D, float* out) {
    for (int64_t d = 0; d < D; d += 16) {
        const __mmask16 m = D - d >= 16 ? __mmask16(0xffff) : __mmask16((1u << (D - d)) - 1);
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
            for (int k = 0; k < 4; ++k)
                acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(w[j + k]), _mm512_maskz_loadu_ps(m, v[j + k] + d), acc[k]);
        for (; j < n; ++j) acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(w[j]), _mm512_maskz_loadu_ps(m, v[j] + d), acc[0]);
        _mm512_mask_storeu_ps(out + d, m, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
    }
}

// p[j] = scale * q . k[j] for j < n, four keys at a time (their sums reduced together).
void scores(const float* q, const float* const* k, int64_t n, int64_t D, float scale, float* p) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t d = 0; d < D; d += 16) {
            const __mmask16 m = D - d >= 16 ? __mmask16(0xffff) : __mmask16((1u << (D - d)) - 1);
            const __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            for (int r = 0; r < 4; ++r) acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k[j + r] + d), acc[r]);
        }
        for (int r = 0; r < 4; ++r) p[j + r] = _mm512_reduce_add_ps(acc[r]) * scale;
    }
    for (; j < n; ++j) p[j] = dot(q, k[j], D) * scale;
}

// Scores, softmax and the weighted sum of values, as attend() documents.
void attend(const float* q, const float* const* keys, const float* const* values, int64_t n, int64_t D, float scale,
            float* p, float* out) {
    scores(q, keys, n, D, scale, p);
    tiles::softmax(p, n);
    weightedSum(p, values, n, D, out);
}

uint64_t readSum(const uint8_t* p, int64_t bytes) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        _mm_prefetch(reinterpret_cast<const char*>(p + i) + kPrefetch, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p + i) + kPrefetch + 64, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p + i) + kPrefetch + 128, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p + i) + kPrefetch + 192, _MM_HINT_T0);
        a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
        a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
        a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
    }
    for (; i < bytes; i += 64) a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    // Lanes summed as unsigned (they wrap): GCC's _mm512_reduce_add_epi64 adds signed long longs.
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    uint64_t s = 0;
    for (uint64_t v : lanes) s += v;
    return s;
}

}  // namespace

const CpuKernels& cpuKernelsAvx512() {
    static const CpuKernels k{CpuIsa::Avx512, "avx512", prepareX, dense, awq, attend, readSum};
    return k;
}

}  // namespace lmw::engine
