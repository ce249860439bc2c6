#include "connection.h"

#include <array>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <random>

namespace lmw::server {

namespace {

constexpr auto kLinger = std::chrono::seconds(2);  // reading what a refused client still sends

std::string hexSize(size_t n) {
    char buf[20];
    std::snprintf(buf, sizeof buf, "%zx", n);
    return buf;
}

// RFC 9110's IMF-fixdate, e.g. "Tue, 01 Dec 2026 13:58:27 GMT".
std::string httpDate() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    // By hand: strftime's %a and %b follow the locale (a GUI may have set one).
    static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                  months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

}  // namespace

bool sameText(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
        if (x != y) return false;
    }
    return true;
}

bool HttpRequest::hasHeader(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (sameText(k, name)) return true;
    return false;
}

std::string HttpRequest::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (sameText(k, name)) return v;
    return {};
}

void HttpResponse::setHeader(const std::string& name, std::string value) {
    for (auto& [k, v] : headers)
        if (sameText(k, name)) {
            v = std::move(value);
            return;
        }
    headers.emplace_back(name, std::move(value));
}

bool HttpResponse::hasHeader(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (sameText(k, name)) return true;
    return false;
}

bool saneRequestId(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-')) return false;
    return true;
}

std::string newRequestId() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}

// ---------------------------------------------------------------- lifetime

Connection::Connection(tcp::socket socket, asio::io_context& io, ConnectionHost& host)
    : m_host(host),
      m_socket(std::move(socket)),
      m_strand(asio::make_strand(io)),
      m_timer(m_strand),
      m_buffer(host.options().headerLimit + (64u << 10)) {
    beast::error_code ec;
    auto ep = m_socket.remote_endpoint(ec);
    if (!ec) {
        m_remoteAddr = ep.address().to_string();
        m_remotePort = ep.port();
    }
    m_client = m_remoteAddr + ":" + std::to_string(m_remotePort);
    m_socket.set_option(tcp::no_delay(true), ec);
}

Connection::~Connection() = default;

void Connection::start() {
    asio::dispatch(m_strand, [self = shared_from_this()] { self->readNext(); });
}

void Connection::drainNotice() {
    asio::post(m_strand, [self = shared_from_this()] {
        // Idle between requests: nothing is lost. A new connection's request is still answered (503).
        if (self->m_phase == Phase::Idle && self->m_buffer.size() == 0 && self->m_seq > 0) self->close();
    });
}

void Connection::forceClose() {
    asio::post(m_strand, [self = shared_from_this()] { self->close(); });
}

void Connection::release(size_t bytes) {
    bytes = std::min(bytes, m_reserved);
    m_reserved -= bytes;
    if (bytes && m_host.hooks().releaseOutput) m_host.hooks().releaseOutput(bytes);
}

void Connection::close() {
    if (m_phase == Phase::Closed) return;
    m_phase = Phase::Closed;
    release(m_reserved);
    m_bodyHold.reset();
    m_timer.cancel();
    beast::error_code ec;
    m_socket.close(ec);
    m_host.forget(this);
    if (m_onFinished) {
        auto f = std::move(m_onFinished);
        m_onFinished = nullptr;
        f(false);
    }
}

void Connection::fail() { close(); }

// ---------------------------------------------------------------- deadlines

void Connection::arm(std::chrono::steady_clock::duration d) {
    m_timer.expires_after(d);
    m_timer.async_wait([self = shared_from_this()](beast::error_code ec) { self->onDeadline(ec); });
}

void Connection::disarm() { m_timer.cancel(); }

void Connection::onDeadline(beast::error_code ec) {
    if (ec == asio::error::operation_aborted || m_phase == Phase::Closed) return;
    if (m_timer.expiry() > std::chrono::steady_clock::now()) return;  // re-armed meanwhile
    switch (m_phase) {
    case Phase::Head:
    case Phase::Body:
        m_timedOut = true;  // the read in progress ends with operation_aborted: answered 408 there
        m_socket.cancel(ec);
        break;
    case Phase::Handling:  // a write made no progress: the client does not read
    case Phase::Idle:
    case Phase::Closing:
    case Phase::Closed:
        close();
        break;
    }
}

// ---------------------------------------------------------------- reading

void Connection::readNext() {
    if (m_phase == Phase::Closed) return;
    m_parser.emplace();
    m_parser->header_limit(static_cast<std::uint32_t>(m_host.options().headerLimit));
    m_parser->body_limit(m_host.options().bodyLimit);
    m_timedOut = false;
    if (m_buffer.size() > 0) {  // pipelined: the next request is already here
        readHead();
        return;
    }
    if (m_host.draining() && m_seq > 0) {  // a kept-alive connection; a new one is answered 503
        closeGracefully();
        return;
    }
    m_phase = Phase::Idle;
    arm(m_host.options().keepAliveTimeout);
    // Wait for a byte without a read buffer: an idle connection holds no memory but the socket.
    m_socket.async_wait(tcp::socket::wait_read, asio::bind_executor(m_strand, [self = shared_from_this()](beast::error_code ec) {
        if (self->m_phase != Phase::Idle) return;
        if (ec) {
            self->close();
            return;
        }
        self->readHead();
    }));
}

