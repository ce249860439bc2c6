#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// out[i, :] = in[rowIdx[i], :]  (f16, cols columns)
int gatherRows(void* out, const void* in, const int32_t* rowIdx, int numRows, int cols, void* stream);

}  // namespace lmw::kernels
