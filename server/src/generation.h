#pragma once
// One generation HTTP request (chat or completions, n choices) from submit to the last event:
// submits to the engine, waits on the mailbox, notices a vanished client and cancels.
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "format.h"
#include "lmw/engine.h"
#include "mailbox.h"
#include "server_impl.h"

namespace lmw::server {

struct ChoiceState {
    int index = 0;          // OpenAI choice index
    int promptIndex = 0;    // completions with several prompts
    std::string echo;       // completions echo: prompt text put before the answer
    std::string text;
    size_t streamedBytes = 0;  // echo + text already sent as chunks (completions text_offset)
    std::vector<engine::TokenLogprob> logprobs;
    bool finished = false;
    engine::FinishReason finish = engine::FinishReason::None;
    std::string error;
    ErrorCode errorCode = ErrorCode::Internal;
    int promptTokens = 0;
    int completionTokens = 0;
    double firstTokenSeconds = 0;
    double totalSeconds = 0;
};

class GenerationJob {
public:
    GenerationJob(Server::Impl& server, std::shared_ptr<engine::Engine> engine, std::shared_ptr<CallLog> call,
                  int socketFd);
    ~GenerationJob();  // cancels what still runs
    GenerationJob(const GenerationJob&) = delete;
    GenerationJob& operator=(const GenerationJob&) = delete;

    // One engine request per choice; choices[i] describes requests[i].
    void submit(std::vector<engine::Request> requests, std::vector<ChoiceState> choices);
    // Waits (polling the client every `poll`) until events arrive; applies them to the choices
    // and returns them. Returns false when the client went away: all is cancelled then.
    bool pump(std::deque<ChoiceEvent>& events, std::chrono::milliseconds poll);
    bool allFinished() const;
    // The first choice that ended in an engine error, or null.
    const ChoiceState* failed() const;
    void cancelAll();  // server shutdown: events keep coming, ending with "abort"
    // The client went away: cancel everything, then wait (briefly) for the engine's final events
    // so the log can say how many tokens were generated after the cancel (should be <= 1 step).
    void abandon();

    std::vector<ChoiceState>& choices() { return m_choices; }
    UsageCounts usage() const;
    CallLog& call() { return *m_call; }
    const std::shared_ptr<engine::Engine>& engine() const { return m_engine; }
    bool clientGone() const { return m_clientGone; }
    // Fills the call log from the choices (tokens, ttft, tokens/s, finish reason) and records
    // the generation in the metrics.
    void record(int status);

private:
    void apply(const std::deque<ChoiceEvent>& events, size_t from);

    Server::Impl& m_server;
    std::shared_ptr<engine::Engine> m_engine;
    std::shared_ptr<CallLog> m_call;
    std::shared_ptr<Mailbox> m_mailbox = std::make_shared<Mailbox>();
    std::vector<engine::RequestId> m_ids;
    std::vector<ChoiceState> m_choices;
    int m_socket = -1;
    bool m_clientGone = false;
    bool m_recorded = false;
    bool m_abandoned = false;
    int m_tokensAtCancel = 0;  // completion tokens received when the client was found gone
};

}  // namespace lmw::server
