// `lmw serve <model>`: the OpenAI-compatible HTTP server (mirrors `lmdeploy serve api_server`).
#ifdef LMW_HAVE_SERVER
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "commands.h"
#include "engine_options.h"
#include "lmw/output_parser.h"
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

// Client text in the entry (method, endpoint, error) comes escaped from the server already.
void printRequest(const server::RequestLogEntry& e) {
    static std::mutex mutex;
    std::time_t t = std::chrono::system_clock::to_time_t(e.time);
    std::tm tm{};
    localtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%H:%M:%S", &tm);
    std::lock_guard lock(mutex);
    if (e.promptTokens + e.completionTokens > 0)
        std::fprintf(stderr, "%s %s %s %d %s %.0f ms | prompt %d, completion %d, ttft %.0f ms, %.1f tok/s%s%s%s%s [%s]\n",
                     when, e.client.c_str(), e.method.c_str(), e.status, e.endpoint.c_str(), e.totalSeconds * 1000,
                     e.promptTokens, e.completionTokens, e.ttftSeconds * 1000, e.tokensPerSecond,
                     e.finishReason.empty() ? "" : ", ", e.finishReason.c_str(), e.error.empty() ? "" : " | ",
                     e.error.c_str(), e.requestId.c_str());
    else
        std::fprintf(stderr, "%s %s %s %d %s %.1f ms%s%s [%s]\n", when, e.client.c_str(), e.method.c_str(), e.status,
                     e.endpoint.c_str(), e.totalSeconds * 1000, e.error.empty() ? "" : " | ", e.error.c_str(),
                     e.requestId.c_str());
}

