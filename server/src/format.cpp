#include "format.h"

#include <chrono>
#include <random>

#include "api_error.h"

namespace lmw::server {

using nlohmann::json;

std::string finishReasonText(engine::FinishReason r) {
    switch (r) {
    case engine::FinishReason::Stop: return "stop";
    case engine::FinishReason::Length: return "length";
    case engine::FinishReason::Cancelled: return "length";
    case engine::FinishReason::Error: return "error";
    default: return "";
    }
}

std::string finishReasonText(engine::FinishReason r, bool calledTools) {
    return calledTools && r == engine::FinishReason::Stop ? "tool_calls" : finishReasonText(r);
}

json usageJson(const UsageCounts& u) {
    // int64: the response bound formats usage with the largest counts a request could reach.
    return {{"prompt_tokens", u.prompt}, {"completion_tokens", u.completion}, {"total_tokens", int64_t{u.prompt} + u.completion}};
}

namespace {

json bytesOf(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
}

json finishOrNull(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

}  // namespace

json chatLogprobs(const std::vector<engine::TokenLogprob>& lps, const TokenText& text) {
    json content = json::array();
    for (const auto& lp : lps) {
        json top = json::array();
        for (const auto& t : lp.top) {
            std::string s = text ? text(t.id) : std::string();
            top.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", bytesOf(s)}});
        }
        content.push_back({{"token", lp.text}, {"logprob", lp.logprob}, {"bytes", bytesOf(lp.text)}, {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
}

json completionLogprobs(const std::vector<engine::TokenLogprob>& lps, const TokenText& text, size_t textOffset) {
    json tokens = json::array(), tokenLps = json::array(), tops = json::array(), offsets = json::array();
    for (const auto& lp : lps) {
        tokens.push_back(lp.text);
        tokenLps.push_back(lp.logprob);
        json top = json::object();
        for (const auto& t : lp.top) top[text ? text(t.id) : std::to_string(t.id)] = t.logprob;
        tops.push_back(top);
        offsets.push_back(textOffset);
        textOffset += utf8Chars(lp.text);
    }
    return {{"tokens", tokens}, {"token_logprobs", tokenLps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json toolCallJson(const engine::ToolCall& call) {
    return {{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

json parsedDelta(const engine::OutputEvent& e) {
    using K = engine::OutputEvent::Kind;
    switch (e.kind) {
    case K::Content: return {{"content", e.text}};
    case K::Reasoning: return {{"reasoning_content", e.text}};
    case K::ToolCallStart:
        return {{"tool_calls", json::array({{{"index", e.toolIndex}, {"id", e.toolId}, {"type", "function"},
                                             {"function", {{"name", e.toolName}, {"arguments", ""}}}}})}};
    case K::ToolCallArguments:
        return {{"tool_calls", json::array({{{"index", e.toolIndex}, {"function", {{"arguments", e.text}}}}})}};
    }
    return json::object();
}

json chatCompletion(const std::string& id, int64_t created, const std::string& model,
                    const std::vector<ChoiceResult>& choices, const UsageCounts& usage, bool logprobs,
                    const TokenText& text) {
    json cs = json::array();
    for (const auto& c : choices) {
        json message = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
        if (!c.reasoning.empty()) message["reasoning_content"] = c.reasoning;
        if (!c.toolCalls.empty()) {
            if (c.text.empty()) message["content"] = nullptr;  // as OpenAI answers a call alone
            json calls = json::array();
            for (const auto& t : c.toolCalls) calls.push_back(toolCallJson(t));
            message["tool_calls"] = std::move(calls);
        }
        cs.push_back({{"index", c.index},
                      {"message", std::move(message)},
                      {"logprobs", logprobs ? chatLogprobs(c.logprobs, text) : json(nullptr)},
                      {"finish_reason", finishOrNull(c.finishReason)}});
    }
    return {{"id", id},        {"object", "chat.completion"}, {"created", created},
            {"model", model},  {"choices", cs},               {"usage", usageJson(usage)},
            {"system_fingerprint", nullptr}};
}

json textCompletion(const std::string& id, int64_t created, const std::string& model,
                    const std::vector<ChoiceResult>& choices, const UsageCounts& usage, bool logprobs,
                    const TokenText& text) {
    json cs = json::array();
    for (const auto& c : choices) {
        cs.push_back({{"index", c.index},
                      {"text", c.text},
                      {"logprobs", logprobs ? completionLogprobs(c.logprobs, text, 0) : json(nullptr)},
                      {"finish_reason", finishOrNull(c.finishReason)}});
    }
    return {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
            {"choices", cs}, {"usage", usageJson(usage)}, {"system_fingerprint", nullptr}};
}

json chatChunk(const std::string& id, int64_t created, const std::string& model, int index, json delta,
               json logprobs, json finishReason, bool withUsageNull) {
    json j = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", nullptr},
              {"choices", json::array({{{"index", index},
                                        {"delta", std::move(delta)},
                                        {"logprobs", std::move(logprobs)},
                                        {"finish_reason", std::move(finishReason)}}})}};
    if (withUsageNull) j["usage"] = nullptr;
    return j;
}

json textChunk(const std::string& id, int64_t created, const std::string& model, int index, const std::string& text,
               json logprobs, json finishReason, bool withUsageNull) {
    json j = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", nullptr},
              {"choices", json::array({{{"index", index},
                                        {"text", text},
                                        {"logprobs", std::move(logprobs)},
                                        {"finish_reason", std::move(finishReason)}}})}};
    if (withUsageNull) j["usage"] = nullptr;
    return j;
}

json usageChunk(const std::string& object, const std::string& id, int64_t created, const std::string& model,
                const UsageCounts& usage) {
    return {{"id", id},       {"object", object},         {"created", created},
            {"model", model}, {"system_fingerprint", nullptr}, {"choices", json::array()},
            {"usage", usageJson(usage)}};
}

size_t utf8Chars(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

std::string sseEvent(const json& j) { return "data: " + dumpJson(j) + "\n\n"; }

std::string newCompletionId(const std::string& prefix) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_int_distribution<int> pick(0, sizeof(alphabet) - 2);
    std::string id = prefix;
    for (int i = 0; i < 24; ++i) id += alphabet[pick(rng)];
    return id;
}

int64_t unixNow() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace lmw::server
