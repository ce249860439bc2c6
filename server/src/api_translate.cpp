#include "api_translate.h"

#include "api_error.h"
#include "protocol.h"

namespace lmw::server {

using ojson = nlohmann::ordered_json;

namespace {

[[noreturn]] void wrongType(const std::string& param, const char* expected, const ojson& v) {
    failWrongType(param, expected, v.type());
}

[[noreturn]] void missing(const std::string& param) {
    fail(badRequest("Missing required parameter: '" + param + "'.", param, "missing_required_parameter"));
}

[[noreturn]] void invalid(const std::string& param, const std::string& why) {
    fail(badRequest("Invalid value for '" + param + "': " + why, param, "invalid_value"));
}

// Absent and null mean "not given".
const ojson* member(const ojson& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
}

const ojson& require(const ojson& obj, const char* key, const std::string& param) {
    const ojson* v = member(obj, key);
    if (!v) missing(param);
    return *v;
}

std::string requireString(const ojson& obj, const char* key, const std::string& param) {
    const ojson& v = require(obj, key, param);
    if (!v.is_string()) wrongType(param, "a string", v);
    return v.get<std::string>();
}

const ojson& requireObject(const ojson& v, const std::string& param) {
    if (!v.is_object()) wrongType(param, "an object", v);
    return v;
}

std::string at(const std::string& param, size_t i) { return param + "[" + std::to_string(i) + "]"; }

// Fields whose meaning is the same in the chat completions body: passed on as they are, checked there.
void passThrough(const ojson& body, ojson& chat, std::initializer_list<const char*> keys) {
    for (const char* k : keys)
        if (const ojson* v = member(body, k)) chat[k] = *v;
}

constexpr std::initializer_list<const char*> kSampling = {
    "model", "stream", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
    "repetition_penalty", "seed", "ignore_eos", "skip_special_tokens", "logit_bias", "chat_template_kwargs"};

// Text of a content given as a string or as typed parts (the allowed part types' "text").
std::string textOf(const ojson& content, const std::string& param, std::initializer_list<const char*> types) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) wrongType(param, "a string or an array of content parts", content);
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        const std::string p = at(param, i);
        const ojson& part = requireObject(content[i], p);
        const std::string type = requireString(part, "type", p + ".type");
        bool ok = false;
        for (const char* t : types) ok |= type == t;
        if (!ok) {
            std::string list;
            for (const char* t : types) list += std::string(list.empty() ? "'" : ", '") + t + "'";
            fail(badRequest("Content part type '" + type + "' is not supported by this model; only " + list + " are.",
                            p + ".type", "unsupported_content_type"));
        }
        if (!text.empty()) text += '\n';
        text += requireString(part, "text", p + ".text");
    }
    return text;
}

// A tool call's arguments as chat completions carries them: a JSON text.
std::string argumentsText(const ojson& v, const std::string& param) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object()) return v.dump();
    wrongType(param, "a JSON object or a string of one", v);
}

// The assistant message that tool calls go on: the last one when it is an assistant turn (a reply
// with text and calls arrives as several items / blocks), else a new one.
ojson& assistantTurn(ojson& messages) {
    if (messages.empty() || messages.back()["role"] != "assistant") messages.push_back({{"role", "assistant"}, {"content", ""}});
    if (!messages.back().contains("tool_calls")) messages.back()["tool_calls"] = ojson::array();
    return messages.back();
}

}  // namespace

// ---- Responses API ----

