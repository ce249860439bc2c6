// The CUDA backend: one stream, f16 activations in a per-step arena, weights from cuda_weights.cpp,
// ops from lmw_kernels, dense GEMMs through cuBLAS.
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>

#include "backend/cuda/arena.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_weights.h"
#include "lmw/error.h"
#include "lmw/kernels/add.h"
#include "lmw/kernels/awq_gemm.h"
#include "lmw/kernels/column_stats.h"
#include "lmw/kernels/convert.h"
#include "lmw/kernels/embedding.h"
#include "lmw/kernels/gather_rows.h"
#include "lmw/kernels/kv_cache.h"
#include "lmw/kernels/paged_attention.h"
#include "lmw/kernels/rms_norm.h"
#include "lmw/kernels/rope_kv_store.h"
#include "lmw/kernels/sampling.h"
#include "lmw/kernels/sampling_math.h"
#include "lmw/kernels/silu_mul.h"
#include "lmw/kernels/skinny_gemm.h"

namespace lmw::engine {

namespace {
namespace k = lmw::kernels;
using cuda::Arena;
using cuda::CudaEmbedding;
using cuda::CudaLinear;
using cuda::CudaNorm;
using cuda::DeviceBuffer;
using cuda::PinnedBuffer;

// AWQ layers with more tokens than this dequantize to an f16 scratch and use cuBLAS (tensor cores);
// below it the W4A16 kernel wins (it reads 4x fewer weight bytes). Measured in bench/kernels_bench.
constexpr int64_t kAwqGemmMaxTokens = 64;
// AWQ layers (linear and siluMulLinear) with at most this many tokens use the decode GEMV (one
// persistent wave streaming weights, K split across the warps of a CTA); 16 < M <= 64 the kernel above.
constexpr int64_t kAwqGemvMaxTokens = k::kAwqGemvMaxM;
// AWQ siluMulLinear fuses silu into the GEMV up to this many tokens: every CTA (one per SM) evaluates
// silu for the whole M x K input into shared memory, which soon costs more than the separate siluMul.
// bench/kernels_bench prints both forms for the down projection at M = 1, 4, 16.
constexpr int64_t kAwqSiluFusedMaxTokens = 2;
// Dense layers with at most this many tokens use the skinny GEMM (weights streamed once at the read
// bandwidth); above it cuBLAS' tiled kernels. bench/kernels_bench compares them on the 7B/8B shapes.
constexpr int64_t kSkinnyMaxTokens = k::kSkinnyGemmMaxM;

// Decode steps of up to this many sequences (one token each) are replayed from CUDA graphs.
constexpr int kGraphMaxTokens = 32;
// Captured graphs kept at most (one per batch size x context bucket x logit rows seen).
constexpr size_t kMaxGraphs = 256;
// cuBLAS gets its workspace from us, so that a captured GEMM never allocates.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

// The shape a captured decode step is keyed by: tokens (= sequences), logit rows, context bucket.
using GraphKey = std::tuple<int, int, int>;

struct GraphExecDeleter {
    void operator()(cudaGraphExec_t g) const { cudaGraphExecDestroy(g); }
};
struct CapturedStep {
    std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDeleter> exec;
    Tensor out;              // the tensor the recorded step returned (arena memory)
    size_t arenaUsed = 0;    // arena bytes the recorded step took
};

[[noreturn]] void badArg(const std::string& what) {
    throw Error(ErrorCode::InvalidArgument, "CUDA backend: " + what);
}

template <class W>
const W& as(const Weight& w, const char* op) {
    const W* p = dynamic_cast<const W*>(&w);
    if (!p) badArg(std::string(op) + ": weight was not loaded by the CUDA backend for this op");
    return *p;
}

k::KvLayout layoutOf(const KvCacheShape& s) {
    k::KvLayout l;
    l.layers = s.layers;
    l.kvHeads = s.kvHeads;
    l.headDim = s.headDim;
    l.blockSize = s.blockSize;
    l.quant = s.quantPolicy;
    return l;
}

class CudaBackend final : public Backend {
public:
    CudaBackend() {
        LMW_CUDA_CHECK(cudaSetDevice(0));
        cudaDeviceProp prop{};
        LMW_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        m_name = prop.name;
        LMW_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
        LMW_CUDA_CHECK(cudaEventCreateWithFlags(&m_metaCopied, cudaEventDisableTiming));
        LMW_CUBLAS_CHECK(cublasCreate(&m_cublas));
        LMW_CUBLAS_CHECK(cublasSetStream(m_cublas, m_stream));
        m_cublasWorkspace = DeviceBuffer(kCublasWorkspaceBytes);
        LMW_CUBLAS_CHECK(cublasSetWorkspace(m_cublas, m_cublasWorkspace.get(), m_cublasWorkspace.bytes()));
        m_arena = std::make_unique<Arena>(size_t(64) << 20);
        m_deviceMeta = DeviceBuffer(size_t(1) << 20);
        // LMW_CUDA_GRAPHS=0 runs every step as it is (to compare, or to debug a kernel).
        const char* graphs = std::getenv("LMW_CUDA_GRAPHS");
        m_graphsEnabled = !(graphs && std::string(graphs) == "0");
    }

