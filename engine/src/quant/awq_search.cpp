#include "quant/awq_search.h"

#include <algorithm>
#include <cmath>

#include "quant/int4.h"
#include "quant/parallel.h"

namespace lmw::engine::quant {

std::vector<float> awqScales(const std::vector<double>& meanAbs, double alpha) {
    std::vector<float> s(meanAbs.size());
    double mx = 0, mn = INFINITY;
    for (size_t c = 0; c < s.size(); ++c) {
        const double v = std::pow(std::max(meanAbs[c], 1e-4), alpha);
        s[c] = float(v);
        mx = std::max(mx, v);
        mn = std::min(mn, v);
    }
    const double norm = std::sqrt(mx * mn);
    if (norm > 0)
        for (auto& v : s) v = float(v / norm);
    return s;
}

void quantError(const float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized,
                const std::vector<float>& scales, std::vector<float>& diff) {
    diff.resize(size_t(out * in));
    parallelRanges(out, 64, [&](int64_t r0, int64_t r1) {
        std::vector<float> row(static_cast<size_t>(in));
        for (int64_t r = r0; r < r1; ++r) {
            float* d = diff.data() + r * in;
            if (!rowQuantized.empty() && !rowQuantized[size_t(r)]) {
                std::fill(d, d + in, 0.0f);
                continue;
            }
            const float* src = w + r * in;
            for (int64_t c = 0; c < in; ++c) row[size_t(c)] = scales.empty() ? src[c] : src[c] * scales[size_t(c)];
            fakeQuantize(row.data(), 1, in, group, row.data());
            for (int64_t c = 0; c < in; ++c)
                d[c] = src[c] - (scales.empty() ? row[size_t(c)] : row[size_t(c)] / scales[size_t(c)]);
        }
    });
}

std::vector<float> quantError(const float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized,
                              const std::vector<float>& scales) {
    std::vector<float> diff;
    quantError(w, out, in, group, rowQuantized, scales, diff);
    return diff;
}

ScaleSearch searchScale(const float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized,
                        const std::vector<double>& meanAbs, const std::vector<double>& alphas, const WeightErrorFn& error) {
    ScaleSearch best;
    best.errorBest = INFINITY;
    bool haveRtn = false;
    std::vector<float> diff;
    for (double alpha : alphas) {
        std::vector<float> s = awqScales(meanAbs, alpha);
        quantError(w, out, in, group, rowQuantized, alpha == 0 ? std::vector<float>{} : s, diff);
        const double e = error(diff);
        if (alpha == 0) {
            best.errorRtn = e;
            haveRtn = true;
        }
        if (e < best.errorBest) {
            best.errorBest = e;
            best.alpha = alpha;
            best.scales = std::move(s);
        }
    }
    if (!haveRtn) {
        quantError(w, out, in, group, rowQuantized, {}, diff);
        best.errorRtn = error(diff);
    }
    if (best.alpha == 0) best.scales.assign(size_t(in), 1.0f);
    return best;
}

double searchClip(float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized, const float* x,
                  int64_t n, int grid, double maxShrink) {
    const int64_t G = in / group;
    // Block-diagonal Gram matrix: gram[k] = X_g^T X_g of group k, [group, group].
    std::vector<double> gram(size_t(G * group * group), 0.0);
    parallelFor(G, [&](int64_t k) {
        double* gk = gram.data() + k * group * group;
        for (int64_t t = 0; t < n; ++t) {
            const float* xr = x + t * in + k * group;
            for (int a = 0; a < group; ++a) {
                const double xa = xr[a];
                for (int b = 0; b < group; ++b) gk[a * group + b] += xa * double(xr[b]);
            }
        }
    });
    const int steps = std::max(1, int(maxShrink * grid));
    std::vector<double> shrinkSum(size_t(out), 0.0);
    parallelFor(out, [&](int64_t r) {
        if (!rowQuantized.empty() && !rowQuantized[size_t(r)]) return;
        std::vector<float> cur(static_cast<size_t>(group)), q(static_cast<size_t>(group));
        std::vector<double> d(static_cast<size_t>(group)), y(static_cast<size_t>(group));
        for (int64_t k = 0; k < G; ++k) {
            float* wg = w + r * in + k * group;
            float maxAbs = 0;
            for (int i = 0; i < group; ++i) maxAbs = std::max(maxAbs, std::fabs(wg[i]));
            const double* gk = gram.data() + k * group * group;
            double bestErr = INFINITY;
            int bestStep = 0;
            for (int s = 0; s < steps; ++s) {
                const float m = maxAbs * float(1.0 - double(s) / grid);
                for (int i = 0; i < group; ++i) cur[size_t(i)] = std::clamp(wg[i], -m, m);
                fakeQuantize(cur.data(), 1, group, group, q.data());
                for (int i = 0; i < group; ++i) d[size_t(i)] = double(q[size_t(i)]) - double(wg[i]);
                // e = d^T G d with y = G d accumulated column by column (G is symmetric): the inner
                // loop is an axpy the compiler vectorises, unlike a dot-product reduction.
                std::fill(y.begin(), y.end(), 0.0);
                for (int a = 0; a < group; ++a) {
                    const double da = d[size_t(a)];
                    const double* ga = gk + a * group;
                    for (int b = 0; b < group; ++b) y[size_t(b)] += ga[b] * da;
                }
                double e = 0;
                for (int b = 0; b < group; ++b) e += d[size_t(b)] * y[size_t(b)];
                if (e < bestErr) {
                    bestErr = e;
                    bestStep = s;
                }
            }
            const float m = maxAbs * float(1.0 - double(bestStep) / grid);
            for (int i = 0; i < group; ++i) wg[i] = std::clamp(wg[i], -m, m);
            shrinkSum[size_t(r)] += double(bestStep) / grid;
        }
    });
    double total = 0;
    int64_t rows = 0;
    for (int64_t r = 0; r < out; ++r)
        if (rowQuantized.empty() || rowQuantized[size_t(r)]) {
            total += shrinkSum[size_t(r)];
            ++rows;
        }
    return rows && G ? total / double(rows * G) : 0.0;
}

double hostWeightError(const float* x, int64_t n, int64_t in, const std::vector<float>& wdiff, int64_t out) {
    double total = 0;
    for (int64_t t = 0; t < n; ++t)
        for (int64_t r = 0; r < out; ++r) {
            double acc = 0;
            for (int64_t c = 0; c < in; ++c) acc += double(x[t * in + c]) * double(wdiff[size_t(r * in + c)]);
            total += acc * acc;
        }
    return total;
}

}  // namespace lmw::engine::quant
