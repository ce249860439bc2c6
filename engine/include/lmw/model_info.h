#pragma once
// What a Hugging Face model folder is: parsed config.json plus facts computed from the
// safetensors headers (no weights are read to build it).
#include <cstdint>
#include <string>
#include <vector>

#include "lmw/error.h"

namespace lmw::engine {

// Picks the weight naming and the per-family details (biases, q/k norms, default chat template).
enum class ModelFamily { Llama, Mistral, InternLM2, Qwen2, Qwen3 };
// "llama", "mistral", "internlm2", "qwen2", "qwen3" (for display and JSON).
const char* familyName(ModelFamily f);

struct RopeScaling {
    std::string type;  // "" (none), "linear", "dynamic", "llama3"
    double factor = 1.0;
    // llama3 only
    double lowFreqFactor = 1.0;
    double highFreqFactor = 4.0;
    int originalMaxPositionEmbeddings = 8192;
};

struct ModelConfig {
    std::string architecture;  // as in config.json "architectures"[0], e.g. "LlamaForCausalLM"
    ModelFamily family = ModelFamily::Llama;
    int hiddenSize = 0;
    int intermediateSize = 0;
    int numLayers = 0;
    int numHeads = 0;
    int numKvHeads = 0;
    int headDim = 0;
    int vocabSize = 0;
    int maxPositionEmbeddings = 0;
    double rmsNormEps = 1e-6;
    double ropeTheta = 10000.0;
    RopeScaling ropeScaling;
    bool tieWordEmbeddings = false;
    bool qkvBias = false;
    bool qkNorm = false;  // per-head RMSNorm of q and k before the rotary embedding (Qwen3)
    std::string torchDtype;  // as written in config.json, may be empty
    int bosTokenId = -1;
    std::vector<int> eosTokenIds;  // from config.json, generation_config.json added by the loader
    // AWQ ("quantization_config": {"quant_method": "awq", ...})
    bool awq = false;
    int awqBits = 4;
    int awqGroupSize = 128;
    bool awqZeroPoint = true;
};

// Parses <dir>/config.json (+ generation_config.json for eos ids). Throws lmw::Error naming the
// file and field on a missing file, bad JSON, missing/invalid field, unknown architecture or
// unknown rope_scaling type.
ModelConfig parseModelConfig(const std::string& dir);

struct ModelInfo {
    std::string dir;
    std::string name;  // folder name
    ModelConfig config;
    std::string dtype;           // dominant storage dtype of the weights: "F32", "F16", "BF16", "AWQ-INT4"
    std::string quantization;    // "none" or e.g. "AWQ W4A16 g128"
    int64_t parameters = 0;      // logical parameter count (int4 weights count as their unpacked size)
    uint64_t weightBytes = 0;    // bytes of all tensors as stored
    uint64_t embeddingBytes = 0; // bytes of the token embedding table as stored
    uint64_t diskBytes = 0;      // bytes of all files in the folder
    int contextLength = 0;       // max_position_embeddings
    std::string tokenizerFile;   // what the engine reads: "tokenizer.json" (wins) or "tokenizer.model"; empty = none
    std::string chatTemplate;    // "tokenizer_config.json (Jinja)", "chat_template.jinja (Jinja)" or "built-in NAME"

    // Bytes of KV cache one token takes at this quant policy (0 = unquantized, 8 = int8, 4 = int4)
    // on `backend`, counting the per-head-per-token scale and zero of quantized policies: "cuda"
    // stores f16 values and f16 scale/zero, "cpu" f32 values and f32 scale/zero (its cache's own
    // block size, so this is what the engine allocates).
    uint64_t kvBytesPerToken(int quantPolicy, const std::string& backend = "cuda") const;
    // The KV cache for `batch` sequences of `sessionLen` tokens in whole blocks: what the engine
    // allocates on the CPU, and the least it needs on a GPU.
    uint64_t kvCacheBytes(int sessionLen, int quantPolicy, int batch, const std::string& backend) const;
    // The least one decode step of `batch` sequences, each attending to `context` tokens, reads:
    // every weight once (the embedding table only when the head is tied to it: otherwise just the
    // batch's rows are gathered) plus the KV cache of all `batch` sequences. The roofline of decode.
    double decodeBytesPerStep(int batch, double context, int quantPolicy, const std::string& backend = "cuda") const;
    // Weights + KV for `sessionLen` tokens x `batch` sequences + activations/workspace estimate.
    uint64_t memoryNeeded(int sessionLen, int quantPolicy, int batch = 1) const;
};

// Tokens per KV cache block, and the blocks `batch` sequences of `sessionLen` tokens use at most.
inline constexpr int kKvBlockSize = 64;
inline int64_t kvBlocksFor(int sessionLen, int batch) {
    return int64_t(batch < 1 ? 1 : batch) * ((int64_t(sessionLen) + kKvBlockSize - 1) / kKvBlockSize);
}

// Reads config and safetensors headers of a model folder.
Result<ModelInfo> readModelInfo(const std::string& dir);

// "1.2B", "260K", "6.7M"
std::string formatParameters(int64_t n);
// "3.9 GB", "512 KB"
std::string formatBytes(uint64_t n);

}  // namespace lmw::engine
