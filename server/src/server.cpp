// lmw::server::Server: the route table, auth, Host and CORS checks, the request log, start and
// the draining stop.
#include "lmw/server.h"

#include <strings.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "generation.h"
#include "log_escape.h"
#include "server_impl.h"
#include "transport.h"
#include "worker_pool.h"

namespace lmw::server {

namespace {

// Compares without an early exit, so the time taken does not reveal how much of a key matched.
bool sameKey(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

// Where a handler runs: cheap ones on the I/O strand (so /health answers however busy the workers
// are), the ones that parse, render templates or tokenize on the worker pool.
enum class Runs { Inline, Pool };

struct Route {
    const char* path;
    bool prefix;          // path is a prefix with a non-empty rest (the rest is the path parameter)
    const char* methods;  // allowed, for 405 and CORS
    bool auth;
    Runs runs;
    Server::Impl::Handler handler;
    // Its entry in resources/openapi.json's paths (also its metric label); null: not an API (the docs
    // page). tests/server/test_route_table checks the document has exactly these, with this auth.
    const char* openapi;
};

// The one route table: every known path, its methods, auth, handler and OpenAPI entry.
const Route kRoutes[] = {
    {"/v1/models", false, "GET", true, Runs::Inline, &Server::Impl::handleModels, "/v1/models"},
    {"/v1/models/", true, "GET", true, Runs::Inline, &Server::Impl::handleModels, "/v1/models/{model}"},
    {"/v1/chat/completions", false, "POST", true, Runs::Pool, &Server::Impl::handleChat, "/v1/chat/completions"},
    {"/v1/completions", false, "POST", true, Runs::Pool, &Server::Impl::handleCompletions, "/v1/completions"},
    {"/v1/embeddings", false, "POST", true, Runs::Pool, &Server::Impl::handleEmbeddings, "/v1/embeddings"},
    {"/v1/responses", false, "POST", true, Runs::Pool, &Server::Impl::handleResponses, "/v1/responses"},
    {"/v1/messages", false, "POST", true, Runs::Pool, &Server::Impl::handleMessages, "/v1/messages"},
    {"/v1/messages/count_tokens", false, "POST", true, Runs::Pool, &Server::Impl::handleCountTokens, "/v1/messages/count_tokens"},
    {"/v1/encode", false, "POST", true, Runs::Pool, &Server::Impl::handleEncode, "/v1/encode"},
    {"/tokenize", false, "POST", true, Runs::Pool, &Server::Impl::handleTokenize, "/tokenize"},
    {"/detokenize", false, "POST", true, Runs::Pool, &Server::Impl::handleDetokenize, "/detokenize"},
    {"/health", false, "GET", false, Runs::Inline, &Server::Impl::handleHealth, "/health"},
    {"/metrics", false, "GET", true, Runs::Inline, &Server::Impl::handleMetrics, "/metrics"},
    {"/openapi.json", false, "GET", false, Runs::Inline, &Server::Impl::handleDocs, "/openapi.json"},
    {"/", false, "GET", false, Runs::Inline, &Server::Impl::handleDocs, nullptr},
    {"/docs", false, "GET", false, Runs::Inline, &Server::Impl::handleDocs, nullptr},
    {"/docs/", true, "GET", false, Runs::Inline, &Server::Impl::handleDocs, nullptr},
};

const Route* findRoute(const std::string& path) {
    for (const auto& r : kRoutes)
        if (r.prefix ? path.size() > std::strlen(r.path) && path.rfind(r.path, 0) == 0 : path == r.path) return &r;
    return nullptr;
}

// Metric label: a known path, never a client-chosen string.
std::string endpointLabel(const std::string& path) {
    const Route* r = findRoute(path);
    if (!r) return "other";
    if (r->openapi) return r->openapi;
    if (r->prefix) return std::string(r->path, std::strlen(r->path) - 1);  // "/docs"
    return r->path;
}

bool isLoopbackAddress(const std::string& host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// The name in a Host header, without the port and brackets, lower-cased.
std::string hostName(const std::string& value) {
    std::string h = value;
    if (!h.empty() && h.front() == '[') {
        size_t close = h.find(']');
        h = close == std::string::npos ? h : h.substr(0, close + 1);
    } else if (size_t colon = h.find(':'); colon != std::string::npos && h.find(':', colon + 1) == std::string::npos) {
        h = h.substr(0, colon);
    }
    for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!h.empty() && h.back() == '.') h.pop_back();  // "localhost." is localhost
    return h;
}

bool isLoopbackName(const std::string& name) {
    if (name == "localhost" || name == "[::1]") return true;
    if (name.size() > 10 && name.compare(name.size() - 10, 10, ".localhost") == 0) return true;  // RFC 6761
    if (name.rfind("127.", 0) != 0) return false;
    int dots = 0;
    for (char c : name) {
        if (c == '.') ++dots;
        else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    return dots == 3;
}

void escapeEntry(RequestLogEntry& e) {
    e.method = escapeForLog(e.method);
    e.endpoint = escapeForLog(e.endpoint);
    e.error = escapeForLog(e.error);
}

}  // namespace

std::vector<RouteInfo> routeTable() {
    std::vector<RouteInfo> out;
    for (const auto& r : kRoutes)
        if (r.openapi) out.push_back({r.openapi, r.methods, r.auth});
    return out;
}

std::shared_ptr<engine::Engine> Server::Impl::currentEngine() const {
    std::lock_guard lock(engineMutex);
    return engine;
}

std::shared_ptr<engine::Engine> Server::Impl::requireEngine() const {
    if (stopping) fail(shuttingDown());
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

TokenFacts Server::Impl::tokenFactsOf(const std::shared_ptr<engine::Engine>& e) {
    std::lock_guard lock(factsMutex);
    if (factsEngine.lock() != e) {
        facts = tokenFacts(e->tokenizer());
        factsEngine = e;
    }
    return facts;
}

void Server::Impl::finishCall(CallLog& call) {
    if (call.done) return;
    call.done = true;
    call.entry.totalSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - call.start).count();
    metrics.requestFinished(endpointLabel(call.entry.endpoint), call.entry.status);
    if (!opts.requestLog || !logWriter) return;
    RequestLogEntry e = call.entry;
    escapeEntry(e);
    std::function<void()> line = [this, e = std::move(e)] {
        try {
            opts.requestLog(e);
        } catch (...) {
            // the log is best effort; it must not break the server
        }
    };
    if (!logWriter->post(std::move(line))) metrics.logLineDropped();
}

void Server::Impl::sendError(HttpResponse& res, CallLog& call, const ApiError& e) {
    res.status = e.status;
    res.setContent(errorBodyFor(call.entry.endpoint, e), "application/json");
    if (e.status == 401) res.setHeader("WWW-Authenticate", "Bearer");
    if (e.status == 429 || e.status == 503) res.setHeader("Retry-After", "1");
    call.entry.status = e.status;
    call.entry.error = e.message;
}

void Server::Impl::registerJob(const std::shared_ptr<DeferredJob>& job) {
    bool cancel;
    {
        std::lock_guard lock(jobsMutex);
        jobs.emplace(job.get(), job);
        cancel = jobsCancelled;
    }
    if (cancel) job->cancelForShutdown();
}

void Server::Impl::unregisterJob(DeferredJob* job) {
    std::shared_ptr<DeferredJob> last;  // destroyed after the lock is released
    std::lock_guard lock(jobsMutex);
    auto it = jobs.find(job);
    if (it == jobs.end()) return;
    last = std::move(it->second);
    jobs.erase(it);
}

void Server::Impl::releaseMemory() {
    // malloc_trim returns free pages of every arena, not only the top of the heap: the RSS after a
    // burst of large answers goes back to what the server holds.
#ifdef __GLIBC__
    std::function<void()> trim = [] { malloc_trim(0); };
    if (pool) pool->post(std::move(trim));
#endif
}

bool Server::Impl::authorized(const HttpRequest& req) const {
    if (opts.apiKeys.empty()) return true;
    // "Authorization: Bearer <key>" (OpenAI's clients) or "x-api-key: <key>" (Anthropic's), on every route.
    std::string key;
    const std::string auth = req.header("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.size() > prefix.size() && strncasecmp(auth.c_str(), prefix.c_str(), prefix.size()) == 0)
        key = auth.substr(prefix.size());
    else if (!auth.empty()) return false;
    else key = req.header("x-api-key");
    if (key.empty()) return false;
    bool ok = false;
    for (const auto& k : opts.apiKeys) ok |= sameKey(key, k);
    return ok;
}

bool Server::Impl::hostAllowed(const HttpRequest& req) const {
    // HTTP/1.0 may come without a Host (HTTP/1.1 without one is a 400 before this); a browser, the
    // tool of a rebinding attack, always sends one.
    if (!loopbackOnly || !req.hasHeader("Host")) return true;
    const std::string name = hostName(req.header("Host"));
    if (isLoopbackName(name)) return true;
    for (const auto& h : opts.allowedHosts)
        if (h == "*" || hostName(h) == name) return true;
    return false;
}

void Server::Impl::addCorsHeaders(const HttpRequest& req, HttpResponse& res) const {
    if (opts.allowOrigins.empty() || !req.hasHeader("Origin")) return;
    std::string origin = req.header("Origin");
    bool any = false, match = false;
    for (const auto& o : opts.allowOrigins) {
        if (o == "*") any = true;
        else if (o == origin) match = true;
    }
    if (!any && !match) return;
    res.setHeader("Access-Control-Allow-Origin", match ? origin : "*");
    if (match) res.setHeader("Vary", "Origin");
    res.setHeader("Access-Control-Expose-Headers", "Content-Type, x-request-id");
}

// 404 for unknown paths, 405 for a known path with another method, and CORS preflight.
void Server::Impl::handleOther(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>&) {
    const Route* r = findRoute(req.path);
    const std::string allow = r ? std::string(r->methods) + ", OPTIONS" : std::string("GET, POST, OPTIONS");
    if (req.method == "OPTIONS") {
        res.status = 204;
        if (res.hasHeader("Access-Control-Allow-Origin")) {
            res.setHeader("Access-Control-Allow-Methods", allow);
            std::string asked = req.header("Access-Control-Request-Headers");
            res.setHeader("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type, x-api-key, anthropic-version" : asked);
            res.setHeader("Access-Control-Max-Age", "600");
        }
        res.setHeader("Allow", allow);
        return;
    }
    if (!r) fail(pathNotFound(req.method, req.path));
    res.setHeader("Allow", r->methods);
    fail(methodNotAllowed(req.method, req.path));
}

void Server::Impl::dispatch(HttpRequest reqIn, std::shared_ptr<Exchange> ex) {
    auto req = std::make_shared<HttpRequest>(std::move(reqIn));
    const Route* r = findRoute(req->path);
    if (r && req->method != r->methods) r = nullptr;  // one method per route: anything else is handleOther's
    if (r && r->prefix) req->pathParam = req->path.substr(std::strlen(r->path));

    // Every handler runs inside this wrapper: the call log, Host, auth, and the one place where
    // exceptions become error answers.
    auto answer = [this, r, req, ex] {
        auto call = std::make_shared<CallLog>();
        call->entry.time = std::chrono::system_clock::now();
        call->entry.method = req->method;
        call->entry.endpoint = req->path;
        call->entry.client = req->remoteAddr + ":" + std::to_string(req->remotePort);
        call->entry.requestId = req->requestId;
        metrics.requestStarted();
        HttpResponse res;
        res.exchange = ex;
        addCorsHeaders(*req, res);
        try {
            if (req->version >= 11 && !req->hasHeader("Host")) fail(badRequest("The Host header is missing."));
            if (!hostAllowed(*req)) fail(hostNotAllowed(hostName(req->header("Host"))));
            if (r && r->auth && !authorized(*req)) fail(unauthorized());
            if (req->body.size() > opts.bodyLimit) fail(payloadTooLarge(opts.bodyLimit));
            (this->*(r ? r->handler : &Impl::handleOther))(*req, res, call);
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
        if (res.deferred && !call->deferred) res.deferred = false;  // a handler may only defer by owning the call
        if (res.deferred) return;
        if (call->entry.status == 0) call->entry.status = res.status;
        res.exchange.reset();
        ex->respond(std::move(res));
        finishCall(*call);
    };
    if (!r || r->runs == Runs::Inline) return answer();
    std::function<void()> task = answer;
    if (pool->post(std::move(task))) return;
    HttpResponse busy;
    ApiError e = serverBusy();
    busy.status = e.status;
    busy.setHeader("Retry-After", "1");
    busy.setContent(errorBodyFor(req->path, e), "application/json");
    TransportReject rej{req->method, req->path, req->remoteAddr + ":" + std::to_string(req->remotePort),
                        req->requestId, e.status, e.message};
    logRejected(rej);
    ex->respond(std::move(busy));
}

void Server::Impl::logRejected(const TransportReject& r) {
    CallLog call;
    call.entry.time = std::chrono::system_clock::now();
    call.entry.method = r.method;
    call.entry.endpoint = r.path;
    call.entry.client = r.client;
    call.entry.requestId = r.requestId;
    call.entry.status = r.status;
    call.entry.error = fromHttpStatus(r.status, r.method, r.path, opts.bodyLimit, r.message).message;
    metrics.requestStarted();
    finishCall(call);
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
    // A fresh Impl per start: metrics and state of a previous run do not leak into this one.
    auto fresh = std::make_unique<Impl>();
    {
        std::lock_guard lock(m->engineMutex);
        fresh->engine = m->engine;
        fresh->loadingStatus = m->loadingStatus;
    }
    m = std::move(fresh);
    m->opts = options;
    m->host = host;
    m->loopbackOnly = isLoopbackAddress(host);
    m->budget = std::make_unique<ResponseBudget>(options.maxInflightResponseBytes);
    m->bodyBudget = std::make_unique<ResponseBudget>(options.maxInflightRequestBytes);
    const int threads = options.threads > 0 ? options.threads
                                            : std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
    m->pool = std::make_unique<WorkerPool>(threads, 4096);
    if (options.requestLog) m->logWriter = std::make_unique<WorkerPool>(1, 16384);

    auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
    TransportOptions t;
    t.headerLimit = options.headerLimit;
    t.bodyLimit = options.bodyLimit;
    t.headTimeout = ms(options.headTimeoutSeconds);
    t.bodyTimeout = ms(options.bodyTimeoutSeconds);
    t.keepAliveTimeout = ms(options.keepAliveTimeoutSeconds);
    t.writeTimeout = ms(options.writeTimeoutSeconds);
    t.streamBufferLimit = options.streamBufferBytes;
    t.maxConnections = options.maxConnections;
    t.ioThreads = options.ioThreads;
    Impl* impl = m.get();
    TransportHooks hooks;
    hooks.dispatch = [impl](HttpRequest req, std::shared_ptr<Exchange> ex) { impl->dispatch(std::move(req), std::move(ex)); };
    hooks.rejected = [impl](const TransportReject& r) { impl->logRejected(r); };
    hooks.reserveOutput = [impl](size_t n) { return impl->budget->reserve(n); };
    hooks.releaseOutput = [impl](size_t n) { impl->budget->release(n); };
    hooks.reserveInput = [impl](size_t n) { return impl->bodyBudget->reserve(n); };
    hooks.releaseInput = [impl](size_t n) { impl->bodyBudget->release(n); };
    hooks.errorBody = [impl](int status, const std::string& path, const std::string& detail) {
        return errorBodyFor(path, fromHttpStatus(status, "", "", impl->opts.bodyLimit, detail));
    };
    m->transport = std::make_unique<Transport>(t, std::move(hooks));
    auto bound = m->transport->start(host, port);
    if (!bound) {
        m->transport.reset();
        m->pool.reset();
        m->logWriter.reset();
        return bound.error();
    }
    m->port = bound.value();
    m->running = true;
    return m->port;
}

void Server::stop() {
    if (!m->running) return;
    using Clock = std::chrono::steady_clock;
    const auto begin = Clock::now();
    const auto grace = std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, m->opts.shutdownGraceSeconds) * 1000));
    auto waitIdle = [&](Clock::time_point until) {
        while (m->metrics.inFlight() > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    };
    m->stopping = true;
    m->transport->beginDrain();
    waitIdle(begin + grace);

    // Grace is over: cancel what still runs; the engine's final events end the streams properly.
    std::vector<std::shared_ptr<DeferredJob>> jobs;
    {
        std::lock_guard lock(m->jobsMutex);
        m->jobsCancelled = true;
        for (auto& [p, j] : m->jobs) jobs.push_back(j);
    }
    for (auto& j : jobs) j->cancelForShutdown();
    jobs.clear();
    waitIdle(Clock::now() + std::chrono::seconds(1));

    // Whatever is left (a client that does not read) is cut off now.
    m->transport->closeAll();
    m->pool->stop();
    {
        std::lock_guard lock(m->jobsMutex);
        for (auto& [p, j] : m->jobs) jobs.push_back(j);
    }
    for (auto& j : jobs) j->closeMailbox();  // no engine event posts into the I/O threads any more
    m->transport->stop();
    jobs.clear();
    m->transport.reset();  // destroys what was queued (answers never delivered)
    {
        std::lock_guard lock(m->jobsMutex);
        jobs.reserve(m->jobs.size());
        for (auto& [p, j] : m->jobs) jobs.push_back(std::move(j));
        m->jobs.clear();
    }
    jobs.clear();
    if (m->logWriter) m->logWriter->stop();  // writes what is queued: every answered request is logged
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
