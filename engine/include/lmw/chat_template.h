#pragma once
// Chat templates: the model's own Jinja chat_template when it has one, else a built-in by name.
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json_fwd.hpp"

namespace lmw::engine {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

class ChatTemplate {
public:
    // Built-in templates: "internlm2", "chatml", "llama2", "llama3", "mistral", "base".
    static std::vector<std::string> builtinNames();
    static std::shared_ptr<ChatTemplate> builtin(const std::string& name);
    // A Jinja template (tokenizer_config.json chat_template). Throws lmw::Error on a syntax error.
    static std::shared_ptr<ChatTemplate> fromJinja(const std::string& source, const std::string& name = "jinja");
    // --chat-template NAME|FILE, else the model's own Jinja template, else a built-in chosen by
    // the model family (internlm2 -> internlm2, qwen2 -> chatml, llama -> llama2/llama3 by vocab).
    static std::shared_ptr<ChatTemplate> select(const std::string& overrideNameOrFile, const std::string& modelJinja,
                                                const std::string& family, int vocabSize);

    virtual ~ChatTemplate() = default;
    virtual std::string name() const = 0;
    // Renders the conversation. bos/eos are the tokenizer's strings (templates may print them).
    virtual std::string render(const std::vector<ChatMessage>& messages, bool addGenerationPrompt,
                               const std::string& bosToken, const std::string& eosToken) const = 0;
    // Strings that end an assistant turn (e.g. "<|im_end|>"), used as stop words.
    virtual std::vector<std::string> stopWords() const = 0;
};

// Minimal Jinja2 renderer for chat templates: {{ }}, {% for/if/elif/else/set/macro-less %},
// loop.index/first/last, filters (trim, length, tojson, upper, lower, default, items, first, last),
// string concatenation (~ and +), comparisons, and/or/not, in, slicing [a:b], raise_exception.
std::string renderJinja(const std::string& source, const nlohmann::json& context);

}  // namespace lmw::engine
