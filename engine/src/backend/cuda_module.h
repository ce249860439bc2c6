#pragma once
// The CUDA backend is a module of its own, liblmw_cuda.so (engine/src/backend/cuda + lmw_kernels),
// the one binary that links libcudart and cuBLAS. The engine dlopen()s it the first time a CUDA
// backend is asked for, from <prefix>/LMW_PRIVATE_LIBDIR next to the running program's bin/ (the
// build tree has the same layout), so lmw and lmworkbench start on a machine without the CUDA
// libraries and run on the CPU backend there. Its users: createBackend / cudaAvailable
// (backend.cpp), lmw::versionFacts (the CUDA versions) and `lmw bench` (the bandwidth probes);
// the CUDA tests link the module instead.
#include <memory>
#include <string>

#include "backend/backend.h"

namespace lmw::engine {

// The versions a CUDA machine is described by (lmw --version, the About box).
struct CudaFacts {
    std::string runtime;  // "13.0" (the libcudart the module loaded)
    std::string driver;   // "13.0" (what the driver supports), or why it did not answer
    std::string device;   // "NVIDIA H200 (compute 9.0, 139.8 GiB)", or "none"
};

// What liblmw_cuda.so hands out (lmw_cuda_module(); kCudaModuleAbi guards a stale module).
struct CudaModule {
    int abi;
    std::unique_ptr<Backend> (*create)();  // throws lmw::Error (Cuda) without a usable device
    bool (*deviceUsable)();                // never throws
    double (*copyBandwidthGBs)();          // see cuda_backend.h
    double (*readBandwidthGBs)();
    CudaFacts (*facts)();                  // never throws
};
inline constexpr int kCudaModuleAbi = 1;
inline constexpr const char* kCudaModuleSymbol = "lmw_cuda_module";

// The module, loaded once (thread-safe); nullptr when this build has none or it does not load, and
// then `why` (when given) says why: "this build has no CUDA backend", or the dlerror() text, e.g.
// "libcudart.so.13: cannot open shared object file".
const CudaModule* cudaModule(std::string* why = nullptr);

}  // namespace lmw::engine
