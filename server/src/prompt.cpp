#include "prompt.h"

#include <algorithm>

#include "api_error.h"

namespace lmw::server {

namespace {

void checkBytes(const engine::Engine& engine, const std::string& text, size_t maxBytes, const std::string& param) {
    if (maxBytes > 0 && text.size() > maxBytes) fail(promptTooLong(text.size(), maxBytes, engine.sessionLen(), param));
}

}  // namespace

BuiltPrompt chatPrompt(const engine::Engine& engine, const std::vector<engine::ChatMessage>& messages,
                       bool addGenerationPrompt, const nlohmann::ordered_json& templateKwargs,
                       engine::SpecialTokens special, size_t maxBytes) {
    BuiltPrompt p;
    std::vector<engine::TextSpan> plain;
    const bool asText = special == engine::SpecialTokens::AsText;
    p.text = engine.renderChat(messages, addGenerationPrompt, templateKwargs, asText ? &plain : nullptr);
    checkBytes(engine, p.text, maxBytes, "messages");
    p.ids = engine.encodeChat(p.text, plain);
    return p;
}

BuiltPrompt textPrompt(const engine::Engine& engine, const PromptInput& input, engine::SpecialTokens special,
                       size_t maxBytes, const std::string& param) {
    BuiltPrompt p;
    const auto& tok = engine.tokenizer();
    if (input.isIds) {
        for (int32_t id : input.ids)
            if (id >= tok.vocabSize())
                fail(badRequest("Token id " + std::to_string(id) + " in '" + param + "' is out of the vocabulary (size " +
                                    std::to_string(tok.vocabSize()) + ").",
                                param, "invalid_value"));
        p.ids = input.ids;
        p.text = tok.decode(input.ids, false);
        return p;
    }
    // Exactly what the engine does with Request::prompt (and `lmw generate --prompt`).
    p.text = input.text;
    checkBytes(engine, input.text, maxBytes, param);
    p.ids = tok.encode(input.text, std::nullopt, special);
    return p;
}

engine::SamplingParams finalSampling(const GenerationFields& gen, int promptTokens, int sessionLen,
                                     const std::string& promptParam, int defaultMaxTokens, int vocabSize) {
    engine::SamplingParams s = gen.sampling;
    int left = sessionLen - promptTokens;
    if (left <= 0) {
        ApiError e = contextLengthExceeded(promptTokens, sessionLen);
        e.param = promptParam;
        fail(e);
    }
    if (gen.maxTokens && *gen.maxTokens > left) fail(maxTokensTooLarge(promptTokens, *gen.maxTokens, sessionLen));
    s.maxNewTokens = gen.maxTokens ? *gen.maxTokens : defaultMaxTokens > 0 ? std::min(defaultMaxTokens, left) : left;
    for (const auto& [id, bias] : s.logitBias)
        if (id >= vocabSize)
            fail(badRequest("Invalid value for 'logit_bias': token id " + std::to_string(id) +
                                " is out of the vocabulary (size " + std::to_string(vocabSize) + ").",
                            "logit_bias", "invalid_value"));
    std::string problem = engine::validate(s);
    if (!problem.empty()) fail(badRequest(problem));
    return s;
}

}  // namespace lmw::server
