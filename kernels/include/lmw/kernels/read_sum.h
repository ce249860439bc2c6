#pragma once
// Launcher (plain C++) of the read-bandwidth probe: a kernel that only reads. Pointers are device
// memory, `stream` is a cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess).
#include <cstdint>

namespace lmw::kernels {

// *sum = the sum of the little-endian uint32 words of data[0, bytes), computed with 16-byte loads
// (so the DRAM read rate is all it measures); sum is device memory, zeroed here on `stream`.
// bytes % 16 == 0 and data 16-byte aligned (cudaErrorInvalidValue otherwise).
int sumWords32(const void* data, int64_t bytes, uint64_t* sum, void* stream);

}  // namespace lmw::kernels
