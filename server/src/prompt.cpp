#include "prompt.h"

#include <algorithm>

#include "api_error.h"

namespace lmw::server {

BuiltPrompt chatPrompt(const engine::Engine& engine, const std::vector<engine::ChatMessage>& messages,
                       bool addGenerationPrompt) {
    BuiltPrompt p;
    p.text = engine.renderChat(messages, addGenerationPrompt);
    p.ids = engine.encodeChat(p.text);
    return p;
}

BuiltPrompt textPrompt(const engine::Engine& engine, const PromptInput& input) {
    BuiltPrompt p;
    const auto& tok = engine.tokenizer();
    if (input.isIds) {
        for (int32_t id : input.ids)
            if (id >= tok.vocabSize())
                fail(badRequest("Token id " + std::to_string(id) + " in 'prompt' is out of the vocabulary (size " +
                                    std::to_string(tok.vocabSize()) + ").",
                                "prompt", "invalid_value"));
        p.ids = input.ids;
        p.text = tok.decode(input.ids, false);
        return p;
    }
    // Exactly what the engine does with Request::prompt (and `lmw generate --prompt`).
    p.text = input.text;
    p.ids = tok.encode(input.text);
    return p;
}

engine::SamplingParams finalSampling(const GenerationFields& gen, int promptTokens, int sessionLen,
                                     const std::string& promptParam) {
    engine::SamplingParams s = gen.sampling;
    int left = sessionLen - promptTokens;
    if (left <= 0) {
        ApiError e = contextLengthExceeded(promptTokens, sessionLen);
        e.param = promptParam;
        fail(e);
    }
    s.maxNewTokens = gen.maxTokens ? std::min(*gen.maxTokens, left) : left;
    std::string problem = engine::validate(s);
    if (!problem.empty()) fail(badRequest(problem));
    return s;
}

}  // namespace lmw::server
