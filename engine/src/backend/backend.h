#pragma once
// The small op interface the forward pass is written against. Each backend (cpu/, cuda/)
// implements it; tensors are backend memory, the forward pass never touches their data.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "lmw/dtype.h"
#include "lmw/sampling.h"
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
// Rows [begin, end) of t (a view; dense when t is). Throws InvalidArgument outside [0, t.rows].
Tensor rowRange(Tensor t, int64_t begin, int64_t end);
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

// One row for Backend::sampleOnDevice: what the host Sampler::sample would be given.
struct DeviceSampleRow {
    int32_t row = 0;                                // row of the logits tensor
    const SamplingParams* params = nullptr;
    const std::vector<int32_t>* history = nullptr;  // prompt + generated ids
    size_t promptLen = 0;
    uint64_t uniform = 0;                           // Sampler::drawUniform(); unused when greedy
    int topLogprobs = -1;                           // -1: none; n >= 0: the choice's logprob and the top n
    const uint32_t* allowed = nullptr;              // a grammar's token bitmask (bit i: token i), null: all
};
struct DeviceSampleResult {
    int32_t token = 0;
    float logprob = 0;              // when topLogprobs >= 0: log-softmax of the raw logits
    std::vector<TokenChoice> top;   // the top `topLogprobs` raw logprobs
};
// The most top logprobs the device sampler reports (a request asking more is sampled on the host).
// (cuda_backend.cpp asserts that its kernel's bound is the same).
constexpr int kMaxDeviceTopLogprobs = 20;

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
    // Scratch scopes inside a step: the memory of tensors allocated after allocMark() may be handed out
    // again after allocRelease(mark) (ops run in order, so later ops reuse it only after earlier ones
    // are done). The forward pass releases each layer's temporaries, so a step's memory is one layer's,
    // not the sum of all layers'. A backend may ignore both.
    struct AllocMark {  // the backend's allocator state
        size_t used = 0, total = 0, chunks = 0;
    };
    virtual AllocMark allocMark() const { return {}; }
    virtual void allocRelease(AllocMark) {}
    // A new tensor of this step holding host f32 rows [rows, cols] (in the compute type). The host
    // memory may be reused when this returns.
    virtual Tensor upload(const float* host, int64_t rows, int64_t cols) = 0;
    // Runs `body` (the ops of this step, after beginStep) and returns the tensor it returns. When
    // `replayable`, a backend may record the ops the first times a step of this shape is seen and then
    // replay the record instead of calling `body` (CUDA graphs): `body` must then only enqueue ops —
    // no reads to the host, no uploads — and what it enqueues and allocates must depend only on the
    // step's shape (token, sequence and logit-row counts), not on token ids, positions or block ids.
    virtual Tensor runStep(const std::function<Tensor()>& body, bool replayable) {
        (void)replayable;
        return body();
    }
    // Steps runStep replayed from a record so far (0 for a backend that does not record).
    virtual uint64_t replayedSteps() const { return 0; }

    // Ops (all on the current step's batch). `out` may be the same tensor as `in` for rmsNorm.
    // A row's result must not depend on the other rows of the batch: the same request gives the same
    // tokens whatever it is batched with. Bitwise, except where a backend switches kernels by the
    // number of rows T; inside one regime it stays bitwise, across a switch a linear's row agrees to the
    // rounding of its output (one unit in the last place of the compute type, plus the difference of
    // two f32 accumulation orders, about K * 2^-24 * sum |w x|; for AWQ also the rounding of the
    // dequantized weights to f16 that only the T > 16 kernels do, 2^-11 * sum |w x|), which later ops
    // may amplify.
    // CPU: no switches. CUDA: dense linear and siluMulLinear T <= 16 (skinny GEMM) / T > 16 (cuBLAS,
    // which picks its algorithm by shape, so it is not promised bitwise across T either); AWQ linear and
    // siluMulLinear T <= 16 (decode GEMV) / 16 < T <= 64 (W4A16 kernel) / T > 64 (dequantize + cuBLAS);
    // attention splits the context in partitions of 64, 128 or 256 tokens chosen by T and the step's
    // context bucket (its longest context rounded up to a power of two), which changes the f32 order in
    // which a row's softmax is summed, not what it sums (pagedAttentionPartition).
    // tests/kernels/test_cuda_backend.cpp checks this.
    virtual void embed(Tensor out, const Weight& table) = 0;  // out[T, hidden] = table[tokens]
    // RMSNorm of every run of n columns, n = the weight's length, which divides cols: n == cols
    // normalizes rows; n == headDim over the q columns of qkv normalizes every q head (Qwen3's q/k
    // norms). in and out may be views (and the same view).
    virtual void rmsNorm(Tensor out, Tensor in, const Weight& w, float eps) = 0;
    virtual void linear(Tensor out, Tensor in, const Weight& w) = 0;              // out = in * W^T (+ b)
    // Applies the rotary embedding (rotate-half, the step's positions and invFreq) to the q and k parts
    // of qkv [T, (H + 2*KVH) * D] in place, stores k, v of this step into the cache of `layer` (quantized
    // caches: k minus its key offset; qkv keeps the rotated k itself), then out[T, H*D] = causal GQA
    // attention of q over the sequence's whole context (scale 1/sqrt(D)). One op so that a backend
    // rotates and stores in one pass.
    virtual void attention(Tensor out, Tensor qkv, int layer, int heads, int kvHeads, int headDim) = 0;
    virtual void siluMul(Tensor out, Tensor gateUp) = 0;  // out[T, F] = silu(gateUp[:, :F]) * gateUp[:, F:]
    // out = siluMul(gateUp) * W^T (+ b): the MLP's down projection on its activation, which a backend
    // may compute inside the GEMM instead of through memory. Bit-equal to siluMul then linear (the
    // default does exactly that); dense tensors, gateUp [T, 2 K] for W [N, K].
    virtual void siluMulLinear(Tensor out, Tensor gateUp, const Weight& w);
    virtual void add(Tensor x, Tensor y) = 0;             // x += y
    // x += y, then h = rmsNorm(x) over whole rows (w's length == cols): the residual add and the norm
    // the next block reads, in one pass; bit-equal to add(x, y) followed by rmsNorm(h, x, w, eps).
    // Dense tensors of one shape; h is neither x nor y.
    virtual void addRmsNorm(Tensor x, Tensor y, Tensor h, const Weight& w, float eps) = 0;
    virtual void gatherRows(Tensor out, Tensor in) = 0;   // out[i] = in[batch.logitRows[i]]
    // dst[c] += sum over rows of |t[r, c]| (waits for the device): AWQ's activation statistics.
    virtual void addColumnAbsSums(Tensor t, double* dst) = 0;
    // dst[c] += sum over rows of t[r, c], summed in f32 or wider (waits for the device): embedding
    // requests' pooling of final hidden states. t dense (a rowRange of a dense tensor is).
    virtual void addColumnSums(Tensor t, double* dst) = 0;
    // Copies a [rows, cols] tensor or view to dense host f32 (waits for the device).
    virtual void readF32(Tensor t, float* dst) = 0;

    // Samples rows of a logits tensor [R, vocab] (this step's) where it lies, so that only token ids
    // and logprobs come back (waits for the device). The host Sampler is the reference: the same
    // logits (as f32) and uniform give the same token. Returns false, doing nothing, when the backend
    // cannot (the CPU: its logits are host memory already), the caller then reads the rows back and
    // samples them on the host with the same uniforms.
    virtual bool sampleOnDevice(Tensor logits, const std::vector<DeviceSampleRow>& rows,
                                std::vector<DeviceSampleResult>& out) {
        (void)logits, (void)rows, (void)out;
        return false;
    }
};

// Throws InvalidArgument unless `count` key offsets fit `shape` (layers * kvHeads * headDim, or 0).
void checkKvKeyOffsets(const KvCacheShape& shape, size_t count);

// "cpu", "cuda" or "auto". Throws lmw::Error when "cuda" is asked and no device is usable.
std::unique_ptr<Backend> createBackend(const std::string& name, int threads);
bool cudaAvailable();  // false when built without CUDA or no device answers

}  // namespace lmw::engine
