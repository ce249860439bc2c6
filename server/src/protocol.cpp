#include "protocol.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "api_error.h"

namespace lmw::server {

using nlohmann::json;

namespace {

const char* typeName(json::value_t t) {
    switch (t) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
    }
}

[[noreturn]] void wrongType(const std::string& param, const char* expected, const json& v) {
    failWrongType(param, expected, v.type());
}

[[noreturn]] void outOfRange(const std::string& param, const std::string& range) {
    fail(badRequest("Invalid value for '" + param + "': must be " + range + ".", param, "invalid_value"));
}

// Absent and null mean "not given" (clients often send null for defaults).
const json* field(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::optional<bool> getBool(const json& obj, const char* key) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) wrongType(key, "a boolean", *v);
    return v->get<bool>();
}

// param: the field's full name for messages (e.g. "messages[2].role"); defaults to key.
std::optional<std::string> getString(const json& obj, const char* key, const std::string& param = {}) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) wrongType(param.empty() ? key : param, "a string", *v);
    return v->get<std::string>();
}

std::optional<double> getNumber(const json& obj, const char* key, double lo, double hi, const std::string& range) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_number()) wrongType(key, "a number", *v);
    double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) outOfRange(key, range);
    return d;
}

// Integers may arrive as 5 or 5.0 (some clients only have doubles); 5.5 is an error.
std::optional<int64_t> getInt(const json& obj, const char* key, int64_t lo, int64_t hi, const std::string& range) {
    const json* v = field(obj, key);
    if (!v) return std::nullopt;
    if (v->is_number_integer()) {
        if (v->is_number_unsigned()) {
            uint64_t u = v->get<uint64_t>();
            if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo) outOfRange(key, range);
            return static_cast<int64_t>(u);
        }
        int64_t i = v->get<int64_t>();
        if (i < lo || i > hi) outOfRange(key, range);
        return i;
    }
    if (v->is_number_float()) {
        double d = v->get<double>();
        if (!std::isfinite(d) || d != std::floor(d)) wrongType(key, "an integer", *v);
        if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) outOfRange(key, range);
        return static_cast<int64_t>(d);
    }
    wrongType(key, "an integer", *v);
}

std::vector<std::string> getStops(const json& obj) {
    const json* v = field(obj, "stop");
    std::vector<std::string> stops;
    if (!v) return stops;
    if (v->is_string()) {
        if (!v->get_ref<const std::string&>().empty()) stops.push_back(v->get<std::string>());
        return stops;
    }
    if (!v->is_array()) wrongType("stop", "a string or an array of strings", *v);
    if (v->size() > static_cast<size_t>(kMaxStops))
        outOfRange("stop", "at most " + std::to_string(kMaxStops) + " strings");
    for (const auto& s : *v) {
        if (!s.is_string()) wrongType("stop", "a string or an array of strings", s);
        if (!s.get_ref<const std::string&>().empty()) stops.push_back(s.get<std::string>());
    }
    return stops;
}

