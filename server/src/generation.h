#pragma once
// One generation HTTP request (chat or completions with n choices, a Response, a Message; the wire
// format is the Shape's AnswerFormat) from submit to its last byte,
// without a thread of its own: the engine's sink queues events in the mailbox, which posts a drain
// onto the connection's strand; the drain applies them and writes chunks (a stream) or, once all
// choices are done, the whole body (built on the worker pool). A client that goes away is
// cancelled at once; the job lives until the engine confirmed every choice's end.
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "api_error.h"
#include "format.h"
#include "http_message.h"
#include "lmw/engine.h"
#include "mailbox.h"
#include "server_impl.h"

namespace lmw::server {

class AnswerFormat;

struct ChoiceState {
    int index = 0;          // OpenAI choice index
    int promptIndex = 0;    // completions with several prompts
    std::string echo;       // completions echo: prompt text put before the answer
    std::string text;       // whole answers only (a stream does not keep what it sent)
    size_t streamedBytes = 0;  // echo + text already sent as chunks (completions text_offset)
    std::vector<engine::TokenLogprob> logprobs;  // whole answers only
    bool finished = false;
    engine::FinishReason finish = engine::FinishReason::None;
    std::string error;
    ErrorCode errorCode = ErrorCode::Internal;
    int promptTokens = 0;
    int completionTokens = 0;
    double firstTokenSeconds = 0;
    double totalSeconds = 0;
    std::shared_ptr<engine::OutputParser> parser;  // a chat stream whose output is parsed (Shape::parsing)
    std::vector<int32_t> tail;  // the last ids generated, kept when Shape::stops is set
};


// What the answer looks like: chat or text completion, and the per-request options.
struct Shape {
    bool chat = true;
    bool stream = false;
    std::string id;
    int64_t created = 0;
    std::string model;
    bool includeUsage = false;
    bool logprobs = false;
    TokenText tokenText;
    // Chat: the reply is split into reasoning, content and tool calls (engine::OutputParser).
    bool parse = false;
    engine::OutputParserOptions parsing;
    std::vector<std::string> stops;  // the request's stop strings (Messages' stop_sequence names the one hit)
    std::shared_ptr<AnswerFormat> format;  // null: openAIFormat()
};

// The request's stop string that ended a choice, or "" (it ended on a stop token, or none was hit).
std::string stopStringHit(const Shape& s, const ChoiceState& c);

// How one API writes an answer (OpenAI chat / completions, the Responses API, Anthropic's Messages):
// the job calls it for the stream's start, each engine event, the end, and for a whole body, and
// owns nothing of the wire format itself. A format may keep per-request state (sequence numbers,
// open blocks): it serves one job. The parts every API shares (finish reasons with tool calls,
// usage, the parsed reply) come from format.h.
class AnswerFormat {
public:
    virtual ~AnswerFormat() = default;
    // After the headers, before the first event.
    virtual std::string streamStart(const Shape& s, std::vector<ChoiceState>& choices) = 0;
    // One engine event of one choice (its final event included; errors are streamError's).
    virtual std::string streamEvent(const Shape& s, ChoiceState& c, const engine::Event& e) = 0;
    // Every choice is done: usage, closing events.
    virtual std::string streamEnd(const Shape& s, const std::vector<ChoiceState>& choices, const UsageCounts& u) = 0;
    // An error after the headers went out (one error ends the whole answer).
    virtual std::string streamError(const ApiError& e) { return sseEvent(e.toJson()); }
    // The body of a whole answer; may take the choices' text (it is called once).
    virtual std::string wholeBody(const Shape& s, std::vector<ChoiceState>& choices, const UsageCounts& u) = 0;
    // An error answer's body (the API's error shape).
    virtual std::string errorBody(const ApiError& e) const { return e.body(); }
    // The answer's bytes are at most this many times the OpenAI chat answer's bound (response_budget.h):
    // formats that repeat the text in closing events say so here.
    virtual size_t boundFactor() const { return 1; }
};

// Chat completions and text completions (Shape::chat), the OpenAI wire format.
std::shared_ptr<AnswerFormat> openAIFormat();

// The reply's tool call ids, per choice (each choice its own).
engine::OutputParserOptions choiceParsing(const Shape& s, const ChoiceState& c);
// A parsed choice's events for one engine event (its parser created on first use; final: finish() too).
std::vector<engine::OutputEvent> parseEvent(const Shape& s, ChoiceState& c, const engine::Event& e);

class GenerationJob : public DeferredJob, public std::enable_shared_from_this<GenerationJob> {
public:
    // headers: what the handler set already (CORS); reserved: bytes held in the response budget.
    GenerationJob(Server::Impl& server, std::shared_ptr<engine::Engine> engine, std::shared_ptr<CallLog> call,
                  std::shared_ptr<Exchange> exchange, Shape shape, HeaderList headers, size_t reserved);
    ~GenerationJob();  // cancels what still runs, gives the reservation back

    // One engine request per choice; choices[i] describes requests[i]. Called once, on the
    // handler's thread; from then on the job runs on the connection's strand.
    void start(std::vector<engine::Request> requests, std::vector<ChoiceState> choices);
    // Server shutdown after the grace period: cancels every choice (thread-safe). Streams end
    // with a final chunk and [DONE]; a whole answer becomes a 503.
    void cancelForShutdown() override;
    // No more posts into the I/O threads (server stopping).
    void closeMailbox() override { m_mailbox->close(); }

private:
    enum class State { Running, Building, Ending, Gone, Done };

    void drain();
    void apply(const std::deque<ChoiceEvent>& events);
    void streamEvents(const std::deque<ChoiceEvent>& events);
    void finishWhole();
    void answerError(const ApiError& e);
    void onFinished(bool ok);
    void finishGone();
    void complete();  // the call is reported; the job lets go of itself
    bool allFinished() const;
    const ChoiceState* failed() const;
    UsageCounts usage() const;
    // Fills the call log from the choices and records the generation in the metrics.
    void record(int status);

    Server::Impl& m_server;
    std::shared_ptr<engine::Engine> m_engine;
    std::shared_ptr<CallLog> m_call;
    std::shared_ptr<Exchange> m_exchange;
    Shape m_shape;
    HeaderList m_headers;
    size_t m_reserved;
    std::shared_ptr<Mailbox> m_mailbox = std::make_shared<Mailbox>();
    std::vector<engine::RequestId> m_ids;
    std::vector<ChoiceState> m_choices;
    std::shared_ptr<GenerationJob> m_self;  // alive until complete()
    State m_state = State::Running;
    bool m_headersSent = false;
    bool m_errored = false;
    std::atomic<bool> m_shutdown{false};
    bool m_recorded = false;
    int m_tokensAtCancel = 0;
};

}  // namespace lmw::server