void Connection::readHead() {
    m_phase = Phase::Head;
    m_headBytes = 0;
    m_method.clear();  // a refused head is logged with what is known of it, nothing older
    m_path.clear();
    m_requestId.clear();
    arm(m_host.options().headTimeout);
    parseHead();
}

// The head is fed to the parser by hand, counting every byte: Beast's own header_limit does not
// count header lines it has already consumed, so a head that arrives in pieces could grow without
// end (10,000 small lines, or 40 MB).
void Connection::parseHead() {
    const size_t limit = m_host.options().headerLimit;
    while (m_buffer.size() > 0) {
        beast::error_code ec;
        const size_t used = m_parser->put(m_buffer.data(), ec);
        m_buffer.consume(used);
        m_headBytes += used;
        if (m_headBytes > limit) return onHead(http::error::header_limit);
        if (ec == http::error::need_more) break;
        if (ec) return onHead(ec);
        if (m_parser->is_header_done()) return onHead({});
        if (used == 0) break;
    }
    if (m_headBytes + m_buffer.size() > limit) return onHead(http::error::header_limit);
    const size_t room = std::min<size_t>(16u << 10, limit + 1 - m_headBytes - m_buffer.size());
    m_socket.async_read_some(m_buffer.prepare(room),
                             asio::bind_executor(m_strand, [self = shared_from_this()](beast::error_code ec, size_t n) {
                                 if (self->m_phase != Phase::Head) return;
                                 self->m_buffer.commit(n);
                                 if (ec == asio::error::eof)
                                     ec = self->m_headBytes + self->m_buffer.size() == 0 ? http::error::end_of_stream
                                                                                         : http::error::partial_message;
                                 if (ec) return self->onHead(ec);
                                 self->parseHead();
                             }));
}

void Connection::onHead(beast::error_code ec) {
    if (m_phase == Phase::Closed) return;
    if (ec) {
        if (ec == http::error::end_of_stream) {  // closed (or half-closed) between requests
            closeGracefully();
            return;
        }
        rejectParseError(ec);
        return;
    }
    const auto& msg = m_parser->get();
    m_method = std::string(msg.method_string());
    m_path = requestPath(msg.target());
    m_version = static_cast<int>(msg.version());
    std::string id(msg["X-Request-Id"]);
    m_requestId = saneRequestId(id) ? id : newRequestId();

    if (auto verdict = checkRequestHead(*m_parser, m_host.options().bodyLimit); verdict.status)
        return reject(verdict.status, verdict.message);

    if (m_parser->is_done()) {
        dispatch();
        return;
    }
    if (!reserveBody()) return reject(503, "Too many request bodies are in flight; retry in a moment.");
    if (sameText(std::string(msg[http::field::expect]), "100-continue")) {
        auto line = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
        arm(m_host.options().writeTimeout);
        asio::async_write(m_socket, asio::buffer(*line),
                          asio::bind_executor(m_strand, [self = shared_from_this(), line](beast::error_code ec, size_t) {
                              if (self->m_phase == Phase::Closed) return;
                              if (ec) return self->close();
                              self->readBody();
                          }));
        return;
    }
    readBody();
}

bool Connection::reserveBody() {
    const auto& hooks = m_host.hooks();
    if (!hooks.reserveInput) return true;
    const auto length = m_parser->content_length();
    const size_t bytes = length ? static_cast<size_t>(*length) : m_host.options().bodyLimit;
    if (bytes == 0) return true;
    if (!hooks.reserveInput(bytes)) return false;
    // Built in place: a copy would release the bytes a second time.
    struct Hold {
        Hold(std::function<void(size_t)> r, size_t n) : release(std::move(r)), bytes(n) {}
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        ~Hold() {
            if (release) release(bytes);
        }
        std::function<void(size_t)> release;
        size_t bytes;
    };
    m_bodyHold = std::make_shared<Hold>(hooks.releaseInput, bytes);
    return true;
}

void Connection::readBody() {
    m_phase = Phase::Body;
    arm(m_host.options().bodyTimeout);
    http::async_read(m_socket, m_buffer, *m_parser,
                     asio::bind_executor(m_strand, [self = shared_from_this()](beast::error_code ec, size_t) {
                         self->onBody(ec);
                     }));
}

