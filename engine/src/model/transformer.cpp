#include "model/transformer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "lmw/error.h"

namespace lmw::engine {

LayerWeights loadLayer(Backend& b, const LayerSources& s) {
    LayerWeights w;
    w.attnNorm = b.loadNorm(*s.attnNorm);
    w.qkv = b.loadLinear(s.qkv);
    if (s.qNorm) w.qNorm = b.loadNorm(*s.qNorm);
    if (s.kNorm) w.kNorm = b.loadNorm(*s.kNorm);
    w.o = b.loadLinear(s.o);
    w.ffnNorm = b.loadNorm(*s.ffnNorm);
    w.gateUp = b.loadLinear(s.gateUp);
    w.down = b.loadLinear(s.down);
    return w;
}

uint64_t LayerWeights::bytes() const {
    uint64_t n = 0;
    for (const auto* w : {&attnNorm, &qkv, &qNorm, &kNorm, &o, &ffnNorm, &gateUp, &down})
        if (*w) n += (*w)->bytes();
    return n;
}

Tensor attentionBlock(Backend& b, const ModelConfig& cfg, const AttentionWeights& w, int layer, int kvLayer, Tensor h,
                      LinearTap* tap) {
    const int64_t T = h.rows;
    const int H = cfg.numHeads, KVH = cfg.numKvHeads, D = cfg.headDim;
    if (tap) tap->onLinearInput(layer, kQkv, h, b);
    Tensor qkv = b.alloc(T, int64_t(H + 2 * KVH) * D);  // [T, (H + 2 KVH) D]
    b.linear(qkv, h, *w.qkv);
    if (w.qNorm) {
        // Per-head RMSNorm of q and k (Qwen3): a norm of length D over the q (k) columns takes each head.
        Tensor q = colRange(qkv, 0, int64_t(H) * D), k = colRange(qkv, int64_t(H) * D, int64_t(H + KVH) * D);
        b.rmsNorm(q, q, *w.qNorm, float(cfg.rmsNormEps));
        b.rmsNorm(k, k, *w.kNorm, float(cfg.rmsNormEps));
    }
    Tensor att = b.alloc(T, int64_t(H) * D);  // [T, H D]
    b.attention(att, qkv, kvLayer, H, KVH, D);  // rotates q and k of qkv in place first
    if (tap) tap->onRotatedQkv(layer, qkv, b);
    if (tap) tap->onLinearInput(layer, kO, att, b);
    Tensor out = b.alloc(T, cfg.hiddenSize);  // [T, hidden]
    b.linear(out, att, *w.o);
    return out;
}

Tensor mlpBlock(Backend& b, const ModelConfig& cfg, const MlpWeights& w, int layer, Tensor h, LinearTap* tap) {
    const int64_t T = h.rows, F = cfg.intermediateSize;
    if (tap) tap->onLinearInput(layer, kGateUp, h, b);
    Tensor gu = b.alloc(T, 2 * F);  // [T, 2 F] gate | up
    b.linear(gu, h, *w.gateUp);
    Tensor out = b.alloc(T, cfg.hiddenSize);  // [T, hidden]
    if (!tap) {
        b.siluMulLinear(out, gu, *w.down);  // the backend may never write the activation out
        return out;
    }
    Tensor act = b.alloc(T, F);     // [T, F]
    b.siluMul(act, gu);
    tap->onLinearInput(layer, kDown, act, b);
    b.linear(out, act, *w.down);
    return out;
}

void decoderLayerFused(Backend& b, const ModelConfig& cfg, const LayerWeights& w, int layer, int kvLayer, Tensor x,
                       Tensor h, const Weight* nextNorm, LinearTap* tap) {
    const float eps = float(cfg.rmsNormEps);
    b.addRmsNorm(x, attentionBlock(b, cfg, w.attention(), layer, kvLayer, h, tap), h, *w.ffnNorm, eps);
    const Tensor mlp = mlpBlock(b, cfg, w.mlp(), layer, h, tap);  // [T, hidden]
    if (nextNorm) b.addRmsNorm(x, mlp, h, *nextNorm, eps);
    else b.add(x, mlp);
}

void decoderLayer(Backend& b, const ModelConfig& cfg, const LayerWeights& w, int layer, int kvLayer, Tensor x,
                  LinearTap* tap) {
    Tensor h = b.alloc(x.rows, cfg.hiddenSize);  // [T, hidden]
    b.rmsNorm(h, x, *w.attnNorm, float(cfg.rmsNormEps));
    decoderLayerFused(b, cfg, w, layer, kvLayer, x, h, nullptr, tap);
}

void ropeInvFreq(const ModelConfig& cfg, int contextLen, float* out) {
    const int half = cfg.headDim / 2;
    const RopeScaling& rs = cfg.ropeScaling;
    double base = cfg.ropeTheta;
    // Dynamic NTK (as Hugging Face): past the trained context the base grows with the length.
    if (rs.type == "dynamic" && contextLen > cfg.maxPositionEmbeddings) {
        const double d = cfg.headDim;
        base *= std::pow(rs.factor * contextLen / cfg.maxPositionEmbeddings - (rs.factor - 1), d / (d - 2));
    }
    for (int i = 0; i < half; ++i) {
        // Computed like PyTorch: base ** (arange(0, d, 2).float() / d), inverted in float32.
        float invf = 1.0f / powf(float(base), float(2 * i) / float(cfg.headDim));
        if (rs.type == "linear") {
            invf = float(invf / rs.factor);
        } else if (rs.type == "llama3") {
            const double lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
            const double highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
            const double wavelen = 2 * M_PI / invf;
            if (wavelen > lowWavelen) {
                invf = float(invf / rs.factor);
            } else if (wavelen >= highWavelen) {
                const double smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) /
                                      (rs.highFreqFactor - rs.lowFreqFactor);
                invf = float((1 - smooth) * invf / rs.factor + smooth * invf);
            }
        }
        out[i] = invf;
    }
}

