#include "generation.h"

#include <algorithm>

#include "worker_pool.h"

namespace lmw::server {

using nlohmann::json;

namespace {

constexpr size_t kLargeAnswer = 1u << 20;  // after answers this big, free memory goes back to the system

json eventLogprobs(const Shape& s, const ChoiceState& c, const engine::Event& e) {
    if (!s.logprobs || e.logprobs.empty()) return nullptr;
    if (s.chat) return chatLogprobs(e.logprobs, s.tokenText);
    return completionLogprobs(e.logprobs, s.tokenText, c.streamedBytes);
}

}  // namespace

engine::OutputParserOptions choiceParsing(const Shape& s, const ChoiceState& c) {
    engine::OutputParserOptions o = s.parsing;
    o.idSeed += 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(c.index);
    return o;
}

std::vector<engine::OutputEvent> parseEvent(const Shape& s, ChoiceState& c, const engine::Event& e) {
    if (!c.parser) c.parser = std::make_shared<engine::OutputParser>(choiceParsing(s, c));
    std::vector<engine::OutputEvent> evs = c.parser->feed(e.text);
    if (e.final)
        for (auto& ev : c.parser->finish()) evs.push_back(std::move(ev));
    return evs;
}

std::string stopStringHit(const Shape& s, const ChoiceState& c) {
    if (c.finish != engine::FinishReason::Stop || s.stops.empty() || c.tail.empty() || !s.tokenText) return {};
    // A stop string is not emitted, but its tokens were generated: it is in the text of the last ids
    // (and nowhere before, or generation would have stopped there).
    std::string text;
    for (int32_t id : c.tail) text += s.tokenText(id);
    size_t best = std::string::npos;
    std::string hit;
    for (const auto& stop : s.stops)
        if (size_t at = text.rfind(stop); at != std::string::npos && (best == std::string::npos || at + stop.size() > best))
            best = at + stop.size(), hit = stop;
    return hit;
}

namespace {

std::string startChunks(const Shape& s, std::vector<ChoiceState>& choices) {
    std::string out;
    for (auto& c : choices) {
        if (s.chat)
            out += sseEvent(chatChunk(s.id, s.created, s.model, c.index, {{"role", "assistant"}, {"content", ""}},
                                      nullptr, nullptr, s.includeUsage));
        else if (!c.echo.empty())
            out += sseEvent(textChunk(s.id, s.created, s.model, c.index, c.echo, nullptr, nullptr, s.includeUsage));
    }
    return out;
}

// A parsed chat stream: each parser event is one chunk's delta (parsedDelta).
std::string parsedChunks(const Shape& s, ChoiceState& c, const engine::Event& e, json lp) {
    std::vector<engine::OutputEvent> evs = parseEvent(s, c, e);
    std::string out;
    auto chunk = [&](json delta) {
        out += sseEvent(chatChunk(s.id, s.created, s.model, c.index, std::move(delta), lp, nullptr, s.includeUsage));
        lp = nullptr;  // the step's logprobs go with its first chunk
    };
    for (const auto& ev : evs) chunk(parsedDelta(ev));
    if (!lp.is_null()) chunk({{"content", ""}});
    if (e.final)
        out += sseEvent(chatChunk(s.id, s.created, s.model, c.index, json::object(), nullptr,
                                  finishReasonText(e.finish, !c.parser->result().toolCalls.empty()), s.includeUsage));
    return out;
}

std::string eventChunks(const Shape& s, ChoiceState& c, const engine::Event& e) {
    std::string out;
    json lp = eventLogprobs(s, c, e);
    for (const auto& t : e.logprobs) c.streamedBytes += utf8Chars(t.text);  // text_offset counts characters
    if (s.parse) return parsedChunks(s, c, e, std::move(lp));
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

// The body of a whole answer. Choices are dumped one at a time: the JSON tree of an answer with
// logprobs takes about ten times its text, so the tree never holds more than one choice.
std::string wholeBody(const Shape& s, std::vector<ChoiceState>& choices, const UsageCounts& usage) {
    auto envelope = [&](std::vector<ChoiceResult> rs) {
        return s.chat ? chatCompletion(s.id, s.created, s.model, rs, usage, s.logprobs, s.tokenText)
                      : textCompletion(s.id, s.created, s.model, rs, usage, s.logprobs, s.tokenText);
    };
    std::string out = dumpJson(envelope({}));
    const std::string empty = "\"choices\":[]";  // nlohmann writes keys sorted: this comes first
    const size_t at = out.find(empty);
    std::string list;
    for (auto& c : choices) {
        std::vector<ChoiceResult> one;
        one.push_back({c.index, c.echo + c.text, finishReasonText(c.finish), std::move(c.logprobs)});
        if (s.parse) {
            engine::ParsedOutput p = engine::OutputParser::parse(one[0].text, choiceParsing(s, c));
            one[0].finishReason = finishReasonText(c.finish, !p.toolCalls.empty());
            one[0].text = std::move(p.content);
            one[0].reasoning = std::move(p.reasoning);
            one[0].toolCalls = std::move(p.toolCalls);
        }
        c.text.clear();
        c.text.shrink_to_fit();
        json j = envelope(std::move(one));
        if (!list.empty()) list += ',';
        list += dumpJson(j["choices"][0]);
    }
    out.insert(at + empty.size() - 1, list);
    return out;
}

class OpenAIFormat : public AnswerFormat {
public:
    std::string streamStart(const Shape& s, std::vector<ChoiceState>& choices) override { return startChunks(s, choices); }
    std::string streamEvent(const Shape& s, ChoiceState& c, const engine::Event& e) override { return eventChunks(s, c, e); }
    std::string streamEnd(const Shape& s, const std::vector<ChoiceState>&, const UsageCounts& u) override {
        std::string out;
        if (s.includeUsage)
            out += sseEvent(usageChunk(s.chat ? "chat.completion.chunk" : "text_completion", s.id, s.created, s.model, u));
        return out + kSseDone;
    }
    std::string wholeBody(const Shape& s, std::vector<ChoiceState>& choices, const UsageCounts& u) override {
        return server::wholeBody(s, choices, u);
    }
};

}  // namespace

std::shared_ptr<AnswerFormat> openAIFormat() { return std::make_shared<OpenAIFormat>(); }

GenerationJob::GenerationJob(Server::Impl& server, std::shared_ptr<engine::Engine> engine, std::shared_ptr<CallLog> call,
                             std::shared_ptr<Exchange> exchange, Shape shape, HeaderList headers, size_t reserved)
    : m_server(server),
      m_engine(std::move(engine)),
      m_call(std::move(call)),
      m_exchange(std::move(exchange)),
      m_shape(std::move(shape)),
      m_headers(std::move(headers)),
      m_reserved(reserved) {
    if (!m_shape.format) m_shape.format = openAIFormat();
}

GenerationJob::~GenerationJob() {
    m_mailbox->close();
    for (size_t i = 0; i < m_ids.size() && i < m_choices.size(); ++i)
        if (!m_choices[i].finished) m_engine->cancel(m_ids[i]);
    m_server.budget->release(m_reserved);
    if (m_reserved >= kLargeAnswer) m_server.releaseMemory();
}

void GenerationJob::start(std::vector<engine::Request> requests, std::vector<ChoiceState> choices) {
    m_choices = std::move(choices);
    m_self = shared_from_this();
    std::weak_ptr<GenerationJob> weak = m_self;
    m_exchange->onFinished([weak](bool ok) {
        if (auto j = weak.lock()) j->onFinished(ok);
    });
    m_ids.reserve(requests.size());
    for (size_t i = 0; i < requests.size(); ++i)
        m_ids.push_back(m_engine->submit(std::move(requests[i]), m_mailbox->sinkFor(static_cast<int>(i))));
    // Only now (m_ids is complete): shutdown may cancel from another thread.
    m_server.registerJob(m_self);
    // The first drain may run at once on the strand: nothing below may touch the job.
    m_mailbox->arm([weak, ex = m_exchange] {
        ex->post([weak] {
            if (auto j = weak.lock()) j->drain();
        });
    });
}

void GenerationJob::cancelForShutdown() {
    m_shutdown = true;
    for (auto id : m_ids) m_engine->cancel(id);
}

void GenerationJob::drain() {
    std::deque<ChoiceEvent> events;
    m_mailbox->take(events);
    if (m_state == State::Gone) {
        apply(events);
        if (allFinished()) finishGone();
        return;
    }
    if (m_state != State::Running) return;
    apply(events);
    if (m_shape.stream) streamEvents(events);
    else if (allFinished()) finishWhole();
}

void GenerationJob::apply(const std::deque<ChoiceEvent>& events) {
    const bool keep = !m_shape.stream;  // a stream sent its text already: keeping it would only cost memory
    for (const auto& ce : events) {
        const engine::Event& e = ce.event;
        ChoiceState& c = m_choices.at(static_cast<size_t>(ce.choice));
        if (keep) {
            c.text += e.text;
            c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
        }
        c.completionTokens += static_cast<int>(e.tokens.size());
        if (!m_shape.stops.empty()) {
            constexpr size_t kTail = 64;  // more ids than any stop string takes
            c.tail.insert(c.tail.end(), e.tokens.begin(), e.tokens.end());
            if (c.tail.size() > kTail) c.tail.erase(c.tail.begin(), c.tail.end() - kTail);
        }
        if (e.final) {
            c.finished = true;
            c.finish = e.finish;
            c.error = e.error;
            c.errorCode = e.errorCode;
            if (e.usage.promptTokens > 0) c.promptTokens = e.usage.promptTokens;
            c.completionTokens = e.usage.completionTokens;
            c.firstTokenSeconds = e.firstTokenSeconds;
            c.totalSeconds = e.totalSeconds;
        }
    }
}

// Headers wait for the first engine event, so a request the engine refuses (too long, bad
// parameters) still gets a proper error status instead of a broken stream.
void GenerationJob::streamEvents(const std::deque<ChoiceEvent>& events) {
    std::string out;
    if (!m_headersSent) {
        if (events.empty()) return;
        const bool onlyErrors = std::all_of(events.begin(), events.end(), [](const ChoiceEvent& ce) {
            return ce.event.final && ce.event.finish == engine::FinishReason::Error;
        });
        if (const ChoiceState* f = failed(); f && onlyErrors) return answerError(fromEngine(f->errorCode, f->error));
        if (m_shutdown && allFinished() && usage().completion == 0) return answerError(shuttingDown());
        HttpResponse head;
        head.headers = m_headers;
        head.contentType = "text/event-stream";
        head.setHeader("Cache-Control", "no-cache");
        head.setHeader("X-Accel-Buffering", "no");
        m_call->entry.status = 200;
        m_exchange->beginStream(std::move(head));
        m_headersSent = true;
        out = m_shape.format->streamStart(m_shape, m_choices);
        for (auto& c : m_choices) c.streamedBytes = 0;
    }
    for (const auto& ce : events) {
        if (ce.event.final && ce.event.finish == engine::FinishReason::Error) {
            if (m_errored) continue;
            out += m_shape.format->streamError(fromEngine(ce.event.errorCode, ce.event.error));
            m_errored = true;  // one error ends the whole answer
            for (size_t i = 0; i < m_ids.size(); ++i)
                if (!m_choices[i].finished) m_engine->cancel(m_ids[i]);
            continue;
        }
        out += m_shape.format->streamEvent(m_shape, m_choices.at(static_cast<size_t>(ce.choice)), ce.event);
    }
    if (allFinished()) {
        out += m_shape.format->streamEnd(m_shape, m_choices, usage());
        record(200);
        m_state = State::Ending;
        m_exchange->write(std::move(out));
        m_exchange->end();
        return;
    }
    m_exchange->write(std::move(out));
}

void GenerationJob::finishWhole() {
    if (const ChoiceState* f = failed()) return answerError(fromEngine(f->errorCode, f->error));
    const bool cut = std::any_of(m_choices.begin(), m_choices.end(),
                                 [](const ChoiceState& c) { return c.finish == engine::FinishReason::Cancelled; });
    if (m_shutdown && cut) return answerError(shuttingDown());
    record(200);
    m_call->entry.status = 200;
    m_state = State::Building;
    // A body with logprobs can be tens of MB: it is built off the I/O threads, from choices the
    // strand no longer touches.
    const UsageCounts u = usage();
    std::function<void()> task = [self = shared_from_this(), choices = std::move(m_choices), u]() mutable {
        std::string body = self->m_shape.format->wholeBody(self->m_shape, choices, u);
        choices.clear();
        self->m_exchange->post([self, body = std::move(body)]() mutable {
            if (self->m_state != State::Building) return;
            HttpResponse res;
            res.headers = self->m_headers;
            res.setContent(std::move(body), "application/json");
            self->m_state = State::Ending;
            self->m_exchange->respond(std::move(res));
        });
    };
    m_choices.clear();
    if (!m_server.pool->post(std::move(task))) task();
}

void GenerationJob::answerError(const ApiError& e) {
    for (size_t i = 0; i < m_ids.size(); ++i)
        if (!m_choices[i].finished) m_engine->cancel(m_ids[i]);
    record(e.status);
    m_call->entry.status = e.status;
    m_call->entry.error = e.message;
    HttpResponse res;
    res.status = e.status;
    res.headers = m_headers;
    if (e.status == 503) res.setHeader("Retry-After", "1");
    res.setContent(m_shape.format->errorBody(e), "application/json");
    m_state = State::Ending;
    m_exchange->respond(std::move(res));
}

void GenerationJob::onFinished(bool ok) {
    if (m_state == State::Done || m_state == State::Gone) return;
    if (ok || m_state == State::Ending || m_state == State::Building) {
        if (!ok) {  // the end of the answer did not reach the client
            m_call->entry.status = 499;
            m_call->entry.error = "client closed the request before the end of the answer";
        }
        complete();
        return;
    }
    // The client went away while tokens were coming: cancel now, report once the engine confirmed.
    m_state = State::Gone;
    m_tokensAtCancel = usage().completion;
    for (size_t i = 0; i < m_ids.size(); ++i)
        if (!m_choices[i].finished) m_engine->cancel(m_ids[i]);
    if (allFinished()) finishGone();
}

void GenerationJob::finishGone() {
    record(499);
    m_call->entry.status = 499;
    m_server.metrics.clientDisconnected();  // counted once the engine confirmed the cancel
    complete();
}

void GenerationJob::complete() {
    m_state = State::Done;
    m_mailbox->close();  // choices cancelled after an error may still send events: nobody needs them
    m_server.finishCall(*m_call);
    auto keep = std::move(m_self);  // may be the last reference: nothing after this line
    m_server.unregisterJob(this);
}

bool GenerationJob::allFinished() const {
    return std::all_of(m_choices.begin(), m_choices.end(), [](const ChoiceState& c) { return c.finished; });
}

const ChoiceState* GenerationJob::failed() const {
    for (const auto& c : m_choices)
        if (c.finished && c.finish == engine::FinishReason::Error) return &c;
    return nullptr;
}

UsageCounts GenerationJob::usage() const {
    UsageCounts u;
    int lastPrompt = -1;
    for (const auto& c : m_choices) {
        if (c.promptIndex != lastPrompt) u.prompt += c.promptTokens;  // n choices share one prompt
        lastPrompt = c.promptIndex;
        u.completion += c.completionTokens;
    }
    return u;
}

void GenerationJob::record(int status) {
    if (m_recorded) return;
    m_recorded = true;
    UsageCounts u = usage();
    auto& e = m_call->entry;
    e.status = status;
    e.promptTokens = u.prompt;
    e.completionTokens = u.completion;
    double ttft = 0, decode = 0;
    for (const auto& c : m_choices) {
        if (c.firstTokenSeconds > 0 && (ttft == 0 || c.firstTokenSeconds < ttft)) ttft = c.firstTokenSeconds;
        decode = std::max(decode, c.totalSeconds - c.firstTokenSeconds);
    }
    e.ttftSeconds = ttft;
    e.tokensPerSecond = decode > 0 && u.completion > 1 ? (u.completion - static_cast<int>(m_choices.size())) / decode : 0;
    if (!m_choices.empty()) e.finishReason = engine::finishReasonName(m_choices.front().finish);
    if (m_state == State::Gone) {
        e.finishReason = "cancelled";
        e.error = "client closed the request after " + std::to_string(m_tokensAtCancel) + " tokens; " +
                  std::to_string(u.completion - m_tokensAtCancel) + " more were generated before the cancel took effect";
    }
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_call->start).count();
    int perChoice = m_choices.empty() ? 0 : u.completion / static_cast<int>(m_choices.size());
    double itl = perChoice > 1 ? decode / (perChoice - 1) : 0;
    m_server.metrics.generationFinished(u.prompt, u.completion, ttft, total, itl);
}

}  // namespace lmw::server