    ~CudaBackend() override {
        if (m_stream) cudaStreamSynchronize(m_stream);
        m_graphs.clear();
        m_arena.reset();
        if (m_cublas) cublasDestroy(m_cublas);
        if (m_metaCopied) cudaEventDestroy(m_metaCopied);
        if (m_stream) cudaStreamDestroy(m_stream);
    }

    DeviceInfo deviceInfo() const override {
        DeviceInfo d;
        d.backend = "cuda";
        d.name = m_name;
        size_t freeB = 0, totalB = 0;
        LMW_CUDA_CHECK(cudaMemGetInfo(&freeB, &totalB));
        d.freeBytes = freeB;
        d.totalBytes = totalB;
        return d;
    }

    std::unique_ptr<Weight> loadLinear(const LinearSource& src) override {
        return cuda::loadCudaLinear(src, m_stream);
    }
    std::unique_ptr<Weight> loadNorm(const TensorRef& w) override { return cuda::loadCudaNorm(w, m_stream); }
    std::unique_ptr<Weight> loadEmbedding(const TensorRef& w) override { return cuda::loadCudaEmbedding(w, m_stream); }

    uint64_t kvBlockBytes(const KvCacheShape& shape) const override {
        checkKvShape(shape);
        return uint64_t(layoutOf(shape).blockBytes());
    }

    void allocKvCache(const KvCacheShape& shape, int64_t numBlocks) override {
        checkKvShape(shape);
        if (numBlocks <= 0) badArg("KV cache needs at least one block, got " + std::to_string(numBlocks));
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        ++m_bindings;
        m_kv = DeviceBuffer();
        m_keyOffsets = DeviceBuffer();
        m_kvLayout = layoutOf(shape);
        m_kvShape = shape;
        m_kvBlocks = numBlocks;
        m_kv = DeviceBuffer(size_t(numBlocks) * size_t(m_kvLayout.blockBytes()));
        // Never read stale memory as numbers (an unwritten slot is a bug, but should not be NaN garbage).
        LMW_CUDA_CHECK(cudaMemsetAsync(m_kv.get(), 0, m_kv.bytes(), m_stream));
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    }

    void setKvKeyOffsets(const std::vector<float>& offsets) override {
        if (!m_kv) badArg("setKvKeyOffsets before allocKvCache");
        checkKvKeyOffsets(m_kvShape, offsets.size());
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        ++m_bindings;
        m_keyOffsets = DeviceBuffer();
        if (offsets.empty()) return;
        m_keyOffsets = DeviceBuffer(offsets.size() * 4);
        LMW_CUDA_CHECK(cudaMemcpy(m_keyOffsets.get(), offsets.data(), offsets.size() * 4, cudaMemcpyHostToDevice));
    }

    void copyKvBlock(int32_t from, int32_t to) override {
        if (!m_kv) badArg("copyKvBlock before allocKvCache");
        if (from < 0 || to < 0 || from >= m_kvBlocks || to >= m_kvBlocks)
            badArg("copyKvBlock(" + std::to_string(from) + ", " + std::to_string(to) + ") outside " +
                   std::to_string(m_kvBlocks) + " blocks");
        LMW_CUDA_CHECK(k::kvCopyBlock(m_kv.get(), m_kvLayout, from, to, m_stream));
    }

