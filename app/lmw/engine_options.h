#pragma once
// Flags shared by the subcommands that load an engine (generate, chat, bench, serve, ppl).
#include <string>

#include "CLI/CLI.hpp"
#include "lmw/engine.h"

namespace lmw::cli {

inline void addEngineOptions(CLI::App* cmd, engine::EngineConfig& c) {
    cmd->add_option("model", c.modelDir, "Hugging Face model folder")->required();
    cmd->add_option("--backend", c.backend, "auto, cuda or cpu")->check(CLI::IsMember({"auto", "cuda", "cpu"}));
    cmd->add_option("--quant-policy", c.quantPolicy, "KV cache: 0 = 16-bit, 8 = int8, 4 = int4")
        ->check(CLI::IsMember({0, 4, 8}));
    cmd->add_option("--cache-max-entry-count", c.cacheMaxEntryCount, "fraction of free memory for the KV cache")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--cache-blocks", c.cacheBlocks, "exact number of 64-token KV blocks (overrides the fraction)");
    cmd->add_option("--session-len", c.sessionLen, "max tokens of one sequence (default: model context)");
    cmd->add_option("--max-batch-size", c.maxBatchSize, "max running sequences")->check(CLI::PositiveNumber);
    cmd->add_option("--max-prefill-token-num", c.maxPrefillTokenNum, "token budget of one step")->check(CLI::PositiveNumber);
    cmd->add_flag("--enable-prefix-caching", c.enablePrefixCaching, "share KV blocks of common prefixes");
    cmd->add_option("--chat-template", c.chatTemplate, "built-in template name or Jinja file");
    cmd->add_option("--threads", c.threads, "CPU threads (0 = all cores)");
}

inline void addSamplingOptions(CLI::App* cmd, engine::SamplingParams& p) {
    cmd->add_option("--max-new-tokens", p.maxNewTokens, "tokens to generate at most")->check(CLI::PositiveNumber);
    cmd->add_option("--temperature", p.temperature, "0 = greedy");
    cmd->add_option("--top-p", p.topP);
    cmd->add_option("--top-k", p.topK);
    cmd->add_option("--min-p", p.minP);
    cmd->add_option("--repetition-penalty", p.repetitionPenalty);
    cmd->add_option("--presence-penalty", p.presencePenalty);
    cmd->add_option("--frequency-penalty", p.frequencyPenalty);
    cmd->add_option("--seed", p.seed, "same seed, same text");
    cmd->add_option("--stop", p.stop, "stop string (repeatable)");
    cmd->add_option("--stop-id", p.stopIds, "stop token id (repeatable)");
    cmd->add_flag("--ignore-eos", p.ignoreEos, "do not stop at the end-of-sequence token");
}

// --chat-template-kwargs: Hugging Face's chat_template_kwargs, kept as the text given; parse it
// with parseTemplateKwargs.
inline void addTemplateKwargsOption(CLI::App* cmd, std::string& text) {
    cmd->add_option("--chat-template-kwargs", text,
                    "JSON object of extra chat template variables, e.g. '{\"enable_thinking\": false}'");
}

// The option's JSON object (null when not given). Throws lmw::Error naming the option.
inline nlohmann::ordered_json parseTemplateKwargs(const std::string& text) {
    if (text.empty()) return nullptr;
    const std::string option = "--chat-template-kwargs";
    nlohmann::ordered_json kwargs;
    try {
        kwargs = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::InvalidArgument, option + " is not valid JSON: " + e.what());
    }
    if (!kwargs.is_object())
        throw Error(ErrorCode::InvalidArgument, option + " must be a JSON object, e.g. '{\"enable_thinking\": false}'");
    try {
        engine::ChatTemplate::checkKwargs(kwargs);
    } catch (const Error& e) {
        throw Error(e.code(), option + ": " + e.what());
    }
    return kwargs;
}

// Loads an engine, printing progress to stderr when asked. Throws lmw::Error on failure.
std::unique_ptr<engine::Engine> loadEngine(const engine::EngineConfig& c, bool verbose);

}  // namespace lmw::cli
