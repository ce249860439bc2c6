#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// out[r, :] = in[r, :] * rsqrt(mean(in[r, :]^2) + eps) * weight (weight f32 [cols]); out may alias in.
int rmsNorm(void* out, const void* in, const float* weight, int rows, int cols, float eps, void* stream);

}  // namespace lmw::kernels