    void beginStep(const StepBatch& batch) override {
        const int T = batch.numTokens(), S = batch.numSeqs();
        if (S < 0 || int(batch.positions.size()) != T || (S > 0 && batch.seqStart.back() != T) ||
            int(batch.contextLen.size()) != S || int64_t(batch.blockTable.size()) != int64_t(S) * batch.maxBlocks)
            badArg("beginStep: inconsistent StepBatch (tokens " + std::to_string(T) + ", positions " +
                   std::to_string(batch.positions.size()) + ", sequences " + std::to_string(S) + ", block table " +
                   std::to_string(batch.blockTable.size()) + " for maxBlocks " + std::to_string(batch.maxBlocks) + ")");
        // The previous step's kernels must be done before its arena memory is reused or replaced.
        if (m_arena->grewThisStep()) LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        m_arena->reset();

        m_tokens = T;
        m_seqs = S;
        m_maxBlocks = batch.maxBlocks;
        m_logitRows = int(batch.logitRows.size());
        m_invFreqCols = S > 0 ? int(batch.invFreq.size() / size_t(S)) : 0;
        m_maxContext = 0;
        std::vector<int32_t> tokenSeq(size_t(T), 0);
        for (int s = 0; s < S; ++s)
            for (int t = batch.seqStart[s]; t < batch.seqStart[s + 1]; ++t) tokenSeq[size_t(t)] = s;
        for (int t = 0; t < T; ++t) m_maxContext = std::max(m_maxContext, batch.positions[size_t(t)] + 1);
        for (int r : batch.logitRows)
            if (r < 0 || r >= T) badArg("beginStep: logit row " + std::to_string(r) + " outside " + std::to_string(T) + " tokens");

        // A replayed step keeps the launch parameters it was recorded with: the context is rounded up
        // to its bucket (a power of two; attention CTAs past a token's own context return at once, and
        // the attention partition depends on the bucket only) and the block table is laid out for it.
        m_graphable = m_kv && T > 0 && T <= kGraphMaxTokens && S == T;
        const std::vector<int32_t>* blockTable = &batch.blockTable;
        if (m_graphable) {
            const int bucket = k::pagedAttentionContextBucket(m_maxContext);
            const int width = (bucket + m_kvShape.blockSize - 1) / std::max(1, m_kvShape.blockSize);
            m_paddedBlocks.assign(size_t(S) * size_t(width), -1);
            for (int s = 0; s < S; ++s)
                std::copy_n(batch.blockTable.begin() + int64_t(s) * batch.maxBlocks, std::min(width, batch.maxBlocks),
                            m_paddedBlocks.begin() + int64_t(s) * width);
            blockTable = &m_paddedBlocks;
            m_maxContext = bucket;
            m_maxBlocks = width;
        }

        // One pinned staging buffer, one copy. Wait for the last copy out of it before refilling.
        struct Part {
            const void* src;
            size_t bytes;
            size_t offset;
        };
        Part parts[6] = {{batch.tokens.data(), size_t(T) * 4, 0},
                         {batch.positions.data(), size_t(T) * 4, 0},
                         {tokenSeq.data(), size_t(T) * 4, 0},
                         {blockTable->data(), blockTable->size() * 4, 0},
                         {batch.invFreq.data(), batch.invFreq.size() * 4, 0},
                         {batch.logitRows.data(), batch.logitRows.size() * 4, 0}};
        size_t total = 0;
        for (auto& p : parts) {
            p.offset = total;
            total += (p.bytes + 255) / 256 * 256;
        }
        LMW_CUDA_CHECK(cudaEventSynchronize(m_metaCopied));
        m_hostMeta.reserve(total);
        if (m_deviceMeta.bytes() < total) {
            LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
            ++m_bindings;
            m_deviceMeta = DeviceBuffer(total + total / 2);
        }
        for (const auto& p : parts)
            if (p.bytes) std::memcpy(m_hostMeta.data() + p.offset, p.src, p.bytes);
        if (total)
            LMW_CUDA_CHECK(cudaMemcpyAsync(m_deviceMeta.get(), m_hostMeta.data(), total, cudaMemcpyHostToDevice, m_stream));
        LMW_CUDA_CHECK(cudaEventRecord(m_metaCopied, m_stream));
        auto* base = m_deviceMeta.as<uint8_t>();
        m_dTokens = reinterpret_cast<int32_t*>(base + parts[0].offset);
        m_dPositions = reinterpret_cast<int32_t*>(base + parts[1].offset);
        m_dTokenSeq = reinterpret_cast<int32_t*>(base + parts[2].offset);
        m_dBlockTable = reinterpret_cast<int32_t*>(base + parts[3].offset);
        m_dInvFreq = reinterpret_cast<float*>(base + parts[4].offset);
        m_dLogitRows = reinterpret_cast<int32_t*>(base + parts[5].offset);
    }

    Tensor runStep(const std::function<Tensor()>& body, bool replayable) override {
        if (!replayable || !m_graphable || !m_graphsEnabled) return body();
        // Recorded steps hold addresses in the arena, the metadata buffer and the KV cache.
        const std::pair<uint64_t, uint64_t> epoch{m_arena->generation(), m_bindings};
        if (epoch != m_graphEpoch || m_graphs.size() >= kMaxGraphs) {
            m_graphs.clear();
            m_graphEpoch = epoch;
        }
        const GraphKey key{m_tokens, m_logitRows, m_maxContext};
        auto it = m_graphs.find(key);
        if (it == m_graphs.end()) {
            // The first step of a shape runs as it is: kernels load, the arena reaches its peak.
            if (m_warmShapes.insert(key).second) return body();
            CapturedStep step = capture(body);
            if (!step.exec) return body();
            it = m_graphs.emplace(key, std::move(step)).first;
        }
        m_arena->skip(it->second.arenaUsed);
        LMW_CUDA_CHECK(cudaGraphLaunch(it->second.exec.get(), m_stream));
        ++m_replayed;
        return it->second.out;
    }

    uint64_t replayedSteps() const override { return m_replayed; }

    AllocMark allocMark() const override {
        const Arena::Mark m = m_arena->mark();
        return {m.used, m.virtualUsed, m.chunks};
    }
    void allocRelease(AllocMark m) override { m_arena->release({m.used, m.total, m.chunks}); }

    Tensor alloc(int64_t rows, int64_t cols) override {
        if (rows < 0 || cols < 0) badArg("alloc of a negative shape");
        return denseTensor(m_arena->alloc(size_t(rows * cols) * 2), rows, cols, 2);
    }

