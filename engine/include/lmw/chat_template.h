#pragma once
// Chat templates: the model's own Jinja chat_template when it has one, else a built-in by name.
#include <memory>
#include <string>
#include <vector>

#include "lmw/model_info.h"
#include "nlohmann/json.hpp"

namespace lmw::engine {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant", "tool"
    std::string content;
    // Tool calling, in the shapes Hugging Face chat templates read: an assistant turn's calls
    // ([{"id", "type": "function", "function": {"name", "arguments": {...}}}], arguments as an
    // object, not OpenAI's JSON string), and a tool result's call id and function name.
    nlohmann::ordered_json toolCalls = nullptr;  // null or an array
    std::string toolCallId = {};
    std::string name = {};
};

class ChatTemplate {
public:
    // Built-in templates: "internlm2", "chatml", "llama2", "llama3", "mistral", "base".
    static std::vector<std::string> builtinNames();
    static std::shared_ptr<ChatTemplate> builtin(const std::string& name);
    // A Jinja template (tokenizer_config.json chat_template). Throws lmw::Error on a syntax error.
    static std::shared_ptr<ChatTemplate> fromJinja(const std::string& source, const std::string& name = "jinja");
    // --chat-template NAME|FILE, else the model's own Jinja template, else a built-in chosen by
    // the model family (internlm2 -> internlm2, qwen2/qwen3 -> chatml, llama -> llama2/llama3 by vocab,
    // mistral -> mistral).
    static std::shared_ptr<ChatTemplate> select(const std::string& overrideNameOrFile, const std::string& modelJinja,
                                                ModelFamily family, int vocabSize);

    // Checks extra template variables (Hugging Face's chat_template_kwargs, plus `tools`): null or a
    // JSON object that does not set what render() sets itself. Throws lmw::Error(InvalidArgument).
    static void checkKwargs(const nlohmann::ordered_json& kwargs);

    virtual ~ChatTemplate() = default;
    virtual std::string name() const = 0;
    // A Jinja template's source (empty for the built-ins).
    virtual std::string source() const { return {}; }
    // Whether the template writes `tools` into the prompt (a Jinja template that reads them; the
    // built-ins have no tool format).
    bool supportsTools() const { return source().find("tools") != std::string::npos; }
    // Renders the conversation. bos/eos are the tokenizer's strings (templates may print them).
    // kwargs (checked as checkKwargs does) become variables of a Jinja template, e.g.
    // {"enable_thinking": false}; key order is kept, since tojson prints it. Built-ins ignore them.
    virtual std::string render(const std::vector<ChatMessage>& messages, bool addGenerationPrompt,
                               const std::string& bosToken, const std::string& eosToken,
                               const nlohmann::ordered_json& kwargs = nlohmann::ordered_json::object()) const = 0;
    // Strings that end an assistant turn (e.g. "<|im_end|>"), used as stop words.
    virtual std::vector<std::string> stopWords() const = 0;
};

// The Jinja2 subset chat templates use, rendered as transformers' apply_chat_template does
// (trim_blocks, lstrip_blocks, its tojson, raise_exception and strftime_now).
std::string renderJinja(const std::string& source, const nlohmann::ordered_json& context);

}  // namespace lmw::engine
