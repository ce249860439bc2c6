#pragma once
// OpenAI-compatible HTTP server on the engine (cpp-httplib inside, no Qt). The GUI and `lmw serve`
// both use it: the GUI toggles it on the engine it already has loaded, `lmw serve` owns its engine.
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
}

namespace lmw::server {

// One finished HTTP request, for a live request table (the GUI) or an access log.
struct RequestLogEntry {
    std::chrono::system_clock::time_point time;  // when the request arrived
    std::string method;         // "POST"
    std::string endpoint;       // "/v1/chat/completions"
    std::string client;         // "127.0.0.1:53422"
    int status = 0;             // HTTP status; 499 when the client went away before the end
    bool stream = false;
    int promptTokens = 0;
    int completionTokens = 0;
    double ttftSeconds = 0;     // submit to first token (generation requests only)
    double totalSeconds = 0;    // arrival to last byte handed to the socket
    double tokensPerSecond = 0; // completion tokens / decode time
    std::string finishReason;   // "stop", "length", "abort", "error", "" for non-generation requests
    std::string error;          // error message sent to the client, if any
};

// Called from HTTP worker threads, several at once: it must be thread-safe, return quickly and
// not throw (a GUI should post the entry to its own thread, e.g. with a queued signal).
using RequestLogFn = std::function<void(const RequestLogEntry&)>;

struct ServerOptions {
    std::string modelName;                 // id served by /v1/models; empty = the model folder's name
    std::vector<std::string> apiKeys;      // non-empty: /v1/* and /metrics need "Authorization: Bearer <key>"
    std::vector<std::string> allowOrigins; // CORS: exact origins or "*"; empty = no CORS headers
    size_t bodyLimit = 16u << 20;          // bytes; larger bodies get 413
    int threads = 0;                       // HTTP worker threads; 0 = max(128, 2 * maxBatchSize)
    int readTimeoutSeconds = 10;           // a client that stalls mid-request is dropped after this
    int writeTimeoutSeconds = 10;          // a client that stops reading is dropped (and cancelled)
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
    // Cancels requests in flight (streams get a final chunk with finish_reason "abort"), closes the
    // listening socket and joins the worker threads. Safe to call twice.
    void stop();
    bool isRunning() const;
    std::string url() const;  // "http://127.0.0.1:23333" (0.0.0.0 shown as 127.0.0.1)
    int port() const;

    struct Impl;

private:
    std::unique_ptr<Impl> m;
};

}  // namespace lmw::server
