// ModelInfo: what the user sees before loading (size, parameters, memory at a context length),
// computed from config.json and the safetensors headers only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "lmw/chat_template.h"
#include "lmw/model_info.h"
#include "lmw/tokenizer.h"
#include "backend/cpu/cpu_kv_cache.h"
#include "lmw/kernels/kv_cache.h"
#include "model/safetensors.h"
#include "tokenizer/tokenizer_config.h"

namespace lmw::engine {

namespace fs = std::filesystem;

namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string stripSuffix(const std::string& s, const std::string& suffix) { return s.substr(0, s.size() - suffix.size()); }

}  // namespace

Result<ModelInfo> readModelInfo(const std::string& dir) {
    return catchErrors([&]() -> ModelInfo {
        ModelInfo info;
        info.dir = dir;
        std::string clean = dir;
        while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
        info.name = fs::path(clean).filename().string();
        info.config = parseModelConfig(dir);
        info.contextLength = info.config.maxPositionEmbeddings;
        info.tokenizerFile = Tokenizer::fileIn(dir);
        // The template the engine will use with no --chat-template: the model's own, else a built-in.
        const TokenizerConfig tc = readTokenizerConfig(dir);
        info.chatTemplate = !tc.chatTemplate.empty()
                                ? tc.chatTemplateFile + " (Jinja)"
                                : "built-in " + ChatTemplate::select("", "", info.config.family, info.config.vocabSize)->name();

        const auto tensors = readSafetensorsHeaders(dir);
        std::map<DType, uint64_t> floatBytes;
        bool anyInt4 = false;
        for (const auto& [name, t] : tensors) {
            info.weightBytes += t.bytes;
            if (name == "model.embed_tokens.weight" || name == "model.tok_embeddings.weight") info.embeddingBytes = t.bytes;
            if (endsWith(name, ".qweight")) {
                info.parameters += t.numel() * 8;  // eight int4 weights per int32
                anyInt4 = true;
                continue;
            }
            // AWQ bookkeeping is not parameters.
            if (endsWith(name, ".qzeros") && tensors.count(stripSuffix(name, ".qzeros") + ".qweight")) continue;
            if (endsWith(name, ".scales") && tensors.count(stripSuffix(name, ".scales") + ".qweight")) continue;
            // A tied head written out anyway is the same parameters as the embedding.
            if (name == "lm_head.weight" && info.config.tieWordEmbeddings && tensors.count("model.embed_tokens.weight"))
                continue;
            info.parameters += t.numel();
            if (isFloat(t.dtype)) floatBytes[t.dtype] += t.bytes;
        }
        if (anyInt4) {
            info.dtype = "AWQ-INT4";
        } else {
            DType best = DType::F32;
            uint64_t most = 0;
            for (const auto& [dt, b] : floatBytes)
                if (b > most) {
                    most = b;
                    best = dt;
                }
            info.dtype = most ? dtypeName(best) : "F32";
        }
        if (info.config.awq || anyInt4)
            info.quantization = "AWQ W" + std::to_string(info.config.awqBits) + "A16 g" +
                                std::to_string(info.config.awqGroupSize);
        else
            info.quantization = "none";

        // Folders from the Hugging Face cache hold symlinks to blobs: count what they point at.
        for (const auto& e : fs::directory_iterator(dir)) {
            std::error_code ec;
            if (e.is_regular_file(ec)) info.diskBytes += e.file_size(ec);
        }
        return info;
    });
}

uint64_t ModelInfo::kvBytesPerToken(int quantPolicy, const std::string& backend) const {
    if (backend == "cpu")  // one source: the CPU cache's own layout
        return CpuKvCache::blockBytes({config.numLayers, config.numKvHeads, config.headDim, kKvBlockSize, quantPolicy}) /
               kKvBlockSize;
    if (quantPolicy != 0 && quantPolicy != 8 && quantPolicy != 4)
        throw Error(ErrorCode::InvalidArgument, "quant_policy " + std::to_string(quantPolicy) + " is not one of 0, 8, 4");
    // One source: the CUDA cache's own layout (rows padded to whole vectors of 8).
    const kernels::KvLayout layout{config.numLayers, config.numKvHeads, config.headDim, kKvBlockSize, quantPolicy};
    return uint64_t(layout.blockBytes()) / uint64_t(kKvBlockSize);
}

uint64_t ModelInfo::kvCacheBytes(int sessionLen, int quantPolicy, int batch, const std::string& backend) const {
    return kvBytesPerToken(quantPolicy, backend) * uint64_t(kKvBlockSize) * uint64_t(kvBlocksFor(sessionLen, batch));
}

double ModelInfo::decodeBytesPerStep(int batch, double context, int quantPolicy, const std::string& backend) const {
    const double weights = double(weightBytes - (config.tieWordEmbeddings ? 0 : embeddingBytes));
    return weights + double(std::max(batch, 0)) * std::max(context, 0.0) * double(kvBytesPerToken(quantPolicy, backend));
}

uint64_t ModelInfo::memoryNeeded(int sessionLen, int quantPolicy, int batch) const {
    const ModelConfig& c = config;
    const uint64_t tokens = uint64_t(std::max(sessionLen, 0)) * uint64_t(std::max(batch, 1));
    const uint64_t kv = kvBytesPerToken(quantPolicy) * tokens;
    // Workspace: one prefill chunk's activations (up to 8192 tokens, 4-byte worst case) — the
    // residual, normed input, q|k|v, attention output and gate|up plus its product — and f32 logits
    // for every sequence in the batch.
    const uint64_t chunk = std::min<uint64_t>(tokens ? tokens : 1, 8192);
    const uint64_t qkv = uint64_t(c.numHeads + 2 * c.numKvHeads) * uint64_t(c.headDim);
    const uint64_t perToken =
        4 * (3 * uint64_t(c.hiddenSize) + qkv + uint64_t(c.numHeads) * uint64_t(c.headDim) + 3 * uint64_t(c.intermediateSize));
    const uint64_t logits = 4 * uint64_t(c.vocabSize) * uint64_t(std::max(batch, 1));
    return weightBytes + kv + chunk * perToken + logits;
}

namespace {

// Three significant digits at most, one decimal below 10: "260K", "6.7M", "1.2B", "13B".
std::string scaled(double v, const char* const* units, int nUnits, double step, const char* sep) {
    int u = 0;
    while (u + 1 < nUnits && v >= 999.5) {  // 999.5 would print as "1000"
        v /= step;
        ++u;
    }
    char buf[32];
    if (u == 0 || v >= 9.95)
        std::snprintf(buf, sizeof buf, "%.0f%s%s", v, sep, units[u]);
    else
        std::snprintf(buf, sizeof buf, "%.1f%s%s", v, sep, units[u]);
    return buf;
}

}  // namespace

std::string formatParameters(int64_t n) {
    static const char* const units[] = {"", "K", "M", "B", "T"};
    if (n < 0) {
        std::string s = formatParameters(-n);
        s.insert(s.begin(), '-');
        return s;
    }
    return scaled(double(n), units, 5, 1000.0, "");
}

std::string formatBytes(uint64_t n) {
    // Binary units with the familiar labels, as file managers show them.
    static const char* const units[] = {"B", "KB", "MB", "GB", "TB"};
    return scaled(double(n), units, 5, 1024.0, " ");
}

}  // namespace lmw::engine
