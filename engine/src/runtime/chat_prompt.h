#pragma once
// A chat prompt as text and token ids, with the message contents' special-token text kept as text.
#include <cstdint>
#include <string>
#include <vector>

#include "lmw/chat_template.h"
#include "lmw/engine.h"
#include "lmw/tokenizer.h"

namespace lmw::engine {

// Renders messages; with plainSpans (contents are client text), special-token text written in a
// content lands in the returned byte ranges, which encodeChat() then encodes as text.
std::string renderChatPrompt(const ChatTemplate& tmpl, const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                             bool addGenerationPrompt, const nlohmann::ordered_json& templateKwargs,
                             std::vector<TextSpan>* plainSpans);

// As apply_chat_template: the template wrote the special tokens, so none are added (a tokenizer.json
// post-processor could append an EOS), except a BOS the tokenizer wants and the template did not print.
std::vector<int32_t> encodeChat(const Tokenizer& tok, const std::string& rendered, const std::vector<TextSpan>& plainSpans);

// The context overflow policy's cuts (see ContextOverflow). A turn is a user message and the messages
// after it up to the next user message. droppableTurns: how many turns the policy may leave out
// (TruncateMiddle spares the first turn, both spare the leading system messages and the current turn;
// Stop: none). withoutTurns: the messages without the `turns` oldest of those (turns <= droppable).
int droppableTurns(const std::vector<ChatMessage>& messages, ContextOverflow policy);
std::vector<ChatMessage> withoutTurns(const std::vector<ChatMessage>& messages, ContextOverflow policy, int turns);

}  // namespace lmw::engine