GenerationFields parseGeneration(const json& body, bool chat) {
    GenerationFields g;
    if (auto m = getString(body, "model")) g.model = *m;
    auto& s = g.sampling;
    s.maxNewTokens = 0;
    if (auto t = getNumber(body, "temperature", 0, 2, "between 0 and 2")) s.temperature = static_cast<float>(*t);
    if (auto p = getNumber(body, "top_p", 0, 1, "greater than 0 and at most 1")) {
        if (*p <= 0) outOfRange("top_p", "greater than 0 and at most 1");
        s.topP = static_cast<float>(*p);
    }
    // top_k: 0 and -1 both mean "off" (OpenAI clients rarely send it; vLLM uses -1).
    if (auto k = getInt(body, "top_k", -1, std::numeric_limits<int32_t>::max(), "-1, 0 (off) or a positive integer"))
        s.topK = *k < 0 ? 0 : static_cast<int>(*k);
    if (auto p = getNumber(body, "min_p", 0, 1, "between 0 and 1")) s.minP = static_cast<float>(*p);
    if (auto p = getNumber(body, "presence_penalty", -2, 2, "between -2 and 2")) s.presencePenalty = static_cast<float>(*p);
    if (auto p = getNumber(body, "frequency_penalty", -2, 2, "between -2 and 2")) s.frequencyPenalty = static_cast<float>(*p);
    if (auto p = getNumber(body, "repetition_penalty", 0, 10, "greater than 0 and at most 10")) {
        if (*p <= 0) outOfRange("repetition_penalty", "greater than 0 and at most 10");
        s.repetitionPenalty = static_cast<float>(*p);
    }
    if (const json* v = field(body, "seed")) {
        if (v->is_number_unsigned()) s.seed = v->get<uint64_t>();
        else if (v->is_number_integer()) s.seed = static_cast<uint64_t>(v->get<int64_t>());
        else wrongType("seed", "an integer", *v);
    }
    const char* maxKey = "max_tokens";
    std::optional<int64_t> maxTokens;
    if (chat && field(body, "max_completion_tokens")) {
        maxKey = "max_completion_tokens";
        maxTokens = getInt(body, maxKey, 1, std::numeric_limits<int32_t>::max(), "a positive integer");
    }
    if (!maxTokens) maxTokens = getInt(body, "max_tokens", 1, std::numeric_limits<int32_t>::max(), "a positive integer");
    if (maxTokens) g.maxTokens = static_cast<int>(*maxTokens);
    s.stop = getStops(body);
    if (auto b = getBool(body, "ignore_eos")) s.ignoreEos = *b;
    if (auto b = getBool(body, "skip_special_tokens")) s.skipSpecialTokens = *b;
    if (auto n = getInt(body, "n", 1, kMaxChoices, "between 1 and " + std::to_string(kMaxChoices)))
        g.n = static_cast<int>(*n);
    if (auto b = getBool(body, "stream")) g.stream = *b;
    if (const json* so = field(body, "stream_options")) {
        if (!so->is_object()) wrongType("stream_options", "an object", *so);
        if (!g.stream)
            fail(badRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                            "stream_options", "invalid_value"));
        if (const json* iu = field(*so, "include_usage")) {
            if (!iu->is_boolean()) wrongType("stream_options.include_usage", "a boolean", *iu);
            g.includeUsage = iu->get<bool>();
        }
    }
    if (const json* lb = field(body, "logit_bias")) {
        // {"<token id>": bias}: ids as strings (JSON keys), biases in [-100, 100] as OpenAI takes them.
        if (!lb->is_object()) wrongType("logit_bias", "an object mapping token ids to numbers", *lb);
        if (lb->size() > static_cast<size_t>(kMaxLogitBias))
            outOfRange("logit_bias", "at most " + std::to_string(kMaxLogitBias) + " entries");
        for (const auto& [key, value] : lb->items()) {
            char* end = nullptr;
            errno = 0;
            long long id = std::strtoll(key.c_str(), &end, 10);
            if (key.empty() || *end != '\0' || errno != 0 || id < 0 || id > std::numeric_limits<int32_t>::max())
                fail(badRequest("Invalid key in 'logit_bias': '" + key + "' is not a token id.", "logit_bias",
                                "invalid_value"));
            if (!value.is_number()) wrongType("logit_bias", "an object mapping token ids to numbers", value);
            double v = value.get<double>();
            if (!std::isfinite(v) || v < -100 || v > 100) outOfRange("logit_bias", "values between -100 and 100");
            s.logitBias.emplace_back(static_cast<int32_t>(id), static_cast<float>(v));
        }
    }
    if (const json* u = field(body, "user"); u && !u->is_string()) wrongType("user", "a string", *u);
    return g;
}

