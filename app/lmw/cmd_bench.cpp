// `lmw bench`: decode speed against the memory-bandwidth limit, and throughput under load.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "backend/cpu/membw.h"
#ifdef LMW_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "commands.h"
#include "engine_options.h"
#include "model/model_writer.h"

namespace lmw::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

struct RunStats {
    double ttft = 0;               // seconds
    std::vector<double> itl;       // inter-token latencies, seconds
    int outputTokens = 0;
    double total = 0;
    bool ok = false;
    std::string error;
};

// Submits one request and records when each token arrived (the sink only copies timestamps out).
std::future<RunStats> launch(engine::Engine& e, engine::Request req) {
    auto state = std::make_shared<std::pair<std::promise<RunStats>, RunStats>>();
    auto start = Clock::now();
    auto last = std::make_shared<Clock::time_point>(start);
    auto fut = state->first.get_future();
    e.submit(std::move(req), [state, start, last](const engine::Event& ev) {
        RunStats& s = state->second;
        const auto now = Clock::now();
        for (size_t i = 0; i < ev.tokens.size(); ++i) {
            if (s.outputTokens == 0) s.ttft = Seconds(now - start).count();
            else s.itl.push_back(Seconds(now - *last).count());
            ++s.outputTokens;
            *last = now;
        }
        if (ev.final) {
            s.total = Seconds(now - start).count();
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

// Bytes the decode step streams per token: every weight except the embedding table (only the
// rows of the batch are gathered), unless the head is tied to it.
double decodeBytesPerToken(const engine::ModelInfo& info) {
    const auto& c = info.config;
    const double bytesPerWeight = double(info.weightBytes) / double(std::max<int64_t>(1, info.parameters));
    const double embed = c.tieWordEmbeddings ? 0 : double(c.vocabSize) * c.hiddenSize * bytesPerWeight;
    return double(info.weightBytes) - embed;
}

void benchDecode(engine::Engine& e, int promptLen, int tokens, double bandwidth) {
    std::mt19937 rng(1);
    engine::Request req;
    req.promptIds = randomPrompt(rng, promptLen, e.info().config.vocabSize);
    req.sampling.temperature = 0;
    req.sampling.ignoreEos = true;
    req.sampling.maxNewTokens = 8;
    launch(e, req).get();  // warm-up
    req.sampling.maxNewTokens = tokens;
    const RunStats s = launch(e, req).get();
    if (!s.ok) throw Error(ErrorCode::Internal, "benchmark request failed: " + s.error);
    const double decodeTime = s.total - s.ttft;
    const double tps = (s.outputTokens - 1) / decodeTime;
    const double gbs = decodeBytesPerToken(e.info()) * tps / 1e9;
    const auto& info = e.info();
    std::printf("model %s (%s, %s params, %s weights), backend %s (%s)\n", info.name.c_str(), info.dtype.c_str(),
                engine::formatParameters(info.parameters).c_str(), engine::formatBytes(info.weightBytes).c_str(),
                e.stats().backend.c_str(), e.stats().device.c_str());
    std::printf("  prefill %d tokens: %.1f ms (%.0f tok/s)\n", promptLen, s.ttft * 1e3, promptLen / s.ttft);
    std::printf("  decode batch 1: %.1f tok/s, %.2f ms/token, weights streamed %.2f GB/s", tps, 1e3 / tps, gbs);
    if (bandwidth > 0) std::printf(" = %.0f%% of measured %.2f GB/s", 100 * gbs / bandwidth, bandwidth);
    std::printf("\n");
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
        tokens += r.outputTokens;
        ttft.push_back(r.ttft);
        itl.insert(itl.end(), r.itl.begin(), r.itl.end());
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
// "100m" (~100M parameters) for CPU runs, "7b" (Llama-2-7B's layer shapes) for GPU runs.
std::string writeSyntheticModel(const std::string& tokenizerFrom, const std::string& size, const std::string& dtypeName) {
    engine::ModelConfig cfg = engine::parseModelConfig(tokenizerFrom);
    cfg.architecture = "LlamaForCausalLM";
    cfg.family = engine::ModelFamily::Llama;
    if (size == "7b") {
        cfg.hiddenSize = 4096, cfg.intermediateSize = 11008, cfg.numLayers = 32;
        cfg.numHeads = 32, cfg.numKvHeads = 32, cfg.headDim = 128, cfg.maxPositionEmbeddings = 4096;
    } else {
        cfg.hiddenSize = 768, cfg.intermediateSize = 2048, cfg.numLayers = 14;
        cfg.numHeads = 12, cfg.numKvHeads = 12, cfg.headDim = 64, cfg.maxPositionEmbeddings = 2048;
    }
    cfg.ropeScaling = {};
    cfg.tieWordEmbeddings = false;
    cfg.qkvBias = false;
    cfg.awq = false;
    DType dt = DType::BF16;
    dtypeFromName(dtypeName, dt);
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("lmw-bench-" + size + "-" + dtypeName)).string();
    if (!std::filesystem::exists(dir + "/model.safetensors")) {
        std::fprintf(stderr, "writing a random %s-parameter Llama-shaped model to %s\n", size.c_str(), dir.c_str());
        engine::writeRandomLlama(dir, cfg, dt, 42, tokenizerFrom);
    }
    return dir;
}

void setupBench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "Measure decode speed (vs memory bandwidth) and throughput");
    static engine::EngineConfig config;
    static std::string synthetic;
    static std::string dtype = "BF16";
    static int promptLen = 32, decodeTokens = 128;
    static int requests = 0, concurrency = 16, tpPrompt = 128, tpOutput = 128;
    addEngineOptions(cmd, config);
    cmd->add_option("--synthetic", synthetic,
                    "also write and benchmark a random Llama-shaped model of this size (tokenizer from MODEL)")
        ->check(CLI::IsMember({"100m", "7b"}));
    cmd->add_option("--synthetic-dtype", dtype, "F32, F16 or BF16")->check(CLI::IsMember({"F32", "F16", "BF16"}));
    cmd->add_option("--prompt-len", promptLen, "decode test: prompt tokens");
    cmd->add_option("--decode-tokens", decodeTokens, "decode test: tokens generated");
    cmd->add_option("--requests", requests, "throughput test: number of requests (0 = skip)");
    cmd->add_option("--concurrency", concurrency, "throughput test: concurrent requests");
    cmd->add_option("--input-len", tpPrompt, "throughput test: prompt tokens (random)");
    cmd->add_option("--output-len", tpOutput, "throughput test: output tokens");
    cmd->callback([] {
        std::vector<std::string> models{config.modelDir};
        if (!synthetic.empty()) models.push_back(writeSyntheticModel(config.modelDir, synthetic, dtype));
        double bandwidth = 0;
        for (const auto& dir : models) {
            engine::EngineConfig c = config;
            c.modelDir = dir;
            auto e = loadEngine(c, false);
            if (bandwidth == 0 && e->stats().backend == "cpu") {
                bandwidth = engine::measureMemoryBandwidthGBs(config.threads);
                std::printf("measured memory read bandwidth: %.2f GB/s\n", bandwidth);
            }
#ifdef LMW_HAVE_CUDA
            if (bandwidth == 0 && e->stats().backend == "cuda") {
                bandwidth = engine::measureDeviceCopyBandwidthGBs();
                std::printf("measured device-to-device copy bandwidth (read + write): %.0f GB/s\n", bandwidth);
            }
#endif
            benchDecode(*e, promptLen, decodeTokens, bandwidth);
            if (requests > 0) benchThroughput(*e, requests, concurrency, tpPrompt, tpOutput);
        }
    });
}

const bool registered = registerCommand("bench", 70, setupBench);

}  // namespace
}  // namespace lmw::cli