bool isLoopback(const std::string& host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// A server holds one descriptor per connection: take what the hard limit allows.
void raiseFileLimit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

// glibc gives every thread that allocates its own arena (up to 8 per core) and keeps freed memory
// in them: after a burst of large answers the RSS would stay at its peak. Few arenas, large
// buffers straight from mmap (returned on free), and malloc_trim after large answers (the server
// does that) bring it back to the baseline.
void boundAllocator() {
#ifdef __GLIBC__
    mallopt(M_ARENA_MAX, 4);
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
#endif
}

void setupServe(CLI::App& app) {
    auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
    static engine::EngineConfig config;
    static server::ServerOptions options;
    static std::string host = "127.0.0.1";
    static int port = 23333;
    static std::string level = "INFO";
    addEngineOptions(cmd, config);
    cmd->add_option("--model-name", options.modelName, "model id served by /v1/models (default: the folder name)");
    cmd->add_option("--server-name", host,
                    "address to listen on; the default serves this machine only, 0.0.0.0 (or ::) serves the network "
                    "(then also set --api-keys)")->capture_default_str();
    cmd->add_option("--server-port", port, "port to listen on (0 = any free port)")
        ->check(CLI::Range(0, 65535))->capture_default_str();
    cmd->add_option("--api-keys", options.apiKeys, "accepted API keys (Authorization: Bearer KEY); none = open");
    cmd->add_option("--allow-origins", options.allowOrigins,
                    "CORS: web origins allowed to call the API from a browser ('*' = any); default none");
    cmd->add_option("--allowed-hosts", options.allowedHosts,
                    "on a loopback address, Host names served besides localhost/127.0.0.1/[::1] (DNS rebinding "
                    "guard; '*' = any)");
    cmd->add_flag("--allow-special-tokens", options.allowSpecialTokens,
                  "parse special-token text (e.g. <|im_end|>, </s>) in prompts and message contents into special "
                  "tokens; by default it is plain text, as OpenAI does, so a client cannot forge turns");
    static std::string overflow = "stop";
    cmd->add_option("--context-overflow", overflow,
                    "a chat conversation longer than the session with its reply: stop (400 context_length_exceeded), "
                    "truncate-middle (leave out turns after the first) or rolling-window (leave out the oldest turns); "
                    "the system prompt and the latest message stay")
        ->check(CLI::IsMember({"stop", "truncate-middle", "rolling-window"}))->capture_default_str()
        ->each([](const std::string& v) { engine::parseContextOverflow(v, options.contextOverflow); });
    static std::string pooling = "mean";
    cmd->add_option("--embedding-pooling", pooling,
                    "POST /v1/embeddings: an input's vector is the mean of its tokens' final hidden states (after the "
                    "final norm) or the last token's, L2-normalized")
        ->check(CLI::IsMember({"mean", "last"}))->capture_default_str()
        ->each([](const std::string& v) { engine::parsePooling(v, options.embeddingPooling); });
    std::vector<std::string> toolParsers{"auto", "none"}, reasoningParsers{"auto", "none"};
    for (const auto& n : engine::toolCallParserNames()) toolParsers.push_back(n);
    for (const auto& n : engine::reasoningParserNames()) reasoningParsers.push_back(n);
    cmd->add_option("--tool-call-parser", options.toolCallParser,
                    "how tool calls are read from replies to requests with tools: auto (by the model family: qwen, "
                    "llama3, internlm2, mistral), none (replies stay text), or one of those")
        ->check(CLI::IsMember(toolParsers))->capture_default_str();
    cmd->add_option("--reasoning-parser", options.reasoningParser,
                    "how a reply's reasoning is split into reasoning_content: auto (think, when the chat template "
                    "writes <think>), none, or think")
        ->check(CLI::IsMember(reasoningParsers))->capture_default_str();
    cmd->add_option("--http-threads", options.threads, "handler threads (0 = the CPU cores)");
    cmd->add_option("--http-io-threads", options.ioThreads, "threads that move bytes")->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--http-head-timeout", options.headTimeoutSeconds,
                    "seconds from a request's first byte to the end of its headers (then 408)")->capture_default_str();
    cmd->add_option("--http-body-timeout", options.bodyTimeoutSeconds,
                    "seconds from the end of the headers to the end of the body (then 408)")->capture_default_str();
    cmd->add_option("--http-keep-alive-timeout", options.keepAliveTimeoutSeconds,
                    "seconds an idle connection stays open")->capture_default_str();
    cmd->add_option("--http-write-timeout", options.writeTimeoutSeconds,
                    "seconds a client may stop reading before it is dropped")->capture_default_str();
    cmd->add_option("--max-connections", options.maxConnections, "open connections at most (0 = file descriptor limit)");
    cmd->add_option("--max-header-size", options.headerLimit, "largest request head in bytes (then 431)")
        ->capture_default_str();
    cmd->add_option("--max-body-size", options.bodyLimit, "largest accepted request body in bytes")->capture_default_str();
    cmd->add_option("--max-n", options.maxChoices, "choices per request at most (n, times the prompts)")
        ->check(CLI::Range(1, 64))->capture_default_str();
    cmd->add_option("--max-top-logprobs", options.maxTopLogprobs, "top_logprobs at most")
        ->check(CLI::Range(0, 20))->capture_default_str();
    cmd->add_option("--max-response-bytes", options.maxResponseBytes,
                    "a request whose answer could be larger is refused (400)")->capture_default_str();
    cmd->add_option("--max-inflight-response-bytes", options.maxInflightResponseBytes,
                    "bytes that answers in flight may hold together (beyond: 429)")->capture_default_str();
    cmd->add_option("--max-inflight-request-bytes", options.maxInflightRequestBytes,
                    "bytes that request bodies being received or handled may hold together (beyond: 503)")
        ->capture_default_str();
    cmd->add_option("--shutdown-grace", options.shutdownGraceSeconds,
                    "on SIGTERM, seconds requests in flight get to finish before they are cancelled")
        ->check(CLI::Range(0.0, 3.0))->capture_default_str();
    cmd->add_option("--log-level", level, "ERROR, WARNING, INFO (one line per request) or DEBUG")
        ->check(CLI::IsMember({"ERROR", "WARNING", "INFO", "DEBUG"}, CLI::ignore_case))
        ->transform([](std::string s) {
            for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            return s;
        })->capture_default_str();
    cmd->callback([&] {
        boundAllocator();
        raiseFileLimit();
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
        if (isLoopback(host))
            std::printf("Listening on this machine only; --server-name 0.0.0.0 serves the network.\n");
        else if (options.apiKeys.empty())
            std::printf("Warning: serving the network without --api-keys: anyone who reaches this port can use it.\n");
        std::fflush(stdout);

        while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::fprintf(stderr, "%s: shutting down (new requests get 503; requests in flight get %.1f s to finish)\n",
                     g_signal == SIGINT ? "SIGINT" : "SIGTERM", options.shutdownGraceSeconds);
        // The drain is bounded by itself; this only guards against work that cannot be interrupted
        // (a worker deep in a tokenizer), so that the process is gone within 5 s in any case.
        std::thread([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(4800));
            static const char msg[] = "shutdown took too long: exiting now\n";
            (void)!::write(2, msg, sizeof msg - 1);
            _exit(1);
        }).detach();
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
