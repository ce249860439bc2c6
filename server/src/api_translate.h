#pragma once
// The Responses API's and Anthropic Messages API's request bodies, checked for their own shapes and
// translated into a chat completions body, which parseChatRequest then validates like any other:
// tools, tool_choice, structured output, stops, sampling and their limits have one source.
#include "nlohmann/json.hpp"

namespace lmw::server {

// POST /v1/responses: input (a string or items: messages, function_call, function_call_output),
// instructions, max_output_tokens, tools (flat), tool_choice, text.format, sampling. The server keeps
// no state: store true and previous_response_id are a 400.
nlohmann::ordered_json responsesToChat(const nlohmann::ordered_json& body);
// What a Response object echoes of its request (instructions, tools, tool_choice, text, ...).
nlohmann::ordered_json responsesEcho(const nlohmann::ordered_json& body);

// POST /v1/messages (maxTokensRequired) and /v1/messages/count_tokens: system, messages with text,
// tool_use and tool_result blocks, max_tokens, stop_sequences, tools (input_schema), tool_choice,
// thinking (as the template's enable_thinking when templateThinks).
nlohmann::ordered_json messagesToChat(const nlohmann::ordered_json& body, bool maxTokensRequired, bool templateThinks);

}  // namespace lmw::server
