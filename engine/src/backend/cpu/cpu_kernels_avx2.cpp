// AVX2 + FMA + F16C kernels; this file is compiled with -march=x86-64-v3.
//
// Dense rows: 8 weights per step, one f32 chain per (row, token); activations in plain order.
// AWQ rows: 128 int4 weights per chunk in two 32-byte loads, u8 x s8 products with vpmaddubsw (the
// four i16 partial sums of a chunk stay below 4 * 2 * 15 * 127 = 15240, so they cannot saturate)
// and vpmaddwd to int32: the same integers vpdpbusd gives, scaled in f32 per chunk.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_tiles.h"

namespace lmw::engine {

namespace {

constexpr int64_t kPrefetch = 2048;

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// One weight as f32 (not readElem: an inline function of a header must not be compiled for AVX2
// here, the linker could pick this copy for the baseline callers).
template <DType DT>
float elem(const uint8_t* p, int64_t k) {
    if constexpr (DT == DType::F32) {
        float v;
        std::memcpy(&v, p + 4 * k, 4);
        return v;
    } else {
        uint16_t h;
        std::memcpy(&h, p + 2 * k, 2);
        if constexpr (DT == DType::F16) return halfToFloat(h);
        const uint32_t bits = uint32_t(h) << 16;
        float v;
        std::memcpy(&v, &bits, 4);
        return v;
    }
}

template <DType DT>
__m256 load8(const uint8_t* p) {
    if constexpr (DT == DType::F32) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    } else if constexpr (DT == DType::F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
}

void prepareX(DType, const float* x, int64_t T, int64_t in, float* xp) {
    const int64_t ld = cpuXStride(in);
    for (int64_t t = 0; t < T; ++t) {
        std::memcpy(xp + t * ld, x + t * in, size_t(in) * 4);
        std::memset(xp + t * ld + in, 0, size_t(ld - in) * 4);
    }
}

template <DType DT, int R, int TT>
void denseTile(const uint8_t* const* w, int64_t in, const float* xp, int64_t ld, float* out) {
    constexpr int64_t kBytes = DT == DType::F32 ? 4 : 2;
    __m256 acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t) acc[r][t] = _mm256_setzero_ps();
    auto step = [&](int64_t k, const __m256 (&wv)[R]) {
        for (int t = 0; t < TT; ++t) {
            const __m256 xv = _mm256_loadu_ps(xp + t * ld + k);
            for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    };
    const int64_t full = in / 8 * 8;
    for (int64_t k = 0; k < full; k += 8) {
        __m256 wv[R];
        for (int r = 0; r < R; ++r) {
            const uint8_t* p = w[r] + k * kBytes;
            if (k * kBytes % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetch, _MM_HINT_T0);
            wv[r] = load8<DT>(p);
        }
        step(k, wv);
    }
    if (full < in) {  // the last few weights, zero-padded like xp
        __m256 wv[R];
        for (int r = 0; r < R; ++r) {
            alignas(32) float tail[8] = {};
            for (int64_t k = full; k < in; ++k) tail[k - full] = elem<DT>(w[r], k);
            wv[r] = _mm256_load_ps(tail);
        }
        step(full, wv);
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t) out[r * TT + t] = hsum(acc[r][t]);
}

template <DType DT>
void denseRows(const uint8_t* const* rows, int64_t n, int64_t in, const float* xp, int64_t T, float* y, int64_t ldy) {
    const int64_t ld = cpuXStride(in);
    tiles::forTilesInto<2>(n, T, tiles::tokenBlock(ld * 4), y, ldy, [&]<int R, int TT>(int64_t i, int64_t t, float* out) {
        denseTile<DT, R, TT>(rows + i, in, xp + t * ld, ld, out);
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
    const __m256i nibble = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const int64_t chunksPerGroup = w.groupSize / kAwqChunk;
    __m256 acc[R][TT];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < TT; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t g = 0; g < w.groups; ++g) {
        float scale[R];
        for (int r = 0; r < R; ++r) scale[r] = w.scale[(r0 + r) * w.groups + g];
        for (int64_t c = g * chunksPerGroup; c < (g + 1) * chunksPerGroup; ++c) {
            __m256i v0[R], v1[R];
            for (int r = 0; r < R; ++r) {
                const uint8_t* p = w.q + (r0 + r) * w.rowBytes + c * 64;
                _mm_prefetch(reinterpret_cast<const char*>(p) + 2 * R * w.rowBytes, _MM_HINT_T0);  // two tiles on
                v0[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
                v1[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
            }
            for (int t = 0; t < TT; ++t) {
                const int8_t* xq = x.q + (t0 + t) * x.ldq + c * kAwqChunk;
                auto xload = [&](int off) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + off)); };
                const __m256i x0 = xload(0), x1 = xload(32), x2 = xload(64), x3 = xload(96);
                const float d = x.d[c * x.ldd + t0 + t];
                for (int r = 0; r < R; ++r) {
                    const __m256i lo0 = _mm256_and_si256(v0[r], nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0[r], 4), nibble);
                    const __m256i lo1 = _mm256_and_si256(v1[r], nibble), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1[r], 4), nibble);
                    const __m256i s16 = _mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo0, x0), _mm256_maddubs_epi16(hi0, x2)),
                                                         _mm256_add_epi16(_mm256_maddubs_epi16(lo1, x1), _mm256_maddubs_epi16(hi1, x3)));
                    const __m256i s = _mm256_madd_epi16(s16, ones);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * scale[r]), acc[r][t]);
                }
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        const float* scale = w.scale + (r0 + r) * w.groups;
        const float* zero = w.zero + (r0 + r) * w.groups;
        for (int t = 0; t < TT; ++t) {
            float z = 0.f;
            for (int64_t g = 0; g < w.groups; ++g) z += scale[g] * zero[g] * x.sum[(t0 + t) * x.lds + g];
            out[r * TT + t] = hsum(acc[r][t]) - z;
        }
    }
}

