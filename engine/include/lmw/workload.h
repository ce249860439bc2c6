#pragma once
// Request workloads for `lmw bench`'s throughput test, and the latency summary of a run: fixed
// lengths or ShareGPT-like ones (seeded log-normal, no dataset needed), every request at once or
// Poisson arrivals at a given rate, and the goodput under latency limits.
#include <cstdint>
#include <string>
#include <vector>

namespace lmw::engine {

// ShareGPT-like requests: prompts of at most this many tokens, requests (prompt + output) of at most
// this many, as serving benchmarks filter the ShareGPT conversations.
constexpr int kShareGptMaxInputLen = 1024, kShareGptMaxTotalLen = 2048;

struct WorkloadOptions {
    enum class Lengths { Fixed, ShareGpt };
    Lengths lengths = Lengths::Fixed;
    int inputLen = 128, outputLen = 128;  // Fixed: every request's; ShareGpt: ignored
    // ShareGpt: prompts of at most maxInputLen tokens and requests of at most maxTotalLen (drawn
    // again when over, as serving benchmarks drop such conversations).
    int maxInputLen = kShareGptMaxInputLen, maxTotalLen = kShareGptMaxTotalLen;
    double requestRate = 0;  // requests per second, Poisson arrivals; 0 = all at time 0
    uint32_t seed = 1;
};

// The log-normal lengths of ShareGpt: means of the ShareGPT conversations as serving papers report
// them with a Llama tokenizer (vLLM, SOSP 2023: 161 prompt and 338 output tokens), long-tailed.
struct LogNormalLength {
    double mean, sigma;
};
constexpr LogNormalLength kShareGptInput{161, 1.0}, kShareGptOutput{338, 0.9};
constexpr int kShareGptMinLen = 4;  // shorter ones are drawn again

struct PlannedRequest {
    double arrival = 0;  // seconds after the start
    int inputLen = 0, outputLen = 0;
};

// `count` requests, in arrival order; the same options and seed give the same plan. Throws
// InvalidArgument when the ShareGpt limits leave no room for a request.
std::vector<PlannedRequest> planWorkload(const WorkloadOptions& options, int count);

// One request as a client saw it, in seconds after the start of the run.
struct RequestTiming {
    double sent = 0;
    std::vector<double> tokenTimes;  // when each output token arrived
    bool ok = false;
    int inputLen = 0;
};

struct LatencyLimits {
    double ttft = 2.0;  // seconds to the first token
    double itl = 0.05;  // mean seconds between a request's later tokens (its time per output token)
};

// Nearest-rank percentiles and the mean of samples (zeros for none).
struct Percentiles {
    double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};
Percentiles percentiles(std::vector<double> samples);

struct ThroughputSummary {
    int requests = 0, ok = 0;
    double wall = 0, requestsPerSecond = 0, outputTokensPerSecond = 0, inputTokensPerSecond = 0;
    Percentiles ttft, itl, tpot;  // seconds; itl over every gap, tpot one per request (its mean gap)
    int good = 0;                 // ok requests within both limits
    double goodput = 0;           // good requests per second
};

ThroughputSummary summarizeThroughput(const std::vector<RequestTiming>& runs, double wall, const LatencyLimits& limits);

}  // namespace lmw::engine
