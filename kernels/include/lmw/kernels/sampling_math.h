#pragma once
// The arithmetic that the host sampler (engine/src/runtime/sampler.cpp) and the device sampler
// (kernels/src/sampling.cu) share, written once so that both pick the same token from the same logits
// and the same 64-bit uniform. Every step is an IEEE-exact operation (add, mul, div, fma, integer math)
// spelled out with no contraction left to a compiler (the engine builds with -ffp-contract=off, nvcc
// contracts unless told: hence the _rn intrinsics), and exp() is our own polynomial rather than two
// different libm's. Header-only, plain C++ that also compiles as CUDA.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LMW_SAMPLING_HD __host__ __device__ __forceinline__
#else
#include <cmath>
#define LMW_SAMPLING_HD inline
#endif

namespace lmw::kernels::sampling {

// Token weights are fixed-point: w = floor(p * 2^44), p = exp((l - max) / T) in (0, 1]. Candidates
// (l >= max - 30 T) have p >= e^-30 > 2^-44, so every candidate weighs at least 1; a vocabulary of at
// most 2^18 tokens sums below 2^62, so masses are exact uint64 sums in any order.
constexpr int kWeightBits = 44;  // weightOf's 0x1p44f
constexpr float kCutoffTemperatures = 30.f;
constexpr int kMaxVocab = 1 << 18;

LMW_SAMPLING_HD float addF(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
LMW_SAMPLING_HD float subF(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
LMW_SAMPLING_HD float mulF(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
LMW_SAMPLING_HD float divF(float a, float b) {  // IEEE division (fast-math would approximate a / b)
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
LMW_SAMPLING_HD float fmaF(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}
LMW_SAMPLING_HD float rintF(float a) {
#if defined(__CUDA_ARCH__)
    return rintf(a);
#else
    return std::rint(a);
#endif
}
LMW_SAMPLING_HD uint64_t mulHi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    return uint64_t((unsigned __int128)a * b >> 64);
#endif
}

LMW_SAMPLING_HD uint32_t floatBits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
LMW_SAMPLING_HD float bitsFloat(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// e^x for x <= 0 in float, the same bits on host and device (within ~2 ulp of the true value): Cody-
// Waite reduction by ln 2, a degree-8 Taylor polynomial on |r| <= 0.35 by fma, an exact power-of-two
// scale. Float fma, not double: it runs once per logit in several of a row's passes.
LMW_SAMPLING_HD float expNeg(float x) {
    if (!(x > -87.f)) return 0.f;  // below float's normal range (and NaN): nothing weighs there
    const float k = rintF(mulF(x, 0x1.715476p+0f));  // x / ln 2
    float r = fmaF(-k, 0x1.63p-1f, x);                // ln 2 = 0x1.63p-1 - 0x1.bd0106p-13
    r = fmaF(k, 0x1.bd0106p-13f, r);
    float p = 0x1.a01a02p-16f;  // 1/8! .. 1/2!, then 1, 1
    p = fmaF(p, r, 0x1.a01a02p-13f);
    p = fmaF(p, r, 0x1.6c16c2p-10f);
    p = fmaF(p, r, 0x1.111112p-7f);
    p = fmaF(p, r, 0x1.555556p-5f);
    p = fmaF(p, r, 0x1.555556p-3f);
    p = fmaF(p, r, 0x1.0p-1f);
    p = fmaF(p, r, 1.f);
    p = fmaF(p, r, 1.f);
    const float scale = bitsFloat(uint32_t(127 + int(k)) << 23);  // 2^k, k in [-126, 0]: the result stays normal
    return mulF(p, scale);
}

// The logit processors, in the host sampler's order: bias, repetition, presence/frequency.
LMW_SAMPLING_HD float applyBias(float l, float bias) { return addF(l, bias); }
LMW_SAMPLING_HD float applyRepetition(float l, float penalty) {
    return l > 0.f ? divF(l, penalty) : mulF(l, penalty);
}
LMW_SAMPLING_HD float applyPresenceFrequency(float l, float presence, float frequency, int count) {
    return subF(l, fmaF(frequency, float(count), presence));
}

// Tokens below max - 30 T never enter (together they weigh under vocab * 1e-13 of the mass).
LMW_SAMPLING_HD float cutoffOf(float maxLogit, float temperature) {
    return fmaF(-kCutoffTemperatures, temperature, maxLogit);
}
LMW_SAMPLING_HD float inverseTemperature(float temperature) { return divF(1.f, temperature); }
// p relative to the max token (which gets exactly 1).
LMW_SAMPLING_HD float relativeProb(float l, float maxLogit, float invT) { return expNeg(mulF(subF(l, maxLogit), invT)); }
LMW_SAMPLING_HD uint64_t weightOf(float p) {
    return uint64_t(mulF(p, 0x1p44f));  // exact scaling (2^kWeightBits), truncation = floor
}

// The total order of the filters (top-k, top-p): larger logit first, lower id on ties, as one key that
// sorts descending. -0 is +0 (they compare equal as floats); NaN is never a candidate.
LMW_SAMPLING_HD uint32_t orderedBits(float l) {
    uint32_t u = floatBits(l);
    if (u == 0x80000000u) u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
LMW_SAMPLING_HD float fromOrderedBits(uint32_t o) { return bitsFloat((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o); }
LMW_SAMPLING_HD uint64_t orderKey(float l, int32_t id) {
    return (uint64_t(orderedBits(l)) << 32) | uint64_t(0xffffffffu - uint32_t(id));
}
LMW_SAMPLING_HD int32_t idOfKey(uint64_t key) { return int32_t(0xffffffffu - uint32_t(key)); }
LMW_SAMPLING_HD float logitOfKey(uint64_t key) { return fromOrderedBits(uint32_t(key >> 32)); }

// ceil(topP * total) exactly (topP in (0, 1], total < 2^63): the mass the nucleus must reach.
LMW_SAMPLING_HD uint64_t nucleusTarget(float topP, uint64_t total) {
    const uint32_t bits = floatBits(topP);
    const uint32_t e = (bits >> 23) & 0xffu;
    const uint64_t mant = e ? ((bits & 0x7fffffu) | 0x800000u) : (bits & 0x7fffffu);
    const int s = e ? 150 - int(e) : 149;  // topP = mant * 2^-s, s >= 23
    const uint64_t lo = mant * total, hi = mulHi64(mant, total);
    if (mant == 0 || total == 0) return 0;
    if (s >= 128) return 1;
    uint64_t q;
    bool rem;
    if (s >= 64) {
        const int t = s - 64;
        q = t ? hi >> t : hi;
        rem = lo != 0 || (t && (hi & ((uint64_t(1) << t) - 1)) != 0);
    } else {
        q = (lo >> s) | (hi << (64 - s));
        rem = (lo & ((uint64_t(1) << s) - 1)) != 0;
    }
    return q + (rem ? 1 : 0);
}

// The draw: floor(u * total / 2^64) < total; the token is the first (by id) of the kept set whose
// running weight exceeds it.
LMW_SAMPLING_HD uint64_t drawPoint(uint64_t uniform, uint64_t total) { return mulHi64(uniform, total); }

}  // namespace lmw::kernels::sampling
