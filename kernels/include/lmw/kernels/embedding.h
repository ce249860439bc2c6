#pragma once
// Launcher (plain C++). Pointers are device memory, f16 tensors row-major __half, `stream` is a
// cudaStream_t passed as void*. Returns the launch status (0 = cudaSuccess) so the caller reports
// errors with its own file and line.
#include <cstdint>

namespace lmw::kernels {

// out[t, :] = table[tokens[t], :]  (f16 [vocab, hidden]); ids outside [0, vocab) give zeros.
int embeddingGather(void* out, const void* table, const int32_t* tokens, int numTokens, int hidden,
                    int64_t vocab, void* stream);

}  // namespace lmw::kernels
