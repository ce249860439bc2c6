// POST /v1/embeddings: each input becomes one engine request in embedding mode (the model's final
// hidden states pooled per `--embedding-pooling`, L2-normalized), all submitted at once so the engine
// prefills them in the same steps as everyone's generation; the answer ({"object": "list", "data":
// [{"object": "embedding", "index", "embedding"}], "model", "usage"}) goes out once the last vector is
// in, its floats as JSON numbers or (encoding_format "base64") as little-endian float32 bytes.
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>

#include "mailbox.h"
#include "prompt.h"
#include "protocol.h"
#include "server_impl.h"
#include "worker_pool.h"

namespace lmw::server {

namespace {

constexpr size_t kFloatTextBytes = 16;     // the longest shortest-round-trip float ("-1.17549435e-38") and a comma
constexpr size_t kLargeAnswer = 1u << 20;  // after answers this big, free memory goes back to the system

void appendFloats(std::string& out, const std::vector<float>& v) {
    out += '[';
    char buf[32];
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        if (!std::isfinite(v[i])) {  // JSON has no NaN; a model that gives one gets null, as nlohmann writes it
            out += "null";
            continue;
        }
        const auto r = std::to_chars(buf, buf + sizeof buf, v[i]);  // the shortest text that reads back the same float
        out.append(buf, r.ptr);
    }
    out += ']';
}

// OpenAI's base64 embedding: the float32 values' bytes, little-endian, in standard base64 with padding.
void appendBase64(std::string& out, const std::vector<float>& v) {
    static const char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::vector<uint8_t> bytes(v.size() * 4);
    for (size_t i = 0; i < v.size(); ++i) {
        uint32_t u;
        std::memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; ++b) bytes[i * 4 + size_t(b)] = uint8_t(u >> (8 * b));
    }
    out += '"';
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const size_t n = std::min<size_t>(3, bytes.size() - i);
        const uint32_t w = uint32_t(bytes[i]) << 16 | (n > 1 ? uint32_t(bytes[i + 1]) << 8 : 0) | (n > 2 ? bytes[i + 2] : 0);
        out += kDigits[w >> 18 & 63];
        out += kDigits[w >> 12 & 63];
        out += n > 1 ? kDigits[w >> 6 & 63] : '=';
        out += n > 2 ? kDigits[w & 63] : '=';
    }
    out += '"';
}

std::string embeddingsBody(const std::vector<std::vector<float>>& vectors, bool base64, const std::string& model,
                           int promptTokens) {
    std::string out = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < vectors.size(); ++i) {
        if (i) out += ',';
        out += "{\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
        if (base64) appendBase64(out, vectors[i]);
        else appendFloats(out, vectors[i]);
        out += '}';
    }
    const std::string tokens = std::to_string(promptTokens);
    out += "],\"model\":" + dumpJson(model) + ",\"usage\":{\"prompt_tokens\":" + tokens + ",\"total_tokens\":" + tokens + "}}";
    return out;
}

// Upper bound of embeddingsBody's bytes (model: the name as JSON may be 6 times its bytes).
size_t bodyBound(size_t inputs, int hidden, bool base64, const std::string& model) {
    const size_t vector = base64 ? 4 * ((size_t(hidden) * 4 + 2) / 3) + 2 : size_t(hidden) * kFloatTextBytes + 2;
    return 128 + 6 * model.size() + inputs * (64 + vector);
}

// One /v1/embeddings answer, without a thread of its own (as GenerationJob): the engine's sinks queue
// final events in the mailbox, which drains on the connection's strand; the body is built on the
// worker pool. A client that goes away cancels what still runs.
class EmbeddingJob final : public DeferredJob, public std::enable_shared_from_this<EmbeddingJob> {
public:
    EmbeddingJob(Server::Impl& server, std::shared_ptr<engine::Engine> engine, std::shared_ptr<CallLog> call,
                 std::shared_ptr<Exchange> exchange, HeaderList headers, size_t reserved, bool base64, std::string model)
        : m_server(server),
          m_engine(std::move(engine)),
          m_call(std::move(call)),
          m_exchange(std::move(exchange)),
          m_headers(std::move(headers)),
          m_reserved(reserved),
          m_base64(base64),
          m_model(std::move(model)) {}

