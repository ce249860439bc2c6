// The memory ceilings `lmw bench` reports CUDA decode speed against.
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "lmw/error.h"
#include "lmw/kernels/read_sum.h"

namespace lmw::engine {

namespace {

// Best time in ms of `runs` calls of `work` on the default stream, after one warm-up call.
float bestMs(int runs, const std::function<void()>& work) {
    cudaEvent_t start, stop;
    LMW_CUDA_CHECK(cudaEventCreate(&start));
    if (const cudaError_t e = cudaEventCreate(&stop); e != cudaSuccess) {
        cudaEventDestroy(start);
        LMW_CUDA_CHECK(e);
    }
    float best = 1e30f;
    try {
        for (int i = 0; i <= runs; ++i) {
            LMW_CUDA_CHECK(cudaEventRecord(start));
            work();
            LMW_CUDA_CHECK(cudaEventRecord(stop));
            LMW_CUDA_CHECK(cudaEventSynchronize(stop));
            float ms = 0;
            LMW_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
            if (i > 0) best = std::min(best, ms);
        }
    } catch (...) {
        cudaEventDestroy(start);
        cudaEventDestroy(stop);
        throw;
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return best;
}

}  // namespace

double measureDeviceCopyBandwidthGBs() {
    const size_t bytes = size_t(1) << 30;
    cuda::DeviceBuffer a(bytes), b(bytes);
    LMW_CUDA_CHECK(cudaMemset(a.get(), 1, bytes));
    const float ms = bestMs(5, [&] { LMW_CUDA_CHECK(cudaMemcpy(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice)); });
    return 2.0 * double(bytes) / (double(ms) * 1e-3) / 1e9;
}

double measureDeviceReadBandwidthGBs() {
    // Several GB, far beyond the L2 (50 MB on an H200), but at most half of what is free.
    size_t freeBytes = 0, totalBytes = 0;
    LMW_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
    const size_t bytes = std::max<size_t>(size_t(256) << 20, std::min<size_t>(size_t(4) << 30, freeBytes / 2)) / 4096 * 4096;
    cuda::DeviceBuffer data(bytes), sum(sizeof(uint64_t));
    LMW_CUDA_CHECK(cudaMemset(data.get(), 1, bytes));
    const float ms = bestMs(8, [&] {
        LMW_CUDA_CHECK(kernels::sumWords32(data.get(), int64_t(bytes), sum.as<uint64_t>(), nullptr));
    });
    // The sum is read back and checked: every byte was read once, so the figure is a real read rate.
    uint64_t got = 0;
    LMW_CUDA_CHECK(cudaMemcpy(&got, sum.get(), sizeof got, cudaMemcpyDeviceToHost));
    const uint64_t want = uint64_t(bytes / 4) * 0x01010101ull;
    if (got != want)
        throw Error(ErrorCode::Internal, "read-bandwidth kernel summed " + std::to_string(got) + ", expected " +
                                             std::to_string(want));
    return double(bytes) / (double(ms) * 1e-3) / 1e9;
}

}  // namespace lmw::engine
