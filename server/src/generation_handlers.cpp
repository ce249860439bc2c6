// POST /v1/chat/completions and POST /v1/completions: validate, build prompts, submit one engine
// request per choice, then answer in one JSON body or as a Server-Sent-Event stream.
#include <algorithm>
#include <memory>

#include "connection.h"
#include "generation.h"
#include "prompt.h"
#include "protocol.h"
#include "server_impl.h"

namespace lmw::server {

using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kPoll{20};  // how often a waiting request looks at its client

// What the answer looks like: chat or text completion, and the per-request options.
struct Shape {
    bool chat = true;
    std::string id;
    int64_t created = 0;
    std::string model;
    bool includeUsage = false;
    bool logprobs = false;
    TokenText tokenText;
};

json eventLogprobs(const Shape& s, const ChoiceState& c, const engine::Event& e) {
    if (!s.logprobs || e.logprobs.empty()) return nullptr;
    if (s.chat) return chatLogprobs(e.logprobs, s.tokenText);
    return completionLogprobs(e.logprobs, s.tokenText, c.streamedBytes);
}

std::string startChunks(const Shape& s, GenerationJob& job) {
    std::string out;
    for (auto& c : job.choices()) {
        c.streamedBytes = c.echo.size();
        if (s.chat)
            out += sseEvent(chatChunk(s.id, s.created, s.model, c.index, {{"role", "assistant"}, {"content", ""}},
                                      nullptr, nullptr, s.includeUsage));
        else if (!c.echo.empty())
            out += sseEvent(textChunk(s.id, s.created, s.model, c.index, c.echo, nullptr, nullptr, s.includeUsage));
    }
    return out;
}

std::string eventChunks(const Shape& s, GenerationJob& job, const ChoiceEvent& ce) {
    ChoiceState& c = job.choices().at(static_cast<size_t>(ce.choice));
    const engine::Event& e = ce.event;
    std::string out;
    if (e.final && e.finish == engine::FinishReason::Error) {
        out += sseEvent(fromEngine(e.errorCode, e.error).toJson());
        return out;
    }
    json lp = eventLogprobs(s, c, e);
    c.streamedBytes += e.text.size();
    if (!e.text.empty() || !lp.is_null()) {
        if (s.chat)
            out += sseEvent(chatChunk(s.id, s.created, s.model, c.index, {{"content", e.text}}, lp, nullptr, s.includeUsage));
        else
            out += sseEvent(textChunk(s.id, s.created, s.model, c.index, e.text, lp, nullptr, s.includeUsage));
    }
    if (e.final) {
        json reason = finishReasonText(e.finish);
        if (s.chat)
            out += sseEvent(chatChunk(s.id, s.created, s.model, c.index, json::object(), nullptr, reason, s.includeUsage));
        else
            out += sseEvent(textChunk(s.id, s.created, s.model, c.index, "", nullptr, reason, s.includeUsage));
    }
    return out;
}

std::string endChunks(const Shape& s, GenerationJob& job) {
    std::string out;
    if (s.includeUsage)
        out += sseEvent(usageChunk(s.chat ? "chat.completion.chunk" : "text_completion", s.id, s.created, s.model,
                                   job.usage()));
    out += kSseDone;
    return out;
}

// Nobody will read this answer; it still gets a body so httplib's error path leaves it alone.
void clientGone(httplib::Response& res, CallLog& call) {
    res.status = 499;
    res.set_content("{\"error\":{\"message\":\"client closed the request\",\"type\":\"client_closed\"}}",
                    "application/json");
    call.entry.status = 499;
    call.entry.error = "client closed the request";
}

std::vector<ChoiceResult> results(GenerationJob& job) {
    std::vector<ChoiceResult> rs;
    for (const auto& c : job.choices())
        rs.push_back({c.index, c.echo + c.text, finishReasonText(c.finish), c.logprobs});
    return rs;
}

// Waits for the whole answer, then sends it as one JSON body.
void answerWhole(Server::Impl& server, const std::shared_ptr<GenerationJob>& job, const Shape& s,
                 httplib::Response& res) {
    std::deque<ChoiceEvent> events;
    while (!job->allFinished()) {
        if (!job->pump(events, kPoll)) {
            clientGone(res, job->call());
            job->record(499);
            return;
        }
        events.clear();
    }
    if (const ChoiceState* f = job->failed()) {
        ApiError e = fromEngine(f->errorCode, f->error);
        job->record(e.status);
        server.sendError(res, job->call(), e);
        return;
    }
    json body = s.chat ? chatCompletion(s.id, s.created, s.model, results(*job), job->usage(), s.logprobs, s.tokenText)
                       : textCompletion(s.id, s.created, s.model, results(*job), job->usage(), s.logprobs, s.tokenText);
    res.status = 200;
    res.set_content(dumpJson(body), "application/json");
    job->call().entry.status = 200;
    job->record(200);
}

// Streams the answer. Headers wait for the first engine event, so a request the engine refuses
// (too long, bad parameters) still gets a proper error status instead of a broken stream.
void answerStream(Server::Impl& server, const std::shared_ptr<GenerationJob>& job, const Shape& s,
                  httplib::Response& res, const std::shared_ptr<CallLog>& call) {
    auto pending = std::make_shared<std::deque<ChoiceEvent>>();
    while (pending->empty() && !job->allFinished()) {
        if (!job->pump(*pending, kPoll)) {
            clientGone(res, *call);
            job->record(499);
            return;
        }
    }
    bool onlyErrors = std::all_of(pending->begin(), pending->end(), [](const ChoiceEvent& ce) {
        return ce.event.final && ce.event.finish == engine::FinishReason::Error;
    });
    if (const ChoiceState* f = job->failed(); f && onlyErrors) {
        ApiError e = fromEngine(f->errorCode, f->error);
        job->record(e.status);
        server.sendError(res, *call, e);
        return;
    }
    call->entry.status = 200;
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    Server::Impl* srv = &server;
    auto finished = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, s, pending, finished](size_t, httplib::DataSink& sink) {
            auto send = [&](const std::string& data) {
                if (data.empty() || sink.write(data.data(), data.size())) return true;
                job->abandon();  // the client is gone: free its KV blocks now
                return false;
            };
            if (!send(startChunks(s, *job))) return false;
            bool errored = false;
            for (;;) {
                std::string out;
                for (const auto& ce : *pending) {
                    out += eventChunks(s, *job, ce);
                    if (ce.event.final && ce.event.finish == engine::FinishReason::Error && !errored) {
                        errored = true;  // one error ends the whole answer
                        job->cancelAll();
                    }
                }
                pending->clear();
                if (!send(out)) return false;
                if (job->allFinished()) break;
                if (!job->pump(*pending, kPoll)) return false;
            }
            if (!send(endChunks(s, *job))) return false;
            *finished = true;
            sink.done();
            return true;
        },
        [job, call, srv, finished](bool success) {
            // Runs when httplib drops the response: after the last chunk, or after a failed write.
            int status = *finished ? 200 : 499;
            if (!*finished) job->abandon();
            call->entry.status = status;
            job->record(status);
            srv->finishCall(*call);
        });
    call->deferred = true;  // the releaser above reports the call
}

