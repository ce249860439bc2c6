// `lmw serve <model>`: the OpenAI-compatible HTTP server (mirrors `lmdeploy serve api_server`).
#ifdef LMW_HAVE_SERVER
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>

#include "commands.h"
#include "engine_options.h"
#include "lmw/server.h"

namespace lmw::cli {
namespace {

std::atomic<int> g_signal{0};

extern "C" void onSignal(int sig) { g_signal = sig; }

int logLevel(const std::string& name) {
    if (name == "DEBUG") return 3;
    if (name == "INFO") return 2;
    if (name == "WARNING") return 1;
    return 0;
}

void printRequest(const server::RequestLogEntry& e) {
    static std::mutex mutex;
    std::time_t t = std::chrono::system_clock::to_time_t(e.time);
    std::tm tm{};
    localtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%H:%M:%S", &tm);
    std::lock_guard lock(mutex);
    if (e.promptTokens + e.completionTokens > 0)
        std::fprintf(stderr, "%s %s %s %d %s %.0f ms | prompt %d, completion %d, ttft %.0f ms, %.1f tok/s%s%s%s%s\n",
                     when, e.client.c_str(), e.method.c_str(), e.status, e.endpoint.c_str(), e.totalSeconds * 1000,
                     e.promptTokens, e.completionTokens, e.ttftSeconds * 1000, e.tokensPerSecond,
                     e.finishReason.empty() ? "" : ", ", e.finishReason.c_str(), e.error.empty() ? "" : " | ",
                     e.error.c_str());
    else
        std::fprintf(stderr, "%s %s %s %d %s %.1f ms%s%s\n", when, e.client.c_str(), e.method.c_str(), e.status,
                     e.endpoint.c_str(), e.totalSeconds * 1000, e.error.empty() ? "" : " | ", e.error.c_str());
}

void setupServe(CLI::App& app) {
    auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
    static engine::EngineConfig config;
    static server::ServerOptions options;
    static std::string host = "0.0.0.0";
    static int port = 23333;
    static std::string level = "INFO";
    options.allowOrigins = {"*"};
    addEngineOptions(cmd, config);
    cmd->add_option("--model-name", options.modelName, "model id served by /v1/models (default: the folder name)");
    cmd->add_option("--server-name", host, "address to listen on")->capture_default_str();
    cmd->add_option("--server-port", port, "port to listen on (0 = any free port)")
        ->check(CLI::Range(0, 65535))->capture_default_str();
    cmd->add_option("--api-keys", options.apiKeys, "accepted API keys (Authorization: Bearer KEY); none = open");
    cmd->add_option("--allow-origins", options.allowOrigins, "CORS allowed origins ('*' = any)")->capture_default_str();
    cmd->add_option("--http-threads", options.threads, "HTTP worker threads (0 = max(128, 2 x max batch size))");
    cmd->add_option("--http-read-timeout", options.readTimeoutSeconds,
                    "seconds a client may stall mid-request before it is dropped")->capture_default_str();
    cmd->add_option("--max-body-size", options.bodyLimit, "largest accepted request body in bytes")->capture_default_str();
    cmd->add_option("--log-level", level, "ERROR, WARNING, INFO (one line per request) or DEBUG")
        ->check(CLI::IsMember({"ERROR", "WARNING", "INFO", "DEBUG"}, CLI::ignore_case))
        ->transform([](std::string s) {
            for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            return s;
        })->capture_default_str();
    cmd->callback([&] {
        std::signal(SIGINT, onSignal);
        std::signal(SIGTERM, onSignal);
        const bool verbose = logLevel(level) >= 2;
        if (verbose) options.requestLog = printRequest;

        // Listen first: /health answers 503 "loading" while the weights come in.
        server::Server srv;
        srv.setLoadingStatus("loading " + config.modelDir);
        auto started = srv.start(host, port, options);
        if (!started) throw started.error();

        auto progress = [&](engine::LoadStage, double f, const std::string& what) {
            srv.setLoadingStatus(what + " " + std::to_string(int(f * 100)) + "%");
            if (verbose) std::fprintf(stderr, "\r[%3d%%] %-60s", int(f * 100), what.c_str());
            return g_signal == 0;
        };
        auto loaded = engine::Engine::load(config, progress);
        if (verbose) std::fprintf(stderr, "\r%-70s\r", "");
        if (!loaded) {
            srv.stop();
            if (loaded.error().code() == ErrorCode::Cancelled && g_signal != 0) {
                std::fprintf(stderr, "interrupted while loading\n");
                exitCode() = 130;
                return;
            }
            throw loaded.error();
        }
        std::shared_ptr<engine::Engine> eng = std::move(loaded.value());
        srv.setEngine(eng);
        const auto stats = eng->stats();
        std::printf("Serving '%s' (%s, session length %d, %lld KV tokens) at %s\n",
                    options.modelName.empty() ? eng->info().name.c_str() : options.modelName.c_str(),
                    stats.backend.c_str(), eng->sessionLen(), static_cast<long long>(stats.kvTokenCapacity),
                    srv.url().c_str());
        std::printf("API docs: %s/  OpenAPI: %s/openapi.json\n", srv.url().c_str(), srv.url().c_str());
        std::fflush(stdout);

        while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::fprintf(stderr, "%s: shutting down (requests in flight are cancelled)\n",
                     g_signal == SIGINT ? "SIGINT" : "SIGTERM");
        srv.stop();
        srv.setEngine(nullptr);
        eng.reset();
        std::fprintf(stderr, "stopped\n");
    });
}

const bool registered = registerCommand("serve", 40, setupServe);

}  // namespace
}  // namespace lmw::cli
#endif
