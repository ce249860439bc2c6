#include "quant/int4.h"

#include <algorithm>
#include <cmath>

#include "lmw/dtype.h"
#include "lmw/error.h"
#include "quant/parallel.h"

namespace lmw::engine::quant {

int chooseGroupSize(int64_t in, int requested) {
    for (int g = requested; g >= 32; g /= 2)
        if (in % g == 0) return g;
    return 0;
}

namespace {

constexpr int64_t kRowsPerTask = 64;

// One group: returns the f16 scale bits and zero point; writes q.
void quantizeGroup(const float* w, int n, uint8_t* q, uint16_t& scaleBits, uint8_t& zero) {
    // The range always includes 0 (as GPTQ does): then the zero point lies in 0..15 and no group
    // of same-sign weights is clamped away (AutoAWQ's min/max would clamp its zero to 0).
    float mx = 0, mn = 0;
    for (int i = 0; i < n; ++i) {
        mx = std::max(mx, w[i]);
        mn = std::min(mn, w[i]);
    }
    // (max - min) / 15 with AutoAWQ's 1e-5 floor, so a constant group does not divide by zero.
    scaleBits = floatToHalf(std::max(mx - mn, 1e-5f) / 15.0f);
    const float s = halfToFloat(scaleBits);
    const float z = std::clamp(std::nearbyint(-mn / s), 0.0f, 15.0f);
    zero = uint8_t(z);
    for (int i = 0; i < n; ++i) q[i] = uint8_t(std::clamp(std::nearbyint(w[i] / s) + z, 0.0f, 15.0f));
}

}  // namespace

GroupQuantized quantizeGroups(const float* w, int64_t rows, int64_t cols, int group) {
    if (group <= 0 || cols % group != 0)
        throw Error(ErrorCode::Internal, "quantizeGroups: group " + std::to_string(group) + " does not divide " +
                                             std::to_string(cols));
    GroupQuantized g;
    g.rows = rows;
    g.cols = cols;
    g.group = group;
    const int64_t G = cols / group;
    g.q.resize(size_t(rows * cols));
    g.zeros.resize(size_t(rows * G));
    g.scales.resize(size_t(rows * G));
    parallelRanges(rows, kRowsPerTask, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t k = 0; k < G; ++k)
                quantizeGroup(w + r * cols + k * group, group, g.q.data() + r * cols + k * group,
                              g.scales[size_t(r * G + k)], g.zeros[size_t(r * G + k)]);
    });
    return g;
}

void fakeQuantize(const float* w, int64_t rows, int64_t cols, int group, float* out) {
    std::vector<uint8_t> q(static_cast<size_t>(group));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols / group; ++k) {
            const float* src = w + r * cols + k * group;
            uint16_t sb;
            uint8_t z;
            quantizeGroup(src, group, q.data(), sb, z);
            const float s = halfToFloat(sb);
            float* dst = out + r * cols + k * group;
            for (int i = 0; i < group; ++i) dst[i] = (float(q[size_t(i)]) - float(z)) * s;
        }
}

std::vector<float> dequantize(const GroupQuantized& g) {
    std::vector<float> w(size_t(g.rows * g.cols));
    const int64_t G = g.groups();
    parallelRanges(g.rows, kRowsPerTask, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t i = 0; i < g.cols; ++i) {
                const size_t gi = size_t(r * G + i / g.group);
                w[size_t(r * g.cols + i)] =
                    (float(g.q[size_t(r * g.cols + i)]) - float(g.zeros[gi])) * halfToFloat(g.scales[gi]);
            }
    });
    return w;
}

AwqPacked packAwq(const GroupQuantized& g, const std::vector<int64_t>& rowOrder) {
    const int64_t n = int64_t(rowOrder.size());
    if (n % 8 != 0) throw Error(ErrorCode::Internal, "packAwq: " + std::to_string(n) + " output columns, not a multiple of 8");
    const int64_t in = g.cols, G = g.groups(), packs = n / 8;
    AwqPacked p;
    p.qweight.assign(size_t(in * packs), 0);
    p.qzeros.assign(size_t(G * packs), 0);
    p.scales.resize(size_t(G * n));
    // Tasks own disjoint input rows i of qweight (whole cache lines but at their edges).
    parallelRanges(in, kRowsPerTask, [&](int64_t i0, int64_t i1) {
        for (int64_t j = 0; j < packs; ++j)
            for (int k = 0; k < 8; ++k) {
                const uint8_t* q = g.q.data() + rowOrder[size_t(8 * j + kAwqOrder[k])] * in;
                for (int64_t i = i0; i < i1; ++i) p.qweight[size_t(i * packs + j)] |= int32_t(uint32_t(q[i]) << (4 * k));
            }
    });
    for (int64_t j = 0; j < packs; ++j)
        for (int k = 0; k < 8; ++k) {
            const int64_t r = rowOrder[size_t(8 * j + kAwqOrder[k])];
            for (int64_t gi = 0; gi < G; ++gi)
                p.qzeros[size_t(gi * packs + j)] |= int32_t(uint32_t(g.zeros[size_t(r * G + gi)]) << (4 * k));
        }
    for (int64_t c = 0; c < n; ++c)
        for (int64_t gi = 0; gi < G; ++gi) p.scales[size_t(gi * n + c)] = g.scales[size_t(rowOrder[size_t(c)] * G + gi)];
    return p;
}

std::vector<uint8_t> unpackAwqTransposed(const int32_t* packed, int64_t in, int64_t out) {
    std::vector<uint8_t> v(size_t(in * out));
    const int64_t packs = out / 8;
    for (int64_t i = 0; i < in; ++i)
        for (int64_t j = 0; j < packs; ++j) {
            const uint32_t word = uint32_t(packed[i * packs + j]);
            for (int k = 0; k < 8; ++k) v[size_t((8 * j + kAwqOrder[k]) * in + i)] = uint8_t((word >> (4 * k)) & 15);
        }
    return v;
}

}  // namespace lmw::engine::quant
