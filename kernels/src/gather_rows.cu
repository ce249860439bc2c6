#include "common.cuh"
#include "lmw/kernels/gather_rows.h"

namespace lmw::kernels {
namespace {
__global__ void gatherRowsKernel(__half* out, const __half* in, const int32_t* rowIdx, int cols) {
    const __half* s = in + int64_t(rowIdx[blockIdx.x]) * cols;
    __half* d = out + int64_t(blockIdx.x) * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) d[i] = s[i];
}
}  // namespace

int gatherRows(void* out, const void* in, const int32_t* rowIdx, int numRows, int cols, void* stream) {
    if (numRows <= 0) return 0;
    gatherRowsKernel<<<numRows, 256, 0, detail::asStream(stream)>>>(static_cast<__half*>(out),
                                                                   static_cast<const __half*>(in), rowIdx, cols);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
