#pragma once
// The answer formats of the Responses API and of Anthropic's Messages API (AnswerFormat): one reply
// (n = 1) written as typed output items / content blocks from the parsed reply, whole or as their
// SSE event sequences (with `event:` lines).
#include <memory>

#include "generation.h"
#include "nlohmann/json.hpp"

namespace lmw::server {

// echo: what the Response object repeats of its request (responsesEcho).
std::shared_ptr<AnswerFormat> responsesFormat(nlohmann::ordered_json echo);
std::shared_ptr<AnswerFormat> messagesFormat();

}  // namespace lmw::server