    Tensor upload(const float* host, int64_t rows, int64_t cols) override {
        Tensor t = alloc(rows, cols);
        const int64_t n = rows * cols;
        if (n == 0) return t;
        void* staging = m_arena->alloc(size_t(n) * 4);
        LMW_CUDA_CHECK(cudaMemcpyAsync(staging, host, size_t(n) * 4, cudaMemcpyHostToDevice, m_stream));
        LMW_CUDA_CHECK(k::convertToHalf(t.data, staging, k::SrcType::F32, n, m_stream));
        // The caller may reuse `host` at once, and it may be pinned (then the copy is truly asynchronous).
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        return t;
    }

    void embed(Tensor out, const Weight& table) override {
        const auto& e = as<CudaEmbedding>(table, "embed");
        requireDense("CUDA backend: embed", {out});
        if (out.rows != m_tokens || out.cols != e.hidden)
            badArg("embed: out " + shapeOf(out) + ", want [" + std::to_string(m_tokens) + ", " + std::to_string(e.hidden) + "]");
        LMW_CUDA_CHECK(k::embeddingGather(out.data, e.table.get(), m_dTokens, int(out.rows), int(out.cols), e.vocab, m_stream));
    }

    void rmsNorm(Tensor out, Tensor in, const Weight& w, float eps) override {
        const auto& n = as<CudaNorm>(w, "rmsNorm");
        if (out.rows != in.rows || out.cols != in.cols || n.n == 0 || in.cols % n.n != 0)
            badArg("rmsNorm: out " + shapeOf(out) + ", in " + shapeOf(in) + ", weight [" + std::to_string(n.n) + "]");
        LMW_CUDA_CHECK(k::rmsNorm(out.data, out.stride, in.data, in.stride, n.w.as<float>(), int(in.rows), int(in.cols),
                                  int(n.n), eps, m_stream));
    }

    void linear(Tensor out, Tensor in, const Weight& w) override {
        const auto& l = as<CudaLinear>(w, "linear");
        requireDense("CUDA backend: linear", {out, in});
        if (in.cols != l.k || out.cols != l.n || out.rows != in.rows)
            badArg("linear " + l.name + ": in " + shapeOf(in) + ", out " + shapeOf(out) + " for weight [" +
                   std::to_string(l.n) + ", " + std::to_string(l.k) + "]");
        const int64_t M = in.rows;
        if (M == 0) return;
        if (awqGemvTakes(l, M, in.data)) {
            LMW_CUDA_CHECK(k::awqGemv(out.data, in.data, l.qw.as<uint32_t>(), l.sz.get(), M, l.n, l.k, l.groupSize,
                                      m_stream));
        } else if (l.awq && M <= kAwqGemmMaxTokens) {
            LMW_CUDA_CHECK(k::awqGemm(out.data, in.data, l.qw.as<uint32_t>(), l.sz.get(), M, l.n, l.k, l.groupSize, m_stream));
        } else if (!l.awq && M <= kSkinnyMaxTokens && k::skinnyGemmSupports(M, l.n, l.k)) {
            LMW_CUDA_CHECK(k::skinnyGemm(out.data, in.data, l.w.get(), M, l.n, l.k, k::DType16::F16, false, m_stream));
        } else {
            const void* wt = l.w.get();
            if (l.awq) {
                void* scratch = m_arena->alloc(size_t(l.n * l.k) * 2);
                LMW_CUDA_CHECK(k::awqDequantPacked(scratch, l.qw.as<uint32_t>(), l.sz.get(), l.n, l.k, l.groupSize, m_stream));
                wt = scratch;
            }
            gemm(out.data, in.data, wt, M, l.n, l.k);
        }
        if (l.bias) LMW_CUDA_CHECK(k::addBias(out.data, l.bias.get(), int(M), int(l.n), m_stream));
    }

    void attention(Tensor out, Tensor qkv, int layer, int heads, int kvHeads, int headDim) override {
        if (!m_kv) badArg("attention before allocKvCache");
        requireDense("CUDA backend: attention", {out, qkv});
        if (layer < 0 || layer >= m_kvShape.layers || kvHeads != m_kvShape.kvHeads || headDim != m_kvShape.headDim)
            badArg("attention: layer " + std::to_string(layer) + ", " + std::to_string(kvHeads) + " kv heads of " +
                   std::to_string(headDim) + " do not match the KV cache (" + std::to_string(m_kvShape.layers) +
                   " layers, " + std::to_string(m_kvShape.kvHeads) + " kv heads of " + std::to_string(m_kvShape.headDim) + ")");
        if (!k::pagedAttentionSupports(headDim, heads, kvHeads))
            throw Error(ErrorCode::Unsupported, "CUDA attention: head_dim " + std::to_string(headDim) + " with " +
                                                    std::to_string(heads) + "/" + std::to_string(kvHeads) +
                                                    " heads (need an even head_dim <= 256, heads % kv_heads == 0)");
        if (qkv.rows != m_tokens || qkv.cols != int64_t(heads + 2 * kvHeads) * headDim || out.rows != m_tokens ||
            out.cols != int64_t(heads) * headDim)
            badArg("attention: qkv " + shapeOf(qkv) + ", out " + shapeOf(out));
        if (m_tokens == 0) return;
        if (m_invFreqCols != headDim / 2)
            badArg("attention: the step's invFreq has " + std::to_string(m_invFreqCols) + " entries per sequence, want " +
                   std::to_string(headDim / 2));
        LMW_CUDA_CHECK(k::ropeKvStore(m_kv.get(), m_kvLayout, layer, qkv.data, m_dPositions, m_dTokenSeq, m_dInvFreq,
                                      m_dBlockTable, m_maxBlocks, m_tokens, heads,
                                      m_keyOffsets ? m_keyOffsets.as<float>() : nullptr, m_stream));
        k::PagedAttentionParams p;
        p.out = out.data;
        p.qkv = qkv.data;
        p.cache = m_kv.get();
        p.layout = m_kvLayout;
        p.layer = layer;
        p.blockTable = m_dBlockTable;
        p.maxBlocks = m_maxBlocks;
        p.tokenSeq = m_dTokenSeq;
        p.positions = m_dPositions;
        p.numTokens = m_tokens;
        p.heads = heads;
        p.maxContext = m_maxContext;
        p.scale = 1.f / std::sqrt(float(headDim));
        const size_t ws = k::pagedAttentionWorkspaceBytes(p);
        p.workspace = ws ? m_arena->alloc(ws) : nullptr;
        if (ws) p.counters = attentionCounters(k::pagedAttentionCounters(p));
        LMW_CUDA_CHECK(k::pagedAttention(p, m_stream));
    }

