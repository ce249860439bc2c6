#pragma once
// The math of AWQ on host f32 matrices (weights [out, in], activations [n, in]); how a candidate is
// scored is a callback, so the big matmuls can run on any backend.
#include <cstdint>
#include <functional>
#include <vector>

namespace lmw::engine::quant {

// s[c] = max(meanAbs[c], 1e-4)^alpha, normalised so sqrt(max(s) * min(s)) = 1 (the AWQ paper / AutoAWQ).
std::vector<float> awqScales(const std::vector<double>& meanAbs, double alpha);

// Scores a weight error: returns ||X * wdiff^T||^2 summed over the calibration rows, where
// wdiff [out, in] = W - W_quantized.
using WeightErrorFn = std::function<double(const std::vector<float>& wdiff)>;

struct ScaleSearch {
    double alpha = 0;
    std::vector<float> scales;  // [in]
    double errorRtn = 0;        // alpha = 0 (all scales 1)
    double errorBest = 0;
};

// Tries every alpha in `alphas`: W_q = Q(W diag(s)) diag(1/s) with group quantization, rows where
// rowQuantized[r] == 0 left exact. Keeps the alpha with the smallest error (the first on ties).
ScaleSearch searchScale(const float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized,
                        const std::vector<double>& meanAbs, const std::vector<double>& alphas, const WeightErrorFn& error);

// The weight difference W - Q(W diag(s)) diag(1/s) (scales empty = all 1), into `diff` (resized to
// out * in; reusing one buffer across candidates saves faulting in fresh pages for each).
void quantError(const float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized,
                const std::vector<float>& scales, std::vector<float>& diff);
std::vector<float> quantError(const float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized,
                              const std::vector<float>& scales);

// AutoAWQ's clipping search: for each row and group, max|w| shrunk by i/grid for i < maxShrink*grid,
// clamp w to [-m, m], keep the shrink whose quantized output error on x [n, in] is smallest (error of a
// group = d^T (X_g^T X_g) d, d = Q(clamp(w)) - w). Clamps w in place; returns the mean shrink chosen.
double searchClip(float* w, int64_t out, int64_t in, int group, const std::vector<uint8_t>& rowQuantized, const float* x,
                  int64_t n, int grid = 20, double maxShrink = 0.5);

// ||X * wdiff^T||^2 on the host (tests, and small matrices).
double hostWeightError(const float* x, int64_t n, int64_t in, const std::vector<float>& wdiff, int64_t out);

}  // namespace lmw::engine::quant
