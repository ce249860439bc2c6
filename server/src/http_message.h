#pragma once
// One HTTP exchange as handlers see it: the parsed request, the response they fill in, and the
// Exchange through which a handler answers later (a generation that waits for the engine).
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmw::server {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// ASCII case-insensitive equality (header names, tokens such as "chunked").
bool sameText(std::string_view a, std::string_view b);

struct HttpRequest {
    std::string method;
    std::string target;     // as sent: "/v1/models?x=1"
    std::string path;       // percent-decoded, without the query
    int version = 11;       // 10 or 11
    HeaderList headers;     // as received, in order
    std::string body;       // de-chunked
    std::string remoteAddr;
    int remotePort = 0;
    std::string requestId;  // the client's X-Request-Id when sane, else a fresh one; echoed back
    std::string pathParam;  // routing: the {model} of /v1/models/{model}
    std::shared_ptr<void> bodyHold;  // the body's share of the request-body budget, released with the last copy

    bool hasHeader(std::string_view name) const;
    std::string header(std::string_view name) const;  // first value; "" when absent
};

class Exchange;

struct HttpResponse {
    int status = 200;
    HeaderList headers;
    std::string body;
    std::string contentType;
    // Set by a handler that answers later through `exchange` (the transport sends nothing now).
    bool deferred = false;
    std::shared_ptr<Exchange> exchange;

    void setContent(std::string content, std::string type) {
        body = std::move(content);
        contentType = std::move(type);
    }
    void setHeader(const std::string& name, std::string value);  // replaces a header of that name
    bool hasHeader(std::string_view name) const;
};

// The connection's side of one request. Every call may come from any thread: it is carried out
// on the connection's strand, in call order, and is a no-op once the answer has ended or failed.
class Exchange {
public:
    virtual ~Exchange() = default;
    virtual void respond(HttpResponse res) = 0;       // the whole answer
    virtual void beginStream(HttpResponse head) = 0;  // status and headers; body pieces follow
    virtual void write(std::string data) = 0;         // the next piece of a streamed body
    virtual void end() = 0;                           // the streamed body is complete
    // f(true) once the answer's last byte is handed to the socket; f(false) when it cannot be
    // delivered (client gone or not reading, server closing). Runs on the strand, once.
    virtual void onFinished(std::function<void(bool ok)> f) = 0;
    // Runs f on the connection's strand (also after the connection is gone, until the server stops).
    virtual void post(std::function<void()> f) = 0;
};

}  // namespace lmw::server
