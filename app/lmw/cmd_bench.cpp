// `lmw bench`: decode speed against the memory-bandwidth limit, and throughput under load.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "backend/cpu/membw.h"
#include "backend/cuda_module.h"
#include "commands.h"
#include "engine_options.h"
#include "model/model_writer.h"
#include "quant/output_folder.h"

namespace lmw::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

struct RunStats {
    Clock::time_point submitted;
    std::vector<Clock::time_point> tokenTimes;  // when each generated token reached the sink
    double total = 0;                           // seconds, submit to final event
    bool ok = false;
    std::string error;
    int outputTokens() const { return int(tokenTimes.size()); }
    double ttft() const { return tokenTimes.empty() ? 0 : Seconds(tokenTimes.front() - submitted).count(); }
};

// Submits one request and records when each token arrived (the sink only copies timestamps out).
std::future<RunStats> launch(engine::Engine& e, engine::Request req) {
    auto state = std::make_shared<std::pair<std::promise<RunStats>, RunStats>>();
    state->second.submitted = Clock::now();
    state->second.tokenTimes.reserve(size_t(req.sampling.maxNewTokens));
    auto fut = state->first.get_future();
    e.submit(std::move(req), [state](const engine::Event& ev) {
        RunStats& s = state->second;
        const auto now = Clock::now();
        s.tokenTimes.insert(s.tokenTimes.end(), ev.tokens.size(), now);
        if (ev.final) {
            s.total = Seconds(now - s.submitted).count();
            s.ok = ev.finish != engine::FinishReason::Error;
            s.error = ev.error;
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

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())))];
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
    const auto tolerance = std::chrono::duration_cast<Clock::duration>(Seconds(0.5 * percentile(gaps, 50)));
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
void benchDecode(engine::Engine& e, int context, int tokens, const std::vector<int>& batches, double bandwidth,
                 int quantPolicy, const std::shared_ptr<const engine::Grammar>& grammar) {
    const auto& info = e.info();
    const std::string backend = e.stats().backend;
    std::printf("model %s (%s, %s params, %s weights), backend %s (%s)\n", info.name.c_str(), info.dtype.c_str(),
                engine::formatParameters(info.parameters).c_str(), engine::formatBytes(info.weightBytes).c_str(),
                backend.c_str(), e.stats().device.c_str());
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

void benchThroughput(engine::Engine& e, int requests, int concurrency, int promptLen, int outputLen) {
    std::mt19937 rng(2);
    std::vector<RunStats> results;
    std::mutex mu;
    const auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < concurrency; ++c) {
        std::vector<std::vector<int32_t>> prompts;
        for (int i = c; i < requests; i += concurrency) prompts.push_back(randomPrompt(rng, promptLen, e.info().config.vocabSize));
        clients.emplace_back([&, prompts] {
            for (const auto& p : prompts) {
                engine::Request req;
                req.promptIds = p;
                req.sampling.temperature = 0;
                req.sampling.ignoreEos = true;
                req.sampling.maxNewTokens = outputLen;
                RunStats s = launch(e, req).get();
                std::lock_guard lock(mu);
                results.push_back(std::move(s));
            }
        });
    }
    for (auto& t : clients) t.join();
    const double wall = Seconds(Clock::now() - start).count();
    int ok = 0, tokens = 0;
    std::vector<double> ttft, itl;
    std::string firstError;
    for (const auto& r : results) {
        ok += r.ok;
        if (!r.ok && firstError.empty()) firstError = r.error;
        tokens += r.outputTokens();
        ttft.push_back(r.ttft());
        for (size_t k = 1; k < r.tokenTimes.size(); ++k) itl.push_back(Seconds(r.tokenTimes[k] - r.tokenTimes[k - 1]).count());
    }
    std::printf("throughput: %d requests (%d ok), concurrency %d, prompt %d, output %d tokens\n", requests, ok,
                concurrency, promptLen, outputLen);
    if (!firstError.empty()) std::printf("  first error: %s\n", firstError.c_str());
    std::printf("  %.2f requests/s, %.1f output tok/s, wall %.2f s\n", results.size() / wall, tokens / wall, wall);
    std::printf("  time to first token ms: p50 %.1f  p90 %.1f  p99 %.1f\n", 1e3 * percentile(ttft, 50),
                1e3 * percentile(ttft, 90), 1e3 * percentile(ttft, 99));
    std::printf("  inter-token latency ms: p50 %.2f  p90 %.2f  p99 %.2f\n", 1e3 * percentile(itl, 50),
                1e3 * percentile(itl, 90), 1e3 * percentile(itl, 99));
}

// A Llama-shaped model with random weights and the tokenizer of a real model (its vocabulary):
// "100m" (~100M parameters) for CPU runs, "7b" (Llama-2-7B's layer shapes) for GPU runs; dtype
// F32, F16, BF16 or W4A16 (AutoAWQ GEMM, group 128, random codes: see writeRandomLlamaAwq).
// Positions go past Llama-2's 4096 (rotary without scaling) so --context 8192 can run.
std::string writeSyntheticModel(const std::string& tokenizerFrom, const std::string& size, const std::string& dtypeName) {
    engine::ModelConfig cfg = engine::parseModelConfig(tokenizerFrom);
    cfg.architecture = "LlamaForCausalLM";
    cfg.family = engine::ModelFamily::Llama;
    if (size == "7b") {
        cfg.hiddenSize = 4096, cfg.intermediateSize = 11008, cfg.numLayers = 32;
        cfg.numHeads = 32, cfg.numKvHeads = 32, cfg.headDim = 128, cfg.maxPositionEmbeddings = 16384;
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
        std::printf("measured memory read bandwidth: %.2f GB/s\n", bw);
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
    static int requests = 0, concurrency = 16, tpPrompt = 128, tpOutput = 128;
    static bool prepareOnly = false;
    addEngineOptions(cmd, config);
    cmd->add_option("--synthetic", synthetic,
                    "also write and benchmark a random Llama-shaped model of this size (tokenizer from MODEL)")
        ->check(CLI::IsMember({"100m", "7b"}));
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
    cmd->add_option("--requests", requests, "throughput test: number of requests (0 = skip)");
    cmd->add_option("--concurrency", concurrency, "throughput test: concurrent requests");
    cmd->add_option("--input-len", tpPrompt, "throughput test: prompt tokens (random)");
    cmd->add_option("--output-len", tpOutput, "throughput test: output tokens");
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
        const int need = std::max(context + decodeTokens, requests > 0 ? tpPrompt + tpOutput : 0) + 1;
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
            if (c.sessionLen == 0) {
                auto info = engine::readModelInfo(dir);
                if (!info) throw info.error();
                if (info->contextLength < need) {
                    std::printf("model %s: skipped, its context %d is below the %d tokens the test needs\n",
                                info->name.c_str(), info->contextLength, need);
                    continue;
                }
                // The session only as long as the test needs: the CPU sizes its cache by it. A GPU
                // reserves activations for min(session, prefill budget) tokens at load, and B
                // prompts prefilled in one step can fill the whole budget.
                c.sessionLen = onCpu ? need : std::max(need, std::min(info->contextLength, c.maxPrefillTokenNum));
            }
            auto e = loadEngine(c, false);
            if (bandwidth == 0) bandwidth = measureBandwidth(e->stats().backend, config.threads);
            benchDecode(*e, context, decodeTokens, batches, bandwidth, config.quantPolicy, grammar);
            if (requests > 0) benchThroughput(*e, requests, concurrency, tpPrompt, tpOutput);
        }
    });
}

const bool registered = registerCommand("bench", 70, setupBench);

}  // namespace
}  // namespace lmw::cli
