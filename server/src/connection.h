#pragma once
// One client connection: a state machine on its own strand that reads a request head under one
// deadline and its body under another, hands the request to the server, writes the answer, and
// then reads the next request (pipelined bytes are kept in the buffer, so answers go out in order).
//
//   Idle --first byte--> Head --head parsed--> Body --complete--> Handling --answer written--> Idle
//     |keep-alive timeout  |head timeout: 408    |body timeout: 408  |write stalls: dropped
//     v                    v                     v                   v
//   closed <----------- Closing (shutdown(SHUT_WR), then read and discard for a moment) ----
//
// Nothing is read while a request is being handled: a client that half-closes after its request
// (shutdown(SHUT_WR)) is answered; a client that vanished is noticed when a write fails.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_head.h"
#include "http_message.h"
#include "transport.h"

namespace lmw::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;

class Connection;

// What connections share with the transport that owns them.
struct ConnectionHost {
    virtual ~ConnectionHost() = default;
    virtual const TransportOptions& options() const = 0;
    virtual const TransportHooks& hooks() const = 0;
    virtual bool draining() const = 0;
    virtual void forget(Connection* c) = 0;  // the connection is closed
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(tcp::socket socket, asio::io_context& io, ConnectionHost& host);
    ~Connection();
    void start();
    // From any thread: close when idle (drain), or now (end of the drain).
    void drainNotice();
    void forceClose();
    const Strand& strand() const { return m_strand; }

    // Exchange calls for request number `seq` (stale ones are ignored). On the strand.
    void respond(uint64_t seq, HttpResponse res);
    void beginStream(uint64_t seq, HttpResponse head);
    void write(uint64_t seq, std::string data);
    void end(uint64_t seq);
    void onFinished(uint64_t seq, std::function<void(bool)> f);

private:
    enum class Phase { Idle, Head, Body, Handling, Closing, Closed };

    void readNext();
    void readHead();
    void parseHead();
    void onHead(beast::error_code ec);
    bool reserveBody();  // false: the request-body budget is spent
    void readBody();
    void onBody(beast::error_code ec);
    void dispatch();
    // Answers a request the transport refuses by itself, then closes.
    void reject(int status, const std::string& message);
    void rejectParseError(beast::error_code ec);

    void queue(std::string bytes);
    void release(size_t bytes);
    void flush();
    void onWritten(beast::error_code ec, size_t bytes);
    void answerDone(bool ok);
    void closeGracefully();
    void discardUntilClosed();
    void fail();   // the answer cannot be delivered: report it, close now
    void close();  // closes the socket; idempotent

    void arm(std::chrono::steady_clock::duration d);
    void disarm();
    void onDeadline(beast::error_code ec);

    std::string head(const HttpResponse& res, bool stream) const;
    bool current(uint64_t seq) const { return seq == m_seq && m_phase == Phase::Handling && !m_answerEnded; }

    ConnectionHost& m_host;
    tcp::socket m_socket;
    Strand m_strand;
    asio::steady_timer m_timer;
    beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::string_body>> m_parser;
    Phase m_phase = Phase::Idle;
    bool m_timedOut = false;  // the deadline cancelled the read in progress
    size_t m_headBytes = 0;   // bytes of the head the parser took so far
    std::string m_client;     // "127.0.0.1:53422"
    std::string m_remoteAddr;
    int m_remotePort = 0;

    // The request being answered.
    uint64_t m_seq = 0;
    std::string m_method, m_path, m_requestId;
    int m_version = 11;
    bool m_keepAlive = true;
    bool m_streaming = false;
    bool m_chunked = false;
    bool m_answerEnded = false;  // the last byte is queued
    std::function<void(bool)> m_onFinished;

    std::deque<std::string> m_out;        // queued, not yet being written
    std::vector<std::string> m_inFlight;  // being written now
    size_t m_outBytes = 0;                // queued + in flight
    std::shared_ptr<void> m_bodyHold;      // the request body's reservation (TransportHooks::reserveInput)
    size_t m_reserved = 0;                // of them, stream bytes held in the response budget
    bool m_writing = false;
};

// Exchange of request `seq` on a connection. It owns the connection: while a request is being
// handled no I/O is pending on it, so nothing else keeps it alive.
class ConnectionExchange : public Exchange {
public:
    ConnectionExchange(std::shared_ptr<Connection> c, Strand strand, uint64_t seq)
        : m_conn(std::move(c)), m_strand(std::move(strand)), m_seq(seq) {}
    void respond(HttpResponse res) override;
    void beginStream(HttpResponse head) override;
    void write(std::string data) override;
    void end() override;
    void onFinished(std::function<void(bool ok)> f) override;
    void post(std::function<void()> f) override;

private:
    template <class F>
    void run(F&& f);
    std::shared_ptr<Connection> m_conn;
    Strand m_strand;
    uint64_t m_seq;
};

// "X-Request-Id" from a client is echoed when it is 1..128 characters of [A-Za-z0-9._:-].
bool saneRequestId(std::string_view id);
std::string newRequestId();

}  // namespace lmw::server