std::string messageContent(const json& msg, size_t index, const std::string& role) {
    const std::string param = "messages[" + std::to_string(index) + "].content";
    const json* c = field(msg, "content");
    if (!c) {
        if (role == "assistant") return {};  // an assistant turn may carry only tool calls
        fail(badRequest("Missing required parameter: '" + param + "'.", param, "missing_required_parameter"));
    }
    if (c->is_string()) return c->get<std::string>();
    if (!c->is_array()) wrongType(param, "a string or an array of content parts", *c);
    std::string text;
    for (size_t i = 0; i < c->size(); ++i) {
        const json& part = (*c)[i];
        const std::string pp = param + "[" + std::to_string(i) + "]";
        if (!part.is_object()) wrongType(pp, "an object", part);
        auto type = getString(part, "type", pp + ".type");
        if (!type) fail(badRequest("Missing required parameter: '" + pp + ".type'.", pp + ".type", "missing_required_parameter"));
        if (*type != "text")
            fail(badRequest("Content part type '" + *type + "' is not supported by this model; only 'text' is.",
                            pp + ".type", "unsupported_content_type"));
        const json* t = field(part, "text");
        if (!t) fail(badRequest("Missing required parameter: '" + pp + ".text'.", pp + ".text", "missing_required_parameter"));
        if (!t->is_string()) wrongType(pp + ".text", "a string", *t);
        if (!text.empty()) text += '\n';
        text += t->get<std::string>();
    }
    return text;
}

// A function name as OpenAI takes it: letters, digits, '_' and '-', at most 64.
bool validFunctionName(const std::string& name) {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-'; });
}

nlohmann::ordered_json parseTools(const json& tools) {
    if (!tools.is_array()) wrongType("tools", "an array", tools);
    if (tools.size() > static_cast<size_t>(kMaxTools)) outOfRange("tools", "at most " + std::to_string(kMaxTools) + " tools");
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
        const std::string param = "tools[" + std::to_string(i) + "]";
        const json& t = tools[i];
        if (!t.is_object()) wrongType(param, "an object", t);
        auto type = getString(t, "type", param + ".type");
        if (type && *type != "function")
            fail(badRequest("Invalid value for '" + param + ".type': '" + *type + "'. Supported values are: 'function'.",
                            param + ".type", "invalid_value"));
        const json* fn = field(t, "function");
        if (!fn) fail(badRequest("Missing required parameter: '" + param + ".function'.", param + ".function", "missing_required_parameter"));
        if (!fn->is_object()) wrongType(param + ".function", "an object", *fn);
        auto name = getString(*fn, "name", param + ".function.name");
        if (!name) fail(badRequest("Missing required parameter: '" + param + ".function.name'.", param + ".function.name", "missing_required_parameter"));
        if (!validFunctionName(*name))
            fail(badRequest("Invalid value for '" + param + ".function.name': '" + *name +
                                "'. A function name has 1 to 64 letters, digits, underscores or dashes.",
                            param + ".function.name", "invalid_value"));
        for (size_t j = 0; j < i; ++j)
            if (out[j]["function"]["name"] == *name)
                fail(badRequest("Invalid value for 'tools': the function name '" + *name + "' is given twice.",
                                param + ".function.name", "invalid_value"));
        nlohmann::ordered_json f = {{"name", *name}};
        if (auto d = getString(*fn, "description", param + ".function.description")) f["description"] = *d;
        if (const json* p = field(*fn, "parameters")) {
            if (!p->is_object()) wrongType(param + ".function.parameters", "an object (a JSON Schema)", *p);
            f["parameters"] = *p;
        }
        if (auto strict = getBool(*fn, "strict")) f["strict"] = *strict;
        out.push_back({{"type", "function"}, {"function", std::move(f)}});
    }
    return out;
}