Transformer::Transformer(Backend& backend, const ModelSources& src, const ProgressFn& progress)
    : m_backend(backend), m_cfg(src.config) {
    const int n = int(src.layers.size());
    auto report = [&](int done, const std::string& what) {
        if (progress && !progress(LoadStage::Weights, double(done) / (n + 2), what))
            throw Error(ErrorCode::Cancelled, "loading cancelled");
    };
    report(0, "embeddings");
    m_embed = backend.loadEmbedding(*src.embed);
    m_weightBytes += m_embed->bytes();
    for (int i = 0; i < n; ++i) {
        report(i + 1, "layer " + std::to_string(i + 1) + " of " + std::to_string(n));
        m_layers.push_back(loadLayer(backend, src.layers[size_t(i)]));
        m_weightBytes += m_layers.back().bytes();
    }
    report(n + 1, "output head");
    m_finalNorm = backend.loadNorm(*src.finalNorm);
    m_lmHead = backend.loadLinear(src.lmHead);
    m_weightBytes += m_finalNorm->bytes() + m_lmHead->bytes();
}

StepBatch sequenceBatch(const ModelConfig& cfg, int len, const int32_t* tokens) {
    StepBatch b;
    b.tokens.resize(size_t(len));
    b.positions.resize(size_t(len));
    for (int i = 0; i < len; ++i) {
        b.tokens[size_t(i)] = tokens ? tokens[i] : 0;
        b.positions[size_t(i)] = i;
    }
    b.seqStart = {0, len};
    b.contextLen = {len};
    b.maxBlocks = (len + 63) / 64;
    for (int i = 0; i < b.maxBlocks; ++i) b.blockTable.push_back(i);
    b.invFreq.resize(size_t(cfg.headDim / 2));
    ropeInvFreq(cfg, len, b.invFreq.data());
    return b;
}

