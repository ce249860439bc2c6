#pragma once
// Load generator for an OpenAI-compatible server (ours or any other): N concurrent streaming
// requests, measuring requests/s, output tokens/s, time to first token and inter-token latency.
#include <functional>
#include <string>
#include <vector>

#include "lmw/error.h"
#include "lmw/workload.h"

namespace lmw::server {

struct HttpBenchOptions {
    std::string url = "http://127.0.0.1:23333";
    std::string apiKey;
    std::string model;             // empty: the first id of GET /v1/models
    std::string endpoint = "chat"; // "chat" or "completions"
    int concurrency = 64;          // streams in flight at once
    int requests = 256;            // total requests
    int maxTokens = 128;
    bool ignoreEos = true;         // fixed output length, so runs compare
    double temperature = 0.0;
    std::vector<std::string> prompts = {"Once upon a time", "Tell me a story about a dog.", "The little girl",
                                        "One day, a cat"};
    int timeoutSeconds = 600;
};

using engine::Percentiles;

struct HttpBenchResult {
    int ok = 0;
    int failed = 0;
    std::string firstError;
    double wallSeconds = 0;
    double requestsPerSecond = 0;
    double outputTokensPerSecond = 0;
    long long promptTokens = 0;
    long long outputTokens = 0;
    Percentiles ttft;          // seconds, request sent -> first content chunk
    Percentiles itl;           // seconds between content chunks
    Percentiles latency;       // seconds, request sent -> [DONE]
    std::string toText() const;
    std::string toJson() const;
};

// Runs the benchmark; progress(done, total) is called from worker threads after each request.
Result<HttpBenchResult> runHttpBench(const HttpBenchOptions& options,
                                     const std::function<void(int, int)>& progress = {});

}  // namespace lmw::server