ToolChoice parseToolChoice(const json& v, const nlohmann::ordered_json& tools) {
    ToolChoice c;
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "auto") c.mode = ToolChoice::Auto;
        else if (s == "none") c.mode = ToolChoice::None;
        else if (s == "required") c.mode = ToolChoice::Required;
        else
            fail(badRequest("Invalid value for 'tool_choice': '" + s + "'. Supported values are: 'none', 'auto', "
                            "'required', or an object naming a function.",
                            "tool_choice", "invalid_value"));
    } else if (v.is_object()) {
        const json* fn = field(v, "function");
        auto name = fn && fn->is_object() ? getString(*fn, "name", "tool_choice.function.name") : std::nullopt;
        if (!name)
            fail(badRequest("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name",
                            "missing_required_parameter"));
        c.mode = ToolChoice::Function;
        c.function = *name;
    } else {
        wrongType("tool_choice", "a string or an object", v);
    }
    if (c.mode != ToolChoice::None && c.mode != ToolChoice::Auto && tools.empty())
        fail(badRequest("Invalid value for 'tool_choice': it requires 'tools'.", "tool_choice", "invalid_value"));
    if (c.mode == ToolChoice::Function &&
        std::none_of(tools.begin(), tools.end(), [&](const auto& t) { return t["function"]["name"] == c.function; }))
        fail(badRequest("Invalid value for 'tool_choice': no function named '" + c.function + "' is in 'tools'.",
                        "tool_choice", "invalid_value"));
    return c;
}

