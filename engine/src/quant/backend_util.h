#pragma once
// Small bridges between host f32 buffers and a Backend, so quantization runs its matmuls and the
// calibration forward pass on whatever backend is chosen (CPU or CUDA).
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "lmw/model_info.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace lmw::engine::quant {

// Host rows -> backend tensor. The backend interface has no upload op, so the rows are loaded as an
// embedding table and gathered with `embed` (the batch's tokens must be 0..rows-1, as sequenceBatch
// without tokens gives). Keep the returned holder alive until the tensor's step is over.
struct Upload {
    TensorRef ref;
    std::unique_ptr<Weight> table;
};
Tensor uploadRows(Backend& b, const float* rows, int64_t n, int64_t cols, Upload& holder);

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
