// `lmw bench`: decode speed against the memory-bandwidth limit, and throughput under load.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/membw.h"
#include "backend/cuda_module.h"
#include "commands.h"
#include "engine_options.h"
#include "lmw/workload.h"
#include "model/model_writer.h"
#include "quant/output_folder.h"

namespace lmw::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

struct RunStats {
    Clock::time_point submitted;
    std::vector<Clock::time_point> tokenTimes;  // when each generated token reached the sink
    bool ok = false;
    std::string error;
    double ttft() const { return tokenTimes.empty() ? 0 : Seconds(tokenTimes.front() - submitted).count(); }
};

// Submits one request and records when each token arrived (the sink only copies timestamps out);
// `done`, if given, is called on the engine thread just before the result is handed over.
std::future<RunStats> launch(engine::Engine& e, engine::Request req, std::function<void()> done = {}) {
    auto state = std::make_shared<std::pair<std::promise<RunStats>, RunStats>>();
    state->second.submitted = Clock::now();
    state->second.tokenTimes.reserve(size_t(req.sampling.maxNewTokens));
    auto fut = state->first.get_future();
    e.submit(std::move(req), [state, done = std::move(done)](const engine::Event& ev) {
        RunStats& s = state->second;
        const auto now = Clock::now();
        s.tokenTimes.insert(s.tokenTimes.end(), ev.tokens.size(), now);
        if (ev.final) {
            s.ok = ev.finish != engine::FinishReason::Error;
            s.error = ev.error;
            if (done) done();
            state->first.set_value(s);
        }
    });
    return fut;
}

std::vector<int32_t> randomPrompt(std::mt19937& rng, int len, int vocab) {
    std::uniform_int_distribution<int32_t> d(3, vocab - 1);  // skip unk/bos/eos-like low ids
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (auto& t : ids) t = d(rng);
    return ids;
}

// B greedy requests of `context` random prompt tokens each, submitted together; with a grammar,
// each reply is constrained by it (structured output).
std::vector<RunStats> runBatch(engine::Engine& e, std::mt19937& rng, int batch, int context, int tokens,
                               const std::shared_ptr<const engine::Grammar>& grammar = nullptr) {
    std::vector<std::future<RunStats>> futs;
    for (int b = 0; b < batch; ++b) {
        engine::Request req;
        req.promptIds = randomPrompt(rng, context, e.info().config.vocabSize);
        req.sampling.temperature = 0;
        req.sampling.ignoreEos = true;
        req.sampling.maxNewTokens = tokens;
        req.grammar = grammar;
        futs.push_back(launch(e, std::move(req)));
    }
    std::vector<RunStats> out;
    for (auto& f : futs) out.push_back(f.get());
    for (const auto& r : out)
        if (!r.ok) throw Error(ErrorCode::Internal, "benchmark request failed: " + r.error);
    return out;
}

struct DecodeWindow {
    int steps = 0;          // decode steps in which all B sequences decoded
    double seconds = 0;
    double meanContext = 0;  // tokens each sequence attended to, mean over those steps
    double ttft = 0;         // slowest request's time to first token
};

// The decode phase only: from the step that gave the last request its first token to the last
// step before any request finished. Timed on the last-admitted request's tokens; a token of
// another request counts as the same step when it came within half a step (sinks of one step are
// called one after the other).
DecodeWindow decodeWindow(const std::vector<RunStats>& runs, int context) {
    size_t last = 0;
    Clock::time_point end = runs[0].tokenTimes.back();
    for (size_t r = 0; r < runs.size(); ++r) {
        if (runs[r].tokenTimes.front() > runs[last].tokenTimes.front()) last = r;
        end = std::min(end, runs[r].tokenTimes.back());
    }
    const auto& t = runs[last].tokenTimes;
    std::vector<double> gaps;
    for (size_t k = 1; k < t.size(); ++k) gaps.push_back(Seconds(t[k] - t[k - 1]).count());
    const auto tolerance = std::chrono::duration_cast<Clock::duration>(Seconds(0.5 * engine::percentiles(gaps).p50));
    size_t k = 0;
    while (k + 1 < t.size() && t[k + 1] <= end + tolerance) ++k;
    DecodeWindow w;
    w.steps = int(k);
    w.seconds = Seconds(t[k] - t[0]).count();
    // Step j (1-based) decodes token j - 1 at position context + j - 1: it attends to context + j.
    w.meanContext = context + (1.0 + double(k)) / 2.0;
    for (const auto& r : runs) w.ttft = std::max(w.ttft, r.ttft());
    return w;
}

