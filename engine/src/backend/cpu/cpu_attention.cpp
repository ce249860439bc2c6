// Paged causal attention with grouped-query heads, in f32 with max-subtraction.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "lmw/error.h"

namespace lmw::engine {

namespace {

constexpr int64_t kTokensPerTask = 16;  // splits a long prefill so all threads get work

}  // namespace

void CpuBackend::attention(Tensor out, Tensor qkv, int layer, int heads, int kvHeads, int headDim) {
    const KvCacheShape& shape = m_kv.shape();
    if (!m_kv.allocated()) throw Error(ErrorCode::Internal, "cpu attention: allocKvCache was not called");
    const int64_t T = m_batch.numTokens();
    const int64_t qkvCols = int64_t(heads + 2 * kvHeads) * headDim;
    requireDense("cpu attention", {out, qkv});
    if (qkv.rows != T || qkv.cols != qkvCols || out.rows != T || out.cols != int64_t(heads) * headDim)
        throw Error(ErrorCode::InvalidArgument, "cpu attention: qkv [" + std::to_string(qkv.rows) + ", " +
                                                    std::to_string(qkv.cols) + "], out [" + std::to_string(out.rows) + ", " +
                                                    std::to_string(out.cols) + "] for " + std::to_string(T) + " tokens");
    if (layer < 0 || layer >= shape.layers || kvHeads != shape.kvHeads || headDim != shape.headDim ||
        kvHeads <= 0 || heads % kvHeads != 0)
        throw Error(ErrorCode::InvalidArgument, "cpu attention: layer " + std::to_string(layer) + ", " +
                                                    std::to_string(heads) + "/" + std::to_string(kvHeads) +
                                                    " heads of " + std::to_string(headDim) + " do not fit the cache (" +
                                                    std::to_string(shape.layers) + " layers, " +
                                                    std::to_string(shape.kvHeads) + " kv heads of " +
                                                    std::to_string(shape.headDim) + ")");
    const int S = m_batch.numSeqs();
    const int bs = shape.blockSize;
    const int32_t maxBlocks = m_batch.maxBlocks;
    if (int64_t(m_batch.blockTable.size()) < int64_t(S) * maxBlocks)
        throw Error(ErrorCode::InvalidArgument, "cpu attention: block table has " + std::to_string(m_batch.blockTable.size()) +
                                                    " entries for " + std::to_string(S) + " x " + std::to_string(maxBlocks));
    auto blockOf = [&](int s, int64_t pos) -> int64_t {
        const int64_t idx = pos / bs;
        const int32_t b = idx < maxBlocks ? m_batch.blockTable[size_t(int64_t(s) * maxBlocks + idx)] : -1;
        if (b < 0 || b >= m_kv.numBlocks())
            throw Error(ErrorCode::InvalidArgument, "cpu attention: sequence " + std::to_string(s) + " position " +
                                                        std::to_string(pos) + " has no valid block (entry " +
                                                        std::to_string(b) + " of " + std::to_string(m_kv.numBlocks()) + ")");
        return b;
    };
    for (int64_t t = 0; t < T; ++t)
        if (m_batch.positions[size_t(t)] < 0)
            throw Error(ErrorCode::InvalidArgument, "cpu attention: negative position at row " + std::to_string(t));

    // 0) The rotary embedding, in place: q and k of qkv stay rotated for the caller (Backend::attention).
    rope(qkv, heads, kvHeads, headDim);

    // 1) This step's K and V go into the cache first: a token attends to itself and to earlier
    //    tokens of the same step.
    const int64_t storeChunk = std::max<int64_t>(1, (T + m_pool.size() - 1) / m_pool.size());
    m_pool.parallelFor((T + storeChunk - 1) / storeChunk, [&](int64_t task) {
        for (int64_t t = task * storeChunk; t < std::min(T, (task + 1) * storeChunk); ++t) {
            const int s = m_rowSeq[size_t(t)];
            const int64_t pos = m_batch.positions[size_t(t)];
            const int64_t block = blockOf(s, pos);
            const float* row = static_cast<const float*>(qkv.data) + t * qkvCols;
            for (int h = 0; h < kvHeads; ++h) {
                m_kv.store(block, int(pos % bs), layer, 0, h, row + int64_t(heads + h) * headDim);
                m_kv.store(block, int(pos % bs), layer, 1, h, row + int64_t(heads + kvHeads + h) * headDim);
            }
        }
    });

    // 2) One task per (sequence, kv head, run of new tokens): the K/V rows of the context are
    //    resolved (dequantized) once and shared by the query heads of the group.
    struct Task {
        int seq, kvHead;
        int64_t t0, t1;
    };
    std::vector<Task> tasks;
    for (int s = 0; s < S; ++s)
        for (int h = 0; h < kvHeads; ++h)
            for (int64_t t = m_batch.seqStart[size_t(s)]; t < m_batch.seqStart[size_t(s + 1)]; t += kTokensPerTask)
                tasks.push_back({s, h, t, std::min<int64_t>(m_batch.seqStart[size_t(s + 1)], t + kTokensPerTask)});
    const int group = heads / kvHeads;
    const CpuKernels& kernels = cpuKernels();
    const float scale = 1.0f / std::sqrt(float(headDim));
    m_pool.parallelFor(int64_t(tasks.size()), [&](int64_t ti) {
        const Task& task = tasks[size_t(ti)];
        int64_t ctx = 0;
        for (int64_t t = task.t0; t < task.t1; ++t) ctx = std::max<int64_t>(ctx, m_batch.positions[size_t(t)] + 1);
        const bool quantized = shape.quantPolicy != 0;
        std::vector<float> scratch(quantized ? size_t(2 * ctx * headDim) : 0);
        std::vector<const float*> keys(static_cast<size_t>(ctx)), values(static_cast<size_t>(ctx));
        for (int64_t j = 0; j < ctx; ++j) {
            const int64_t block = blockOf(task.seq, j);
            float* ks = quantized ? scratch.data() + j * headDim : nullptr;
            float* vs = quantized ? scratch.data() + (ctx + j) * headDim : nullptr;
            keys[size_t(j)] = m_kv.load(block, int(j % bs), layer, 0, task.kvHead, ks);
            values[size_t(j)] = m_kv.load(block, int(j % bs), layer, 1, task.kvHead, vs);
        }
        std::vector<float> p(static_cast<size_t>(ctx));
        for (int64_t t = task.t0; t < task.t1; ++t) {
            const int64_t n = int64_t(m_batch.positions[size_t(t)]) + 1;
            for (int g = 0; g < group; ++g) {
                const int h = task.kvHead * group + g;
                const float* q = static_cast<const float*>(qkv.data) + t * qkvCols + int64_t(h) * headDim;
                float* o = static_cast<float*>(out.data) + t * out.cols + int64_t(h) * headDim;
                kernels.attend(q, keys.data(), values.data(), n, headDim, scale, p.data(), o);
            }
        }
    });
}

}  // namespace lmw::engine