ojson responsesToChat(const ojson& body) {
    if (!body.is_object()) fail(badRequest("The request body must be a JSON object.", "", "invalid_json"));
    if (const ojson* s = member(body, "store")) {
        if (!s->is_boolean()) wrongType("store", "a boolean", *s);
        if (s->get<bool>())
            fail(badRequest("'store' is not supported: this server keeps no responses (send store: false or leave it "
                            "out, and send the whole conversation as 'input').",
                            "store", "unsupported_parameter"));
    }
    if (member(body, "previous_response_id"))
        fail(badRequest("'previous_response_id' is not supported: this server keeps no responses; send the earlier "
                        "turns as 'input' items instead.",
                        "previous_response_id", "unsupported_parameter"));
    if (member(body, "conversation"))
        fail(badRequest("'conversation' is not supported: this server keeps no state.", "conversation",
                        "unsupported_parameter"));
    ojson chat = ojson::object();
    passThrough(body, chat, kSampling);
    passThrough(body, chat, {"parallel_tool_calls", "user"});
    if (const ojson* m = member(body, "max_output_tokens")) {
        // Checked here too, so that the error names this API's field.
        if (!m->is_number_integer() || m->get<int64_t>() < 1) invalid("max_output_tokens", "must be a positive integer.");
        chat["max_tokens"] = *m;
    }
    ojson messages = ojson::array();
    if (const ojson* ins = member(body, "instructions")) {
        if (!ins->is_string()) wrongType("instructions", "a string", *ins);
        messages.push_back({{"role", "system"}, {"content", *ins}});
    }
    const ojson& input = require(body, "input", "input");
    if (input.is_string()) {
        messages.push_back({{"role", "user"}, {"content", input}});
    } else if (input.is_array()) {
        if (input.empty()) fail(badRequest("'input' must not be an empty array.", "input", "empty_array"));
        for (size_t i = 0; i < input.size(); ++i) {
            const std::string p = at("input", i);
            const ojson& item = requireObject(input[i], p);
            const ojson* t = member(item, "type");
            if (t && !t->is_string()) wrongType(p + ".type", "a string", *t);
            const std::string type = t ? t->get<std::string>() : "message";
            if (type == "message") {
                const std::string role = requireString(item, "role", p + ".role");
                if (role != "user" && role != "system" && role != "developer" && role != "assistant")
                    invalid(p + ".role", "'" + role + "'. Supported values are: 'user', 'system', 'developer' and 'assistant'.");
                const std::string text = textOf(require(item, "content", p + ".content"), p + ".content",
                                                {"input_text", "output_text", "text"});
                if (role == "assistant" && !messages.empty() && messages.back()["role"] == "assistant" &&
                    messages.back()["content"] == "")
                    messages.back()["content"] = text;
                else
                    messages.push_back({{"role", role}, {"content", text}});
            } else if (type == "function_call") {
                ojson call = {{"id", requireString(item, "call_id", p + ".call_id")},
                              {"type", "function"},
                              {"function",
                               {{"name", requireString(item, "name", p + ".name")},
                                {"arguments", argumentsText(require(item, "arguments", p + ".arguments"), p + ".arguments")}}}};
                assistantTurn(messages)["tool_calls"].push_back(std::move(call));
            } else if (type == "function_call_output") {
                const ojson& out = require(item, "output", p + ".output");
                messages.push_back({{"role", "tool"},
                                    {"tool_call_id", requireString(item, "call_id", p + ".call_id")},
                                    {"content", textOf(out, p + ".output", {"input_text", "output_text"})}});
            } else if (type == "reasoning") {
                // An earlier reply's reasoning, sent back: templates drop it from the history anyway.
            } else {
                fail(badRequest("Input item type '" + type + "' is not supported; supported are 'message', "
                                "'function_call', 'function_call_output' and 'reasoning'.",
                                p + ".type", "invalid_value"));
            }
        }
    } else {
        wrongType("input", "a string or an array of input items", input);
    }
    chat["messages"] = std::move(messages);
    if (const ojson* tools = member(body, "tools")) {
        if (!tools->is_array()) wrongType("tools", "an array", *tools);
        ojson out = ojson::array();
        for (size_t i = 0; i < tools->size(); ++i) {
            const std::string p = at("tools", i);
            const ojson& t = requireObject((*tools)[i], p);
            const std::string type = requireString(t, "type", p + ".type");
            if (type != "function")
                fail(badRequest("Tool type '" + type + "' is not supported; only 'function' tools are.", p + ".type",
                                "unsupported_parameter"));
            ojson fn = ojson::object();
            passThrough(t, fn, {"name", "description", "parameters", "strict"});
            out.push_back({{"type", "function"}, {"function", std::move(fn)}});
        }
        chat["tools"] = std::move(out);
    }
    if (const ojson* tc = member(body, "tool_choice")) {
        if (tc->is_object()) {
            const std::string type = requireString(*tc, "type", "tool_choice.type");
            if (type != "function") invalid("tool_choice.type", "'" + type + "'. Supported values are: 'function'.");
            chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", requireString(*tc, "name", "tool_choice.name")}}}};
        } else {
            chat["tool_choice"] = *tc;
        }
    }
    if (const ojson* text = member(body, "text")) {
        requireObject(*text, "text");
        if (const ojson* f = member(*text, "format")) {
            requireObject(*f, "text.format");
            const std::string type = requireString(*f, "type", "text.format.type");
            if (type == "json_schema") {
                ojson js = ojson::object();
                passThrough(*f, js, {"name", "schema", "strict", "description"});
                if (!js.contains("name")) missing("text.format.name");
                chat["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(js)}};
            } else if (type == "json_object" || type == "text") {
                chat["response_format"] = {{"type", type}};
            } else {
                invalid("text.format.type", "'" + type + "'. Supported values are: 'text', 'json_object' and 'json_schema'.");
            }
        }
    }
    if (const ojson* r = member(body, "reasoning")) requireObject(*r, "reasoning");
    return chat;
}

ojson responsesEcho(const ojson& body) {
    auto get = [&](const char* k, ojson def) {
        const ojson* v = member(body, k);
        return v ? *v : def;
    };
    ojson tools = get("tools", ojson::array());
    return {{"instructions", get("instructions", nullptr)},
            {"max_output_tokens", get("max_output_tokens", nullptr)},
            {"metadata", get("metadata", ojson::object())},
            {"parallel_tool_calls", get("parallel_tool_calls", true)},
            {"temperature", get("temperature", 1.0)},
            {"text", get("text", {{"format", {{"type", "text"}}}})},
            {"tool_choice", get("tool_choice", "auto")},
            {"tools", tools},
            {"top_p", get("top_p", 1.0)},
            {"user", get("user", nullptr)}};
}

// ---- Anthropic Messages API ----

ojson messagesToChat(const ojson& body, bool maxTokensRequired, bool templateThinks) {
    if (!body.is_object()) fail(badRequest("The request body must be a JSON object.", "", "invalid_json"));
    ojson chat = ojson::object();
    passThrough(body, chat, kSampling);
    if (maxTokensRequired) chat["max_tokens"] = require(body, "max_tokens", "max_tokens");
    else if (const ojson* m = member(body, "max_tokens")) chat["max_tokens"] = *m;
    if (const ojson* s = member(body, "stop_sequences")) {
        if (!s->is_array()) wrongType("stop_sequences", "an array of strings", *s);
        chat["stop"] = *s;
    }
    ojson messages = ojson::array();
    if (const ojson* sys = member(body, "system"))
        messages.push_back({{"role", "system"}, {"content", textOf(*sys, "system", {"text"})}});
    const ojson& msgs = require(body, "messages", "messages");
    if (!msgs.is_array()) wrongType("messages", "an array", msgs);
    if (msgs.empty()) fail(badRequest("'messages' must contain at least one message.", "messages", "empty_array"));
    for (size_t i = 0; i < msgs.size(); ++i) {
        const std::string p = at("messages", i);
        const ojson& m = requireObject(msgs[i], p);
        const std::string role = requireString(m, "role", p + ".role");
        if (role != "user" && role != "assistant")
            invalid(p + ".role", "'" + role + "'. Supported values are: 'user' and 'assistant' (the system prompt is 'system').");
        const ojson& content = require(m, "content", p + ".content");
        if (content.is_string()) {
            messages.push_back({{"role", role}, {"content", content}});
            continue;
        }
        if (!content.is_array()) wrongType(p + ".content", "a string or an array of content blocks", content);
        std::string text;
        bool calls = false;
        for (size_t j = 0; j < content.size(); ++j) {
            const std::string bp = at(p + ".content", j);
            const ojson& b = requireObject(content[j], bp);
            const std::string type = requireString(b, "type", bp + ".type");
            if (type == "text") {
                if (!text.empty()) text += '\n';
                text += requireString(b, "text", bp + ".text");
            } else if (type == "tool_use" && role == "assistant") {
                if (!calls) {
                    messages.push_back({{"role", "assistant"}, {"content", text}});
                    text.clear();
                    calls = true;
                }
                const ojson& input = require(b, "input", bp + ".input");
                if (!input.is_object()) wrongType(bp + ".input", "an object", input);
                assistantTurn(messages)["tool_calls"].push_back(
                    {{"id", requireString(b, "id", bp + ".id")},
                     {"type", "function"},
                     {"function", {{"name", requireString(b, "name", bp + ".name")}, {"arguments", input.dump()}}}});
            } else if (type == "tool_result" && role == "user") {
                std::string result = member(b, "content") ? textOf(*member(b, "content"), bp + ".content", {"text"}) : "";
                if (const ojson* e = member(b, "is_error")) {
                    if (!e->is_boolean()) wrongType(bp + ".is_error", "a boolean", *e);
                    if (e->get<bool>()) result = "Error: " + result;
                }
                messages.push_back({{"role", "tool"},
                                    {"tool_call_id", requireString(b, "tool_use_id", bp + ".tool_use_id")},
                                    {"content", result}});
            } else if ((type == "thinking" || type == "redacted_thinking") && role == "assistant") {
                // An earlier reply's reasoning, sent back: templates drop it from the history anyway.
            } else {
                fail(badRequest("Content block type '" + type + "' is not supported in a" +
                                    (role == "user" ? " user" : "n assistant") + " message; supported are " +
                                    (role == "user" ? "'text' and 'tool_result'." : "'text', 'tool_use' and 'thinking'."),
                                bp + ".type", "invalid_value"));
            }
        }
        if (calls) {
            if (!text.empty()) messages.back()["content"] = messages.back()["content"].get<std::string>() + text;
        } else if (!text.empty() || messages.empty() || messages.back()["role"] != "tool") {
            messages.push_back({{"role", role}, {"content", text}});
        }
    }
    chat["messages"] = std::move(messages);
    bool anyTools = false;
    if (const ojson* tools = member(body, "tools")) {
        if (!tools->is_array()) wrongType("tools", "an array", *tools);
        ojson out = ojson::array();
        for (size_t i = 0; i < tools->size(); ++i) {
            const std::string p = at("tools", i);
            const ojson& t = requireObject((*tools)[i], p);
            if (const ojson* type = member(t, "type"); type && *type != "custom")
                fail(badRequest("Tool type " + type->dump() + " is not supported; only client tools (name, "
                                "description, input_schema) are.",
                                p + ".type", "unsupported_parameter"));
            ojson fn = {{"name", requireString(t, "name", p + ".name")}};
            passThrough(t, fn, {"description"});
            const ojson& schema = require(t, "input_schema", p + ".input_schema");
            fn["parameters"] = schema;
            out.push_back({{"type", "function"}, {"function", std::move(fn)}});
        }
        anyTools = !out.empty();
        chat["tools"] = std::move(out);
    }
    if (const ojson* tc = member(body, "tool_choice")) {
        requireObject(*tc, "tool_choice");
        const std::string type = requireString(*tc, "type", "tool_choice.type");
        if (type == "auto") chat["tool_choice"] = "auto";
        else if (type == "any") chat["tool_choice"] = "required";
        else if (type == "none") chat["tool_choice"] = "none";
        else if (type == "tool")
            chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", requireString(*tc, "name", "tool_choice.name")}}}};
        else invalid("tool_choice.type", "'" + type + "'. Supported values are: 'auto', 'any', 'tool' and 'none'.");
        if (const ojson* d = member(*tc, "disable_parallel_tool_use")) {
            if (!d->is_boolean()) wrongType("tool_choice.disable_parallel_tool_use", "a boolean", *d);
            if (anyTools) chat["parallel_tool_calls"] = !d->get<bool>();
        }
    }
    if (const ojson* th = member(body, "thinking")) {
        requireObject(*th, "thinking");
        const std::string type = requireString(*th, "type", "thinking.type");
        if (type != "enabled" && type != "disabled" && type != "adaptive")
            invalid("thinking.type", "'" + type + "'. Supported values are: 'enabled', 'disabled' and 'adaptive'.");
        if (templateThinks) {
            if (!chat.contains("chat_template_kwargs")) chat["chat_template_kwargs"] = ojson::object();
            if (chat["chat_template_kwargs"].is_object()) chat["chat_template_kwargs"]["enable_thinking"] = type != "disabled";
        }
    }
    return chat;
}

}  // namespace lmw::server