    ~EmbeddingJob() override {
        m_mailbox->close();
        cancelUnfinished();
        m_server.budget->release(m_reserved);
        if (m_reserved >= kLargeAnswer) m_server.releaseMemory();
    }

    void start(std::vector<engine::Request> requests) {
        m_inputs.resize(requests.size());
        m_self = shared_from_this();
        std::weak_ptr<EmbeddingJob> weak = m_self;
        m_exchange->onFinished([weak](bool ok) {
            if (auto j = weak.lock()) j->onFinished(ok);
        });
        m_ids.reserve(requests.size());
        for (size_t i = 0; i < requests.size(); ++i)
            m_ids.push_back(m_engine->submit(std::move(requests[i]), m_mailbox->sinkFor(static_cast<int>(i))));
        m_server.registerJob(m_self);  // only now (m_ids complete) may shutdown cancel from another thread
        m_mailbox->arm([weak, ex = m_exchange] {
            ex->post([weak] {
                if (auto j = weak.lock()) j->drain();
            });
        });
    }

    void cancelForShutdown() override {
        m_shutdown = true;
        for (auto id : m_ids) m_engine->cancel(id);
    }
    void closeMailbox() override { m_mailbox->close(); }

private:
    enum class State { Running, Building, Ending, Gone, Done };
    struct Input {
        bool finished = false;
        engine::FinishReason finish = engine::FinishReason::None;
        std::string error;
        ErrorCode errorCode = ErrorCode::Internal;
        std::vector<float> vector;
    };

    void drain() {
        std::deque<ChoiceEvent> events;
        m_mailbox->take(events);
        for (auto& ce : events) {
            if (!ce.event.final) continue;
            Input& in = m_inputs.at(static_cast<size_t>(ce.choice));
            in.finished = true;
            in.finish = ce.event.finish;
            in.error = ce.event.error;
            in.errorCode = ce.event.errorCode;
            in.vector = std::move(ce.event.embedding);
        }
        if (m_state == State::Gone) {
            if (allFinished()) finishGone();
            return;
        }
        if (m_state != State::Running) return;
        for (const Input& in : m_inputs)  // one failed input fails the request: no need to wait for the rest
            if (in.finished && in.finish == engine::FinishReason::Error) return answerError(fromEngine(in.errorCode, in.error));
        if (!allFinished()) return;
        for (const Input& in : m_inputs)
            if (in.finish != engine::FinishReason::Stop)
                return answerError(m_shutdown ? shuttingDown() : fromEngine(ErrorCode::Cancelled, "the request was cancelled"));
        m_call->entry.status = 200;
        m_state = State::Building;
        std::vector<std::vector<float>> vectors;
        for (auto& in : m_inputs) vectors.push_back(std::move(in.vector));
        std::function<void()> task = [self = shared_from_this(), vectors = std::move(vectors),
                                      tokens = m_call->entry.promptTokens] {
            std::string body = embeddingsBody(vectors, self->m_base64, self->m_model, tokens);
            self->m_exchange->post([self, body = std::move(body)]() mutable {
                if (self->m_state != State::Building) return;
                HttpResponse res;
                res.headers = self->m_headers;
                res.setContent(std::move(body), "application/json");
                self->m_state = State::Ending;
                self->m_exchange->respond(std::move(res));
            });
        };
        if (!m_server.pool->post(std::move(task))) task();
    }

    void answerError(const ApiError& e) {
        cancelUnfinished();
        m_call->entry.status = e.status;
        m_call->entry.error = e.message;
        HttpResponse res;
        res.status = e.status;
        res.headers = m_headers;
        if (e.status == 503) res.setHeader("Retry-After", "1");
        res.setContent(e.body(), "application/json");
        m_state = State::Ending;
        m_exchange->respond(std::move(res));
    }

    void onFinished(bool ok) {
        if (m_state == State::Done || m_state == State::Gone) return;
        if (ok || m_state == State::Ending || m_state == State::Building) {
            if (!ok) {
                m_call->entry.status = 499;
                m_call->entry.error = "client closed the request before the end of the answer";
            }
            complete();
            return;
        }
        // The client went away while the engine computes: cancel, report once the engine confirmed.
        m_state = State::Gone;
        cancelUnfinished();
        if (allFinished()) finishGone();
    }