// One row per batch size: decode speed against the bytes a step must read (weights + KV). With a
// grammar, each batch size gets a second row whose replies it constrains ("schema").
// CPU: a `context`-token prefill (best of three) against the backend's linear alone on the model's
// gate/up shape for as many tokens, both in GFLOP/s (2 x linear parameters x tokens, plus the
// causal attention's 2 x 2 x layers x heads x headDim x n(n+1)/2).
void benchCpuPrefill(engine::Engine& e, int context, int threads) {
    const auto& c = e.info().config;
    const double linearParams = double(c.numLayers) * c.hiddenSize *
                                (double(c.numHeads + 2 * c.numKvHeads) * c.headDim + double(c.numHeads) * c.headDim +
                                 3.0 * c.intermediateSize);
    const double flop = 2 * linearParams * context +
                        2.0 * c.numLayers * c.numHeads * c.headDim * double(context) * (context + 1);
    std::mt19937 rng(2);
    double best = 1e30;
    for (int i = 0; i < 3; ++i) best = std::min(best, runBatch(e, rng, 1, context, 2)[0].ttft());
    const bool awq = e.info().dtype == "AWQ-INT4";
    DType dt = DType::BF16;
    dtypeFromName(e.info().dtype, dt);
    const int64_t rows = 2 * int64_t(c.intermediateSize), cols = c.hiddenSize;
    const double gemm = awq && cols % 128 != 0 ? 0 : engine::benchCpuLinearGFlops(threads, dt, awq, rows, cols, context);
    const double rate = flop / best / 1e9;
    std::printf("  prefill: %d tokens in %.1f ms = %.0f tok/s, %.1f GFLOP/s; the linear alone (%s [%lld, %lld] x %d "
                "tokens) %.1f GFLOP/s: %.1f%%\n",
                context, best * 1e3, context / best, rate, e.info().dtype.c_str(), (long long)rows, (long long)cols,
                context, gemm, gemm > 0 ? 100 * rate / gemm : 0.0);
    std::fflush(stdout);
}

void benchDecode(engine::Engine& e, int context, int tokens, const std::vector<int>& batches, double bandwidth,
                 int quantPolicy, const std::shared_ptr<const engine::Grammar>& grammar) {
    const auto& info = e.info();
    const std::string backend = e.stats().backend;
    std::printf("model %s (%s, %s params, %s weights), backend %s (%s)\n", info.name.c_str(), info.dtype.c_str(),
                engine::formatParameters(info.parameters).c_str(), engine::formatBytes(info.weightBytes).c_str(),
                backend.c_str(), e.stats().device.c_str());
    if (const uint64_t llc = engine::cpuLastLevelCacheBytes(); backend == "cpu" && llc)
        std::printf("  the weights %s in the %s last-level cache (which the host may share with other cores)\n",
                    info.weightBytes < llc ? "fit" : "do not fit", engine::formatBytes(llc).c_str());
    std::printf("  %-24s %-9s %5s %7s %9s %8s %8s %8s %7s %8s %8s\n", "decode: model", "dtype", "batch", "context",
                "tok/s", "ms/step", "GB/step", "GB/s", "% read", "host ms", "ttft ms");
    std::fflush(stdout);
    std::mt19937 rng(1);
    std::vector<std::shared_ptr<const engine::Grammar>> modes{nullptr};
    if (grammar) modes.push_back(grammar);
    for (int b : batches)
      for (const auto& g : modes) {
        runBatch(e, rng, b, context, 8, g);  // warm-up at this batch size (kernels, buffers, graphs)
        const int64_t preempted = e.stats().preemptions;
        const DecodeWindow w = decodeWindow(runBatch(e, rng, b, context, tokens, g), context);
        const double hostMs = e.stats().decodeEnqueueMs;  // recent steps: host time to enqueue one
        // A preempted sequence is recomputed: its steps would not be the B-wide decode this times.
        if (e.stats().preemptions != preempted)
            throw Error(ErrorCode::OutOfMemory, "the KV cache cannot hold " + std::to_string(b) + " x " +
                                                    std::to_string(context + tokens) +
                                                    " tokens (sequences were preempted); give it more memory");
        if (w.steps < 1)
            throw Error(ErrorCode::Internal, "no decode step ran all " + std::to_string(b) +
                                                 " sequences together; raise --decode-tokens");
        const double stepS = w.seconds / w.steps;
        const double bytes = info.decodeBytesPerStep(b, w.meanContext, quantPolicy, backend);
        const double gbs = bytes / stepS / 1e9;
        std::printf("  %-24s %-9s %5d %7d %9.1f %8.3f %8.3f %8.0f %7.1f %8.3f %8.1f\n", info.name.c_str(),
                    (info.dtype + (g ? "+schema" : "")).c_str(), b, context, b / stepS, stepS * 1e3, bytes / 1e9, gbs,
                    bandwidth > 0 ? 100 * gbs / bandwidth : 0.0, hostMs, w.ttft * 1e3);
        std::fflush(stdout);
    }
}

