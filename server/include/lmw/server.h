#pragma once
// OpenAI-compatible HTTP server on the engine (an event-driven HTTP/1.1 transport on Boost.Beast
// and Asio inside, no Qt). The GUI and `lmw serve` both use it: the GUI toggles it on the engine it
// already has loaded, `lmw serve` owns its engine.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmw/error.h"

namespace lmw::engine {
class Engine;
enum class ContextOverflow;  // lmw/engine.h
enum class Pooling;          // lmw/engine.h
}

namespace lmw::server {

// One API route of the server's route table, as resources/openapi.json documents it.
struct RouteInfo {
    std::string path;    // OpenAPI form: "/v1/models/{model}"
    std::string method;  // "GET", "POST"
    bool auth = true;    // needs an API key when the server has keys
};
std::vector<RouteInfo> routeTable();

// One finished HTTP request, for a live request table (the GUI) or an access log.
struct RequestLogEntry {
    std::chrono::system_clock::time_point time;  // when the request arrived
    std::string method;         // "POST"
    std::string endpoint;       // "/v1/chat/completions"
    std::string client;         // "127.0.0.1:53422"
    int status = 0;             // HTTP status; 499 when the client went away before the end
    bool stream = false;
    bool tools = false;         // a chat request that gave the model tools
    bool structured = false;    // constrained output: response_format JSON, or a forced tool call
    int promptTokens = 0;
    int completionTokens = 0;
    double ttftSeconds = 0;     // submit to first token (generation requests only)
    double totalSeconds = 0;    // arrival to last byte handed to the socket
    double tokensPerSecond = 0; // completion tokens / decode time
    std::string finishReason;   // "stop", "length", "cancelled", "error", "" for non-generation requests
    std::string error;          // error message sent to the client, if any
    std::string requestId;      // the x-request-id of the answer
};

// Called from HTTP threads, several at once: it must be thread-safe, return quickly and not throw
// (a GUI should post the entry to its own thread, e.g. with a queued signal). Text that came from
// the client (method, endpoint, error) has its control characters escaped already.
using RequestLogFn = std::function<void(const RequestLogEntry&)>;

struct ServerOptions {
    std::string modelName;                 // id served by /v1/models; empty = the model folder's name
    std::vector<std::string> apiKeys;      // non-empty: /v1/* and /metrics need "Authorization: Bearer <key>" or "x-api-key: <key>"
    std::vector<std::string> allowOrigins; // CORS: exact origins or "*"; empty = no CORS headers
    // Bound to a loopback address, only requests whose Host is a loopback name (localhost,
    // 127.x.x.x, [::1]) or one of these are served (DNS rebinding); "*" accepts any Host.
    std::vector<std::string> allowedHosts;
    // Special-token text in prompts and message contents becomes special tokens (the template's
    // markup always does); false: it is plain text, as OpenAI does, so a client cannot forge a turn.
    bool allowSpecialTokens = false;
    // A chat conversation that no longer fits the session with its reply (see engine::ContextOverflow):
    // Stop answers 400 context_length_exceeded; the others leave out whole turns until it fits.
    engine::ContextOverflow contextOverflow{};  // Stop
    // POST /v1/embeddings: how an input's final hidden states become its vector (engine::Pooling).
    engine::Pooling embeddingPooling{};  // Mean
    // How chat replies are split (engine::OutputParser): the tool call format of requests with tools
    // ("auto": by the model family; "none"; or one of engine::toolCallParserNames()), and reasoning
    // ("auto": "think" when the chat template writes <think>; "none"; or a reasoningParserNames() one).
    std::string toolCallParser = "auto";
    std::string reasoningParser = "auto";

    // Transport: sizes and deadlines of one connection.
    size_t headerLimit = 64u << 10;        // request line + headers; larger: 431 (414 for the line)
    size_t bodyLimit = 16u << 20;          // bytes; larger bodies get 413
    double headTimeoutSeconds = 10;        // a request head must be complete this long after its first byte
    double bodyTimeoutSeconds = 30;        // and its body this long after the head
    double keepAliveTimeoutSeconds = 5;    // an idle connection is closed after this
    double writeTimeoutSeconds = 10;       // a client that stops reading is dropped (and its request cancelled)
    size_t streamBufferBytes = 16u << 20;  // unsent bytes one stream may queue for a slow reader before it is dropped
    int maxConnections = 0;                // 0 = as many as file descriptors allow
    int ioThreads = 2;                     // threads that move bytes
    int threads = 0;                       // handler threads (parsing, templates, tokenizing); 0 = the cores, >= 2
    double shutdownGraceSeconds = 2.5;     // stop(): time requests in flight get to finish before they are cancelled

    // Memory bounds of one answer and of all answers in flight (see response_budget.h).
    int maxChoices = 16;                   // n (times the prompts of a completion); more: 400
    int maxTopLogprobs = 20;               // top_logprobs / completions logprobs; more: 400
    size_t maxResponseBytes = 32u << 20;   // a request whose answer could be larger: 400
    // Answers in flight (whole ones as reserved up front, streams by their unsent bytes) may hold
    // this much; beyond, new requests get 429 and a stream whose client lags is dropped.
    size_t maxInflightResponseBytes = 256u << 20;
    // Request bodies held at once, all connections together, from their head (Content-Length, or
    // bodyLimit when chunked) until the handler is done with them; beyond, new bodies get 503.
    size_t maxInflightRequestBytes = 256u << 20;

    RequestLogFn requestLog;               // optional, see RequestLogFn
};

class Server {
public:
    Server();
    ~Server();  // stop()
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // The engine requests run on. Null (or never set): generation endpoints answer 503 "loading".
    // May be changed while running; requests in flight keep the engine they started with alive.
    void setEngine(std::shared_ptr<engine::Engine> engine);
    // Shown in 503 answers while no engine is set (e.g. "loading weights 40%").
    void setLoadingStatus(const std::string& status);

    // Binds host:port (port 0 = any free port) and serves on background threads. Returns the bound
    // port. Ignores SIGPIPE process-wide (a vanished client must not kill the process).
    Result<int> start(const std::string& host, int port, const ServerOptions& options = {});
    // Drains, then stops: new requests get 503 and idle connections close at once; requests in
    // flight get shutdownGraceSeconds to finish, then are cancelled (a stream still ends with a
    // final chunk, finish_reason "length", and [DONE]); after about one more second every
    // connection is closed and the threads are joined, whatever the clients do. Safe to call twice.
    void stop();
    bool isRunning() const;
    std::string url() const;  // "http://127.0.0.1:23333" (0.0.0.0 shown as 127.0.0.1)
    int port() const;

    struct Impl;

private:
    std::unique_ptr<Impl> m;
};

}  // namespace lmw::server