    void siluMul(Tensor out, Tensor gateUp) override {
        requireDense("CUDA backend: siluMul", {out, gateUp});
        if (gateUp.cols != 2 * out.cols || gateUp.rows != out.rows)
            badArg("siluMul: out " + shapeOf(out) + ", gateUp " + shapeOf(gateUp));
        LMW_CUDA_CHECK(k::siluMul(out.data, gateUp.data, int(out.rows), int(out.cols), m_stream));
    }

    void siluMulLinear(Tensor out, Tensor gateUp, const Weight& w) override {
        const auto& l = as<CudaLinear>(w, "siluMulLinear");
        requireDense("CUDA backend: siluMulLinear", {out, gateUp});
        if (gateUp.cols != 2 * l.k || out.cols != l.n || out.rows != gateUp.rows)
            badArg("siluMulLinear " + l.name + ": gateUp " + shapeOf(gateUp) + ", out " + shapeOf(out) + " for weight [" +
                   std::to_string(l.n) + ", " + std::to_string(l.k) + "]");
        const int64_t M = gateUp.rows;
        if (M == 0) return;
        // Dense weights take the default (siluMul, then linear's skinny GEMM or cuBLAS): the skinny GEMM's
        // silu-input form recomputes silu of its whole K slice in every CTA and measured slower at every M
        // (kernels_bench, 7B/8B down: M = 1 33.4 us fused vs 25.9 us split).
        if (M <= kAwqSiluFusedMaxTokens && awqGemvTakes(l, M, gateUp.data)) {
            LMW_CUDA_CHECK(k::awqGemvSiluMul(out.data, gateUp.data, l.qw.as<uint32_t>(), l.sz.get(), M, l.n, l.k,
                                             l.groupSize, m_stream));
            if (l.bias) LMW_CUDA_CHECK(k::addBias(out.data, l.bias.get(), int(M), int(l.n), m_stream));
            return;
        }
        Backend::siluMulLinear(out, gateUp, w);
    }

    void add(Tensor x, Tensor y) override {
        requireDense("CUDA backend: add", {x, y});
        if (x.rows != y.rows || x.cols != y.cols) badArg("add: x " + shapeOf(x) + ", y " + shapeOf(y));
        LMW_CUDA_CHECK(k::addInPlace(x.data, y.data, x.rows * x.cols, m_stream));
    }

    void addRmsNorm(Tensor x, Tensor y, Tensor h, const Weight& w, float eps) override {
        const auto& n = as<CudaNorm>(w, "addRmsNorm");
        requireDense("CUDA backend: addRmsNorm", {x, y, h});
        if (y.rows != x.rows || y.cols != x.cols || h.rows != x.rows || h.cols != x.cols || n.n != x.cols ||
            h.data == x.data || h.data == y.data)
            badArg("addRmsNorm: x " + shapeOf(x) + ", y " + shapeOf(y) + ", h " + shapeOf(h) + ", weight [" +
                   std::to_string(n.n) + "] (h apart from x and y)");
        LMW_CUDA_CHECK(k::addRmsNorm(x.data, y.data, h.data, n.w.as<float>(), int(x.rows), int(x.cols), eps, m_stream));
    }

    void gatherRows(Tensor out, Tensor in) override {
        requireDense("CUDA backend: gatherRows", {out, in});
        if (out.rows != m_logitRows || out.cols != in.cols)
            badArg("gatherRows: out " + shapeOf(out) + ", in " + shapeOf(in) + " for " + std::to_string(m_logitRows) + " logit rows");
        LMW_CUDA_CHECK(k::gatherRows(out.data, in.data, m_dLogitRows, int(out.rows), int(out.cols), m_stream));
    }

