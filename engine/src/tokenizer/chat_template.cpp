// Chat templates. Built-ins are plain C++ (an implementation independent of the Jinja renderer, so
// tests can check the two against each other); each writes exactly what the model family's own
// Hugging Face chat_template writes, BOS text included, so callers encode the result without
// adding another BOS (as apply_chat_template does).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmw/chat_template.h"
#include "lmw/error.h"
#include "nlohmann/json.hpp"
#include "tokenizer/jinja_internal.h"

namespace lmw::engine {

namespace {

const char* kInternLMSystem =
    "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
    "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the user such as "
    "English and 中文.";
const char* kQwenSystem = "You are a helpful assistant.";

std::string strip(const std::string& s) { return jinja::stripChars(s, nullptr, 'b'); }

// <|im_start|>role\ncontent<|im_end|>\n turns (InternLM2 and Qwen), with a default system turn.
class ImTemplate : public ChatTemplate {
public:
    ImTemplate(std::string name, std::string defaultSystem, bool printBos, std::vector<std::string> stops)
        : m_name(std::move(name)), m_system(std::move(defaultSystem)), m_bos(printBos), m_stops(std::move(stops)) {}
    std::string name() const override { return m_name; }
    std::vector<std::string> stopWords() const override { return m_stops; }
    std::string render(const std::vector<ChatMessage>& messages, bool addGenerationPrompt, const std::string& bos,
                       const std::string&, const nlohmann::ordered_json&) const override {
        std::string out = m_bos ? bos : "";
        if (messages.empty() || messages[0].role != "system") out += "<|im_start|>system\n" + m_system + "<|im_end|>\n";
        for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        if (addGenerationPrompt) out += "<|im_start|>assistant\n";
        return out;
    }

private:
    std::string m_name, m_system;
    bool m_bos;
    std::vector<std::string> m_stops;
};

// Llama 2 chat: <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>
class Llama2Template : public ChatTemplate {
public:
    std::string name() const override { return "llama2"; }
    std::vector<std::string> stopWords() const override { return {"</s>"}; }
    std::string render(const std::vector<ChatMessage>& messages, bool, const std::string& bos,
                       const std::string& eos, const nlohmann::ordered_json&) const override {
        size_t first = 0;
        std::string system;
        if (!messages.empty() && messages[0].role == "system") {
            system = messages[0].content;
            first = 1;
        }
        std::string out;
        for (size_t i = first; i < messages.size(); ++i) {
            std::string content = messages[i].content;
            if (i == first && first == 1) {
                std::string withSystem = "<<SYS>>\n";
                withSystem.append(system).append("\n<</SYS>>\n\n").append(content);
                content = std::move(withSystem);
            }
            if (messages[i].role == "user") out.append(bos).append("[INST] ").append(strip(content)).append(" [/INST]");
            else if (messages[i].role == "assistant") out.append(" ").append(strip(content)).append(" ").append(eos);
        }
        return out;  // the prompt ends with [/INST]: there is no separate generation prompt
    }
};

// Llama 3 instruct: <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
class Llama3Template : public ChatTemplate {
public:
    std::string name() const override { return "llama3"; }
    std::vector<std::string> stopWords() const override { return {"<|eot_id|>"}; }
    std::string render(const std::vector<ChatMessage>& messages, bool addGenerationPrompt, const std::string& bos,
                       const std::string&, const nlohmann::ordered_json&) const override {
        std::string out = messages.empty() ? "" : bos;
        for (const auto& m : messages)
            out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>";
        if (addGenerationPrompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
        return out;
    }
};

// Mistral instruct: <s>[INST] user [/INST]answer</s>[INST] ... ; a system message is put in
// front of the first user message.
class MistralTemplate : public ChatTemplate {
public:
    std::string name() const override { return "mistral"; }
    std::vector<std::string> stopWords() const override { return {"</s>"}; }
    std::string render(const std::vector<ChatMessage>& messages, bool, const std::string& bos,
                       const std::string& eos, const nlohmann::ordered_json&) const override {
        std::string out = bos, system;
        bool firstUser = true;
        for (const auto& m : messages) {
            if (m.role == "system") {
                system += (system.empty() ? "" : "\n\n") + m.content;
            } else if (m.role == "user") {
                std::string content = m.content;
                if (firstUser && !system.empty()) content = system + "\n\n" + content;
                firstUser = false;
                out += "[INST] " + content + " [/INST]";
            } else if (m.role == "assistant") {
                out += m.content + eos;
            }
        }
        return out;
    }
};

// Base (non-chat) models: the messages' text one after another, one per line.
class BaseTemplate : public ChatTemplate {
public:
    std::string name() const override { return "base"; }
    std::vector<std::string> stopWords() const override { return {}; }
    std::string render(const std::vector<ChatMessage>& messages, bool, const std::string& bos,
                       const std::string&, const nlohmann::ordered_json&) const override {
        std::string out = bos;
        for (size_t i = 0; i < messages.size(); ++i) out += (i ? "\n" : "") + messages[i].content;
        return out;
    }
};

class JinjaTemplate : public ChatTemplate {
public:
    JinjaTemplate(std::shared_ptr<const jinja::Template> t, std::string name)
        : m_t(std::move(t)), m_name(std::move(name)) {
        // The end-of-turn markers a template writes are what the model emits to end its turn.
        for (const char* marker : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>",
                                   "<|END_OF_TURN_TOKEN|>", "<|endoftext|>"})
            if (m_t->source.find(marker) != std::string::npos) m_stops.push_back(marker);
    }
    std::string name() const override { return m_name; }
    std::string source() const override { return m_t->source; }
    std::vector<std::string> stopWords() const override { return m_stops; }
    std::string render(const std::vector<ChatMessage>& messages, bool addGenerationPrompt, const std::string& bos,
                       const std::string& eos, const nlohmann::ordered_json& kwargs) const override {
        checkKwargs(kwargs);
        jinja::Value msgs = jinja::Value::array();
        for (const auto& m : messages) {
            jinja::Value v = {{"role", m.role}, {"content", m.content}};
            if (m.toolCalls.is_array()) v["tool_calls"] = m.toolCalls;
            if (!m.toolCallId.empty()) v["tool_call_id"] = m.toolCallId;
            if (!m.name.empty()) v["name"] = m.name;
            msgs.push_back(std::move(v));
        }
        // What apply_chat_template passes: the conversation, tools (None unless given), the
        // special tokens, then the caller's kwargs.
        jinja::Value ctx = {{"messages", msgs},
                            {"tools", nullptr},
                            {"add_generation_prompt", addGenerationPrompt},
                            {"bos_token", bos},
                            {"eos_token", eos}};
        if (kwargs.is_object())
            for (auto it = kwargs.begin(); it != kwargs.end(); ++it) ctx[it.key()] = it.value();
        return jinja::render(*m_t, ctx);
    }

private:
    std::shared_ptr<const jinja::Template> m_t;
    std::string m_name;
    std::vector<std::string> m_stops;
};

std::string joinNames() {
    std::string s;
    for (const auto& n : ChatTemplate::builtinNames()) s += (s.empty() ? "" : ", ") + n;
    return s;
}

}  // namespace

std::vector<std::string> ChatTemplate::builtinNames() { return {"internlm2", "chatml", "llama2", "llama3", "mistral", "base"}; }

std::shared_ptr<ChatTemplate> ChatTemplate::builtin(const std::string& name) {
    if (name == "internlm2") return std::make_shared<ImTemplate>("internlm2", kInternLMSystem, true, std::vector<std::string>{"<|im_end|>"});
    if (name == "chatml")
        return std::make_shared<ImTemplate>("chatml", kQwenSystem, false, std::vector<std::string>{"<|im_end|>", "<|endoftext|>"});
    if (name == "llama2") return std::make_shared<Llama2Template>();
    if (name == "llama3") return std::make_shared<Llama3Template>();
    if (name == "mistral") return std::make_shared<MistralTemplate>();
    if (name == "base") return std::make_shared<BaseTemplate>();
    throw Error(ErrorCode::InvalidArgument, "unknown chat template '" + name + "' (built-in templates: " + joinNames() + ")");
}

void ChatTemplate::checkKwargs(const nlohmann::ordered_json& kwargs) {
    if (kwargs.is_null()) return;
    if (!kwargs.is_object())
        throw Error(ErrorCode::InvalidArgument,
                    std::string("chat template kwargs must be a JSON object, not ") + kwargs.type_name());
    // These have their own request fields; a second way to set them would only conflict.
    for (const char* reserved : {"messages", "add_generation_prompt"})
        if (kwargs.contains(reserved))
            throw Error(ErrorCode::InvalidArgument,
                        std::string("chat template kwargs cannot set '") + reserved + "' (it is part of the request)");
}

std::shared_ptr<ChatTemplate> ChatTemplate::fromJinja(const std::string& source, const std::string& name) {
    return std::make_shared<JinjaTemplate>(jinja::parse(source), name);
}

std::shared_ptr<ChatTemplate> ChatTemplate::select(const std::string& overrideNameOrFile, const std::string& modelJinja,
                                                   ModelFamily family, int vocabSize) {
    if (!overrideNameOrFile.empty()) {
        for (const auto& n : builtinNames())
            if (n == overrideNameOrFile) return builtin(n);
        std::error_code ec;
        if (std::filesystem::is_regular_file(overrideNameOrFile, ec)) {
            std::ifstream f(overrideNameOrFile, std::ios::binary);
            if (!f) throw Error(ErrorCode::Io, "cannot read chat template file " + overrideNameOrFile);
            std::stringstream ss;
            ss << f.rdbuf();
            try {
                return fromJinja(ss.str(), overrideNameOrFile);
            } catch (const Error& e) {
                throw Error(e.code(), overrideNameOrFile + ": " + e.what());
            }
        }
        throw Error(ErrorCode::InvalidArgument, "unknown chat template '" + overrideNameOrFile +
                                                    "': not a file and not a built-in (" + joinNames() + ")");
    }
    if (!modelJinja.empty()) return fromJinja(modelJinja, "model");
    switch (family) {
        case ModelFamily::InternLM2: return builtin("internlm2");
        case ModelFamily::Qwen2:
        case ModelFamily::Qwen3: return builtin("chatml");
        case ModelFamily::Llama: return builtin(vocabSize >= 128000 ? "llama3" : "llama2");
        case ModelFamily::Mistral: return builtin("mistral");
    }
    return builtin("base");
}

}  // namespace lmw::engine
