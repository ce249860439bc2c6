#include "common.cuh"
#include "lmw/kernels/column_stats.h"

namespace lmw::kernels {
namespace {
constexpr int kRowsPerBlock = 64;

// Thread x sums column blockIdx.x * blockDim.x + x (its absolute values when Abs) over one chunk of
// kRowsPerBlock rows (coalesced along the row), then adds its partial sum into out.
template <bool Abs>
__global__ void columnSumsKernel(float* out, const __half* in, int rows, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const int r0 = blockIdx.y * kRowsPerBlock, r1 = min(rows, r0 + kRowsPerBlock);
    float s = 0.f;
    for (int r = r0; r < r1; ++r) {
        const float v = __half2float(in[int64_t(r) * cols + c]);
        s += Abs ? fabsf(v) : v;
    }
    atomicAdd(out + c, s);
}

template <bool Abs>
int launchColumnSums(float* out, const void* in, int rows, int cols, void* stream) {
    if (cols <= 0) return 0;
    const cudaStream_t s = detail::asStream(stream);
    if (const cudaError_t e = cudaMemsetAsync(out, 0, size_t(cols) * 4, s); e != cudaSuccess) return int(e);
    if (rows <= 0) return 0;
    const dim3 grid(detail::ceilDiv(cols, 128), detail::ceilDiv(rows, kRowsPerBlock));
    columnSumsKernel<Abs><<<grid, 128, 0, s>>>(out, static_cast<const __half*>(in), rows, cols);
    return detail::launchStatus();
}
}  // namespace

int columnAbsSums(float* out, const void* in, int rows, int cols, void* stream) {
    return launchColumnSums<true>(out, in, rows, cols, stream);
}

int columnSums(float* out, const void* in, int rows, int cols, void* stream) {
    return launchColumnSums<false>(out, in, rows, cols, stream);
}
}  // namespace lmw::kernels
