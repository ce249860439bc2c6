#pragma once
// Linear layers on the CPU: y[T, out] = x[T, in] * W^T (+ b).
// Dense weights (F32/F16/BF16) are read straight from the mapping, one pointer per output row,
// so fused layouts made of several segments cost nothing. AWQ int4 weights are repacked at load
// into the row-major int4 layout of the kernels (cpu_kernels.h, still 4 bits per weight). The
// arithmetic runs in the kernels of the level cpuKernels() chose.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/thread_pool.h"

namespace lmw::engine {

class CpuLinear final : public Weight {
public:
    uint64_t bytes() const override { return m_bytes; }

    std::string name;
    int64_t in = 0;
    int64_t out = 0;
    bool awq = false;
    DType dtype = DType::F32;              // dense storage dtype
    std::vector<const uint8_t*> rows;      // dense: [out] start of each output row's weights
    std::vector<float> bias;               // [out] or empty

    // AWQ, repacked (AwqRows): awqRowBytes per output row; scales/zeros f32 [out][groups]. Group
    // sizes that are a multiple of 128 run the int4 x int8 kernels on activations quantized per
    // 128 inputs; others (small test models) dequantize rows to f32 for the dense kernels.
    AwqRows awqRows() const { return {awqQ.get(), awqRowBytes, awqScale.data(), awqZero.data(), groups, groupSize, in}; }
    bool awqInt8() const { return awq && groupSize % kAwqChunk == 0; }
    int groupSize = 128;
    int64_t groups = 0;
    int64_t awqRowBytes = 0;
    std::unique_ptr<uint8_t[]> awqQ;
    std::vector<float> awqScale;
    std::vector<float> awqZero;

    uint64_t m_bytes = 0;
};

std::unique_ptr<CpuLinear> loadCpuLinear(const LinearSource& src, ThreadPool& pool);

// x: [T, in] f32, y: [T, out] f32 (both dense row-major).
void cpuLinear(ThreadPool& pool, const CpuLinear& w, const float* x, int64_t T, float* y);

}  // namespace lmw::engine
