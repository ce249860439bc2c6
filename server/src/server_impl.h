#pragma once
// Internals shared by the server's source files (routing in server.cpp, endpoints in *_handlers.cpp).
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "api_error.h"
#include "http_message.h"
#include "lmw/engine.h"
#include "lmw/server.h"
#include "metrics.h"
#include "response_budget.h"

namespace lmw::server {

class Transport;
class WorkerPool;
struct TransportReject;

// A request answered later, from engine events (GenerationJob, EmbeddingJob): what stop() does
// with the ones in flight.
class DeferredJob {
public:
    virtual ~DeferredJob() = default;
    // Server shutdown after the grace period: cancels the job's engine requests (thread-safe).
    virtual void cancelForShutdown() = 0;
    // No more posts into the I/O threads (server stopping).
    virtual void closeMailbox() = 0;
};

// One HTTP request from arrival to its last byte: what the request log and metrics get.
struct CallLog {
    RequestLogEntry entry;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    bool done = false;      // reported already
    bool deferred = false;  // a generation reports itself when its answer is out
};

struct Server::Impl {
    ServerOptions opts;
    std::string host;
    int port = 0;
    bool loopbackOnly = false;  // bound to a loopback address: only loopback Host names are served
    std::atomic<bool> running{false};
    std::atomic<bool> stopping{false};

    mutable std::mutex engineMutex;
    std::shared_ptr<engine::Engine> engine;
    std::string loadingStatus;

    Metrics metrics;
    std::unique_ptr<ResponseBudget> budget;
    std::unique_ptr<ResponseBudget> bodyBudget;  // request bodies held (same rules: one alone always fits)
    std::unique_ptr<WorkerPool> pool;
    // One thread that calls the request-log callback: the log may block (a full stderr pipe) and
    // must not stall the I/O threads or the handlers. Bounded; what does not fit is dropped and counted.
    std::unique_ptr<WorkerPool> logWriter;
    std::unique_ptr<Transport> transport;

    std::mutex factsMutex;
    std::weak_ptr<engine::Engine> factsEngine;
    TokenFacts facts;

    std::mutex jobsMutex;
    std::unordered_map<DeferredJob*, std::shared_ptr<DeferredJob>> jobs;  // in flight
    bool jobsCancelled = false;  // shutdown cancelled what ran: later jobs are cancelled at once

    std::shared_ptr<engine::Engine> currentEngine() const;
    // The engine or a 503 ApiException (also while stopping).
    std::shared_ptr<engine::Engine> requireEngine() const;
    std::string modelName() const;
    // What client prompts' special-token text becomes (ServerOptions::allowSpecialTokens).
    engine::SpecialTokens specialTokens() const {
        return opts.allowSpecialTokens ? engine::SpecialTokens::Parse : engine::SpecialTokens::AsText;
    }
    // 404 model_not_found unless `requested` is empty or the served name (or the model folder's name).
    void checkModel(const std::string& requested) const;
    // Longest token of the engine's vocabulary (computed once per engine).
    TokenFacts tokenFactsOf(const std::shared_ptr<engine::Engine>& e);

    // Ends a call: metrics, then queues the request-log callback for the log writer. Once only.
    void finishCall(CallLog& call);
    // Sends an error answer (JSON body, status) on res and records it in the call log.
    void sendError(HttpResponse& res, CallLog& call, const ApiError& e);

    void registerJob(const std::shared_ptr<DeferredJob>& job);
    void unregisterJob(DeferredJob* job);
    // Gives free heap memory back to the system (after a large answer), on the worker pool.
    void releaseMemory();

    // Transport callbacks.
    void dispatch(HttpRequest req, std::shared_ptr<Exchange> exchange);
    void logRejected(const TransportReject& r);

    void addCorsHeaders(const HttpRequest& req, HttpResponse& res) const;
    bool authorized(const HttpRequest& req) const;
    bool hostAllowed(const HttpRequest& req) const;

    // Endpoint handlers (they may throw ApiException; the route wrapper answers it).
    using Handler = void (Impl::*)(const HttpRequest&, HttpResponse&, const std::shared_ptr<CallLog>&);
    void handleChat(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleCompletions(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleResponses(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleMessages(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleCountTokens(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleModels(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleEncode(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleEmbeddings(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleTokenize(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleDetokenize(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleHealth(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleMetrics(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleDocs(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
    void handleOther(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call);
};

}  // namespace lmw::server
