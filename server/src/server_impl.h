#pragma once
// Internals shared by the server's source files (routing in server.cpp, endpoints in *_handler.cpp).
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "api_error.h"
#include "lmw/engine.h"
#include "lmw/server.h"
#include "metrics.h"

namespace lmw::server {

class GenerationJob;

// One HTTP request from arrival to its last byte: what the request log and metrics get.
struct CallLog {
    RequestLogEntry entry;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    bool done = false;      // reported already
    bool deferred = false;  // a streaming response reports itself when its last chunk is out
};

struct Server::Impl {
    httplib::Server http;
    std::thread listenThread;
    ServerOptions opts;
    std::string host;
    int port = 0;
    std::atomic<bool> running{false};
    std::atomic<bool> stopping{false};

    mutable std::mutex engineMutex;
    std::shared_ptr<engine::Engine> engine;
    std::string loadingStatus;

    Metrics metrics;

    std::mutex jobsMutex;
    std::set<GenerationJob*> jobs;  // in flight, cancelled by stop()

    std::shared_ptr<engine::Engine> currentEngine() const;
    // The engine or a 503 ApiException (also while stopping).
    std::shared_ptr<engine::Engine> requireEngine() const;
    std::string modelName() const;
    // 404 unless `requested` is empty or the served name (or the model folder's name).
    void checkModel(const std::string& requested) const;

    // Ends a call: metrics, then the user's request-log callback (exceptions swallowed). Once only.
    void finishCall(CallLog& call);
    // Sends an error answer (JSON body, status) on res and records it in the call log.
    void sendError(httplib::Response& res, CallLog& call, const ApiError& e);

    void registerJob(GenerationJob* job);
    void unregisterJob(GenerationJob* job);

    void setupRoutes();
    void addCorsHeaders(const httplib::Request& req, httplib::Response& res) const;
    bool authorized(const httplib::Request& req) const;

    // Endpoint handlers (they may throw ApiException; the route wrapper answers it).
    void handleChat(const httplib::Request& req, httplib::Response& res, const std::shared_ptr<CallLog>& call);
    void handleCompletions(const httplib::Request& req, httplib::Response& res, const std::shared_ptr<CallLog>& call);
    void handleModels(const httplib::Request& req, httplib::Response& res, CallLog& call);
    void handleEncode(const httplib::Request& req, httplib::Response& res, CallLog& call);
    void handleHealth(const httplib::Request& req, httplib::Response& res, CallLog& call);
    void handleMetrics(const httplib::Request& req, httplib::Response& res, CallLog& call);
    void handleDocs(const httplib::Request& req, httplib::Response& res, CallLog& call);
};

}  // namespace lmw::server