    void addColumnAbsSums(Tensor t, double* dst) override { addColumnSumsOf(t, dst, true); }
    void addColumnSums(Tensor t, double* dst) override { addColumnSumsOf(t, dst, false); }

    void readF32(Tensor t, float* dst) override {
        if (t.rows <= 0 || t.cols <= 0) return;
        // A view converts the span of its rows, then copies only its columns out.
        const int64_t n = (t.rows - 1) * t.stride + t.cols;
        auto* tmp = static_cast<float*>(m_arena->alloc(size_t(n) * 4));
        LMW_CUDA_CHECK(k::convertToFloat(tmp, t.data, k::SrcType::F16, n, m_stream));
        LMW_CUDA_CHECK(cudaMemcpy2DAsync(dst, size_t(t.cols) * 4, tmp, size_t(t.stride) * 4, size_t(t.cols) * 4,
                                         size_t(t.rows), cudaMemcpyDeviceToHost, m_stream));
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    }

    bool sampleOnDevice(Tensor logits, const std::vector<DeviceSampleRow>& rows,
                        std::vector<DeviceSampleResult>& out) override {
        static_assert(kMaxDeviceTopLogprobs == k::kMaxSampleTopLogprobs, "one bound for the device's top logprobs");
        out.assign(rows.size(), DeviceSampleResult{});
        if (rows.empty()) return true;
        if (logits.cols > k::sampling::kMaxVocab || logits.cols <= 0) return false;
        const int R = int(rows.size());
        std::vector<k::SampleRowParams> params(rows.size());
        std::vector<int32_t> history, biasIds;
        std::vector<float> biasValues;
        std::vector<uint32_t> masks;
        const size_t maskWords = (size_t(logits.cols) + 31) / 32;
        bool workspace = false;
        for (int r = 0; r < R; ++r) {
            const DeviceSampleRow& row = rows[size_t(r)];
            if (!row.params || row.row < 0 || row.row >= logits.rows || row.topLogprobs > kMaxDeviceTopLogprobs)
                badArg("sampleOnDevice: row " + std::to_string(r) + " (logits row " + std::to_string(row.row) + " of " +
                       shapeOf(logits) + ", top logprobs " + std::to_string(row.topLogprobs) + ")");
            const SamplingParams& sp = *row.params;
            k::SampleRowParams& p = params[size_t(r)];
            p.row = row.row;
            p.temperature = sp.temperature;
            p.topK = sp.topK;
            p.topP = sp.topP;
            p.minP = sp.minP;
            p.repetitionPenalty = sp.repetitionPenalty;
            p.presencePenalty = sp.presencePenalty;
            p.frequencyPenalty = sp.frequencyPenalty;
            p.topLogprobs = row.topLogprobs;
            p.uniform = row.uniform;
            const bool penalties = sp.repetitionPenalty != 1.f || sp.presencePenalty != 0.f || sp.frequencyPenalty != 0.f;
            if (penalties && row.history && !row.history->empty()) {
                // Uploaded whole each step: only rows with a penalty pay for it.
                p.historyOffset = int32_t(history.size());
                p.historyLen = int32_t(row.history->size());
                p.promptLen = int32_t(std::min(row.promptLen, row.history->size()));
                history.insert(history.end(), row.history->begin(), row.history->end());
            }
            p.biasOffset = int32_t(biasIds.size());
            p.biasCount = int32_t(sp.logitBias.size());
            for (const auto& [id, bias] : sp.logitBias) {
                biasIds.push_back(id);
                biasValues.push_back(bias);
            }
            if (row.allowed) {
                p.maskOffset = int32_t(masks.size());
                masks.insert(masks.end(), row.allowed, row.allowed + maskWords);
            }
            workspace = workspace || k::sampleRowNeedsWorkspace(p);
        }

        // One pinned staging buffer and one device buffer: params | history | bias ids | bias values | masks | results.
        auto aligned = [](size_t b) { return (b + 255) / 256 * 256; };
        const size_t offHistory = aligned(params.size() * sizeof(k::SampleRowParams));
        const size_t offBiasIds = offHistory + aligned(history.size() * 4);
        const size_t offBiasValues = offBiasIds + aligned(biasIds.size() * 4);
        const size_t offMasks = offBiasValues + aligned(biasValues.size() * 4);
        const size_t offResults = offMasks + aligned(masks.size() * 4);
        const size_t total = offResults + aligned(size_t(R) * sizeof(k::SampleRowResult));
        m_sampleHost.reserve(total);
        uint8_t* host = m_sampleHost.data();
        std::memcpy(host, params.data(), params.size() * sizeof(k::SampleRowParams));
        if (!history.empty()) std::memcpy(host + offHistory, history.data(), history.size() * 4);
        if (!biasIds.empty()) std::memcpy(host + offBiasIds, biasIds.data(), biasIds.size() * 4);
        if (!biasValues.empty()) std::memcpy(host + offBiasValues, biasValues.data(), biasValues.size() * 4);
        if (!masks.empty()) std::memcpy(host + offMasks, masks.data(), masks.size() * 4);
        if (m_sampleDevice.bytes() < total) m_sampleDevice = DeviceBuffer(total + total / 2);
        uint8_t* dev = m_sampleDevice.as<uint8_t>();
        LMW_CUDA_CHECK(cudaMemcpyAsync(dev, host, offResults, cudaMemcpyHostToDevice, m_stream));

        const size_t rowsBytes = size_t(R) * size_t(logits.cols) * 4;
        if (workspace && m_sampleScratch.bytes() < rowsBytes) {
            LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
            m_sampleScratch = DeviceBuffer(rowsBytes);
            m_sampleCounts = DeviceBuffer(rowsBytes);
            LMW_CUDA_CHECK(cudaMemsetAsync(m_sampleCounts.get(), 0, rowsBytes, m_stream));  // the kernel leaves it zero
        }
        k::SampleBatch b;
        b.logits = logits.data;
        b.type = logits.elemBytes == 4 ? k::SrcType::F32 : k::SrcType::F16;
        b.stride = logits.stride;
        b.vocab = int(logits.cols);
        b.rows = R;
        b.params = reinterpret_cast<const k::SampleRowParams*>(dev);
        b.history = reinterpret_cast<const int32_t*>(dev + offHistory);
        b.biasIds = reinterpret_cast<const int32_t*>(dev + offBiasIds);
        b.biasValues = reinterpret_cast<const float*>(dev + offBiasValues);
        b.masks = reinterpret_cast<const uint32_t*>(dev + offMasks);
        b.scratch = workspace ? m_sampleScratch.as<float>() : nullptr;
        b.counts = workspace ? m_sampleCounts.as<uint32_t>() : nullptr;
        b.results = reinterpret_cast<k::SampleRowResult*>(dev + offResults);
        LMW_CUDA_CHECK(k::sampleRows(b, m_stream));
        LMW_CUDA_CHECK(cudaMemcpyAsync(host + offResults, dev + offResults, size_t(R) * sizeof(k::SampleRowResult),
                                       cudaMemcpyDeviceToHost, m_stream));
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        const auto* res = reinterpret_cast<const k::SampleRowResult*>(host + offResults);
        for (int r = 0; r < R; ++r) {
            DeviceSampleResult& o = out[size_t(r)];
            if (res[r].token < 0 || res[r].token >= logits.cols)
                throw Error(ErrorCode::Internal, "CUDA sampler: row " + std::to_string(r) + " got token " +
                                                     std::to_string(res[r].token) + " outside the vocabulary");
            o.token = res[r].token;
            o.logprob = res[r].logprob;
            const int top = std::min(rows[size_t(r)].topLogprobs, int(logits.cols));
            for (int i = 0; i < top; ++i) o.top.push_back({res[r].topIds[i], res[r].topLogprobs[i]});
        }
        return true;
    }

private:
    // addColumnAbsSums / addColumnSums
    void addColumnSumsOf(Tensor t, double* dst, bool absolute) {
        requireDense(absolute ? "CUDA backend: addColumnAbsSums" : "CUDA backend: addColumnSums", {t});
        if (t.cols <= 0) return;
        auto* sums = static_cast<float*>(m_arena->alloc(size_t(t.cols) * 4));
        LMW_CUDA_CHECK((absolute ? k::columnAbsSums : k::columnSums)(sums, t.data, int(t.rows), int(t.cols), m_stream));
        m_colSums.resize(size_t(t.cols));
        LMW_CUDA_CHECK(cudaMemcpyAsync(m_colSums.data(), sums, size_t(t.cols) * 4, cudaMemcpyDeviceToHost, m_stream));
        LMW_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        for (int64_t c = 0; c < t.cols; ++c) dst[c] += double(m_colSums[size_t(c)]);
    }

