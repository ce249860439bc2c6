// Llama naming (also Mistral, TinyLlama, Qwen2, which adds q/k/v biases, and Qwen3, which adds
// self_attn.{q,k}_norm): model.embed_tokens, model.layers.N.{input_layernorm,
// self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head.
#include "model/weights.h"

namespace lmw::engine {

void mapLlamaWeights(ModelSources& m) {
    const ModelConfig& c = m.config;
    const TensorStore& s = *m.store;
    const int64_t hidden = c.hiddenSize, ffn = c.intermediateSize, d = c.headDim;
    const int64_t qRows = int64_t(c.numHeads) * d, kvRows = int64_t(c.numKvHeads) * d;

    m.embed = &s.get("model.embed_tokens.weight", {c.vocabSize, hidden});
    m.layers.assign(size_t(c.numLayers), {});
    for (int i = 0; i < c.numLayers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        const std::string n = "layers." + std::to_string(i) + ".";
        LayerSources& L = m.layers[size_t(i)];
        L.attnNorm = &s.get(p + "input_layernorm.weight", {hidden});
        L.ffnNorm = &s.get(p + "post_attention_layernorm.weight", {hidden});

        L.qkv.name = n + "qkv";
        L.qkv.in = hidden;
        L.qkv.out = qRows + 2 * kvRows;
        appendLinear(m, L.qkv, p + "self_attn.q_proj", qRows, 0, c.qkvBias);
        appendLinear(m, L.qkv, p + "self_attn.k_proj", kvRows, qRows, c.qkvBias);
        appendLinear(m, L.qkv, p + "self_attn.v_proj", kvRows, qRows + kvRows, c.qkvBias);
        if (c.qkNorm) {
            L.qNorm = &s.get(p + "self_attn.q_norm.weight", {d});
            L.kNorm = &s.get(p + "self_attn.k_norm.weight", {d});
        }

        // attention_bias also covers o_proj (Llama, Qwen3); Qwen2 has biases on q/k/v only.
        L.o.name = n + "o";
        L.o.in = qRows;
        L.o.out = hidden;
        appendLinear(m, L.o, p + "self_attn.o_proj", hidden, 0, c.qkvBias && c.family != ModelFamily::Qwen2);

        L.gateUp.name = n + "gate_up";
        L.gateUp.in = hidden;
        L.gateUp.out = 2 * ffn;
        appendLinear(m, L.gateUp, p + "mlp.gate_proj", ffn, 0);
        appendLinear(m, L.gateUp, p + "mlp.up_proj", ffn, ffn);

        L.down.name = n + "down";
        L.down.in = ffn;
        L.down.out = hidden;
        appendLinear(m, L.down, p + "mlp.down_proj", hidden, 0);
    }
    m.finalNorm = &s.get("model.norm.weight", {hidden});

    m.lmHead = {};
    m.lmHead.name = "lm_head";
    m.lmHead.in = hidden;
    m.lmHead.out = c.vocabSize;
    const bool haveHead = s.find("lm_head.weight") || s.find("lm_head.qweight");
    if (c.tieWordEmbeddings || !haveHead) {
        if (!c.tieWordEmbeddings) s.get("lm_head.weight");  // throws NotFound naming it
        m.lmHead.dtype = m.embed->dtype;
        WeightSegment seg;
        seg.src = m.embed;
        seg.count = c.vocabSize;
        m.lmHead.segments.push_back(seg);
    } else {
        appendLinear(m, m.lmHead, "lm_head", c.vocabSize, 0);
    }
}

}  // namespace lmw::engine
