#include "add.cuh"
#include "lmw/kernels/add.h"

namespace lmw::kernels {
namespace {
__global__ void addKernel(__half* x, const __half* y, int64_t n) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = detail::addRounded(x[i], y[i]);
}
__global__ void addBiasKernel(__half* x, const __half* b, int rows, int cols) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < int64_t(rows) * cols) x[i] = __float2half(__half2float(x[i]) + __half2float(b[i % cols]));
}
}  // namespace

int addInPlace(void* x, const void* y, int64_t n, void* stream) {
    if (n <= 0) return 0;
    addKernel<<<detail::ceilDiv(n, 256), 256, 0, detail::asStream(stream)>>>(static_cast<__half*>(x),
                                                                             static_cast<const __half*>(y), n);
    return detail::launchStatus();
}

int addBias(void* x, const void* bias, int rows, int cols, void* stream) {
    const int64_t n = int64_t(rows) * cols;
    if (n <= 0) return 0;
    addBiasKernel<<<detail::ceilDiv(n, 256), 256, 0, detail::asStream(stream)>>>(
        static_cast<__half*>(x), static_cast<const __half*>(bias), rows, cols);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
