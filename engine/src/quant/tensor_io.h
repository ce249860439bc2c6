#pragma once
// Reading checkpoint tensors into f32 and turning f32 into the 16-bit bytes we write.
#include <cstdint>
#include <vector>

#include "model/safetensors.h"

namespace lmw::engine::quant {

// Rows [row, row + n) of a 2-D float tensor (or the whole of a 1-D one with row 0, n 1) as f32.
void readRowsF32(const TensorRef& t, int64_t row, int64_t n, float* dst);
std::vector<float> readF32(const TensorRef& t);
std::vector<uint16_t> toF16(const float* v, int64_t n);

}  // namespace lmw::engine::quant
