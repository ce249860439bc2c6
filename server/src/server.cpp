// lmw::server::Server: httplib setup, routing, auth, CORS, and the request log.
#include "lmw/server.h"

#include <chrono>
#include <thread>

#include <sys/socket.h>

#include <csignal>
#include <cstring>

#include "generation.h"
#include "server_impl.h"

namespace lmw::server {

namespace {

// Compares without an early exit, so the time taken does not reveal how much of a key matched.
bool sameKey(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

struct Route {
    const char* path;
    const char* methods;  // allowed, for 405 and CORS
};

// Every known path, for telling 404 from 405 in one place.
const Route kRoutes[] = {
    {"/v1/models", "GET"},         {"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"},
    {"/v1/encode", "POST"},        {"/health", "GET"},               {"/metrics", "GET"},
    {"/openapi.json", "GET"},      {"/", "GET"},                     {"/docs", "GET"},
};

const Route* findRoute(const std::string& path) {
    for (const auto& r : kRoutes)
        if (path == r.path) return &r;
    if (path.rfind("/v1/models/", 0) == 0) return &kRoutes[0];
    if (path.rfind("/docs/", 0) == 0) return &kRoutes[8];
    return nullptr;
}

// Metric label: a known path, never a client-chosen string.
std::string endpointLabel(const std::string& path) {
    const Route* r = findRoute(path);
    if (!r) return "other";
    if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
    return r->path;
}

}  // namespace

std::shared_ptr<engine::Engine> Server::Impl::currentEngine() const {
    std::lock_guard lock(engineMutex);
    return engine;
}

std::shared_ptr<engine::Engine> Server::Impl::requireEngine() const {
    if (stopping) fail({503, "The server is shutting down.", "server_error", "", "shutting_down"});
    std::lock_guard lock(engineMutex);
    if (!engine) fail(serviceUnavailable(loadingStatus));
    return engine;
}

std::string Server::Impl::modelName() const {
    if (!opts.modelName.empty()) return opts.modelName;
    auto e = currentEngine();
    return e ? e->info().name : std::string();
}

void Server::Impl::checkModel(const std::string& requested) const {
    if (requested.empty()) return;
    auto e = currentEngine();
    if (requested == modelName() || (e && requested == e->info().name)) return;
    fail(modelNotFound(requested));
}

void Server::Impl::finishCall(CallLog& call) {
    if (call.done) return;
    call.done = true;
    call.entry.totalSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - call.start).count();
    metrics.requestFinished(endpointLabel(call.entry.endpoint), call.entry.status);
    if (opts.requestLog) {
        try {
            opts.requestLog(call.entry);
        } catch (...) {
            // the log is best effort; it must not break the answer
        }
    }
}

void Server::Impl::sendError(httplib::Response& res, CallLog& call, const ApiError& e) {
    res.status = e.status;
    res.set_content(e.body(), "application/json");
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
    call.entry.status = e.status;
    call.entry.error = e.message;
}

void Server::Impl::registerJob(GenerationJob* job) {
    std::lock_guard lock(jobsMutex);
    jobs.insert(job);
}

void Server::Impl::unregisterJob(GenerationJob* job) {
    std::lock_guard lock(jobsMutex);
    jobs.erase(job);
}

bool Server::Impl::authorized(const httplib::Request& req) const {
    if (opts.apiKeys.empty()) return true;
    std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.size() <= prefix.size() || strncasecmp(auth.c_str(), prefix.c_str(), prefix.size()) != 0) return false;
    std::string key = auth.substr(prefix.size());
    bool ok = false;
    for (const auto& k : opts.apiKeys) ok |= sameKey(key, k);
    return ok;
}

void Server::Impl::addCorsHeaders(const httplib::Request& req, httplib::Response& res) const {
    if (opts.allowOrigins.empty() || !req.has_header("Origin")) return;
    std::string origin = req.get_header_value("Origin");
    bool any = false, match = false;
    for (const auto& o : opts.allowOrigins) {
        if (o == "*") any = true;
        else if (o == origin) match = true;
    }
    if (!any && !match) return;
    res.set_header("Access-Control-Allow-Origin", match ? origin : "*");
    if (match) res.set_header("Vary", "Origin");
    res.set_header("Access-Control-Expose-Headers", "Content-Type");
}

