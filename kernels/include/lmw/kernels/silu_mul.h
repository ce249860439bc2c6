#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// out[t, f] = silu(gateUp[t, f]) * gateUp[t, F + f]   (gateUp [T, 2F], out [T, F])
int siluMul(void* out, const void* gateUp, int rows, int ffn, void* stream);

}  // namespace lmw::kernels