ResponseFormat parseResponseFormat(const json& rf) {
    if (!rf.is_object()) wrongType("response_format", "an object", rf);
    ResponseFormat f;
    auto type = getString(rf, "type", "response_format.type");
    if (!type) fail(badRequest("Missing required parameter: 'response_format.type'.", "response_format.type", "missing_required_parameter"));
    if (*type == "text") return f;
    if (*type == "json_object") {
        f.kind = ResponseFormat::JsonObject;
        return f;
    }
    if (*type != "json_schema")
        fail(badRequest("Invalid value for 'response_format.type': '" + *type +
                            "'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                        "response_format.type", "invalid_value"));
    f.kind = ResponseFormat::JsonSchema;
    const json* js = field(rf, "json_schema");
    if (!js) fail(badRequest("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema", "missing_required_parameter"));
    if (!js->is_object()) wrongType("response_format.json_schema", "an object", *js);
    auto name = getString(*js, "name", "response_format.json_schema.name");
    if (!name) fail(badRequest("Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name", "missing_required_parameter"));
    f.name = *name;
    if (auto strict = getBool(*js, "strict")) f.strict = *strict;
    const json* schema = field(*js, "schema");
    if (schema && !schema->is_object() && !schema->is_boolean())
        wrongType("response_format.json_schema.schema", "an object (a JSON Schema)", *schema);
    f.schema = schema ? *schema : json(true);
    return f;
}

// An assistant turn's tool_calls as OpenAI sends them (arguments as a JSON string), made into
// what chat templates read (arguments as an object).
nlohmann::ordered_json parseToolCalls(const json& calls, const std::string& param) {
    if (!calls.is_array()) wrongType(param, "an array", calls);
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (size_t i = 0; i < calls.size(); ++i) {
        const std::string p = param + "[" + std::to_string(i) + "]";
        const json& c = calls[i];
        if (!c.is_object()) wrongType(p, "an object", c);
        const json* fn = field(c, "function");
        if (!fn || !fn->is_object())
            fail(badRequest("Missing required parameter: '" + p + ".function'.", p + ".function", "missing_required_parameter"));
        auto name = getString(*fn, "name", p + ".function.name");
        if (!name) fail(badRequest("Missing required parameter: '" + p + ".function.name'.", p + ".function.name", "missing_required_parameter"));
        nlohmann::ordered_json args = nlohmann::ordered_json::object();
        if (const json* a = field(*fn, "arguments")) {
            if (a->is_object()) args = *a;
            else if (!a->is_string()) wrongType(p + ".function.arguments", "a string of JSON", *a);
            else {
                args = nlohmann::ordered_json::parse(a->get<std::string>(), nullptr, false);
                if (args.is_discarded() || !args.is_object())
                    fail(badRequest("Invalid value for '" + p + ".function.arguments': not a JSON object.",
                                    p + ".function.arguments", "invalid_value"));
            }
        }
        nlohmann::ordered_json call = {{"type", "function"}, {"function", {{"name", *name}, {"arguments", std::move(args)}}}};
        if (auto id = getString(c, "id", p + ".id")) call["id"] = *id;
        out.push_back(std::move(call));
    }
    return out;
}

void requireObject(const json& body) {
    if (!body.is_object()) fail(badRequest("The request body must be a JSON object.", "", "invalid_json"));
}

}  // namespace

void failWrongType(const std::string& param, const char* expected, json::value_t got) {
    fail(badRequest("Invalid type for '" + param + "': expected " + expected + ", but got " + typeName(got) + ".",
                    param, "invalid_type"));
}

int jsonDepth(const std::string& text, int limit) {
    int depth = 0, maxDepth = 0;
    bool inString = false, escaped = false;
    for (char ch : text) {
        if (inString) {
            if (escaped) escaped = false;
            else if (ch == '\\') escaped = true;
            else if (ch == '"') inString = false;
            continue;
        }
        if (ch == '"') inString = true;
        else if (ch == '[' || ch == '{') {
            if (++depth > maxDepth) maxDepth = depth;
            if (maxDepth > limit) return maxDepth;
        } else if (ch == ']' || ch == '}') --depth;
    }
    return maxDepth;
}

json parseBody(const std::string& body) {
    if (body.empty()) fail(invalidJson("the body is empty"));
    // JSON has no raw NUL (not even inside strings); nlohmann would stop reading at it.
    if (body.find('\0') != std::string::npos) fail(invalidJson("the body contains a NUL byte"));
    if (jsonDepth(body, kMaxJsonDepth) > kMaxJsonDepth)
        fail(invalidJson("nesting is deeper than " + std::to_string(kMaxJsonDepth) + " levels"));
    json j;
    try {
        j = json::parse(body);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
        fail(invalidJson(e.what()));
    }
    requireObject(j);
    return j;
}

ChatRequest parseChatRequest(const json& body) {
    requireObject(body);
    ChatRequest r;
    r.gen = parseGeneration(body, true);
    const json* msgs = field(body, "messages");
    if (!msgs) fail(badRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter"));
    if (!msgs->is_array()) wrongType("messages", "an array", *msgs);
    if (msgs->empty()) fail(badRequest("'messages' must contain at least one message.", "messages", "empty_array"));
    for (size_t i = 0; i < msgs->size(); ++i) {
        const json& m = (*msgs)[i];
        const std::string param = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) wrongType(param, "an object", m);
        auto role = getString(m, "role", param + ".role");
        if (!role) fail(badRequest("Missing required parameter: '" + param + ".role'.", param + ".role", "missing_required_parameter"));
        std::string rl = *role;
        if (rl == "developer") rl = "system";  // newer OpenAI clients' name for the system turn
        if (rl != "system" && rl != "user" && rl != "assistant" && rl != "tool")
            fail(badRequest("Invalid value for '" + param + ".role': '" + *role +
                                "'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.",
                            param + ".role", "invalid_value"));
        engine::ChatMessage msg{rl, messageContent(m, i, rl)};
        if (rl == "assistant")
            if (const json* calls = field(m, "tool_calls")) msg.toolCalls = parseToolCalls(*calls, param + ".tool_calls");
        if (rl == "tool") {
            auto callId = getString(m, "tool_call_id", param + ".tool_call_id");
            if (!callId)
                fail(badRequest("Missing required parameter: '" + param + ".tool_call_id'.", param + ".tool_call_id",
                                "missing_required_parameter"));
            msg.toolCallId = *callId;
        }
        if (auto name = getString(m, "name", param + ".name"); name && (rl == "tool" || rl == "assistant")) msg.name = *name;
        r.messages.push_back(std::move(msg));
    }
    if (auto b = getBool(body, "logprobs")) r.logprobs = *b;
    if (auto k = getInt(body, "top_logprobs", 0, kMaxTopLogprobs, "between 0 and " + std::to_string(kMaxTopLogprobs))) {
        if (!r.logprobs)
            fail(badRequest("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs", "invalid_value"));
        r.topLogprobs = static_cast<int>(*k);
    }
    if (const json* tools = field(body, "tools")) r.tools = parseTools(*tools);
    if (const json* tc = field(body, "tool_choice")) r.toolChoice = parseToolChoice(*tc, r.tools);
    if (auto b = getBool(body, "parallel_tool_calls")) r.parallelToolCalls = *b;
    if (const json* rf = field(body, "response_format")) r.responseFormat = parseResponseFormat(*rf);
    if (r.responseFormat.kind != ResponseFormat::Text &&
        (r.toolChoice.mode == ToolChoice::Required || r.toolChoice.mode == ToolChoice::Function))
        fail(badRequest("'response_format' cannot be combined with a 'tool_choice' that forces a call.",
                        "response_format", "invalid_value"));
    if (auto b = getBool(body, "add_generation_prompt")) r.addGenerationPrompt = *b;
    if (const json* kw = field(body, "chat_template_kwargs")) {
        if (!kw->is_object()) wrongType("chat_template_kwargs", "an object", *kw);
        r.templateKwargs = *kw;
        try {
            engine::ChatTemplate::checkKwargs(r.templateKwargs);
        } catch (const Error& e) {
            fail(badRequest(std::string("Invalid value for 'chat_template_kwargs': ") + e.what() + ".",
                            "chat_template_kwargs", "invalid_value"));
        }
    }
    return r;
}

std::vector<PromptInput> parsePromptInputs(const json& value, const std::string& name) {
    const char* const all = "a string, an array of strings or of token ids";
    auto idsOf = [all](const json& arr, const std::string& param) {
        PromptInput in;
        in.isIds = true;
        for (const auto& t : arr) {
            if (!t.is_number_integer()) wrongType(param, all, t);
            int64_t v = t.get<int64_t>();
            if (v < 0 || v > std::numeric_limits<int32_t>::max()) outOfRange(param, "valid token ids");
            in.ids.push_back(static_cast<int32_t>(v));
        }
        if (in.ids.empty()) fail(badRequest("'" + param + "' must not be empty.", param, "empty_array"));
        return in;
    };
    std::vector<PromptInput> inputs;
    if (value.is_string()) {
        inputs.push_back({value.get<std::string>(), {}, false});
    } else if (value.is_array()) {
        if (value.empty()) fail(badRequest("'" + name + "' must not be an empty array.", name, "empty_array"));
        if (value[0].is_number_integer()) {
            inputs.push_back(idsOf(value, name));
        } else {
            for (size_t i = 0; i < value.size(); ++i) {
                const json& e = value[i];
                const std::string param = name + "[" + std::to_string(i) + "]";
                if (e.is_string()) inputs.push_back({e.get<std::string>(), {}, false});
                else if (e.is_array()) inputs.push_back(idsOf(e, param));
                else wrongType(param, "a string or an array of token ids", e);
            }
        }
    } else {
        wrongType(name, all, value);
    }
    return inputs;
}

CompletionRequest parseCompletionRequest(const json& body) {
    requireObject(body);
    CompletionRequest r;
    r.gen = parseGeneration(body, false);
    const json* p = field(body, "prompt");
    if (!p) fail(badRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"));
    r.prompts = parsePromptInputs(*p, "prompt");
    if (r.prompts.size() * static_cast<size_t>(r.gen.n) > static_cast<size_t>(kMaxChoices))
        fail(badRequest("Too many choices: prompts x n must be at most " + std::to_string(kMaxChoices) + ".", "n",
                        "invalid_value"));
    if (auto b = getBool(body, "echo")) r.echo = *b;
    if (auto s = getString(body, "suffix"); s && !s->empty())
        fail(badRequest("'suffix' (fill-in-the-middle) is not supported by this model.", "suffix",
                        "unsupported_parameter"));
    if (auto lp = getInt(body, "logprobs", 0, kMaxTopLogprobs, "between 0 and " + std::to_string(kMaxTopLogprobs)))
        r.logprobs = static_cast<int>(*lp);
    if (r.echo && r.logprobs >= 0)
        fail(badRequest("'echo' together with 'logprobs' (prompt logprobs) is not supported.", "echo",
                        "unsupported_parameter"));
    if (const json* bo = field(body, "best_of")) {
        if (!bo->is_number_integer() || bo->get<int64_t>() != r.gen.n)
            fail(badRequest("'best_of' is not supported (only best_of == n).", "best_of", "unsupported_parameter"));
    }
    return r;
}

EncodeRequest parseEncodeRequest(const json& body) {
    requireObject(body);
    EncodeRequest r;
    const json* in = field(body, "input");
    if (!in) fail(badRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter"));
    if (in->is_string()) {
        r.inputs.push_back(in->get<std::string>());
    } else if (in->is_array()) {
        r.batch = true;
        for (const auto& e : *in) {
            if (!e.is_string()) wrongType("input", "a string or an array of strings", e);
            r.inputs.push_back(e.get<std::string>());
        }
    } else {
        wrongType("input", "a string or an array of strings", *in);
    }
    if (auto b = getBool(body, "do_preprocess")) r.doPreprocess = *b;
    if (auto b = getBool(body, "add_bos")) r.addBos = *b;
    return r;
}

TokenizeRequest parseTokenizeRequest(const json& body) {
    requireObject(body);
    TokenizeRequest r;
    auto content = getString(body, "content");
    if (!content) fail(badRequest("Missing required parameter: 'content'.", "content", "missing_required_parameter"));
    r.content = *content;
    if (auto b = getBool(body, "add_special")) r.addSpecial = *b;
    r.parseSpecial = getBool(body, "parse_special");
    if (auto b = getBool(body, "with_pieces")) r.withPieces = *b;
    return r;
}

DetokenizeRequest parseDetokenizeRequest(const json& body, int vocabSize) {
    requireObject(body);
    const json* tokens = field(body, "tokens");
    if (!tokens) fail(badRequest("Missing required parameter: 'tokens'.", "tokens", "missing_required_parameter"));
    if (!tokens->is_array()) wrongType("tokens", "an array of token ids", *tokens);
    DetokenizeRequest r;
    for (size_t i = 0; i < tokens->size(); ++i) {
        const json& t = (*tokens)[i];
        if (!t.is_number_integer()) wrongType("tokens", "an array of token ids", t);
        const long long id = t.get<long long>();
        if (id < 0 || id >= vocabSize)
            fail(badRequest("Invalid value for 'tokens[" + std::to_string(i) + "]': " + std::to_string(id) +
                                " is not a token id (the vocabulary has " + std::to_string(vocabSize) + ").",
                            "tokens", "invalid_value"));
        r.tokens.push_back(static_cast<int32_t>(id));
    }
    return r;
}

EmbeddingRequest parseEmbeddingRequest(const json& body) {
    requireObject(body);
    EmbeddingRequest r;
    if (auto m = getString(body, "model")) r.model = *m;
    const json* in = field(body, "input");
    if (!in) fail(badRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter"));
    r.inputs = parsePromptInputs(*in, "input");
    if (r.inputs.size() > static_cast<size_t>(kMaxEmbeddingInputs))
        fail(badRequest("Too many inputs: 'input' may hold at most " + std::to_string(kMaxEmbeddingInputs) +
                            " items, but got " + std::to_string(r.inputs.size()) + ".",
                        "input", "invalid_value"));
    for (size_t i = 0; i < r.inputs.size(); ++i)
        if (!r.inputs[i].isIds && r.inputs[i].text.empty()) {
            const std::string param = in->is_string() ? "input" : "input[" + std::to_string(i) + "]";
            fail(badRequest("Invalid value for '" + param + "': the text must not be empty.", param, "invalid_value"));
        }
    if (auto f = getString(body, "encoding_format")) {
        if (*f == "base64") r.base64 = true;
        else if (*f != "float")
            fail(badRequest("Invalid value for 'encoding_format': must be 'float' or 'base64'.", "encoding_format",
                            "invalid_value"));
    }
    // The vector is the model's hidden size; shortening it (Matryoshka models) is not something a
    // decoder LLM's hidden state supports, so this is refused rather than ignored.
    if (field(body, "dimensions"))
        fail(badRequest("'dimensions' is not supported: this model's embeddings have its hidden size only.",
                        "dimensions", "unsupported_parameter"));
    (void)getString(body, "user");
    return r;
}

}  // namespace lmw::server
