#pragma once
// Entry points of the CUDA backend (backend.cpp declares and calls them; built only with LMW_HAVE_CUDA).
#include <memory>

#include "backend/backend.h"

namespace lmw::engine {

// A CUDA backend on device 0: f16 activations, f16 dense weights through cuBLAS, AWQ int4 weights
// through lmw_kernels' W4A16 GEMM, paged KV cache in f16 / int8 / int4. Throws lmw::Error (Cuda,
// OutOfMemory) on any CUDA failure.
std::unique_ptr<Backend> createCudaBackend();

// True when device 0 answers and can run our sm_90a code (compute capability 9.0). Never throws.
bool cudaDeviceUsable();

}  // namespace lmw::engine

namespace lmw::engine {
// Device-to-device copy bandwidth of device 0 in GB/s, counting bytes read + written (the ceiling
// a memory-bound kernel is measured against). Throws lmw::Error on a CUDA failure.
double measureDeviceCopyBandwidthGBs();
// DRAM read bandwidth of device 0 in GB/s: a kernel that only reads (16-byte loads) and sums a
// buffer of several GB, best of several runs; the roofline decode is measured against. Throws
// lmw::Error on a CUDA failure or a wrong sum.
double measureDeviceReadBandwidthGBs();
}  // namespace lmw::engine