Tensor Transformer::forwardLogits(const StepBatch& batch, Tensor* hidden) {
    Backend& b = m_backend;
    const auto start = std::chrono::steady_clock::now();
    b.beginStep(batch);
    const int64_t T = batch.numTokens(), R = int64_t(batch.logitRows.size());
    const bool normed = R > 0 || hidden;  // the last layer leaves finalNorm(x) in h
    // A tap reads activations back in the middle of the pass: such a step cannot be replayed. Nor can
    // one that hands out h (a replay would not say where it is).
    const Tensor out = b.runStep(
        [&] {
            Tensor x = b.alloc(T, m_cfg.hiddenSize);  // [T, hidden] residual stream
            b.embed(x, *m_embed);
            // [T, hidden] the normalized input of the next block: each residual add leaves it (addRmsNorm).
            Tensor h = b.alloc(T, m_cfg.hiddenSize);
            const size_t n = m_layers.size();
            b.rmsNorm(h, x, n ? *m_layers[0].attnNorm : *m_finalNorm, float(m_cfg.rmsNormEps));
            for (size_t i = 0; i < n; ++i) {
                // The last layer's add leaves finalNorm(x) in h when logits or hidden states are wanted.
                const Weight* next = i + 1 < n ? m_layers[i + 1].attnNorm.get() : normed ? m_finalNorm.get() : nullptr;
                const Backend::AllocMark layerScratch = b.allocMark();
                decoderLayerFused(b, m_cfg, m_layers[i], int(i), int(i), x, h, next, m_tap);
                b.allocRelease(layerScratch);
            }
            if (hidden) *hidden = h;
            // Only the rows whose logits are wanted go through the (large) head.
            if (R == 0) return Tensor{};
            Tensor last = b.alloc(R, m_cfg.hiddenSize);  // [R, hidden] finalNorm(x) of the logit rows
            b.gatherRows(last, h);
            Tensor head = b.alloc(R, m_cfg.vocabSize);  // [R, vocab]
            b.linear(head, last, *m_lmHead);
            return head;
        },
        m_tap == nullptr && !hidden);
    m_lastEnqueueSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

void Transformer::forward(const StepBatch& batch, float* logits) {
    const Tensor out = forwardLogits(batch);
    if (!batch.logitRows.empty()) m_backend.readF32(out, logits);
}

namespace {
// Plain prose for the key offsets: what matters is the model's typical key, not the content.
constexpr const char* kKvCalibrationText =
    "Once upon a time, a little girl named Lily lived in a small house near the woods. Every morning "
    "she walked to school with her dog and her best friend Tom. The weather today is sunny and warm, "
    "and the city park is full of people. Please explain in a few sentences how a computer stores "
    "numbers, why the sky looks blue, and what you would cook for dinner with rice, beans and tomatoes.";

// Sums the keys (after rotary) of every (layer, kv head) over the rows of the step.
struct KeySumTap final : LinearTap {
    explicit KeySumTap(const ModelConfig& c) : cfg(c), sums(size_t(c.numLayers * c.numKvHeads * c.headDim), 0.0) {}
    void onLinearInput(int, LinearKind, Tensor, Backend&) override {}
    void onRotatedQkv(int layer, Tensor qkv, Backend& b) override {
        const int64_t H = cfg.numHeads, KVD = int64_t(cfg.numKvHeads) * cfg.headDim;
        buf.resize(size_t(qkv.rows * qkv.cols));
        b.readF32(qkv, buf.data());
        // Row 0 (the first token, often BOS) is an outlier key many models attend to as a sink: skip it.
        for (int64_t t = qkv.rows > 1 ? 1 : 0; t < qkv.rows; ++t)
            for (int64_t j = 0; j < KVD; ++j)
                sums[size_t(layer * KVD + j)] += double(buf[size_t(t * qkv.cols + H * cfg.headDim + j)]);
        rows = std::max<int64_t>(1, qkv.rows - 1);
    }
    const ModelConfig& cfg;
    std::vector<double> sums;
    int64_t rows = 0;
    std::vector<float> buf;
};
}  // namespace

void Transformer::calibrateKvKeyOffsets(const Tokenizer& tokenizer, int64_t cacheTokens) {
    std::vector<int32_t> tokens = tokenizer.encode(kKvCalibrationText);
    tokens.resize(size_t(std::clamp<int64_t>(int64_t(tokens.size()), 0, std::min<int64_t>(128, cacheTokens))));
    if (tokens.empty()) return;
    const StepBatch b = sequenceBatch(m_cfg, int(tokens.size()), tokens.data());
    KeySumTap tap(m_cfg);
    LinearTap* const saved = m_tap;
    m_tap = &tap;
    try {
        forward(b, nullptr);  // no logit rows: the pass ends after the last layer
    } catch (...) {
        m_tap = saved;
        throw;
    }
    m_tap = saved;
    std::vector<float> offsets(tap.sums.size());
    for (size_t i = 0; i < offsets.size(); ++i) offsets[i] = float(tap.sums[i] / double(tap.rows));
    m_backend.setKvKeyOffsets(offsets);
}

}  // namespace lmw::engine
