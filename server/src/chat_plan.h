#pragma once
// A chat request from its body to its GenerationJob, in two steps that the chat completions, the
// Responses API and the Messages API share (the latter two translate their bodies into a chat
// completions body first, so tools, grammars, stops, sampling limits and validation have one source).
#include <memory>
#include <string>
#include <vector>

#include "generation.h"
#include "lmw/grammar.h"
#include "prompt.h"
#include "protocol.h"
#include "server_impl.h"

namespace lmw::server {

struct ChatPlan {
    std::shared_ptr<engine::Engine> engine;
    ChatRequest r;
    TokenFacts facts;
    BuiltPrompt prompt;                          // the prompt that runs (after the context overflow policy)
    std::vector<engine::ChatMessage> messages;   // its messages
    engine::SamplingParams sampling;
    std::shared_ptr<const engine::Grammar> grammar;
    engine::OutputParserOptions parsing;
};

// Parses and checks a chat completions body, renders and fits its prompt (ApiException on failure).
ChatPlan planChat(Server::Impl& server, const std::string& body);
// Submits the plan. format: null for chat completions; else the API's answer format, its ids
// starting with idPrefix, the reply always parsed into reasoning, text and tool calls.
void runChat(Server::Impl& server, ChatPlan plan, HttpResponse& res, const std::shared_ptr<CallLog>& call,
             std::shared_ptr<AnswerFormat> format, const std::string& idPrefix);

}  // namespace lmw::server
