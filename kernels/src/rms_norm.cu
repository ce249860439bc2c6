#include "add.cuh"
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

// This thread's part of the sum of squares of a group of n, element i given by load(i). One source for
// rmsNorm and addRmsNorm, so that both sum the same values in the same order.
template <class Load>
__device__ __forceinline__ float threadSquares(int n, Load load) {
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = __half2float(load(i));
        ss += v * v;
    }
    return ss;
}

// Threads of the one-block-per-group kernels (the fused one must match the plain one).
int blockThreads(int n) { return n >= 1024 ? 256 : (n >= 256 ? 128 : 32); }

// One block per group (wide groups: whole rows of a hidden state).
__global__ void rmsNormBlockKernel(__half* out, int64_t outStride, const __half* in, int64_t inStride, const float* w,
                                   int groups, int n, float eps) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
    const __half* x = in + row * inStride + g * n;
    __half* y = out + row * outStride + g * n;
    const float ss = detail::blockSum(threadSquares(n, [&](int i) { return x[i]; }), red);
    normalize(y, x, w, n, ss, eps, threadIdx.x, blockDim.x);
}

// One block per row: x += r, then out = rmsNorm(x). Each thread sums the squares of the f16 values it
// stores and normalizes the same elements afterwards (re-reading its own stores), so this is
// addInPlace followed by rmsNormBlockKernel, bit for bit, in one pass over x and r.
__global__ void addRmsNormKernel(__half* x, const __half* r, __half* out, const float* w, int n, float eps) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x;
    __half* xr = x + row * n;
    const __half* rr = r + row * n;
    const float ss = detail::blockSum(threadSquares(n,
                                                    [&](int i) {
                                                        const __half s = detail::addRounded(xr[i], rr[i]);
                                                        xr[i] = s;
                                                        return s;
                                                    }),
                                      red);
    normalize(out + row * n, xr, w, n, ss, eps, threadIdx.x, blockDim.x);
}

// Vector forms for groups of whole 16-byte chunks (n % 8 == 0, aligned; hidden states): thread t owns
// chunks t, t + T, ... (at most kVec), loads them all before it uses any, so one block costs one memory
// round trip instead of one per loop step. The squares are summed in the same order by rmsNorm and
// addRmsNorm (chunk by chunk, element by element), so the fused op stays bit-equal to add + norm.
constexpr int kVec = 4;
int vecThreads(int n) { return n / 8 <= 256 * kVec ? 256 : 1024; }
bool vecFits(int n) { return n % 8 == 0 && n / 8 <= vecThreads(n) * kVec; }

__device__ __forceinline__ float squares8(const uint4& u) {
    const __half2* h = reinterpret_cast<const __half2*>(&u);
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        ss += f.x * f.x;
        ss += f.y * f.y;
    }
    return ss;
}

// This thread's chunks of the norm weight. Weights are no kernel's output: the vector kernels load them
// before they wait for the kernel before them (PDL), off the critical path.
struct VecWeights {
    float4 w[kVec][2];
};
__device__ __forceinline__ VecWeights loadVecWeights(const float* w, int chunks) {
    VecWeights r;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c >= chunks) break;
        r.w[j][0] = reinterpret_cast<const float4*>(w)[2 * c];
        r.w[j][1] = reinterpret_cast<const float4*>(w)[2 * c + 1];
    }
    return r;
}

// y = x * rsqrt(ss / n + eps) * w for this thread's chunks (the same per-element formula as normalize()).
__device__ __forceinline__ void normalizeVec(__half* y, const uint4 (&v)[kVec], const VecWeights& wv, int chunks,
                                             int n, float ss, float eps) {
    const float r = rsqrtf(ss / float(n) + eps);
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c >= chunks) break;
        const __half2* h = reinterpret_cast<const __half2*>(&v[j]);
        const float4 w0 = wv.w[j][0], w1 = wv.w[j][1];
        const float ws[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
        uint4 o;
        __half* oh = reinterpret_cast<__half*>(&o);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float2 f = __half22float2(h[i]);
            oh[2 * i] = __float2half(f.x * r * ws[2 * i]);
            oh[2 * i + 1] = __float2half(f.y * r * ws[2 * i + 1]);
        }
        reinterpret_cast<uint4*>(y)[c] = o;
    }
}

