#include "common.cuh"
#include "lmw/kernels/rms_norm.h"

namespace lmw::kernels {
namespace {
// One block per row; the sum of squares is taken in f32 like the HF reference.
__global__ void rmsNormKernel(__half* out, const __half* in, const float* w, int cols, float eps) {
    __shared__ float red[32];
    const __half* x = in + int64_t(blockIdx.x) * cols;
    __half* y = out + int64_t(blockIdx.x) * cols;
    float ss = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const float v = __half2float(x[i]);
        ss += v * v;
    }
    ss = detail::blockSum(ss, red);
    const float r = rsqrtf(ss / float(cols) + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) y[i] = __float2half(__half2float(x[i]) * r * w[i]);
}
}  // namespace

int rmsNorm(void* out, const void* in, const float* weight, int rows, int cols, float eps, void* stream) {
    if (rows <= 0) return 0;
    const int threads = cols >= 1024 ? 256 : (cols >= 256 ? 128 : 32);
    rmsNormKernel<<<rows, threads, 0, detail::asStream(stream)>>>(static_cast<__half*>(out),
                                                                 static_cast<const __half*>(in), weight, cols, eps);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