struct ThroughputTest {
    int requests = 0, concurrency = 16;
    engine::WorkloadOptions workload;
    engine::LatencyLimits limits;
};

// The requests of the plan, each sent at its arrival time once fewer than `concurrency` are in
// flight (greedy, ignore_eos: each makes exactly its output length), and the summary of the run.
void benchThroughput(engine::Engine& e, const ThroughputTest& test) {
    const engine::WorkloadOptions& w = test.workload;
    const auto plan = engine::planWorkload(w, test.requests);
    std::mt19937 rng(w.seed);
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& r : plan) prompts.push_back(randomPrompt(rng, r.inputLen, e.info().config.vocabSize));
    std::mutex mu;
    std::condition_variable slotFree;
    int inFlight = 0;
    std::vector<std::future<RunStats>> futures;
    const auto start = Clock::now();
    for (size_t i = 0; i < plan.size(); ++i) {
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(Seconds(plan[i].arrival)));
        {
            std::unique_lock lock(mu);
            slotFree.wait(lock, [&] { return inFlight < test.concurrency; });
            ++inFlight;
        }
        engine::Request req;
        req.promptIds = std::move(prompts[i]);
        req.sampling.temperature = 0;
        req.sampling.ignoreEos = true;
        req.sampling.maxNewTokens = plan[i].outputLen;
        futures.push_back(launch(e, std::move(req), [&] {
            std::lock_guard lock(mu);
            --inFlight;
            slotFree.notify_one();
        }));
    }
    std::vector<engine::RequestTiming> runs;
    std::string firstError;
    double inputMean = 0, outputMean = 0;
    for (size_t i = 0; i < futures.size(); ++i) {
        const RunStats s = futures[i].get();
        if (!s.ok && firstError.empty()) firstError = s.error;
        engine::RequestTiming t;
        t.sent = Seconds(s.submitted - start).count();
        for (const auto& tt : s.tokenTimes) t.tokenTimes.push_back(Seconds(tt - start).count());
        t.ok = s.ok;
        t.inputLen = plan[i].inputLen;
        runs.push_back(std::move(t));
        inputMean += plan[i].inputLen / double(plan.size());
        outputMean += plan[i].outputLen / double(plan.size());
    }
    const auto r = engine::summarizeThroughput(runs, Seconds(Clock::now() - start).count(), test.limits);
    const bool shareGpt = w.lengths == engine::WorkloadOptions::Lengths::ShareGpt;
    std::printf("throughput: %d requests (%d ok), concurrency %d, %s lengths (prompt mean %.1f, output mean %.1f "
                "tokens), ",
                r.requests, r.ok, test.concurrency, shareGpt ? "ShareGPT-like" : "fixed", inputMean, outputMean);
    if (w.requestRate > 0)
        std::printf("Poisson arrivals at %.2f requests/s, seed %u\n", w.requestRate, unsigned(w.seed));
    else
        std::printf("all requests at once, seed %u\n", unsigned(w.seed));
    if (!firstError.empty()) std::printf("  first error: %s\n", firstError.c_str());
    std::printf("  %.2f requests/s, %.1f output tok/s, %.1f prompt tok/s, wall %.2f s\n", r.requestsPerSecond,
                r.outputTokensPerSecond, r.inputTokensPerSecond, r.wall);
    auto line = [](const char* name, const engine::Percentiles& p) {
        std::printf("  %-24s ms: p50 %.2f  p90 %.2f  p99 %.2f  mean %.2f\n", name, 1e3 * p.p50, 1e3 * p.p90,
                    1e3 * p.p99, 1e3 * p.mean);
    };
    line("time to first token", r.ttft);
    line("inter-token latency", r.itl);
    line("time per output token", r.tpot);
    std::printf("  goodput (TTFT <= %.0f ms, time per output token <= %.0f ms): %.2f requests/s (%d of %d requests)\n",
                1e3 * test.limits.ttft, 1e3 * test.limits.itl, r.goodput, r.good, r.requests);
    std::fflush(stdout);
}

