#pragma once
// The HTTP/1.1 transport: an Asio acceptor and a few I/O threads; every connection is a state
// machine on its own strand (connection.h), so an idle or slow client costs memory, not a thread.
// Handlers run elsewhere (the server's worker pool); this layer only frames requests and answers.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "http_message.h"
#include "lmw/error.h"

namespace lmw::server {

struct TransportOptions {
    size_t headerLimit = 64u << 10;   // request line + headers; more is 431 (414 for the line alone)
    size_t bodyLimit = 16u << 20;     // more is 413, before the body is read when Content-Length says so
    std::chrono::milliseconds headTimeout{10000};      // first byte to the end of the head; then 408
    std::chrono::milliseconds bodyTimeout{30000};      // end of the head to the end of the body; then 408
    std::chrono::milliseconds keepAliveTimeout{5000};  // idle between requests; then closed
    std::chrono::milliseconds writeTimeout{10000};     // one write that does not progress; then dropped
    size_t streamBufferLimit = 16u << 20;   // unsent bytes of one streamed answer; more: client dropped
    int maxConnections = 0;                 // 0: as many as file descriptors allow
    int ioThreads = 2;
};

// A request the transport answered itself (malformed, too large, too slow, shutting down), for
// the request log and metrics.
struct TransportReject {
    std::string method;  // "" when the request line was not readable
    std::string path;
    std::string client;
    std::string requestId;
    int status = 0;
    std::string message;
};

struct TransportHooks {
    // Called on the connection's strand; the handler answers through the Exchange (now or later).
    std::function<void(HttpRequest request, std::shared_ptr<Exchange> exchange)> dispatch;
    std::function<void(const TransportReject&)> rejected;
    // JSON error body for a status the transport answers by itself; path: the request's, when its
    // head was read (the error's shape depends on the API).
    std::function<std::string(int status, const std::string& path, const std::string& message)> errorBody;
    // The unsent bytes of streamed answers are held in the server's response budget: a stream
    // whose client lags when the budget is spent is dropped. Both optional.
    std::function<bool(size_t bytes)> reserveOutput;
    std::function<void(size_t bytes)> releaseOutput;
    // A request body is reserved before it is read (its Content-Length, or bodyLimit when chunked)
    // and released when the last copy of its HttpRequest is gone; refused: 503. Both optional.
    std::function<bool(size_t bytes)> reserveInput;
    std::function<void(size_t bytes)> releaseInput;
};

class Transport {
public:
    Transport(TransportOptions options, TransportHooks hooks);
    ~Transport();  // stop()
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;

    // Binds (port 0: any free port), listens with a backlog of at least 1024, starts the I/O threads.
    Result<int> start(const std::string& host, int port);
    // Shutting down, step 1: new requests get 503 and "Connection: close"; idle connections close.
    void beginDrain();
    // Step 2: every connection is closed now (answers in progress fail), the acceptor too.
    void closeAll();
    // Step 3: stops and joins the I/O threads, then destroys what was still queued. Safe twice.
    void stop();
    size_t connections() const;

    struct Impl;

private:
    std::unique_ptr<Impl> m;
};

}  // namespace lmw::server
