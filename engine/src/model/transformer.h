#pragma once
// The one forward pass, written against the Backend op interface, for every family.
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "lmw/engine.h"
#include "lmw/tokenizer.h"
#include "model/weights.h"

namespace lmw::engine {

// Sees activations inside the forward pass (AWQ and KV-cache calibration), on the engine thread.
class LinearTap {
public:
    virtual ~LinearTap() = default;
    virtual void onLinearInput(int layer, LinearKind kind, Tensor in, Backend& backend) = 0;
    // qkv [T, (H + 2 KVH) D] after attention, which rotated its q and k in place (the keys as rotated,
    // before any cache key offset is taken off).
    virtual void onRotatedQkv(int /*layer*/, Tensor /*qkv*/, Backend& /*backend*/) {}
};

// The weights one block computes with (not owned: the quantizer swaps in candidates).
struct AttentionWeights {
    const Weight* qkv = nullptr;
    const Weight* o = nullptr;
    const Weight* qNorm = nullptr;  // both or neither (config.qkNorm)
    const Weight* kNorm = nullptr;
};
struct MlpWeights {
    const Weight* gateUp = nullptr;
    const Weight* down = nullptr;
};

// A decoder layer's weights, prepared by a backend.
struct LayerWeights {
    std::unique_ptr<Weight> attnNorm, qkv, qNorm, kNorm, o, ffnNorm, gateUp, down;
    AttentionWeights attention() const { return {qkv.get(), o.get(), qNorm.get(), kNorm.get()}; }
    MlpWeights mlp() const { return {gateUp.get(), down.get()}; }
    uint64_t bytes() const;
};
LayerWeights loadLayer(Backend& backend, const LayerSources& src);

// The two blocks of a decoder layer, from the output h[T, hidden] of the block's norm to what the
// block adds to the residual stream, [T, hidden]; for the backend's current step (beginStep done).
// Attention: o(attention(qkNorm(qkv(h)))), attention applying the rotary embedding first; stores this
// step's K and V into the cache's layer `kvLayer` (the layer's own index in a full model).
Tensor attentionBlock(Backend& backend, const ModelConfig& cfg, const AttentionWeights& w, int layer, int kvLayer,
                      Tensor h, LinearTap* tap = nullptr);
// MLP: down(silu(gate(h)) * up(h)).
Tensor mlpBlock(Backend& backend, const ModelConfig& cfg, const MlpWeights& w, int layer, Tensor h,
                LinearTap* tap = nullptr);

// x[T, hidden] <- layer(x): x += attentionBlock(norm(x)); x += mlpBlock(norm(x)).
void decoderLayer(Backend& backend, const ModelConfig& cfg, const LayerWeights& w, int layer, int kvLayer,
                  Tensor x, LinearTap* tap = nullptr);
// The same layer with the norms fused into the residual adds (Backend::addRmsNorm), as the forward pass
// chains layers: entered with h[T, hidden] = attnNorm(x); leaves x = layer(x) and, when nextNorm is
// given (the next layer's attnNorm, or the final norm), h = nextNorm(x) — else h is scratch.
void decoderLayerFused(Backend& backend, const ModelConfig& cfg, const LayerWeights& w, int layer, int kvLayer,
                       Tensor x, Tensor h, const Weight* nextNorm, LinearTap* tap = nullptr);

// Rotary inverse frequencies [headDim/2] for a sequence whose KV length after this step is
// contextLen (dynamic NTK depends on it; linear and llama3 scaling do not).
void ropeInvFreq(const ModelConfig& cfg, int contextLen, float* out);

// A one-sequence step of `len` tokens at positions 0..len-1 in blocks 0..ceil(len/64)-1, no logit
// rows; token ids from `tokens`, or all 0 when null (a step whose activations are uploaded, not embedded).
StepBatch sequenceBatch(const ModelConfig& cfg, int len, const int32_t* tokens = nullptr);

class Transformer {
public:
    // Uploads every weight to the backend (progress over layers; returns false -> Cancelled).
    Transformer(Backend& backend, const ModelSources& src, const ProgressFn& progress = {});
    const ModelConfig& config() const { return m_cfg; }
    uint64_t weightBytes() const { return m_weightBytes; }
    // Runs one step; writes logits [batch.logitRows.size(), vocab] to host memory `logits`.
    void forward(const StepBatch& batch, float* logits);
    // Runs one step and leaves the logits [batch.logitRows.size(), vocab] in backend memory (valid until
    // the next step begins; an empty tensor when no row is wanted): for sampling on the device.
    // hidden non-null: the final hidden states of every row, finalNorm(x) [T, hidden] (what the head
    // reads), are left there too, valid as long (embeddings); such a step is never replayed.
    Tensor forwardLogits(const StepBatch& batch, Tensor* hidden = nullptr);
    // Host seconds the last forward spent before it waited for the logits: enqueueing (or replaying)
    // the step's work. Far below the step's time when the host is not what limits decode.
    double lastEnqueueSeconds() const { return m_lastEnqueueSeconds; }
    void setTap(LinearTap* tap) { m_tap = tap; }
    // For quantized KV caches: runs a short built-in text (at most 128 tokens and cacheTokens, in
    // the cache's first blocks, which the caller does not use yet) and gives the backend the mean key
    // of every (layer, kv head) over it as the key offsets (Backend::setKvKeyOffsets).
    void calibrateKvKeyOffsets(const Tokenizer& tokenizer, int64_t cacheTokens);
    Backend& backend() { return m_backend; }

private:
    Backend& m_backend;
    ModelConfig m_cfg;
    std::unique_ptr<Weight> m_embed, m_finalNorm, m_lmHead;
    std::vector<LayerWeights> m_layers;
    uint64_t m_weightBytes = 0;
    LinearTap* m_tap = nullptr;
    double m_lastEnqueueSeconds = 0;
};

}  // namespace lmw::engine
