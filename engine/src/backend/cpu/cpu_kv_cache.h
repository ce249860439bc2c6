#pragma once
// The paged KV cache of the CPU backend. One block holds blockSize tokens of every layer:
//   for layer l, for K then V: values [kvHeads][blockSize][rowBytes], then (quantized policies)
//   params [kvHeads][blockSize][2] f16 (scale, zero), as the CUDA cache stores them.
// Policy 0 keeps f32 (the reference keeps full precision); 8 = uint8, 4 = two 4-bit values per byte
// (element 2i in the low nibble), asymmetric per (head, token): value = q * scale + zero. Scale and
// zero come from the row's min/max; int4 then refines them by least squares (kInt4FitRounds, store()).
// Quantized keys are stored minus the key offset of their (layer, kv head) (Backend::setKvKeyOffsets).
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"

namespace lmw::engine {

class CpuKvCache {
public:
    static uint64_t blockBytes(const KvCacheShape& shape);  // throws on a bad shape

    void allocate(const KvCacheShape& shape, int64_t numBlocks);  // clears the key offsets
    void setKeyOffsets(const std::vector<float>& offsets);         // [layers][kvHeads][headDim] or empty
    bool allocated() const { return m_data != nullptr; }
    const KvCacheShape& shape() const { return m_shape; }
    int64_t numBlocks() const { return m_numBlocks; }
    void copyBlock(int32_t from, int32_t to);

    // kind 0 = K, 1 = V. `src` holds headDim floats.
    void store(int64_t block, int slot, int layer, int kind, int kvHead, const float* src);
    // The headDim values of one (block, slot): a pointer into the cache for policy 0, else the
    // values dequantized into `scratch` (headDim floats) and scratch returned.
    const float* load(int64_t block, int slot, int layer, int kind, int kvHead, float* scratch) const;

private:
    uint8_t* region(int64_t block, int layer, int kind) const;

    KvCacheShape m_shape;
    int64_t m_numBlocks = 0;
    uint64_t m_blockBytes = 0;
    uint64_t m_rowBytes = 0;     // bytes of one (head, token) row of values
    uint64_t m_regionBytes = 0;  // one layer's K (or V) of one block
    std::unique_ptr<uint8_t[]> m_data;
    std::vector<float> m_keyOffsets;
};

}  // namespace lmw::engine
