// liblmw_cuda.so's entry point: the table that backend.cpp's loader looks up (cuda_module.h).
#include "backend/cuda_module.h"

#include <cuda_runtime.h>

#include <cstdio>

#include "backend/cuda/cuda_backend.h"

namespace lmw::engine {
namespace {

std::string versionText(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

CudaFacts cudaFacts() {
    CudaFacts f;
    try {
        int v = 0;
        f.runtime = cudaRuntimeGetVersion(&v) == cudaSuccess ? versionText(v) : "unknown";
        v = 0;
        const cudaError_t driver = cudaDriverGetVersion(&v);
        f.driver = driver == cudaSuccess && v > 0 ? versionText(v) : "none (no NVIDIA driver)";
        int count = 0;
        cudaDeviceProp prop{};
        if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
            char text[384];
            std::snprintf(text, sizeof text, "%s (compute %d.%d, %.1f GiB)%s", prop.name, prop.major, prop.minor,
                          double(prop.totalGlobalMem) / double(1ull << 30), cudaDeviceUsable() ? "" : ", not usable: needs 9.0");
            f.device = text;
        } else {
            f.device = "none";
        }
        cudaGetLastError();
    } catch (...) {
        f.device = "none";
    }
    return f;
}

}  // namespace
}  // namespace lmw::engine

extern "C" __attribute__((visibility("default"))) const lmw::engine::CudaModule* lmw_cuda_module() {
    using namespace lmw::engine;
    static const CudaModule module{kCudaModuleAbi,  &createCudaBackend,           &cudaDeviceUsable,
                                   &measureDeviceCopyBandwidthGBs, &measureDeviceReadBandwidthGBs, &cudaFacts};
    return &module;
}