    // Zeroed counters for the attention's in-kernel combine (the kernel leaves them zero), grown outside
    // a capture only; null (a separate combine kernel, the same bits) when a capture would need more.
    int* attentionCounters(size_t n) {
        if (m_attnCounters.bytes() < n * 4) {
            cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
            LMW_CUDA_CHECK(cudaStreamIsCapturing(m_stream, &st));
            if (st != cudaStreamCaptureStatusNone) return nullptr;
            ++m_bindings;  // recorded steps hold the old address
            m_attnCounters = DeviceBuffer(std::max(n, m_attnCounters.bytes() / 2) * 4);
            LMW_CUDA_CHECK(cudaMemsetAsync(m_attnCounters.get(), 0, m_attnCounters.bytes(), m_stream));
        }
        return m_attnCounters.as<int>();
    }

    // Records what `body` enqueues (nothing runs). An empty exec when the record is unusable: the arena
    // had to grow during it (that memory goes at the next step).
    CapturedStep capture(const std::function<Tensor()>& body) {
        CapturedStep step;
        LMW_CUDA_CHECK(cudaStreamBeginCapture(m_stream, cudaStreamCaptureModeRelaxed));
        cudaGraph_t graph = nullptr;
        try {
            step.out = body();
        } catch (...) {
            cudaStreamEndCapture(m_stream, &graph);
            if (graph) cudaGraphDestroy(graph);
            cudaGetLastError();
            throw;
        }
        LMW_CUDA_CHECK(cudaStreamEndCapture(m_stream, &graph));
        cudaGraphExec_t exec = nullptr;
        const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        LMW_CUDA_CHECK(e);
        step.exec.reset(exec);
        step.arenaUsed = m_arena->used();
        if (m_arena->grewThisStep()) step.exec.reset();
        return step;
    }