void Server::Impl::setupRoutes() {
    using Req = const httplib::Request&;
    using Res = httplib::Response&;
    // Every handler runs inside this wrapper: the call log, auth, the body limit, and the one
    // place where exceptions become error answers.
    auto route = [this](bool needsAuth, std::function<void(Req, Res, const std::shared_ptr<CallLog>&)> f) {
        return [this, needsAuth, f](Req req, Res res) {
            auto call = std::make_shared<CallLog>();
            call->entry.time = std::chrono::system_clock::now();
            call->entry.method = req.method;
            call->entry.endpoint = req.path;
            call->entry.client = req.remote_addr + ":" + std::to_string(req.remote_port);
            metrics.requestStarted();
            addCorsHeaders(req, res);
            try {
                if (needsAuth && !authorized(req)) fail(unauthorized());
                if (req.body.size() > opts.bodyLimit) fail(payloadTooLarge(opts.bodyLimit));
                f(req, res, call);
            } catch (const ApiException& e) {
                sendError(res, *call, e.error);
            } catch (const Error& e) {
                sendError(res, *call, fromEngine(e.code(), e.what()));
            } catch (const std::bad_alloc&) {
                sendError(res, *call, fromEngine(ErrorCode::OutOfMemory, "while answering the request"));
            } catch (const std::exception& e) {
                sendError(res, *call, fromEngine(ErrorCode::Internal, e.what()));
            } catch (...) {
                sendError(res, *call, fromEngine(ErrorCode::Internal, "unknown exception"));
            }
            if (call->deferred) return;
            if (call->entry.status == 0) call->entry.status = res.status > 0 ? res.status : 200;
            finishCall(*call);
        };
    };
    auto simple = [this, route](bool needsAuth, void (Server::Impl::*h)(Req, Res, CallLog&)) {
        return route(needsAuth, [this, h](Req req, Res res, const std::shared_ptr<CallLog>& call) { (this->*h)(req, res, *call); });
    };

    http.Get("/v1/models", simple(true, &Impl::handleModels));
    http.Get(R"(/v1/models/(.+))", simple(true, &Impl::handleModels));
    http.Post("/v1/chat/completions",
              route(true, [this](Req q, Res r, const std::shared_ptr<CallLog>& c) { handleChat(q, r, c); }));
    http.Post("/v1/completions",
              route(true, [this](Req q, Res r, const std::shared_ptr<CallLog>& c) { handleCompletions(q, r, c); }));
    http.Post("/v1/encode", simple(true, &Impl::handleEncode));
    http.Get("/health", simple(false, &Impl::handleHealth));
    http.Get("/metrics", simple(true, &Impl::handleMetrics));
    http.Get("/openapi.json", simple(false, &Impl::handleDocs));
    http.Get("/", simple(false, &Impl::handleDocs));
    http.Get("/docs", simple(false, &Impl::handleDocs));
    http.Get(R"(/docs/.*)", simple(false, &Impl::handleDocs));

    // Anything else: 404 for unknown paths, 405 for a known path with another method, and CORS
    // preflight for OPTIONS.
    auto fallback = route(false, [this](Req req, Res res, const std::shared_ptr<CallLog>& call) {
        const Route* r = findRoute(req.path);
        if (req.method == "OPTIONS") {
            res.status = 204;
            if (res.has_header("Access-Control-Allow-Origin")) {
                res.set_header("Access-Control-Allow-Methods", r ? std::string(r->methods) + ", OPTIONS"
                                                                 : std::string("GET, POST, OPTIONS"));
                std::string asked = req.get_header_value("Access-Control-Request-Headers");
                res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
                res.set_header("Access-Control-Max-Age", "600");
            }
            res.set_header("Allow", r ? std::string(r->methods) + ", OPTIONS" : std::string("GET, POST, OPTIONS"));
            return;
        }
        if (!r) fail(pathNotFound(req.method, req.path));
        res.set_header("Allow", r->methods);
        fail(methodNotAllowed(req.method, req.path));
    });
    http.Get(".*", fallback);
    http.Post(".*", fallback);
    http.Put(".*", fallback);
    http.Patch(".*", fallback);
    http.Delete(".*", fallback);
    http.Options(".*", fallback);

    // Statuses httplib answers by itself (413 over the body limit, 400 for a broken request line,
    // unknown methods): give them the same JSON error body.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](Req req, Res res) {
        if (!res.body.empty() || res.is_chunked_content_provider_ || res.content_length_ > 0)
            return httplib::Server::HandlerResponse::Unhandled;
        ApiError e = fromHttpStatus(res.status, req.method, req.path, opts.bodyLimit);
        addCorsHeaders(req, res);
        res.set_content(e.body(), "application/json");
        CallLog call;
        call.entry.time = std::chrono::system_clock::now();
        call.entry.method = req.method;
        call.entry.endpoint = req.path;
        call.entry.client = req.remote_addr + ":" + std::to_string(req.remote_port);
        call.entry.status = e.status;
        call.entry.error = e.message;
        metrics.requestStarted();
        finishCall(call);
        return httplib::Server::HandlerResponse::Handled;
    }));
}

