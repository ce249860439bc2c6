#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// RMSNorm of every run of n columns (n divides cols; n == cols: whole rows) of in [rows, cols]:
// out[r, g*n + i] = in[r, g*n + i] * rsqrt(mean(in[r, g*n : (g+1)*n]^2) + eps) * weight[i] (weight f32 [n]).
// Rows are inStride / outStride elements apart (strided views, e.g. the q heads inside qkv); out may
// alias in.
int rmsNorm(void* out, int64_t outStride, const void* in, int64_t inStride, const float* weight, int rows, int cols,
            int n, float eps, void* stream);

// The residual add and the norm after it in one pass over dense [rows, cols] rows (n == cols):
// x += y, rounded as addInPlace, then out = rmsNorm(x) — bit-equal to addInPlace followed by rmsNorm.
// out must not alias x or y.
int addRmsNorm(void* x, const void* y, void* out, const float* weight, int rows, int cols, float eps, void* stream);

}  // namespace lmw::kernels
