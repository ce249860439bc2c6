// `lmw info <model_dir> [--json]`: what a model folder is and what it needs, from config.json and
// the safetensors headers only (nothing is loaded).
#include <cstdio>

#include "backend/cpu/cpu_kernels.h"
#include "commands.h"
#include "lmw/model_info.h"
#include "nlohmann/json.hpp"

namespace lmw::cli {
namespace {

struct KvRow {
    const char* label;
    int policy;
};
constexpr KvRow kKvRows[] = {{"16-bit", 0}, {"int8", 8}, {"int4", 4}};

void printText(const engine::ModelInfo& m) {
    const auto& c = m.config;
    std::printf("model           %s\n", m.dir.c_str());
    std::printf("architecture    %s\n", c.architecture.c_str());
    std::printf("family          %s\n", engine::familyName(c.family));
    std::printf("parameters      %s (%lld)\n", engine::formatParameters(m.parameters).c_str(),
                static_cast<long long>(m.parameters));
    std::printf("dtype           %s\n", m.dtype.c_str());
    std::printf("quantization    %s\n", m.quantization.c_str());
    std::printf("size on disk    %s (weights %s)\n", engine::formatBytes(m.diskBytes).c_str(),
                engine::formatBytes(m.weightBytes).c_str());
    std::printf("context length  %d\n", m.contextLength);
    std::printf("tokenizer       %s\n", m.tokenizerFile.empty() ? "none found" : m.tokenizerFile.c_str());
    std::printf("chat template   %s\n", m.chatTemplate.c_str());
    std::printf("cpu kernels     %s\n", engine::cpuKernelSummary().c_str());  // this machine's CPU backend
    std::printf("layers          %d\n", c.numLayers);
    std::printf("heads           %d\n", c.numHeads);
    std::printf("kv heads        %d\n", c.numKvHeads);
    std::printf("head dim        %d\n", c.headDim);
    std::printf("hidden size     %d\n", c.hiddenSize);
    std::printf("ffn size        %d\n", c.intermediateSize);
    std::printf("vocab size      %d\n", c.vocabSize);
    if (!c.ropeScaling.type.empty())
        std::printf("rope scaling    %s x%g\n", c.ropeScaling.type.c_str(), c.ropeScaling.factor);
    std::printf("memory for the full context (%d tokens, 1 sequence):\n", m.contextLength);
    for (const auto& r : kKvRows)
        std::printf("  KV %-7s     %s (KV cache %s)\n", r.label,
                    engine::formatBytes(m.memoryNeeded(m.contextLength, r.policy)).c_str(),
                    engine::formatBytes(m.kvBytesPerToken(r.policy) * uint64_t(m.contextLength)).c_str());
}

void printJson(const engine::ModelInfo& m) {
    const auto& c = m.config;
    nlohmann::ordered_json j;
    j["model"] = m.dir;
    j["name"] = m.name;
    j["architecture"] = c.architecture;
    j["family"] = engine::familyName(c.family);
    j["parameters"] = m.parameters;
    j["parameters_text"] = engine::formatParameters(m.parameters);
    j["dtype"] = m.dtype;
    j["quantization"] = m.quantization;
    j["disk_bytes"] = m.diskBytes;
    j["weight_bytes"] = m.weightBytes;
    j["context_length"] = m.contextLength;
    j["tokenizer"] = m.tokenizerFile;
    j["chat_template"] = m.chatTemplate;
    j["cpu_kernels"] = engine::cpuKernelSummary();
    j["layers"] = c.numLayers;
    j["heads"] = c.numHeads;
    j["kv_heads"] = c.numKvHeads;
    j["head_dim"] = c.headDim;
    j["hidden_size"] = c.hiddenSize;
    j["intermediate_size"] = c.intermediateSize;
    j["vocab_size"] = c.vocabSize;
    j["rope_scaling"] = c.ropeScaling.type.empty() ? nlohmann::ordered_json(nullptr)
                                                    : nlohmann::ordered_json{{"type", c.ropeScaling.type},
                                                                             {"factor", c.ropeScaling.factor}};
    nlohmann::ordered_json mem;
    for (const auto& r : kKvRows)
        mem[std::to_string(r.policy)] = {{"kv", r.label},
                                         {"kv_bytes_per_token", m.kvBytesPerToken(r.policy)},
                                         {"memory_bytes", m.memoryNeeded(m.contextLength, r.policy)}};
    j["memory_full_context"] = mem;
    std::printf("%s\n", j.dump(2).c_str());
}

void setupInfo(CLI::App& app) {
    auto* cmd = app.add_subcommand("info", "Show what a model folder holds and the memory it needs");
    static std::string dir;
    static bool json = false;
    cmd->add_option("model", dir, "Hugging Face model folder")->required();
    cmd->add_flag("--json", json, "print JSON instead of text");
    cmd->callback([] {
        auto r = engine::readModelInfo(dir);
        if (!r.ok()) {
            std::fprintf(stderr, "error: %s\n", r.error().what());
            exitCode() = 1;
            return;
        }
        if (json) printJson(*r);
        else printText(*r);
    });
}

const bool registered = registerCommand("info", 10, setupInfo);

}  // namespace
}  // namespace lmw::cli
