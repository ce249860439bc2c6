#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

enum class SrcType { F32 = 0, F16 = 1, BF16 = 2 };
// dst[i] = half(src[i]) (weight upload; round to nearest even).
int convertToHalf(void* dst, const void* src, SrcType type, int64_t n, void* stream);
// dst[i] = float(src[i]).
int convertToFloat(float* dst, const void* src, SrcType type, int64_t n, void* stream);

}  // namespace lmw::kernels
