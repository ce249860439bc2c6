#pragma once
// The one forward pass, written against the Backend op interface, for every family.
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "lmw/engine.h"
#include "lmw/tokenizer.h"
#include "model/weights.h"

namespace lmw::engine {

enum class LinearKind { Qkv, O, GateUp, Down };

// Sees activations inside the forward pass (AWQ and KV-cache calibration), on the engine thread.
class LinearTap {
public:
    virtual ~LinearTap() = default;
    virtual void onLinearInput(int layer, LinearKind kind, Tensor in, Backend& backend) = 0;
    // qkv [T, (H + 2 KVH) D] after the rotary embedding, before attention stores K and V.
    virtual void onRotatedQkv(int /*layer*/, Tensor /*qkv*/, Backend& /*backend*/) {}
};

// A decoder layer's weights, prepared by a backend.
struct LayerWeights {
    std::unique_ptr<Weight> attnNorm, qkv, o, ffnNorm, gateUp, down;
};
LayerWeights loadLayer(Backend& backend, const LayerSources& src);

// x[T, hidden] <- layer(x) for the backend's current step (beginStep done). `kvLayer` is the layer
// index inside the KV cache (the layer's own index in a full model).
void decoderLayer(Backend& backend, const ModelConfig& cfg, const LayerWeights& w, int layer, int kvLayer,
                  Tensor x, LinearTap* tap = nullptr);

// Rotary inverse frequencies [headDim/2] for a sequence whose KV length after this step is
// contextLen (dynamic NTK depends on it; linear and llama3 scaling do not).
void ropeInvFreq(const ModelConfig& cfg, int contextLen, float* out);

// A one-sequence step of `len` tokens at positions 0..len-1 in blocks 0..ceil(len/64)-1, no logit
// rows; token ids from `tokens`, or 0..len-1 when null (uploadRows in quantization relies on that).
StepBatch sequenceBatch(const ModelConfig& cfg, int len, const int32_t* tokens = nullptr);

class Transformer {
public:
    // Uploads every weight to the backend (progress over layers; returns false -> Cancelled).
    Transformer(Backend& backend, const ModelSources& src, const ProgressFn& progress = {});
    const ModelConfig& config() const { return m_cfg; }
    uint64_t weightBytes() const { return m_weightBytes; }
    // Runs one step; writes logits [batch.logitRows.size(), vocab] to host memory `logits`.
    void forward(const StepBatch& batch, float* logits);
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
};

}  // namespace lmw::engine