// A Llama-shaped model with random weights and the tokenizer of a real model (its vocabulary):
// "100m" (~100M parameters) and "1b" (Llama-3.2-1B's layers) for CPU runs, "7b" (Llama-2-7B's layer
// shapes) for GPU runs; dtype
// F32, F16, BF16 or W4A16 (AutoAWQ GEMM, group 128, random codes: see writeRandomLlamaAwq).
// Positions go past Llama-2's 4096 (rotary without scaling) so --context 8192 can run.
std::string writeSyntheticModel(const std::string& tokenizerFrom, const std::string& size, const std::string& dtypeName) {
    engine::ModelConfig cfg = engine::parseModelConfig(tokenizerFrom);
    cfg.architecture = "LlamaForCausalLM";
    cfg.family = engine::ModelFamily::Llama;
    if (size == "7b") {
        cfg.hiddenSize = 4096, cfg.intermediateSize = 11008, cfg.numLayers = 32;
        cfg.numHeads = 32, cfg.numKvHeads = 32, cfg.headDim = 128, cfg.maxPositionEmbeddings = 16384;
    } else if (size == "1b") {  // Llama-3.2-1B's layers
        cfg.hiddenSize = 2048, cfg.intermediateSize = 8192, cfg.numLayers = 16;
        cfg.numHeads = 32, cfg.numKvHeads = 8, cfg.headDim = 64, cfg.maxPositionEmbeddings = 16384;
    } else {
        cfg.hiddenSize = 768, cfg.intermediateSize = 2048, cfg.numLayers = 14;
        cfg.numHeads = 12, cfg.numKvHeads = 12, cfg.headDim = 64, cfg.maxPositionEmbeddings = 16384;
    }
    cfg.ropeScaling = {};
    cfg.tieWordEmbeddings = false;
    cfg.qkvBias = false;
    const bool awq = dtypeName == "W4A16";
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("lmw-bench-" + size + "-" + dtypeName)).string();
    // Reused when a previous run wrote the same shape (the folder appears only when complete).
    if (std::filesystem::exists(dir + "/model.safetensors")) {
        try {
            const engine::ModelConfig have = engine::parseModelConfig(dir);
            if (have.hiddenSize == cfg.hiddenSize && have.numLayers == cfg.numLayers &&
                have.intermediateSize == cfg.intermediateSize && have.vocabSize == cfg.vocabSize &&
                have.maxPositionEmbeddings == cfg.maxPositionEmbeddings && have.awq == awq)
                return dir;
        } catch (const Error&) {  // unreadable: written again below
        }
    }
    std::fprintf(stderr, "writing a random %s-parameter Llama-shaped %s model to %s\n", size.c_str(), dtypeName.c_str(),
                 dir.c_str());
    engine::quant::OutputFolder out(dir, true);
    if (awq) {
        engine::writeRandomLlamaAwq(out.path(), cfg, 42, tokenizerFrom, 128);
    } else {
        DType dt = DType::BF16;
        dtypeFromName(dtypeName, dt);
        engine::writeRandomLlama(out.path(), cfg, dt, 42, tokenizerFrom);
    }
    out.commit();
    return dir;
}