    // The decode GEMV for this AWQ layer and batch (its input 16-byte aligned, as the arena gives).
    bool awqGemvTakes(const CudaLinear& l, int64_t M, const void* in) const {
        return l.awq && M <= kAwqGemvMaxTokens && k::awqGemvSupports(M, l.n, l.k, l.groupSize) &&
               reinterpret_cast<uintptr_t>(in) % 16 == 0;
    }

    void checkKvShape(const KvCacheShape& s) const {
        if (s.layers <= 0 || s.kvHeads <= 0 || s.headDim <= 0 || s.blockSize <= 0)
            badArg("KV cache shape needs positive layers, kv heads, head_dim and block size");
        if (s.quantPolicy != 0 && s.quantPolicy != 4 && s.quantPolicy != 8)
            throw Error(ErrorCode::InvalidArgument,
                        "kv cache: quant_policy must be 0, 4 or 8, got " + std::to_string(s.quantPolicy));
        if (s.blockSize != 64)
            throw Error(ErrorCode::Unsupported, "CUDA KV cache: block size " + std::to_string(s.blockSize) + " (the kernels use 64)");
        if (s.headDim % 2 || s.headDim > 256)
            throw Error(ErrorCode::Unsupported, "CUDA KV cache: head_dim " + std::to_string(s.headDim) +
                                                    " (need an even head_dim, at most 256)");
    }

    // out[M, N] = in[M, K] * W[N, K]^T in f16 with f32 accumulation. cuBLAS is column-major: this is
    // out^T[N, M] = W[N, K] * in^T[K, M], i.e. op(A) = W^T read as column-major K x N.
    void gemm(void* out, const void* in, const void* w, int64_t M, int64_t N, int64_t K) {
        const float alpha = 1.f, beta = 0.f;
        LMW_CUBLAS_CHECK(cublasGemmEx(m_cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha, w, CUDA_R_16F,
                                      int(K), in, CUDA_R_16F, int(K), &beta, out, CUDA_R_16F, int(N),
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }

    std::string m_name;
    cudaStream_t m_stream = nullptr;
    cudaEvent_t m_metaCopied = nullptr;
    cublasHandle_t m_cublas = nullptr;
    DeviceBuffer m_cublasWorkspace;
    std::unique_ptr<Arena> m_arena;

    DeviceBuffer m_kv;
    DeviceBuffer m_attnCounters;  // attentionCounters()
    DeviceBuffer m_keyOffsets;  // f32 [layers][kvHeads][headDim], empty = none
    k::KvLayout m_kvLayout;
    KvCacheShape m_kvShape;
    int64_t m_kvBlocks = 0;

    PinnedBuffer m_hostMeta;
    DeviceBuffer m_deviceMeta;
    int m_tokens = 0, m_seqs = 0, m_maxBlocks = 0, m_logitRows = 0, m_invFreqCols = 0, m_maxContext = 0;
    int32_t *m_dTokens = nullptr, *m_dPositions = nullptr, *m_dTokenSeq = nullptr, *m_dBlockTable = nullptr,
            *m_dLogitRows = nullptr;
    float* m_dInvFreq = nullptr;
    std::vector<float> m_colSums;  // addColumnAbsSums' / addColumnSums' host landing buffer
    // sampleOnDevice: staging, its device copy, and the [rows, vocab] workspaces of penalized rows.
    PinnedBuffer m_sampleHost;
    DeviceBuffer m_sampleDevice, m_sampleScratch, m_sampleCounts;

    // CUDA graphs of decode steps (runStep).
    bool m_graphsEnabled = true;
    bool m_graphable = false;             // this step may be replayed
    uint64_t m_replayed = 0;
    std::vector<int32_t> m_paddedBlocks;  // its block table, laid out for the context bucket
    uint64_t m_bindings = 0;              // bumped when the KV cache, key offsets or metadata buffer move
    std::pair<uint64_t, uint64_t> m_graphEpoch{~uint64_t(0), ~uint64_t(0)};
    std::map<GraphKey, CapturedStep> m_graphs;
    std::set<GraphKey> m_warmShapes;
};
}  // namespace

std::unique_ptr<Backend> createCudaBackend() {
    if (!cudaDeviceUsable())
        throw Error(ErrorCode::Cuda, "no usable CUDA device (need compute capability 9.0, e.g. H100/H200)");
    return std::make_unique<CudaBackend>();
}

bool cudaDeviceUsable() {
    try {
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0) {
            cudaGetLastError();
            return false;
        }
        cudaDeviceProp prop{};
        if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        // lmw_kernels is built for sm_90a only; its code does not load on other architectures.
        return prop.major == 9 && prop.minor == 0;
    } catch (...) {
        return false;
    }
}

}  // namespace lmw::engine
