#pragma once
// Weights as the CUDA backend holds them, and their loaders (host mmap -> device, converted/repacked).
#include <cstdint>
#include <memory>

#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"
#include "model/weights.h"

namespace lmw::engine::cuda {

// y = x W^T (+ b). Dense: w is f16 [n, k]. AWQ: qw/sz in lmw_kernels' packed layout (awq_gemm.h).
struct CudaLinear final : Weight {
    std::string name;
    int64_t n = 0, k = 0;
    bool awq = false;
    int groupSize = 0;
    DeviceBuffer w;      // dense f16 [n, k]
    DeviceBuffer qw, sz; // AWQ packed
    DeviceBuffer bias;   // f16 [n] or empty
    uint64_t bytes() const override { return w.bytes() + qw.bytes() + sz.bytes() + bias.bytes(); }
};

struct CudaNorm final : Weight {
    int64_t n = 0;
    DeviceBuffer w;  // f32 [n]
    uint64_t bytes() const override { return w.bytes(); }
};

struct CudaEmbedding final : Weight {
    int64_t vocab = 0, hidden = 0;
    DeviceBuffer table;  // f16 [vocab, hidden]
    uint64_t bytes() const override { return table.bytes(); }
};

// All throw lmw::Error naming the layer / tensor (InvalidModel, Unsupported) or CUDA failures.
std::unique_ptr<CudaLinear> loadCudaLinear(const LinearSource& src, void* stream);
std::unique_ptr<CudaNorm> loadCudaNorm(const TensorRef& w, void* stream);
std::unique_ptr<CudaEmbedding> loadCudaEmbedding(const TensorRef& w, void* stream);

}  // namespace lmw::engine::cuda
