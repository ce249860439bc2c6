#include "transport.h"

#include <mutex>
#include <thread>
#include <unordered_map>

#include "connection.h"

namespace lmw::server {

namespace {
constexpr int kBacklog = 4096;  // the kernel clamps it to net.core.somaxconn (4096 on current kernels)
}

struct Transport::Impl : ConnectionHost {
    TransportOptions opts;
    TransportHooks hookFns;
    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    tcp::acceptor acceptor{asio::make_strand(io)};
    asio::steady_timer acceptRetry{acceptor.get_executor()};
    std::vector<std::thread> threads;
    std::atomic<bool> drainingNow{false};
    bool stopped = false;

    mutable std::mutex mutex;
    std::unordered_map<Connection*, std::weak_ptr<Connection>> conns;

    const TransportOptions& options() const override { return opts; }
    const TransportHooks& hooks() const override { return hookFns; }
    bool draining() const override { return drainingNow; }
    void forget(Connection* c) override {
        std::lock_guard lock(mutex);
        conns.erase(c);
    }

    std::vector<std::shared_ptr<Connection>> all() const {
        std::vector<std::shared_ptr<Connection>> out;
        std::lock_guard lock(mutex);
        for (const auto& [p, w] : conns)
            if (auto c = w.lock()) out.push_back(std::move(c));
        return out;
    }

    void accept() {
        acceptor.async_accept(io, [this](beast::error_code ec, tcp::socket socket) {
            if (!acceptor.is_open()) return;
            if (ec) {
                // Out of file descriptors (or buffers): the client waits in the backlog while we
                // retry, instead of a busy loop of failing accepts.
                acceptRetry.expires_after(std::chrono::milliseconds(50));
                acceptRetry.async_wait([this](beast::error_code e) {
                    if (!e) accept();
                });
                return;
            }
            admit(std::move(socket));
            accept();
        });
    }

    void admit(tcp::socket socket) {
        bool full;
        {
            std::lock_guard lock(mutex);
            full = opts.maxConnections > 0 && conns.size() >= static_cast<size_t>(opts.maxConnections);
        }
        if (full) {
            // A fresh socket's send buffer is empty: this short write cannot block.
            static const std::string busy = [] {
                std::string body = "{\"error\":{\"message\":\"Too many connections; retry later.\",\"type\":\"server_error\","
                                   "\"param\":null,\"code\":\"too_many_connections\"}}";
                return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                       "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
            }();
            beast::error_code e;
            asio::write(socket, asio::buffer(busy), e);
            socket.shutdown(tcp::socket::shutdown_send, e);
            socket.close(e);
            return;
        }
        auto c = std::make_shared<Connection>(std::move(socket), io, *this);
        {
            std::lock_guard lock(mutex);
            conns.emplace(c.get(), c);
        }
        c->start();
    }
};

Transport::Transport(TransportOptions options, TransportHooks hooks) : m(std::make_unique<Impl>()) {
    m->opts = options;
    m->hookFns = std::move(hooks);
}

Transport::~Transport() { stop(); }

Result<int> Transport::start(const std::string& hostIn, int port) {
    const std::string host = hostIn.empty() ? "0.0.0.0" : hostIn;
    const std::string where = host + ":" + std::to_string(port);
    beast::error_code ec;
    std::string bare = host.size() > 2 && host.front() == '[' && host.back() == ']' ? host.substr(1, host.size() - 2) : host;
    asio::ip::address addr = asio::ip::make_address(bare, ec);
    if (ec) {
        tcp::resolver resolver(m->io);
        auto results = resolver.resolve(bare, std::to_string(port), ec);
        if (ec || results.empty()) return Error(ErrorCode::Io, "cannot listen on " + where + ": unknown host");
        addr = results.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, static_cast<unsigned short>(port));
    m->acceptor.open(ep.protocol(), ec);
    if (!ec) m->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);  // never SO_REUSEPORT
    if (!ec && addr.is_v6() && addr.is_unspecified()) m->acceptor.set_option(asio::ip::v6_only(false), ec);
    if (!ec) m->acceptor.bind(ep, ec);
    if (!ec) m->acceptor.listen(kBacklog, ec);
    if (ec) {
        beast::error_code ignored;
        m->acceptor.close(ignored);
        return Error(ErrorCode::Io, "cannot listen on " + where + " (" + ec.message() +
                                        "; address in use, or not an address of this machine)");
    }
    const int bound = m->acceptor.local_endpoint().port();
    m->work.emplace(m->io.get_executor());
    asio::post(m->acceptor.get_executor(), [impl = m.get()] { impl->accept(); });
    const int n = std::max(1, m->opts.ioThreads);
    for (int i = 0; i < n; ++i)
        m->threads.emplace_back([impl = m.get()] {
            for (;;) {
                try {
                    impl->io.run();
                    return;
                } catch (...) {
                    // A handler must not throw; if one does, the others keep being served.
                }
            }
        });
    return bound;
}

void Transport::beginDrain() {
    m->drainingNow = true;
    for (auto& c : m->all()) c->drainNotice();
}

void Transport::closeAll() {
    m->drainingNow = true;
    asio::post(m->acceptor.get_executor(), [impl = m.get()] {
        beast::error_code ec;
        impl->acceptor.close(ec);
        impl->acceptRetry.cancel();
    });
    for (auto& c : m->all()) c->forceClose();
}

void Transport::stop() {
    if (m->stopped) return;
    m->stopped = true;
    if (m->threads.empty()) return;
    closeAll();
    // Let the closes run, then stop: whatever is still queued is destroyed with the io_context.
    m->work.reset();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (connections() > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    m->io.stop();
    for (auto& t : m->threads) t.join();
    m->threads.clear();
}

size_t Transport::connections() const {
    std::lock_guard lock(m->mutex);
    return m->conns.size();
}

}  // namespace lmw::server
