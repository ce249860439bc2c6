#include "common.cuh"
#include "lmw/kernels/rms_norm.h"

namespace lmw::kernels {
namespace {
constexpr int kWarpGroupMax = 256;  // groups up to this width get one warp each (per-head norms)
constexpr int kWarpsPerBlock = 4;

// y[i] = x[i] * rsqrt(ss / n + eps) * w[i], the lanes striding over the n elements of one group. The
// sum of squares ss is taken in f32 like the HF reference.
__device__ __forceinline__ void normalize(__half* y, const __half* x, const float* w, int n, float ss, float eps,
                                          int lane, int lanes) {
    const float r = rsqrtf(ss / float(n) + eps);
    for (int i = lane; i < n; i += lanes) y[i] = __float2half(__half2float(x[i]) * r * w[i]);
}

// One block per group (wide groups: whole rows of a hidden state).
__global__ void rmsNormBlockKernel(__half* out, int64_t outStride, const __half* in, int64_t inStride, const float* w,
                                   int groups, int n, float eps) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
    const __half* x = in + row * inStride + g * n;
    __half* y = out + row * outStride + g * n;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = __half2float(x[i]);
        ss += v * v;
    }
    ss = detail::blockSum(ss, red);
    normalize(y, x, w, n, ss, eps, threadIdx.x, blockDim.x);
}

// One warp per group (narrow groups: the heads of q or k).
__global__ void rmsNormWarpKernel(__half* out, int64_t outStride, const __half* in, int64_t inStride, const float* w,
                                  int64_t units, int groups, int n, float eps) {
    const int64_t unit = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (unit >= units) return;
    const int lane = threadIdx.x & 31;
    const int64_t row = unit / groups, g = unit % groups;
    const __half* x = in + row * inStride + g * n;
    __half* y = out + row * outStride + g * n;
    float ss = 0.f;
    for (int i = lane; i < n; i += 32) {
        const float v = __half2float(x[i]);
        ss += v * v;
    }
    normalize(y, x, w, n, detail::warpSum(ss), eps, lane, 32);
}
}  // namespace

int rmsNorm(void* out, int64_t outStride, const void* in, int64_t inStride, const float* weight, int rows, int cols,
            int n, float eps, void* stream) {
    if (rows <= 0) return 0;
    if (n <= 0 || cols % n != 0) return int(cudaErrorInvalidValue);
    const int groups = cols / n;
    auto* o = static_cast<__half*>(out);
    const auto* x = static_cast<const __half*>(in);
    const cudaStream_t s = detail::asStream(stream);
    if (n <= kWarpGroupMax && groups > 1) {
        const int64_t units = int64_t(rows) * groups;
        rmsNormWarpKernel<<<detail::ceilDiv(units, kWarpsPerBlock), 32 * kWarpsPerBlock, 0, s>>>(
            o, outStride, x, inStride, weight, units, groups, n, eps);
    } else {
        const int threads = n >= 1024 ? 256 : (n >= 256 ? 128 : 32);
        rmsNormBlockKernel<<<unsigned(int64_t(rows) * groups), threads, 0, s>>>(o, outStride, x, inStride, weight,
                                                                               groups, n, eps);
    }
    return detail::launchStatus();
}
}  // namespace lmw::kernels
