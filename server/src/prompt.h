#pragma once
// Request input -> prompt token ids, tokenized exactly as the engine does it, so the server knows the
// prompt length before submitting: a prompt with no room left, or a max_tokens the context cannot
// hold, is a 400 context_length_exceeded (as OpenAI answers). The engine still gets the messages /
// prompt text itself (it adds the template's stop tokens for chat).
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

// maxBytes > 0: a (rendered) prompt longer than this is refused before tokenizing (promptByteBound).
// special: what special-token text in the prompt / message contents becomes (engine::Request's rule).
BuiltPrompt chatPrompt(const engine::Engine& engine, const std::vector<engine::ChatMessage>& messages,
                       bool addGenerationPrompt, const nlohmann::ordered_json& templateKwargs,
                       engine::SpecialTokens special, size_t maxBytes = 0);
// param: the request field, for messages ("prompt", "input[2]").
BuiltPrompt textPrompt(const engine::Engine& engine, const PromptInput& input, engine::SpecialTokens special,
                       size_t maxBytes = 0, const std::string& param = "prompt");

// Sampling for one request: 400 context_length_exceeded when nothing is left after `promptTokens`
// or when max_tokens asks for more than is left; without max_tokens, defaultMaxTokens (0 = all
// that is left) clamped to what is left. Then logit_bias ids are checked against the vocabulary
// and the rest by the engine's validate().
engine::SamplingParams finalSampling(const GenerationFields& gen, int promptTokens, int sessionLen,
                                     const std::string& promptParam, int defaultMaxTokens, int vocabSize);

}  // namespace lmw::server