void awq(const AwqRows& w, int64_t r0, int64_t r1, const QuantizedX& x, int64_t T, float* y, int64_t ldy) {
    tiles::forTilesInto<2>(r1 - r0, T, tiles::tokenBlock(x.ldq), y, ldy, [&]<int R, int TT>(int64_t i, int64_t t, float* out) {
        awqTile<R, TT>(w, r0 + i, x, t, out);
    });
}

float dot(const float* a, const float* b, int64_t n) {
    int64_t i = 0;
    float s = 0.f;
    if (n >= 8) {
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
        s = hsum(acc);
    }
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

// out[d] = sum over j of w[j] * v[j][d], 8 columns at a time with the sum in a register.
void weightedSum(const float* w, const float* const* v, int64_t n, int64_t D, float* out) {
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; ++j) acc = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(v[j] + d), acc);
        _mm256_storeu_ps(out + d, acc);
    }
    for (; d < D; ++d) {
        float acc = 0.f;
        for (int64_t j = 0; j < n; ++j) acc += w[j] * v[j][d];
        out[d] = acc;
    }
}

// Scores, softmax and the weighted sum of values, as attend() documents.
void attend(const float* q, const float* const* keys, const float* const* values, int64_t n, int64_t D, float scale,
            float* p, float* out) {
    for (int64_t j = 0; j < n; ++j) p[j] = dot(q, keys[j], D) * scale;
    tiles::softmax(p, n);
    weightedSum(p, values, n, D, out);
}

uint64_t readSum(const uint8_t* p, int64_t bytes) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0;
    for (int64_t i = 0; i < bytes; i += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(p + i) + kPrefetch, _MM_HINT_T0);
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    }
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(a0, a1));
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

}  // namespace

const CpuKernels& cpuKernelsAvx2() {
    static const CpuKernels k{CpuIsa::Avx2, "avx2", prepareX, dense, awq, attend, readSum};
    return k;
}

}  // namespace lmw::engine