Server::Server() : m(std::make_unique<Impl>()) {}

Server::~Server() { stop(); }

void Server::setEngine(std::shared_ptr<engine::Engine> engine) {
    std::lock_guard lock(m->engineMutex);
    m->engine = std::move(engine);
}

void Server::setLoadingStatus(const std::string& status) {
    std::lock_guard lock(m->engineMutex);
    m->loadingStatus = status;
}

Result<int> Server::start(const std::string& host, int port, const ServerOptions& options) {
    if (m->running) return Error(ErrorCode::InvalidArgument, "the server is already running on " + url());
    if (port < 0 || port > 65535) return Error(ErrorCode::InvalidArgument, "port " + std::to_string(port) + " is out of range");
    std::signal(SIGPIPE, SIG_IGN);
    // A fresh httplib::Server per start: it cannot be restarted after stop().
    auto fresh = std::make_unique<Impl>();
    {
        std::lock_guard lock(m->engineMutex);
        fresh->engine = m->engine;
        fresh->loadingStatus = m->loadingStatus;
    }
    m = std::move(fresh);
    m->opts = options;
    m->host = host;
    int threads = options.threads > 0 ? options.threads : 128;
    if (options.threads <= 0) {
        auto e = m->currentEngine();
        if (e) threads = std::max(threads, 2 * e->config().maxBatchSize);
    }
    m->http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    m->http.set_payload_max_length(options.bodyLimit);
    m->http.set_read_timeout(options.readTimeoutSeconds, 0);
    m->http.set_write_timeout(options.writeTimeoutSeconds, 0);
    m->http.set_keep_alive_timeout(5);
    m->http.set_tcp_nodelay(true);
    // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port and
    // silently take half the connections. REUSEADDR only: a port in use is an error.
    m->http.set_socket_options([](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    m->setupRoutes();
    bool bound = port == 0 ? (m->port = m->http.bind_to_any_port(host)) > 0 : m->http.bind_to_port(host, port);
    if (!bound)
        return Error(ErrorCode::Io, "cannot listen on " + host + ":" + std::to_string(port) +
                                        " (address in use, or not an address of this machine)");
    if (port != 0) m->port = port;
    m->running = true;
    Impl* impl = m.get();
    m->listenThread = std::thread([impl] { impl->http.listen_after_bind(); });
    // httplib's stop() is a no-op until the listen loop runs: wait for it, so a stop() right after
    // start() is never lost (and the join in stop() never hangs).
    for (int i = 0; i < 5000 && !m->http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return m->port;
}

void Server::stop() {
    if (!m->running) return;
    m->stopping = true;
    {
        std::lock_guard lock(m->jobsMutex);
        for (GenerationJob* job : m->jobs) job->cancelAll();
    }
    m->http.stop();
    if (m->listenThread.joinable()) m->listenThread.join();
    m->running = false;
}

bool Server::isRunning() const { return m->running; }

int Server::port() const { return m->port; }

std::string Server::url() const {
    std::string h = m->host;
    if (h.empty() || h == "0.0.0.0") h = "127.0.0.1";
    if (h == "::") h = "[::1]";
    else if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";
    return "http://" + h + ":" + std::to_string(m->port);
}

}  // namespace lmw::server
