#pragma once
// Response bodies and Server-Sent-Event chunks in OpenAI's exact shapes. Pure functions of plain
// values, so the wire format is unit-tested without an engine.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lmw/engine.h"
#include "lmw/output_parser.h"
#include "nlohmann/json.hpp"

namespace lmw::server {

struct UsageCounts {
    int prompt = 0;
    int completion = 0;
};

struct ChoiceResult {
    int index = 0;
    std::string text;
    std::string finishReason;  // "stop", "length", "tool_calls"
    std::vector<engine::TokenLogprob> logprobs;
    std::string reasoning = {};                   // chat: message.reasoning_content when not empty
    std::vector<engine::ToolCall> toolCalls = {};  // chat: message.tool_calls when not empty
};

// OpenAI's tool_calls entries: {"id", "type": "function", "function": {"name", "arguments"}}.
nlohmann::json toolCallJson(const engine::ToolCall& call);
// The streamed delta of one parsed piece of a reply: {"content"}, {"reasoning_content"}, or a
// tool_calls entry as OpenAI streams a call (its first delta: index, id, type, name and empty
// arguments; the next ones: index and a piece of the arguments).
nlohmann::json parsedDelta(const engine::OutputEvent& e);

// Text of a token id (for top-logprob alternatives, which carry only ids).
using TokenText = std::function<std::string(int32_t)>;

// OpenAI's finish_reason: "stop" or "length". A request cancelled by the server (shutting down) was
// cut short, which is what "length" tells a client; OpenAI has no other value for it.
std::string finishReasonText(engine::FinishReason r);
// The one finish mapping every API's vocabulary is made from: "tool_calls" when a reply that ended
// by itself called tools, else finishReasonText(r).
std::string finishReasonText(engine::FinishReason r, bool calledTools);

nlohmann::json usageJson(const UsageCounts& u);
nlohmann::json chatLogprobs(const std::vector<engine::TokenLogprob>& lps, const TokenText& text);
// Each token's text is its raw bytes (a leading space stays; "bytes" is exact even for half a
// character). textOffset: characters (code points) of choice text before the first of these tokens.
nlohmann::json completionLogprobs(const std::vector<engine::TokenLogprob>& lps, const TokenText& text,
                                  size_t textOffset);

nlohmann::json chatCompletion(const std::string& id, int64_t created, const std::string& model,
                              const std::vector<ChoiceResult>& choices, const UsageCounts& usage, bool logprobs,
                              const TokenText& text);
nlohmann::json textCompletion(const std::string& id, int64_t created, const std::string& model,
                              const std::vector<ChoiceResult>& choices, const UsageCounts& usage, bool logprobs,
                              const TokenText& text);

// One streaming chunk with one choice. delta: {"role":..,"content":..} or {}; logprobs/finish
// may be null. withUsageNull: stream_options.include_usage was asked, so every chunk has "usage": null.
nlohmann::json chatChunk(const std::string& id, int64_t created, const std::string& model, int index,
                         nlohmann::json delta, nlohmann::json logprobs, nlohmann::json finishReason,
                         bool withUsageNull);
nlohmann::json textChunk(const std::string& id, int64_t created, const std::string& model, int index,
                         const std::string& text, nlohmann::json logprobs, nlohmann::json finishReason,
                         bool withUsageNull);
// The last chunk when include_usage was asked: no choices, only usage.
nlohmann::json usageChunk(const std::string& object, const std::string& id, int64_t created,
                          const std::string& model, const UsageCounts& usage);

// "data: <json>\n\n"
std::string sseEvent(const nlohmann::json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// Code points in s (bytes that do not continue a UTF-8 sequence).
size_t utf8Chars(const std::string& s);

// "chatcmpl-" + 24 random alphanumerics
std::string newCompletionId(const std::string& prefix);
int64_t unixNow();

}  // namespace lmw::server
