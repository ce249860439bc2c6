#pragma once
// The canonical view of a model's weights, independent of the checkpoint's naming. Each naming
// (llama.cpp for Llama, Mistral, Qwen2 and Qwen3; internlm2.cpp) maps its tensor names onto this;
// the forward pass and every backend only ever see these structs.
#include <memory>
#include <string>
#include <vector>

#include "lmw/model_info.h"
#include "model/safetensors.h"

namespace lmw::engine {

// A contiguous piece of a linear layer's output rows taken from one source tensor.
// Dense: src is [srcRows, in]; rows [srcStart, srcStart+count) go to output rows [dstStart, ...).
// AWQ: src is qweight [in, srcOut/8] (int32), with qzeros [in/g, srcOut/8] and scales [in/g, srcOut];
// output columns [srcStart, srcStart+count) of the source become output rows [dstStart, ...).
struct WeightSegment {
    const TensorRef* src = nullptr;
    const TensorRef* qzeros = nullptr;  // AWQ only
    const TensorRef* scales = nullptr;  // AWQ only
    int64_t srcStart = 0;
    int64_t count = 0;
    int64_t dstStart = 0;
};

// y[T, out] = x[T, in] * W^T (+ bias). W is assembled from segments so fused layouts (q|k|v,
// gate|up, InternLM2's grouped wqkv) need no copy on the CPU.
struct LinearSource {
    std::string name;  // e.g. "layers.3.qkv" (for messages and reports)
    int64_t in = 0;
    int64_t out = 0;
    bool awq = false;
    int groupSize = 128;      // AWQ only
    DType dtype = DType::F32; // dense storage dtype (all segments share it); F16 scales for AWQ
    std::vector<WeightSegment> segments;      // covering [0, out) exactly
    std::vector<WeightSegment> biasSegments;  // empty = no bias; src is a 1-D tensor
};

// The four linears of a decoder layer, in forward order; also the index of per-linear arrays.
enum LinearKind : int { kQkv = 0, kO, kGateUp, kDown };
constexpr int kLinearKinds = 4;
const char* linearKindName(int kind);  // "qkv", "o", "gate_up", "down"

struct LayerSources {
    const LinearSource& linear(int kind) const { return kind == kQkv ? qkv : kind == kO ? o : kind == kGateUp ? gateUp : down; }

    const TensorRef* attnNorm = nullptr;  // [hidden]
    LinearSource qkv;                     // out = (heads + 2*kvHeads) * headDim, order q|k|v, heads in order
    const TensorRef* qNorm = nullptr;     // [headDim], every q head (config.qkNorm only)
    const TensorRef* kNorm = nullptr;     // [headDim], every k head (config.qkNorm only)
    LinearSource o;                       // [hidden, heads*headDim]
    const TensorRef* ffnNorm = nullptr;   // [hidden]
    LinearSource gateUp;                  // out = 2*intermediate, order gate|up
    LinearSource down;                    // [hidden, intermediate]
};

struct ModelSources {
    ModelConfig config;
    std::unique_ptr<TensorStore> store;
    const TensorRef* embed = nullptr;      // [vocab, hidden]
    std::vector<LayerSources> layers;
    const TensorRef* finalNorm = nullptr;  // [hidden]
    LinearSource lmHead;                   // [vocab, hidden] (the embedding when tied)
};

// Opens the folder's safetensors and maps tensors by family. Throws lmw::Error naming the
// missing tensor or the wrong shape.
ModelSources loadModelSources(const std::string& dir, const ModelConfig& config);

// Family mappers (one file each).
void mapLlamaWeights(ModelSources& m);     // also Mistral, Qwen2 (biases) and Qwen3 (q/k norms)
void mapInternLM2Weights(ModelSources& m);

// Helpers for the mappers: a dense or AWQ linear from one checkpoint tensor name prefix
// ("model.layers.0.self_attn.q_proj"), placed at output rows [dstStart, dstStart+rows).
void appendLinear(const ModelSources& m, LinearSource& dst, const std::string& prefix, int64_t rows,
                  int64_t dstStart, bool withBias = false);

}  // namespace lmw::engine
