#pragma once
// The CPU backend: the reference every other backend is tested against. Activations are f32
// row-major in a per-step arena; weights stay in their stored dtype, read straight from the mmap.
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_kv_cache.h"
#include "backend/cpu/thread_pool.h"

namespace lmw::engine {

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int threads);  // 0 = std::thread::hardware_concurrency()
    ~CpuBackend() override;

    DeviceInfo deviceInfo() const override;

    std::unique_ptr<Weight> loadLinear(const LinearSource& src) override;
    std::unique_ptr<Weight> loadNorm(const TensorRef& w) override;
    std::unique_ptr<Weight> loadEmbedding(const TensorRef& w) override;

    uint64_t kvBlockBytes(const KvCacheShape& shape) const override;
    void allocKvCache(const KvCacheShape& shape, int64_t numBlocks) override;
    void copyKvBlock(int32_t from, int32_t to) override;

    void beginStep(const StepBatch& batch) override;
    Tensor alloc(int64_t rows, int64_t cols) override;
    Tensor upload(const float* host, int64_t rows, int64_t cols) override;

    void embed(Tensor out, const Weight& table) override;
    void rmsNorm(Tensor out, Tensor in, const Weight& w, float eps) override;
    void linear(Tensor out, Tensor in, const Weight& w) override;
    void attention(Tensor out, Tensor qkv, int layer, int heads, int kvHeads, int headDim) override;
    void siluMul(Tensor out, Tensor gateUp) override;
    void add(Tensor x, Tensor y) override;
    void addRmsNorm(Tensor x, Tensor y, Tensor h, const Weight& w, float eps) override;
    void gatherRows(Tensor out, Tensor in) override;
    void addColumnAbsSums(Tensor t, double* dst) override;
    void addColumnSums(Tensor t, double* dst) override;
    void setKvKeyOffsets(const std::vector<float>& offsets) override { m_kv.setKeyOffsets(offsets); }
    void readF32(Tensor t, float* dst) override;

    int threads() const { return m_pool.size(); }
    ThreadPool& pool() { return m_pool; }
    const CpuKvCache& kvCache() const { return m_kv; }

private:
    // Bump allocator over chunks that are never moved within a step.
    struct FreeDeleter {
        void operator()(float* p) const;
    };
    struct ArenaChunk {
        std::unique_ptr<float, FreeDeleter> data;
        size_t capacity = 0;  // floats
        size_t used = 0;
    };
    static ArenaChunk newArenaChunk(size_t floats);
    // Rotary embedding in place on the q and k heads of qkv (the first part of attention).
    void rope(Tensor qkv, int heads, int kvHeads, int headDim);
    void resetArena();

    ThreadPool m_pool;
    StepBatch m_batch;
    std::vector<int32_t> m_rowSeq;  // [T] sequence of each token row
    std::vector<ArenaChunk> m_arena;
    CpuKvCache m_kv;
};

std::unique_ptr<Backend> createCpuBackend(int threads);

}  // namespace lmw::engine
