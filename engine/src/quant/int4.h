#pragma once
// int4 asymmetric group quantization (round to nearest, zero point) and the AutoAWQ "GEMM" packing.
// Matrices here are the PyTorch weight orientation: [out, in] row-major, groups run along `in`.
#include <cstdint>
#include <vector>

namespace lmw::engine::quant {

// AutoAWQ GEMM: nibble k (bits 4k..4k+3) of a packed int32 holds column 8j + kAwqOrder[k].
inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Largest of requested, requested/2, ... down to 32 that divides `in`; 0 when none does.
int chooseGroupSize(int64_t in, int requested);

// One quantized weight matrix: w[o][i] ~ (q[o][i] - zeros[o][i/g]) * scales[o][i/g].
struct GroupQuantized {
    int64_t rows = 0, cols = 0;
    int group = 0;
    std::vector<uint8_t> q;        // [rows, cols], 0..15
    std::vector<uint8_t> zeros;    // [rows, cols/group], 0..15
    std::vector<uint16_t> scales;  // [rows, cols/group], f16 bits
    int64_t groups() const { return cols / group; }
};

// Quantizes every row of w [rows, cols] in groups of `group` inputs: asymmetric with a zero point
// over [min(w, 0), max(w, 0)], the scale rounded to f16 first so what is stored is what was evaluated.
GroupQuantized quantizeGroups(const float* w, int64_t rows, int64_t cols, int group);
// Quantize then dequantize rows [0, rows) into out (may equal w).
void fakeQuantize(const float* w, int64_t rows, int64_t cols, int group, float* out);
// Dequantized row-major [rows, cols].
std::vector<float> dequantize(const GroupQuantized& g);

// Packs the chosen rows (output channels, in this order) of `g` in AutoAWQ GEMM layout:
// qweight int32 [cols, n/8], qzeros int32 [groups, n/8], scales f16 [groups, n]. n % 8 == 0.
struct AwqPacked {
    std::vector<int32_t> qweight, qzeros;
    std::vector<uint16_t> scales;
};
AwqPacked packAwq(const GroupQuantized& g, const std::vector<int64_t>& rowOrder);
// The inverse: unpacks qweight [in, out/8] (or qzeros) into values [out][in] (0..15).
std::vector<uint8_t> unpackAwqTransposed(const int32_t* packed, int64_t in, int64_t out);

}  // namespace lmw::engine::quant
