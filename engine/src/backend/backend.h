#pragma once
// The small op interface the forward pass is written against. Each backend (cpu/, cuda/)
// implements it; tensors are backend memory, the forward pass never touches their data.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "lmw/dtype.h"
#include "model/weights.h"

namespace lmw::engine {

// A non-owning 2-D view of backend memory: rows x cols, row-major, `stride` elements from one row's
// start to the next (stride == cols: dense). Activations are in the backend's compute type, elemBytes
// wide (f32 on CPU, f16 on CUDA) — the forward pass does not care. A view (colRange) shares the memory
// of its tensor, so a head or the q part of qkv is addressed without a copy. Ops take dense tensors
// unless they say that they take views.
struct Tensor {
    void* data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t stride = 0;
    int elemBytes = 0;
    bool dense() const { return stride == cols; }
};

inline Tensor denseTensor(void* data, int64_t rows, int64_t cols, int elemBytes) {
    return Tensor{data, rows, cols, cols, elemBytes};
}
// Columns [begin, end) of every row of t (a view). Throws InvalidArgument outside [0, t.cols].
Tensor colRange(Tensor t, int64_t begin, int64_t end);
// "[rows, cols]", or "[rows, cols of stride]" for a view (for messages).
std::string shapeOf(Tensor t);
// For ops whose kernels walk a tensor as one block of rows * cols: throws InvalidArgument naming `op`
// when one of `ts` is a view.
void requireDense(const std::string& op, std::initializer_list<Tensor> ts);

// A weight prepared by a backend (may be repacked for its kernels).
class Weight {
public:
    virtual ~Weight() = default;
    virtual uint64_t bytes() const = 0;
};

struct DeviceInfo {
    std::string backend;  // "cpu" / "cuda"
    std::string name;     // CPU model or GPU name
    uint64_t totalBytes = 0;
    uint64_t freeBytes = 0;
};

struct KvCacheShape {
    int layers = 0;
    int kvHeads = 0;
    int headDim = 0;
    int blockSize = 64;
    int quantPolicy = 0;  // 0 = unquantized (backend's 16/32-bit type), 8 = int8, 4 = int4
};

// Everything one forward step needs, built on the host by the scheduler.
struct StepBatch {
    std::vector<int32_t> tokens;      // [T] token ids of all sequences, back to back
    std::vector<int32_t> positions;   // [T] position of each token in its sequence
    std::vector<int32_t> seqStart;    // [S+1] tokens of sequence s are [seqStart[s], seqStart[s+1])
    std::vector<int32_t> contextLen;  // [S] KV length of s after this step (last position + 1)
    std::vector<int32_t> blockTable;  // [S * maxBlocks] physical block ids, row-major, -1 padded
    int32_t maxBlocks = 0;
    std::vector<float> invFreq;       // [S * headDim/2] rotary inverse frequencies of each sequence
    std::vector<int32_t> logitRows;   // rows of the batch whose logits are wanted, in output order
    int numSeqs() const { return int(seqStart.size()) - 1; }
    int numTokens() const { return int(tokens.size()); }
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual DeviceInfo deviceInfo() const = 0;

    // Weights.
    virtual std::unique_ptr<Weight> loadLinear(const LinearSource& src) = 0;
    virtual std::unique_ptr<Weight> loadNorm(const TensorRef& w) = 0;        // 1-D, any float dtype
    virtual std::unique_ptr<Weight> loadEmbedding(const TensorRef& w) = 0;   // [vocab, hidden]

    // KV cache: `numBlocks` blocks, each holding blockSize tokens of every layer's K and V.
    virtual uint64_t kvBlockBytes(const KvCacheShape& shape) const = 0;
    virtual void allocKvCache(const KvCacheShape& shape, int64_t numBlocks) = 0;
    // Copies the contents of one block to another (prefix caching copy-on-write).
    virtual void copyKvBlock(int32_t from, int32_t to) = 0;
    // Quantized caches (policy 8, 4) store every key minus the offset of its (layer, kv head):
    // offsets [layers][kvHeads][headDim], empty = none; set after allocKvCache (which clears them).
    // Attention does not change: all scores of a query shift by the same q . offset, which softmax
    // ignores; but the per-token range shrinks, as keys carry large near-constant channels.
    virtual void setKvKeyOffsets(const std::vector<float>& offsets) = 0;

    // One step: upload batch metadata, reset the activation arena.
    virtual void beginStep(const StepBatch& batch) = 0;
    virtual Tensor alloc(int64_t rows, int64_t cols) = 0;  // dense, valid until the next beginStep
    // A new tensor of this step holding host f32 rows [rows, cols] (in the compute type). The host
    // memory may be reused when this returns.
    virtual Tensor upload(const float* host, int64_t rows, int64_t cols) = 0;

    // Ops (all on the current step's batch). `out` may be the same tensor as `in` for rmsNorm.
    // A row's result must not depend on the other rows of the batch (bitwise): the same request gives
    // the same tokens whatever it is batched with.
    virtual void embed(Tensor out, const Weight& table) = 0;  // out[T, hidden] = table[tokens]
    // RMSNorm of every run of n columns, n = the weight's length, which divides cols: n == cols
    // normalizes rows; n == headDim over the q columns of qkv normalizes every q head (Qwen3's q/k
    // norms). in and out may be views (and the same view).
    virtual void rmsNorm(Tensor out, Tensor in, const Weight& w, float eps) = 0;
    virtual void linear(Tensor out, Tensor in, const Weight& w) = 0;              // out = in * W^T (+ b)
    // Rotary embedding in place on the q and k parts of qkv [T, (H + 2*KVH) * D] (rotate-half layout).
    virtual void rope(Tensor qkv, int heads, int kvHeads, int headDim) = 0;
    // Stores k, v of this step into the cache of `layer`, then out[T, H*D] = causal GQA attention of q
    // over the sequence's whole context (scale 1/sqrt(D)).
    virtual void attention(Tensor out, Tensor qkv, int layer, int heads, int kvHeads, int headDim) = 0;
    virtual void siluMul(Tensor out, Tensor gateUp) = 0;  // out[T, F] = silu(gateUp[:, :F]) * gateUp[:, F:]
    virtual void add(Tensor x, Tensor y) = 0;             // x += y
    virtual void gatherRows(Tensor out, Tensor in) = 0;   // out[i] = in[batch.logitRows[i]]
    // dst[c] += sum over rows of |t[r, c]| (waits for the device): AWQ's activation statistics.
    virtual void addColumnAbsSums(Tensor t, double* dst) = 0;
    // Copies a [rows, cols] tensor or view to dense host f32 (waits for the device).
    virtual void readF32(Tensor t, float* dst) = 0;
};

// Throws InvalidArgument unless `count` key offsets fit `shape` (layers * kvHeads * headDim, or 0).
void checkKvKeyOffsets(const KvCacheShape& shape, size_t count);

// "cpu", "cuda" or "auto". Throws lmw::Error when "cuda" is asked and no device is usable.
std::unique_ptr<Backend> createBackend(const std::string& name, int threads);
bool cudaAvailable();  // false when built without CUDA or no device answers

}  // namespace lmw::engine