void Connection::onBody(beast::error_code ec) {
    if (m_phase == Phase::Closed) return;
    if (ec) return rejectParseError(ec);
    dispatch();
}

void Connection::rejectParseError(beast::error_code ec) {
    if (m_timedOut) return reject(408, "");
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        // 414 when even the request line does not end within the limit (the parser takes the
        // line, and so its target, as soon as the line is complete).
        return reject(m_parser->get().target().empty() ? 414 : 431, "");
    }
    if (ec == http::error::body_limit) return reject(413, "");
    if (ec == http::error::partial_message || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted || ec == asio::error::broken_pipe) {
        close();  // the client left mid-request: nobody to answer
        return;
    }
    reject(400, "Malformed HTTP request: " + ec.message() + ".");
}

void Connection::dispatch() {
    disarm();
    m_phase = Phase::Handling;
    ++m_seq;
    m_keepAlive = m_parser->keep_alive();
    m_streaming = m_chunked = m_answerEnded = false;
    if (m_host.draining()) return reject(503, "");

    HttpRequest req;
    auto msg = m_parser->release();
    req.method = m_method;
    req.target = std::string(msg.target());
    req.path = m_path;
    req.version = m_version;
    for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    req.body = std::move(msg.body());
    req.remoteAddr = m_remoteAddr;
    req.remotePort = m_remotePort;
    req.requestId = m_requestId;
    req.bodyHold = std::move(m_bodyHold);
    m_parser.reset();
    auto ex = std::make_shared<ConnectionExchange>(shared_from_this(), m_strand, m_seq);
    m_host.hooks().dispatch(std::move(req), std::move(ex));
}

void Connection::reject(int status, const std::string& message) {
    // After a refused head the rest of the message is unread: the connection cannot go on.
    if (m_phase != Phase::Handling) {
        m_phase = Phase::Handling;
        ++m_seq;
        m_streaming = m_chunked = m_answerEnded = false;
    }
    disarm();
    m_keepAlive = false;
    m_bodyHold.reset();  // the rest of the body is never read
    if (m_requestId.empty()) m_requestId = newRequestId();
    // A head refused while it was parsed (413 by Content-Length) has its target in the parser already.
    const std::string path = !m_path.empty() || !m_parser ? m_path : requestPath(m_parser->get().target());
    std::string body = m_host.hooks().errorBody ? m_host.hooks().errorBody(status, path, message) : std::string();
    if (m_host.hooks().rejected) {
        TransportReject r{m_method, path, m_client, m_requestId, status, message};
        m_host.hooks().rejected(r);
    }
    HttpResponse res;
    res.status = status;
    res.setContent(std::move(body), "application/json");
    if (status == 503) res.setHeader("Retry-After", "1");
    respond(m_seq, std::move(res));
}

// ---------------------------------------------------------------- answering

std::string Connection::head(const HttpResponse& res, bool stream) const {
    std::string reason(http::obsolete_reason(static_cast<http::status>(res.status)));
    if (reason.empty() || reason == "<unknown-status>") reason = "Status";
    std::string h = "HTTP/1.1 " + std::to_string(res.status) + " " + reason + "\r\nDate: " + httpDate() + "\r\n";
    if (!res.contentType.empty()) h += "Content-Type: " + res.contentType + "\r\n";
    for (const auto& [k, v] : res.headers) {
        // Framing headers are the transport's; a handler cannot set them by mistake.
        if (sameText(k, "Content-Length") || sameText(k, "Transfer-Encoding") || sameText(k, "Connection")) continue;
        h += k + ": " + v + "\r\n";
    }
    h += "x-request-id: " + m_requestId + "\r\n";
    const bool noBody = res.status == 204 || res.status == 304 || (res.status >= 100 && res.status < 200);
    if (stream) {
        if (m_chunked) h += "Transfer-Encoding: chunked\r\n";
    } else if (!noBody) {
        h += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
    }
    h += m_keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    return h;
}

void Connection::respond(uint64_t seq, HttpResponse res) {
    if (!current(seq) || m_streaming) return;
    if (m_host.draining()) m_keepAlive = false;
    std::string out = head(res, false);
    if (m_method != "HEAD" && res.status != 204 && res.status != 304) out += res.body;
    m_answerEnded = true;
    queue(std::move(out));
    flush();
}

void Connection::beginStream(uint64_t seq, HttpResponse headRes) {
    if (!current(seq) || m_streaming) return;
    m_streaming = true;
    // HTTP/1.0 has no chunked coding: the body then ends with the connection.
    m_chunked = m_version >= 11;
    if (!m_chunked || m_host.draining()) m_keepAlive = false;
    queue(head(headRes, true));
    flush();
}

