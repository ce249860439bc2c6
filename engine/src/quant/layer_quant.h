#pragma once
// One decoder layer: which linears can be quantized (the shape rule), their f32 copies, the AWQ
// scale search / folding / clipping, and the int4 result.
#include <functional>
#include <string>
#include <vector>

#include "lmw/quantize.h"
#include "model/weights.h"
#include "quant/calibration.h"
#include "quant/int4.h"

namespace lmw::engine::quant {

// One checkpoint tensor of a (possibly fused) linear, e.g. q_proj inside qkv.
struct SourcePart {
    std::string prefix;               // "model.layers.0.self_attn.q_proj"
    const TensorRef* weight = nullptr;
    const TensorRef* bias = nullptr;
    std::vector<int64_t> rows;        // canonical row of each of the tensor's rows
};

struct LinearPlan {
    std::string name;  // "layers.0.qkv"
    int64_t in = 0, out = 0;
    bool quantize = false;
    int group = 0;
    std::string keptReason;
    std::vector<SourcePart> parts;
};

// The documented rule (see lmw/quantize.h).
LinearPlan planLinear(const LinearSource& src, int requestedGroup);

// f32 copies of one layer in canonical layout (q|k|v, gate|up).
struct HostLayer {
    std::vector<float> attnNorm, ffnNorm;
    std::vector<float> w[4];
    std::vector<float> bias[4];  // empty = none
};
HostLayer readHostLayer(const LayerSources& src);

struct LayerQuantSettings {
    bool awq = true;
    bool searchScale = true;
    int grid = 20;
    bool searchClip = false;
};

class ErrorModel;

struct LayerQuantResult {
    HostLayer layer;            // final (scaled, clipped) weights and norms, canonical
    GroupQuantized q[4];        // for the quantized linears
    LinearQuantReport report[4];
};

// stats/errors are used only when settings.awq.
LayerQuantResult quantizeLayer(const ModelConfig& cfg, const LayerSources& src, const LinearPlan plans[4],
                               const LayerQuantSettings& settings, const LinearStats* stats, ErrorModel* errors);

}  // namespace lmw::engine::quant
