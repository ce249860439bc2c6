#pragma once
// A bridge from host f32 weights to a Backend, so quantization runs its candidate matmuls on whatever
// backend is chosen (CPU or CUDA); activations go up with Backend::upload.
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace lmw::engine::quant {

// A dense f32 linear [out, in] whose data lives in host memory owned by the caller (the CPU backend
// reads it in place); not movable because the backend may keep pointers to `ref`/`src`.
struct HostLinear {
    HostLinear(Backend& b, const float* w, int64_t out, int64_t in, const std::string& name,
               std::vector<float> bias = {});
    HostLinear(const HostLinear&) = delete;
    HostLinear& operator=(const HostLinear&) = delete;
    TensorRef ref, biasRef;
    std::vector<float> biasData;
    LinearSource src;
    std::unique_ptr<Weight> weight;
};

}  // namespace lmw::engine::quant
