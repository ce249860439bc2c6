#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// Rotate-half rotary embedding in place on heads [0, heads + kvHeads) of qkv [T, (heads+2*kvHeads)*D]:
// angle = float(positions[t]) * invFreq[tokenSeq[t] * D/2 + i], i < D/2.
int ropeRotateHalf(void* qkv, const int32_t* positions, const int32_t* tokenSeq, const float* invFreq,
                   int numTokens, int heads, int kvHeads, int headDim, void* stream);

}  // namespace lmw::kernels
