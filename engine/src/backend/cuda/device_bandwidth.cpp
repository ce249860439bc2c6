// The memory ceiling `lmw bench` reports CUDA decode speed against.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace lmw::engine {

double measureDeviceCopyBandwidthGBs() {
    const size_t bytes = size_t(1) << 30;
    void *a = nullptr, *b = nullptr;
    LMW_CUDA_CHECK(cudaMalloc(&a, bytes));
    LMW_CUDA_CHECK(cudaMalloc(&b, bytes));
    LMW_CUDA_CHECK(cudaMemset(a, 1, bytes));
    cudaEvent_t start, stop;
    LMW_CUDA_CHECK(cudaEventCreate(&start));
    LMW_CUDA_CHECK(cudaEventCreate(&stop));
    float best = 1e30f;
    for (int i = 0; i < 6; ++i) {
        LMW_CUDA_CHECK(cudaEventRecord(start));
        LMW_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        LMW_CUDA_CHECK(cudaEventRecord(stop));
        LMW_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        LMW_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        if (i > 0) best = std::min(best, ms);  // the first copy warms up
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * double(bytes) / (double(best) * 1e-3) / 1e9;
}

}  // namespace lmw::engine
