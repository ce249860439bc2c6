// InternLM2 naming: model.tok_embeddings, model.layers.N.{attention_norm, attention.wqkv, attention.wo,
// ffn_norm, feed_forward.{w1 (gate), w3 (up), w2 (down)}}, model.norm, output.
// wqkv is fused and grouped by KV head: for KV head g, its H/KVH query heads, then its key head,
// then its value head (headDim rows each). We describe it as segments into our q|k|v order, so
// nothing is copied.
#include <algorithm>

#include "model/weights.h"

namespace lmw::engine {

namespace {

// Splits a grouped wqkv (dense rows or AWQ output columns, the same arithmetic) into 3*KVH segments.
std::vector<WeightSegment> groupedSegments(const ModelConfig& c, const WeightSegment& proto) {
    const int64_t d = c.headDim, perGroup = c.numHeads / c.numKvHeads;
    const int64_t qRows = int64_t(c.numHeads) * d, kvRows = int64_t(c.numKvHeads) * d;
    std::vector<WeightSegment> out;
    for (int64_t g = 0; g < c.numKvHeads; ++g) {
        const int64_t base = g * (perGroup + 2) * d;
        WeightSegment q = proto, k = proto, v = proto;
        q.srcStart = base;
        q.count = perGroup * d;
        q.dstStart = g * perGroup * d;
        k.srcStart = base + perGroup * d;
        k.count = d;
        k.dstStart = qRows + g * d;
        v.srcStart = base + (perGroup + 1) * d;
        v.count = d;
        v.dstStart = qRows + kvRows + g * d;
        out.push_back(q);
        out.push_back(k);
        out.push_back(v);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.dstStart < b.dstStart; });
    return out;
}

}  // namespace

void mapInternLM2Weights(ModelSources& m) {
    const ModelConfig& c = m.config;
    const TensorStore& s = *m.store;
    const int64_t hidden = c.hiddenSize, ffn = c.intermediateSize, d = c.headDim;
    const int64_t qRows = int64_t(c.numHeads) * d, kvRows = int64_t(c.numKvHeads) * d;

    m.embed = &s.get("model.tok_embeddings.weight", {c.vocabSize, hidden});
    m.layers.assign(size_t(c.numLayers), {});
    for (int i = 0; i < c.numLayers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        const std::string n = "layers." + std::to_string(i) + ".";
        LayerSources& L = m.layers[size_t(i)];
        L.attnNorm = &s.get(p + "attention_norm.weight", {hidden});
        L.ffnNorm = &s.get(p + "ffn_norm.weight", {hidden});

        // Load wqkv as one linear (this checks shapes/dtypes), then re-cut its single segment.
        L.qkv.name = n + "qkv";
        L.qkv.in = hidden;
        L.qkv.out = qRows + 2 * kvRows;
        appendLinear(m, L.qkv, p + "attention.wqkv", L.qkv.out, 0, c.qkvBias);
        if (L.qkv.awq && d % 8 != 0)
            throw Error(ErrorCode::Unsupported, p + "attention.wqkv.qweight: head_dim " + std::to_string(d) +
                                                    " is not a multiple of 8, so AWQ-packed heads cannot be split");
        L.qkv.segments = groupedSegments(c, L.qkv.segments.front());
        if (!L.qkv.biasSegments.empty()) L.qkv.biasSegments = groupedSegments(c, L.qkv.biasSegments.front());

        L.o.name = n + "o";
        L.o.in = qRows;
        L.o.out = hidden;
        appendLinear(m, L.o, p + "attention.wo", hidden, 0, c.qkvBias);

        L.gateUp.name = n + "gate_up";
        L.gateUp.in = hidden;
        L.gateUp.out = 2 * ffn;
        appendLinear(m, L.gateUp, p + "feed_forward.w1", ffn, 0);
        appendLinear(m, L.gateUp, p + "feed_forward.w3", ffn, ffn);

        L.down.name = n + "down";
        L.down.in = ffn;
        L.down.out = hidden;
        appendLinear(m, L.down, p + "feed_forward.w2", hidden, 0);
    }
    m.finalNorm = &s.get("model.norm.weight", {hidden});

    m.lmHead = {};
    m.lmHead.name = "output";
    m.lmHead.in = hidden;
    m.lmHead.out = c.vocabSize;
    if (c.tieWordEmbeddings && !s.find("output.weight") && !s.find("output.qweight")) {
        m.lmHead.dtype = m.embed->dtype;
        WeightSegment seg;
        seg.src = m.embed;
        seg.count = c.vocabSize;
        m.lmHead.segments.push_back(seg);
    } else {
        appendLinear(m, m.lmHead, "output", c.vocabSize, 0);
    }
}

}  // namespace lmw::engine
