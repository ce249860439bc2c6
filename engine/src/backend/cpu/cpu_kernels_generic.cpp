// The plain kernels: portable C++ for the x86-64 baseline, and the reference the SIMD levels are
// tested against.
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_tiles.h"

namespace lmw::engine {

namespace {

void prepareX(DType, const float* x, int64_t T, int64_t in, float* xp) {
    const int64_t ld = cpuXStride(in);
    for (int64_t t = 0; t < T; ++t) {
        std::memcpy(xp + t * ld, x + t * in, size_t(in) * 4);
        std::memset(xp + t * ld + in, 0, size_t(ld - in) * 4);
    }
}

void dense(DType dt, const uint8_t* const* rows, int64_t n, int64_t in, const float* xp, int64_t T, float* y,
           int64_t ldy) {
    const int64_t ld = cpuXStride(in);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t t = 0; t < T; ++t) {
            const float* x = xp + t * ld;
            float s = 0.f;
            for (int64_t k = 0; k < in; ++k) s += readElem(rows[i], dt, k) * x[k];
            y[t * ldy + i] = s;
        }
}

void awq(const AwqRows& w, int64_t r0, int64_t r1, const QuantizedX& x, int64_t T, float* y, int64_t ldy) {
    const int64_t chunksPerGroup = w.groupSize / kAwqChunk;
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* q = w.q + r * w.rowBytes;
        const float* scale = w.scale + r * w.groups;
        const float* zero = w.zero + r * w.groups;
        for (int64_t t = 0; t < T; ++t) {
            const int8_t* xq = x.q + t * x.ldq;
            float s = 0.f;
            for (int64_t g = 0; g < w.groups; ++g)
                for (int64_t c = g * chunksPerGroup; c < (g + 1) * chunksPerGroup; ++c) {
                    int32_t acc = 0;
                    for (int j = 0; j < 64; ++j) {
                        const uint8_t b = q[c * 64 + j];
                        acc += int32_t(b & 15) * xq[c * 128 + j] + int32_t(b >> 4) * xq[c * 128 + 64 + j];
                    }
                    s += float(acc) * (x.d[c * x.ldd + t] * scale[g]);
                }
            float z = 0.f;
            for (int64_t g = 0; g < w.groups; ++g) z += scale[g] * zero[g] * x.sum[t * x.lds + g];
            y[t * ldy + r - r0] = s - z;
        }
    }
}

void attend(const float* q, const float* const* keys, const float* const* values, int64_t n, int64_t D, float scale,
            float* p, float* out) {
    for (int64_t j = 0; j < n; ++j) {
        float s = 0.f;
        for (int64_t d = 0; d < D; ++d) s += q[d] * keys[j][d];
        p[j] = s * scale;
    }
    tiles::softmax(p, n);
    for (int64_t d = 0; d < D; ++d) out[d] = 0.f;
    for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < D; ++d) out[d] += p[j] * values[j][d];
}

uint64_t readSum(const uint8_t* p, int64_t bytes) {
    uint64_t s[8] = {};
    for (int64_t i = 0; i < bytes; i += 64)
        for (int k = 0; k < 8; ++k) {
            uint64_t v;
            std::memcpy(&v, p + i + 8 * k, 8);
            s[k] += v;
        }
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

}  // namespace

const CpuKernels& cpuKernelsGeneric() {
    static const CpuKernels k{CpuIsa::Generic, "generic", prepareX, dense, awq, attend, readSum};
    return k;
}

}  // namespace lmw::engine