Shape shapeFor(Server::Impl& server, const engine::Engine& engine, bool chat, const GenerationFields& gen,
               bool logprobs) {
    Shape s;
    s.chat = chat;
    s.id = newCompletionId(chat ? "chatcmpl-" : "cmpl-");
    s.created = unixNow();
    s.model = server.modelName();
    s.includeUsage = gen.includeUsage;
    s.logprobs = logprobs;
    const engine::Tokenizer* tok = &engine.tokenizer();
    s.tokenText = [tok](int32_t id) { return tok->tokenBytes(id); };
    return s;
}

void run(Server::Impl& server, const httplib::Request& req, httplib::Response& res, const std::shared_ptr<CallLog>& call,
         const std::shared_ptr<engine::Engine>& engine, const Shape& shape, bool stream,
         std::vector<engine::Request> requests, std::vector<ChoiceState> choices) {
    call->entry.stream = stream;
    int fd = findConnectionSocket(req.remote_addr, req.remote_port, req.local_port);
    auto job = std::make_shared<GenerationJob>(server, engine, call, fd);
    job->submit(std::move(requests), std::move(choices));
    if (stream) answerStream(server, job, shape, res, call);
    else answerWhole(server, job, shape, res);
}

}  // namespace

void Server::Impl::handleChat(const httplib::Request& req, httplib::Response& res, const std::shared_ptr<CallLog>& call) {
    auto engine = requireEngine();
    ChatRequest r = parseChatRequest(parseBody(req.body));
    checkModel(r.gen.model);
    BuiltPrompt prompt = chatPrompt(*engine, r.messages, r.addGenerationPrompt);
    engine::SamplingParams sampling =
        finalSampling(r.gen, static_cast<int>(prompt.ids.size()), engine->sessionLen(), "messages");

    std::vector<engine::Request> requests;
    std::vector<ChoiceState> choices;
    for (int k = 0; k < r.gen.n; ++k) {
        engine::Request q;
        q.messages = r.messages;
        q.addGenerationPrompt = r.addGenerationPrompt;
        q.sampling = sampling;
        if (sampling.seed) q.sampling.seed = *sampling.seed + static_cast<uint64_t>(k);
        q.topLogprobs = r.logprobs ? r.topLogprobs : -1;
        requests.push_back(std::move(q));
        ChoiceState c;
        c.index = k;
        c.promptTokens = static_cast<int>(prompt.ids.size());
        choices.push_back(std::move(c));
    }
    Shape shape = shapeFor(*this, *engine, true, r.gen, r.logprobs);
    run(*this, req, res, call, engine, shape, r.gen.stream, std::move(requests), std::move(choices));
}

void Server::Impl::handleCompletions(const httplib::Request& req, httplib::Response& res,
                                     const std::shared_ptr<CallLog>& call) {
    auto engine = requireEngine();
    CompletionRequest r = parseCompletionRequest(parseBody(req.body));
    checkModel(r.gen.model);
    std::vector<engine::Request> requests;
    std::vector<ChoiceState> choices;
    for (size_t p = 0; p < r.prompts.size(); ++p) {
        BuiltPrompt prompt = textPrompt(*engine, r.prompts[p]);
        engine::SamplingParams sampling =
            finalSampling(r.gen, static_cast<int>(prompt.ids.size()), engine->sessionLen(), "prompt");
        for (int k = 0; k < r.gen.n; ++k) {
            engine::Request q;
            if (r.prompts[p].isIds) q.promptIds = r.prompts[p].ids;
            else q.prompt = r.prompts[p].text;
            q.sampling = sampling;
            if (sampling.seed) q.sampling.seed = *sampling.seed + static_cast<uint64_t>(k);
            q.topLogprobs = r.logprobs;
            requests.push_back(std::move(q));
            ChoiceState c;
            c.index = static_cast<int>(p) * r.gen.n + k;
            c.promptIndex = static_cast<int>(p);
            c.promptTokens = static_cast<int>(prompt.ids.size());
            if (r.echo) c.echo = prompt.text;
            choices.push_back(std::move(c));
        }
    }
    Shape shape = shapeFor(*this, *engine, false, r.gen, r.logprobs >= 0);
    run(*this, req, res, call, engine, shape, r.gen.stream, std::move(requests), std::move(choices));
}

}  // namespace lmw::server
