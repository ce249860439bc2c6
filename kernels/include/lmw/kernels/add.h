#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// x += y (n f16 elements)
int addInPlace(void* x, const void* y, int64_t n, void* stream);
// x[r, :] += bias (f16 [cols])
int addBias(void* x, const void* bias, int rows, int cols, void* stream);

}  // namespace lmw::kernels
