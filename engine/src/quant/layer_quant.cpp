#include "quant/layer_quant.h"

#include <algorithm>
#include <cmath>

#include "lmw/error.h"
#include "quant/awq_search.h"
#include "quant/block_error.h"
#include "quant/parallel.h"
#include "quant/tensor_io.h"

namespace lmw::engine::quant {

namespace {

std::string stripSuffix(const std::string& name, const std::string& suffix) {
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return name.substr(0, name.size() - suffix.size());
    return name;
}

}  // namespace

LinearPlan planLinear(const LinearSource& src, int requestedGroup) {
    LinearPlan p;
    p.name = src.name;
    p.in = src.in;
    p.out = src.out;
    for (const WeightSegment& seg : src.segments) {
        auto it = std::find_if(p.parts.begin(), p.parts.end(), [&](const SourcePart& sp) { return sp.weight == seg.src; });
        if (it == p.parts.end()) {
            SourcePart sp;
            sp.weight = seg.src;
            sp.prefix = stripSuffix(seg.src->name, ".weight");
            sp.rows.assign(size_t(seg.src->dim(0)), -1);
            p.parts.push_back(sp);
            it = p.parts.end() - 1;
        }
        for (int64_t j = 0; j < seg.count; ++j) it->rows[size_t(seg.srcStart + j)] = seg.dstStart + j;
    }
    for (const WeightSegment& seg : src.biasSegments)
        for (auto& sp : p.parts)
            if (seg.src->name == sp.prefix + ".bias") sp.bias = seg.src;
    for (const auto& sp : p.parts)
        for (int64_t r : sp.rows)
            if (r < 0)
                throw Error(ErrorCode::Unsupported, sp.weight->file + ": tensor '" + sp.weight->name +
                                                        "' is only partly used by " + src.name + "; cannot rewrite it");

    p.group = chooseGroupSize(src.in, requestedGroup);
    if (p.group == 0) {
        p.keptReason = "input size " + std::to_string(src.in) + " is not a multiple of 32";
        return p;
    }
    for (const auto& sp : p.parts)
        if (sp.rows.size() % 8 != 0) {
            p.keptReason = sp.prefix + " has " + std::to_string(sp.rows.size()) +
                           " outputs, not a multiple of 8 (int4 packing)";
            p.group = 0;
            return p;
        }
    p.quantize = true;
    return p;
}

HostLayer readHostLayer(const LayerSources& src) {
    HostLayer h;
    h.attnNorm = readF32(*src.attnNorm);
    h.ffnNorm = readF32(*src.ffnNorm);
    for (int k = 0; k < kLinearKinds; ++k) {
        const LinearSource& l = src.linear(k);
        if (l.awq) throw Error(ErrorCode::Unsupported, l.name + ": the model is already AWQ-quantized");
        h.w[k].resize(size_t(l.out * l.in));
        for (const WeightSegment& seg : l.segments)  // in pieces of 64 rows on all cores (f16/bf16 -> f32)
            parallelRanges(seg.count, 64, [&](int64_t r0, int64_t r1) {
                readRowsF32(*seg.src, seg.srcStart + r0, r1 - r0, h.w[k].data() + (seg.dstStart + r0) * l.in);
            });
        if (!l.biasSegments.empty()) {
            h.bias[k].assign(size_t(l.out), 0.0f);
            for (const WeightSegment& seg : l.biasSegments) {
                const std::vector<float> b = readF32(*seg.src);
                std::copy(b.begin() + seg.srcStart, b.begin() + seg.srcStart + seg.count, h.bias[k].begin() + seg.dstStart);
            }
        }
    }
    return h;
}

LayerQuantResult quantizeLayer(const ModelConfig& cfg, const LayerSources& src, const LinearPlan plans[4],
                               const LayerQuantSettings& settings, const LinearStats* stats, ErrorModel* errors) {
    LayerQuantResult res;
    HostLayer& L = res.layer;
    L = readHostLayer(src);
    const int64_t H = cfg.numHeads, KV = cfg.numKvHeads, D = cfg.headDim, F = cfg.intermediateSize;
    const int64_t qRows = H * D, kvRows = KV * D;
    const bool awq = settings.awq && stats && errors;

    for (int k = 0; k < 4; ++k) {
        LinearQuantReport& r = res.report[k];
        r.name = plans[k].name;
        for (const auto& sp : plans[k].parts) r.tensors.push_back(sp.prefix);
        r.quantized = plans[k].quantize;
        r.groupSize = plans[k].group;
        r.keptReason = plans[k].keptReason;
    }

    // Rows of each linear that get quantized (all or none: the rule works per fused linear).
    auto rowMask = [&](int k) { return std::vector<uint8_t>(size_t(plans[k].out), plans[k].quantize ? 1 : 0); };

    std::vector<float> orig[4];
    std::vector<float> inScale[4], rowScale[4];
    double refNorm[4] = {0, 0, 0, 0};
    if (awq) {
        std::vector<double> alphas;
        if (settings.searchScale)
            for (int i = 0; i < settings.grid; ++i) alphas.push_back(double(i) / settings.grid);
        else
            alphas = {0.5};
        for (int k = 0; k < 4; ++k) {
            if (!plans[k].quantize) continue;
            orig[k] = L.w[k];
            std::vector<double> meanAbs = stats[k].meanAbs();
            if (k == kO && H != KV) {
                // v -> o folding divides a v channel by one scale, and every query head of its group reads
                // that channel: tie o's input channels of a group (their mean statistic).
                const int64_t rep = H / KV;
                std::vector<double> tied(meanAbs.size());
                for (int64_t g = 0; g < KV; ++g)
                    for (int64_t d = 0; d < D; ++d) {
                        double m = 0;
                        for (int64_t h = g * rep; h < (g + 1) * rep; ++h) m += meanAbs[size_t(h * D + d)];
                        for (int64_t h = g * rep; h < (g + 1) * rep; ++h) tied[size_t(h * D + d)] = m / double(rep);
                    }
                meanAbs = std::move(tied);
            }
            errors->setOriginal(k, orig[k]);
            refNorm[k] = errors->norm(k);
            const ScaleSearch s = searchScale(orig[k].data(), plans[k].out, plans[k].in, plans[k].group, rowMask(k), meanAbs,
                                              alphas, [&](const std::vector<float>& diff) { return errors->error(k, diff); });
            inScale[k] = s.scales;
            res.report[k].alpha = s.alpha;
            res.report[k].errorRtn = refNorm[k] > 0 ? s.errorRtn / refNorm[k] : 0;
            res.report[k].scaleMin = *std::min_element(s.scales.begin(), s.scales.end());
            res.report[k].scaleMax = *std::max_element(s.scales.begin(), s.scales.end());
        }
        // Fold every scale into the op before (the searches above all saw the original weights, as AutoAWQ).
        auto scaleCols = [&](int k) {
            const int64_t in = plans[k].in;
            parallelFor(plans[k].out, [&](int64_t r) {
                for (int64_t c = 0; c < in; ++c) L.w[k][size_t(r * in + c)] *= inScale[k][size_t(c)];
            });
        };
        auto divideRows = [&](int k, int64_t firstRow, const std::vector<float>& s, const std::vector<int64_t>& map) {
            const int64_t in = plans[k].in;
            if (rowScale[k].empty()) rowScale[k].assign(size_t(plans[k].out), 1.0f);
            parallelFor(int64_t(map.size()), [&](int64_t j) {
                const float sj = s[size_t(map[size_t(j)])];
                const int64_t r = firstRow + j;
                for (int64_t c = 0; c < in; ++c) L.w[k][size_t(r * in + c)] /= sj;
                if (!L.bias[k].empty()) L.bias[k][size_t(r)] /= sj;
                rowScale[k][size_t(r)] = sj;
            });
        };
        if (!inScale[kQkv].empty()) {
            for (size_t c = 0; c < L.attnNorm.size(); ++c) L.attnNorm[c] /= inScale[kQkv][c];
            scaleCols(kQkv);
        }
        if (!inScale[kO].empty()) {
            // v channel (g, d) is read by o's input channels h*D + d for the heads h of group g.
            std::vector<int64_t> map(static_cast<size_t>(kvRows));
            for (int64_t j = 0; j < kvRows; ++j) map[size_t(j)] = (j / D) * (H / KV) * D + j % D;
            divideRows(kQkv, qRows + kvRows, inScale[kO], map);
            scaleCols(kO);
        }
        if (!inScale[kGateUp].empty()) {
            for (size_t c = 0; c < L.ffnNorm.size(); ++c) L.ffnNorm[c] /= inScale[kGateUp][c];
            scaleCols(kGateUp);
        }
        if (!inScale[kDown].empty()) {
            std::vector<int64_t> map(static_cast<size_t>(F));
            for (int64_t j = 0; j < F; ++j) map[size_t(j)] = j;
            divideRows(kGateUp, F, inScale[kDown], map);
            scaleCols(kDown);
        }
        if (settings.searchClip) {
            for (int k = 0; k < 4; ++k) {
                if (!plans[k].quantize || stats[k].nRows == 0) continue;
                std::vector<uint8_t> mask = rowMask(k);
                // AutoAWQ leaves q and k unclipped: attention logits are sensitive to their extremes.
                if (k == kQkv) std::fill(mask.begin(), mask.begin() + qRows + kvRows, 0);
                const int64_t in = plans[k].in;
                std::vector<float> xs(stats[k].rows);
                for (int64_t t = 0; t < stats[k].nRows; ++t)
                    for (int64_t c = 0; c < in; ++c) xs[size_t(t * in + c)] /= inScale[k][size_t(c)];
                searchClip(L.w[k].data(), plans[k].out, in, plans[k].group, mask, xs.data(), stats[k].nRows, settings.grid);
            }
        }
    }

    for (int k = 0; k < 4; ++k) {
        if (!plans[k].quantize) continue;
        res.q[k] = quantizeGroups(L.w[k].data(), plans[k].out, plans[k].in, plans[k].group);
        if (awq) {
            // Effective weight the model now computes with, back in the original basis.
            std::vector<float> diff = dequantize(res.q[k]);
            const int64_t in = plans[k].in;
            parallelFor(plans[k].out, [&](int64_t r) {
                for (int64_t c = 0; c < in; ++c) {
                    float v = diff[size_t(r * in + c)];
                    if (!rowScale[k].empty()) v *= rowScale[k][size_t(r)];
                    v /= inScale[k][size_t(c)];
                    diff[size_t(r * in + c)] = orig[k][size_t(r * in + c)] - v;
                }
            });
            res.report[k].errorFinal = refNorm[k] > 0 ? errors->error(k, diff) / refNorm[k] : 0;
            orig[k].clear();
            orig[k].shrink_to_fit();
        }
    }
    return res;
}

}  // namespace lmw::engine::quant
