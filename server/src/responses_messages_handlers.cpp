// POST /v1/responses (OpenAI's Responses API, stateless), POST /v1/messages and
// /v1/messages/count_tokens (Anthropic's Messages API): their bodies are translated into a chat
// completions body (api_translate.h) and run as a chat request with their own answer format.
#include "api_formats.h"
#include "api_translate.h"
#include "chat_plan.h"

namespace lmw::server {

namespace {

// The body checked as every body is (size, depth, UTF-8, an object), in the client's key order.
nlohmann::ordered_json orderedBody(const std::string& body) {
    (void)parseBody(body);
    return nlohmann::ordered_json::parse(body);
}

bool templateThinks(Server::Impl& server) {
    return server.requireEngine()->chatTemplate().source().find("enable_thinking") != std::string::npos;
}

}  // namespace

void Server::Impl::handleResponses(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    const auto body = orderedBody(req.body);
    // n is not a field of these APIs (not passed on): one reply.
    const nlohmann::ordered_json chat = responsesToChat(body);
    runChat(*this, planChat(*this, chat.dump()), res, call, responsesFormat(responsesEcho(body)), "resp_");
}

void Server::Impl::handleMessages(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    const nlohmann::ordered_json chat = messagesToChat(orderedBody(req.body), true, templateThinks(*this));
    runChat(*this, planChat(*this, chat.dump()), res, call, messagesFormat(), "msg_");
}

void Server::Impl::handleCountTokens(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    nlohmann::ordered_json chat = messagesToChat(orderedBody(req.body), false, templateThinks(*this));
    chat.erase("stream");
    const ChatPlan p = planChat(*this, chat.dump());  // the prompt exactly as /v1/messages renders it
    const int n = static_cast<int>(p.prompt.ids.size());
    call->entry.promptTokens = n;
    res.setContent(dumpJson({{"input_tokens", n}}), "application/json");
}

}  // namespace lmw::server