__global__ void __launch_bounds__(1024) rmsNormVecKernel(__half* out, int64_t outStride, const __half* in,
                                                         int64_t inStride, const float* w, int groups, int n, float eps) {
    __shared__ float red[32];
    detail::allowDependents();
    const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
    const uint4* x = reinterpret_cast<const uint4*>(in + row * inStride + g * n);
    const int chunks = n / 8;
    const VecWeights wv = loadVecWeights(w, chunks);
    detail::waitPriorGrid();
    uint4 v[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c < chunks) v[j] = x[c];
    }
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < kVec; ++j)
        if (threadIdx.x + j * blockDim.x < chunks) ss += squares8(v[j]);
    ss = detail::blockSum(ss, red);
    normalizeVec(out + row * outStride + g * n, v, wv, chunks, n, ss, eps);
}

__global__ void __launch_bounds__(1024) addRmsNormVecKernel(__half* x, const __half* r, __half* out, const float* w,
                                                            int n, float eps) {
    __shared__ float red[32];
    detail::allowDependents();
    const int64_t row = blockIdx.x;
    uint4* xr = reinterpret_cast<uint4*>(x + row * n);
    const uint4* rr = reinterpret_cast<const uint4*>(r + row * n);
    const int chunks = n / 8;
    const VecWeights wv = loadVecWeights(w, chunks);
    detail::waitPriorGrid();
    uint4 v[kVec], d[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c < chunks) {
            v[j] = xr[c];
            d[j] = rr[c];
        }
    }
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c >= chunks) break;
        __half* a = reinterpret_cast<__half*>(&v[j]);
        const __half* b = reinterpret_cast<const __half*>(&d[j]);
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] = detail::addRounded(a[i], b[i]);
        xr[c] = v[j];
        ss += squares8(v[j]);
    }
    ss = detail::blockSum(ss, red);
    normalizeVec(out + row * n, v, wv, chunks, n, ss, eps);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

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
    } else if (vecFits(n) && outStride % 8 == 0 && inStride % 8 == 0 && aligned16(out) && aligned16(in) &&
               aligned16(weight)) {
        return detail::launchOverlapped(rmsNormVecKernel, dim3(unsigned(int64_t(rows) * groups)), dim3(vecThreads(n)), 0,
                                        s, o, outStride, x, inStride, weight, groups, n, eps);
    } else {
        rmsNormBlockKernel<<<unsigned(int64_t(rows) * groups), blockThreads(n), 0, s>>>(o, outStride, x, inStride,
                                                                                       weight, groups, n, eps);
    }
    return detail::launchStatus();
}

int addRmsNorm(void* x, const void* y, void* out, const float* weight, int rows, int cols, float eps, void* stream) {
    if (rows <= 0) return 0;
    if (cols <= 0 || out == x || out == y) return int(cudaErrorInvalidValue);
    const cudaStream_t s = detail::asStream(stream);
    if (vecFits(cols) && aligned16(x) && aligned16(y) && aligned16(out) && aligned16(weight))
        return detail::launchOverlapped(addRmsNormVecKernel, dim3(unsigned(rows)), dim3(vecThreads(cols)), 0, s,
                                        static_cast<__half*>(x), static_cast<const __half*>(y),
                                        static_cast<__half*>(out), weight, cols, eps);
    addRmsNormKernel<<<unsigned(rows), blockThreads(cols), 0, detail::asStream(stream)>>>(
        static_cast<__half*>(x), static_cast<const __half*>(y), static_cast<__half*>(out), weight, cols, eps);
    return detail::launchStatus();
}
}  // namespace lmw::kernels