void Connection::write(uint64_t seq, std::string data) {
    if (!current(seq) || !m_streaming || data.empty()) return;
    if (m_chunked) data = hexSize(data.size()) + "\r\n" + data + "\r\n";
    // The client reads slower than tokens come: what waits for it is bounded per stream and by the
    // server's budget, else it is dropped (its request is cancelled) rather than buffered without end.
    const auto& hooks = m_host.hooks();
    if (m_outBytes + data.size() > m_host.options().streamBufferLimit ||
        (hooks.reserveOutput && !hooks.reserveOutput(data.size()))) {
        fail();
        return;
    }
    if (hooks.reserveOutput) m_reserved += data.size();
    queue(std::move(data));
    flush();
}

void Connection::end(uint64_t seq) {
    if (!current(seq) || !m_streaming) return;
    m_answerEnded = true;
    if (m_chunked) queue("0\r\n\r\n");
    flush();
}

void Connection::onFinished(uint64_t seq, std::function<void(bool)> f) {
    if (seq != m_seq || m_phase != Phase::Handling) {
        f(false);
        return;
    }
    m_onFinished = std::move(f);
}

void Connection::queue(std::string bytes) {
    m_outBytes += bytes.size();
    m_out.push_back(std::move(bytes));
}

void Connection::flush() {
    if (m_writing || m_phase == Phase::Closed) return;
    if (m_out.empty()) {
        if (m_answerEnded) answerDone(true);
        return;
    }
    m_writing = true;
    m_inFlight.clear();
    while (!m_out.empty()) {
        m_inFlight.push_back(std::move(m_out.front()));
        m_out.pop_front();
    }
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(m_inFlight.size());
    for (const auto& s : m_inFlight) bufs.emplace_back(asio::buffer(s));
    arm(m_host.options().writeTimeout);
    asio::async_write(m_socket, bufs,
                      asio::bind_executor(m_strand, [self = shared_from_this()](beast::error_code ec, size_t n) {
                          self->onWritten(ec, n);
                      }));
}

void Connection::onWritten(beast::error_code ec, size_t bytes) {
    m_writing = false;
    m_outBytes -= std::min(m_outBytes, bytes);
    release(bytes);  // heads are a few bytes; counting them as stream bytes is harmless
    m_inFlight.clear();
    if (m_phase == Phase::Closed) return;
    if (ec) return fail();
    disarm();
    flush();
}

void Connection::answerDone(bool ok) {
    if (m_onFinished) {
        auto f = std::move(m_onFinished);
        m_onFinished = nullptr;
        f(ok);
    }
    if (m_phase == Phase::Closed) return;
    m_answerEnded = false;
    m_streaming = false;
    m_outBytes = 0;
    if (m_keepAlive && !m_host.draining()) readNext();
    else closeGracefully();
}

void Connection::closeGracefully() {
    if (m_phase == Phase::Closed) return;
    // Send FIN, then read what the client still sends for a moment: closing with unread bytes
    // would make the kernel send RST, and the client could lose the answer we just wrote.
    m_phase = Phase::Closing;
    beast::error_code ec;
    m_socket.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    arm(kLinger);
    m_buffer.clear();
    discardUntilClosed();
}

void Connection::discardUntilClosed() {
    auto scratch = std::make_shared<std::array<char, 16384>>();
    m_socket.async_read_some(asio::buffer(*scratch),
                             asio::bind_executor(m_strand, [self = shared_from_this(), scratch](beast::error_code ec, size_t) {
                                 if (self->m_phase != Phase::Closing) return;
                                 if (ec) return self->close();
                                 self->discardUntilClosed();
                             }));
}

// ---------------------------------------------------------------- ConnectionExchange

template <class F>
void ConnectionExchange::run(F&& f) {
    asio::dispatch(m_strand, [c = m_conn, f = std::forward<F>(f)]() mutable { f(*c); });
}

void ConnectionExchange::respond(HttpResponse res) {
    run([seq = m_seq, res = std::move(res)](Connection& c) mutable { c.respond(seq, std::move(res)); });
}

void ConnectionExchange::beginStream(HttpResponse head) {
    run([seq = m_seq, head = std::move(head)](Connection& c) mutable { c.beginStream(seq, std::move(head)); });
}

void ConnectionExchange::write(std::string data) {
    run([seq = m_seq, data = std::move(data)](Connection& c) mutable { c.write(seq, std::move(data)); });
}

void ConnectionExchange::end() {
    run([seq = m_seq](Connection& c) { c.end(seq); });
}

void ConnectionExchange::onFinished(std::function<void(bool ok)> f) {
    asio::dispatch(m_strand, [c = m_conn, seq = m_seq, f = std::move(f)]() mutable { c->onFinished(seq, std::move(f)); });
}

void ConnectionExchange::post(std::function<void()> f) { asio::post(m_strand, std::move(f)); }

}  // namespace lmw::server
