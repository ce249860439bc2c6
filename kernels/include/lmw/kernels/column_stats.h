#pragma once
// Launcher (plain C++); see gather_rows.h for the conventions.
#include <cstdint>

namespace lmw::kernels {

// out[c] = sum over r of |in[r, c]| (in f16 [rows, cols], out f32 [cols], both device memory).
int columnAbsSums(float* out, const void* in, int rows, int cols, void* stream);
// out[c] = sum over r of in[r, c] (the same layouts; f32 accumulation).
int columnSums(float* out, const void* in, int rows, int cols, void* stream);

}  // namespace lmw::kernels
