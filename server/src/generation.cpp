#include "generation.h"

#include <algorithm>

#include "connection.h"

namespace lmw::server {

GenerationJob::GenerationJob(Server::Impl& server, std::shared_ptr<engine::Engine> engine,
                             std::shared_ptr<CallLog> call, int socketFd)
    : m_server(server), m_engine(std::move(engine)), m_call(std::move(call)), m_socket(socketFd) {}

GenerationJob::~GenerationJob() {
    m_server.unregisterJob(this);
    for (size_t i = 0; i < m_ids.size(); ++i)
        if (!m_choices[i].finished) m_engine->cancel(m_ids[i]);
}

void GenerationJob::submit(std::vector<engine::Request> requests, std::vector<ChoiceState> choices) {
    m_choices = std::move(choices);
    m_ids.reserve(requests.size());
    for (size_t i = 0; i < requests.size(); ++i)
        m_ids.push_back(m_engine->submit(std::move(requests[i]), m_mailbox->sinkFor(static_cast<int>(i))));
    m_server.registerJob(this);  // only now: stop() reads m_ids from another thread
}

bool GenerationJob::pump(std::deque<ChoiceEvent>& events, std::chrono::milliseconds poll) {
    if (m_clientGone) return false;
    size_t before = events.size();
    m_mailbox->wait(events, poll);
    // Checked on every wake-up, i.e. after every engine step that produced a token for us, so a
    // vanished client is cancelled within a step.
    apply(events, before);
    if (peerGone(m_socket)) {
        abandon();
        return false;
    }
    return true;
}

void GenerationJob::abandon() {
    if (m_abandoned) return;
    m_abandoned = true;
    m_clientGone = true;
    m_tokensAtCancel = usage().completion;
    for (size_t i = 0; i < m_ids.size(); ++i)
        if (!m_choices[i].finished) m_engine->cancel(m_ids[i]);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    std::deque<ChoiceEvent> rest;
    while (!allFinished() && std::chrono::steady_clock::now() < deadline) {
        size_t before = rest.size();
        m_mailbox->wait(rest, std::chrono::milliseconds(20));
        apply(rest, before);
    }
    // Counted once the engine confirmed, so /metrics never shows the disconnect before the cancel.
    m_server.metrics.clientDisconnected();
}

void GenerationJob::apply(const std::deque<ChoiceEvent>& events, size_t from) {
    for (size_t k = from; k < events.size(); ++k) {
        const engine::Event& e = events[k].event;
        ChoiceState& c = m_choices.at(static_cast<size_t>(events[k].choice));
        c.text += e.text;
        c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
        c.completionTokens += static_cast<int>(e.tokens.size());
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

bool GenerationJob::allFinished() const {
    return std::all_of(m_choices.begin(), m_choices.end(), [](const ChoiceState& c) { return c.finished; });
}

const ChoiceState* GenerationJob::failed() const {
    for (const auto& c : m_choices)
        if (c.finished && c.finish == engine::FinishReason::Error) return &c;
    return nullptr;
}

void GenerationJob::cancelAll() {
    for (size_t i = 0; i < m_ids.size(); ++i) m_engine->cancel(m_ids[i]);
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
    if (!m_choices.empty()) e.finishReason = finishReasonText(m_choices.front().finish);
    if (m_clientGone) {
        e.finishReason = "abort";
        e.error = "client closed the request after " + std::to_string(m_tokensAtCancel) + " tokens; " +
                  std::to_string(u.completion - m_tokensAtCancel) + " more were generated before the cancel took effect";
    }
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_call->start).count();
    int perChoice = m_choices.empty() ? 0 : u.completion / static_cast<int>(m_choices.size());
    double itl = perChoice > 1 ? decode / (perChoice - 1) : 0;
    m_server.metrics.generationFinished(u.prompt, u.completion, ttft, total, itl);
}

}  // namespace lmw::server
