#pragma once
// Request input -> prompt token ids, tokenized exactly as the engine does it, so the server knows the
// prompt length before submitting: a prompt with no room left is a 400 context_length_exceeded, and
// max_tokens is clamped to what the context has left (as LMDeploy does). The engine still gets the
// messages / prompt text itself (it adds the template's stop tokens for chat).
#include <cstdint>
#include <string>
#include <vector>

#include "lmw/engine.h"
#include "protocol.h"

namespace lmw::server {

struct BuiltPrompt {
    std::vector<int32_t> ids;
    std::string text;  // the rendered / given text (decoded ids for token prompts)
};

BuiltPrompt chatPrompt(const engine::Engine& engine, const std::vector<engine::ChatMessage>& messages,
                       bool addGenerationPrompt);
BuiltPrompt textPrompt(const engine::Engine& engine, const PromptInput& input);

// Sampling for one request: max_tokens clamped to the context left after `promptTokens`
// (400 context_length_exceeded when nothing is left), then checked by the engine's validate().
engine::SamplingParams finalSampling(const GenerationFields& gen, int promptTokens, int sessionLen,
                                     const std::string& promptParam);

}  // namespace lmw::server