// The device's read bandwidth (GB/s) that decode rows are a percentage of, printed once.
double measureBandwidth(const std::string& backend, int threads) {
    if (backend == "cpu") {
        const double bw = engine::measureMemoryBandwidthGBs(threads);
        const uint64_t llc = engine::cpuLastLevelCacheBytes();
        std::printf("cpu kernels: %s\n", engine::cpuKernelSummary().c_str());
        std::printf("measured memory read bandwidth: %.2f GB/s (a 1 GiB buffer; last-level cache %s)\n", bw,
                    llc ? engine::formatBytes(llc).c_str() : "unknown");
        return bw;
    }
    if (const engine::CudaModule* cuda = engine::cudaModule(); cuda && backend == "cuda") {
        const double read = cuda->readBandwidthGBs();
        const double copy = cuda->copyBandwidthGBs();
        std::printf("measured device read bandwidth (sum kernel, 16-byte loads): %.0f GB/s; device-to-device copy "
                    "(read + write): %.0f GB/s\n",
                    read, copy);
        return read;
    }
    return 0;
}

void setupBench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "Measure decode speed (vs memory bandwidth) and throughput");
    static engine::EngineConfig config;
    static std::string synthetic;
    static std::vector<std::string> dtypes{"BF16"};
    static std::vector<int> batches{1};
    static int context = 512, decodeTokens = 128;
    static ThroughputTest tp;
    static std::string lengths = "fixed";
    static double ttftMs = 2000, itlMs = 50;
    static bool prepareOnly = false;
    addEngineOptions(cmd, config);
    cmd->add_option("--synthetic", synthetic,
                    "also write and benchmark a random Llama-shaped model of this size (tokenizer from MODEL)")
        ->check(CLI::IsMember({"100m", "1b", "7b"}));
    cmd->add_option("--synthetic-dtype", dtypes, "F32, F16, BF16 or W4A16 (AWQ g128), a comma-separated list")
        ->delimiter(',')
        ->check(CLI::IsMember({"F32", "F16", "BF16", "W4A16"}));
    cmd->add_flag("--prepare-only", prepareOnly, "write the synthetic models and exit");
    cmd->add_option("--context,--prompt-len", context, "decode test: prompt tokens before decode is timed")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--batch", batches, "decode test: concurrent sequences, a comma-separated list (1,4,16)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber);
    cmd->add_option("--decode-tokens", decodeTokens, "decode test: tokens generated per sequence")
        ->check(CLI::Range(2, 1 << 20));
    static std::string schemaFile;
    cmd->add_option("--json-schema", schemaFile,
                    "decode test: each batch size again with replies constrained by this JSON Schema (structured "
                    "output; rows marked +schema); its documents should outlast --decode-tokens, e.g. "
                    "bench/long_document.schema.json")
        ->check(CLI::ExistingFile);
    cmd->add_option("--requests", tp.requests, "throughput test: number of requests (0 = skip)");
    cmd->add_option("--concurrency", tp.concurrency, "throughput test: requests in flight at most")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--workload", lengths,
                    "throughput test: fixed (--input-len, --output-len) or sharegpt (seeded log-normal lengths like "
                    "ShareGPT's: means 161 prompt and 338 output tokens, prompts up to 1024, requests up to 2048 "
                    "or the session)")
        ->check(CLI::IsMember({"fixed", "sharegpt"}));
    cmd->add_option("--input-len", tp.workload.inputLen, "throughput test, fixed: prompt tokens (random)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--output-len", tp.workload.outputLen, "throughput test, fixed: output tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--request-rate", tp.workload.requestRate,
                    "throughput test: Poisson arrivals at this many requests/s (0 = all at once)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--workload-seed", tp.workload.seed, "throughput test: seed of the lengths, arrivals and prompts");
    cmd->add_option("--goodput-ttft-ms", ttftMs, "goodput: time to first token at most")->check(CLI::PositiveNumber);
    cmd->add_option("--goodput-itl-ms", itlMs, "goodput: a request's mean inter-token latency at most")
        ->check(CLI::PositiveNumber);
    cmd->callback([] {
        std::vector<std::string> models{config.modelDir};
        if (!synthetic.empty())
            for (const auto& dt : dtypes) models.push_back(writeSyntheticModel(config.modelDir, synthetic, dt));
        if (prepareOnly) {
            for (size_t i = 1; i < models.size(); ++i) std::printf("%s\n", models[i].c_str());
            return;
        }
        const int maxBatch = *std::max_element(batches.begin(), batches.end());
        if (maxBatch > config.maxBatchSize)
            throw Error(ErrorCode::InvalidArgument, "--batch " + std::to_string(maxBatch) + " is above --max-batch-size " +
                                                        std::to_string(config.maxBatchSize));
        tp.workload.lengths =
            lengths == "sharegpt" ? engine::WorkloadOptions::Lengths::ShareGpt : engine::WorkloadOptions::Lengths::Fixed;
        tp.limits = {ttftMs / 1e3, itlMs / 1e3};
        const bool shareGpt = tp.workload.lengths == engine::WorkloadOptions::Lengths::ShareGpt;
        // Tokens of the longest throughput request; ShareGPT-like ones fit the session (below).
        const int tpNeed = tp.requests <= 0 ? 0
                           : shareGpt      ? 2 * engine::kShareGptMinLen
                                           : tp.workload.inputLen + tp.workload.outputLen;
        const int need = std::max(context + decodeTokens, tpNeed) + 1;
        const bool onCpu = config.backend == "cpu" || (config.backend == "auto" && !engine::cudaAvailable());
        std::shared_ptr<const engine::Grammar> grammar;
        if (!schemaFile.empty()) {
            std::ifstream in(schemaFile);
            const auto schema = nlohmann::ordered_json::parse(in, nullptr, false);
            if (schema.is_discarded()) throw Error(ErrorCode::InvalidArgument, schemaFile + " is not JSON");
            grammar = engine::Grammar::fromJsonSchema(schema);
        }
        double bandwidth = 0;
        for (const auto& dir : models) {
            engine::EngineConfig c = config;
            c.modelDir = dir;
            auto info = engine::readModelInfo(dir);
            if (!info) throw info.error();
            int session = c.sessionLen > 0 ? c.sessionLen : info->contextLength;
            if (c.sessionLen == 0) {
                if (info->contextLength < need) {
                    std::printf("model %s: skipped, its context %d is below the %d tokens the test needs\n",
                                info->name.c_str(), info->contextLength, need);
                    continue;
                }
                // The session only as long as the test needs: the CPU sizes its cache by it. A GPU
                // reserves activations for min(session, prefill budget) tokens at load, and B
                // prompts prefilled in one step can fill the whole budget.
                session = std::max(need, shareGpt ? std::min(info->contextLength, engine::kShareGptMaxTotalLen + 1) : 0);
                c.sessionLen = onCpu ? session : std::max(session, std::min(info->contextLength, c.maxPrefillTokenNum));
            }
            ThroughputTest test = tp;
            test.workload.maxTotalLen = std::min(engine::kShareGptMaxTotalLen, session - 1);
            test.workload.maxInputLen = std::min(engine::kShareGptMaxInputLen, test.workload.maxTotalLen - engine::kShareGptMinLen);
            auto e = loadEngine(c, false);
            if (bandwidth == 0) bandwidth = measureBandwidth(e->stats().backend, config.threads);
            benchDecode(*e, context, decodeTokens, batches, bandwidth, config.quantPolicy, grammar);
            if (e->stats().backend == "cpu") benchCpuPrefill(*e, context, config.threads);
            if (tp.requests > 0) benchThroughput(*e, test);
        }
    });
}

const bool registered = registerCommand("bench", 70, setupBench);

}  // namespace
}  // namespace lmw::cli