    void finishGone() {
        m_call->entry.status = 499;
        m_call->entry.error = "client closed the request before the embeddings were computed";
        m_server.metrics.clientDisconnected();
        complete();
    }

    void complete() {
        m_state = State::Done;
        m_mailbox->close();
        m_server.finishCall(*m_call);
        auto keep = std::move(m_self);  // may be the last reference: nothing after this line
        m_server.unregisterJob(this);
    }

    void cancelUnfinished() {
        for (size_t i = 0; i < m_ids.size() && i < m_inputs.size(); ++i)
            if (!m_inputs[i].finished) m_engine->cancel(m_ids[i]);
    }

    bool allFinished() const {
        for (const Input& in : m_inputs)
            if (!in.finished) return false;
        return true;
    }

    Server::Impl& m_server;
    std::shared_ptr<engine::Engine> m_engine;
    std::shared_ptr<CallLog> m_call;
    std::shared_ptr<Exchange> m_exchange;
    HeaderList m_headers;
    size_t m_reserved;
    bool m_base64;
    std::string m_model;
    std::shared_ptr<Mailbox> m_mailbox = std::make_shared<Mailbox>();
    std::vector<engine::RequestId> m_ids;
    std::vector<Input> m_inputs;
    std::shared_ptr<EmbeddingJob> m_self;  // alive until complete()
    State m_state = State::Running;
    std::atomic<bool> m_shutdown{false};
};

}  // namespace

void Server::Impl::handleEmbeddings(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    auto engine = requireEngine();
    EmbeddingRequest r = parseEmbeddingRequest(parseBody(req.body));
    checkModel(r.model);
    const int sessionLen = engine->sessionLen();
    // An input may fill the whole session: it needs no room for an answer.
    const size_t maxBytes = promptByteBound(tokenFactsOf(engine), sessionLen);
    std::vector<engine::Request> requests;
    requests.reserve(r.inputs.size());
    int promptTokens = 0;
    for (size_t i = 0; i < r.inputs.size(); ++i) {
        const std::string param = r.inputs.size() == 1 ? "input" : "input[" + std::to_string(i) + "]";
        // Tokenized as a completion's prompt: the tokenizer's BOS rule; token ids checked against the vocabulary.
        BuiltPrompt p = textPrompt(*engine, r.inputs[i], specialTokens(), maxBytes, param);
        if (p.ids.empty())
            fail(badRequest("Invalid value for '" + param + "': it gives no tokens.", param, "invalid_value"));
        if (static_cast<int>(p.ids.size()) > sessionLen)
            fail(badRequest("This model's maximum context length is " + std::to_string(sessionLen) + " tokens. However, '" +
                                param + "' is " + std::to_string(p.ids.size()) + " tokens. Please shorten it.",
                            param, "context_length_exceeded"));
        promptTokens += static_cast<int>(p.ids.size());
        engine::Request q;
        q.promptIds = std::move(p.ids);
        q.output = engine::RequestOutput::Embedding;
        q.pooling = opts.embeddingPooling;
        requests.push_back(std::move(q));
    }
    call->entry.promptTokens = promptTokens;
    const std::string model = modelName();
    const size_t bound = bodyBound(requests.size(), engine->info().config.hiddenSize, r.base64, model);
    if (bound > opts.maxResponseBytes)
        fail(badRequest("These " + std::to_string(requests.size()) + " embeddings could take up to " + std::to_string(bound) +
                            " bytes; the limit is " + std::to_string(opts.maxResponseBytes) +
                            " bytes. Send fewer inputs per request" + (r.base64 ? "." : ", or use encoding_format 'base64'."),
                        "input", "response_too_large"));
    if (!budget->reserve(bound)) fail(tooManyInFlight(budget->used(), budget->limit()));
    auto job = std::make_shared<EmbeddingJob>(*this, engine, call, res.exchange, res.headers, bound, r.base64, model);
    call->deferred = true;
    res.deferred = true;
    job->start(std::move(requests));
}

}  // namespace lmw::server
