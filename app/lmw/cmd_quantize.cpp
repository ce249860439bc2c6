// `lmw quantize`: W4A16 AWQ (or plain round-to-nearest) into an AutoAWQ-layout folder.
#include <sys/resource.h>

#include <atomic>

#include <csignal>
#include <cstdio>

#include "commands.h"
#include "lmw/model_info.h"
#include "lmw/quantize.h"

namespace lmw::cli {

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void onInterrupt(int) { g_interrupted = true; }

std::string duration(double s) {
    char b[32];
    if (s < 0) return "?";
    if (s < 60) std::snprintf(b, sizeof b, "%.0fs", s);
    else std::snprintf(b, sizeof b, "%dm%02ds", int(s) / 60, int(s) % 60);
    return b;
}

const bool registered = registerCommand("quantize", 50, [](CLI::App& app) {
    auto opts = std::make_shared<engine::QuantizeOptions>();
    auto quiet = std::make_shared<bool>(false);
    CLI::App* cmd = app.add_subcommand("quantize", "Quantize a model to W4A16 (AWQ, AutoAWQ GEMM layout)");
    cmd->add_option("model", opts->modelDir, "Hugging Face model folder")->required();
    cmd->add_option("--work-dir", opts->workDir, "output folder (created; must not exist or be empty)")->required();
    cmd->add_option("--method", opts->method, "awq (activation-aware) or rtn (plain round-to-nearest)")
        ->check(CLI::IsMember({"awq", "rtn"}))
        ->capture_default_str();
    cmd->add_option("--w-bits", opts->bits, "weight bits (4)")->check(CLI::IsMember({4}))->capture_default_str();
    cmd->add_option("--w-group-size", opts->groupSize, "quantization group size")
        ->check(CLI::IsMember({32, 64, 128}))
        ->capture_default_str();
    cmd->add_option("--calib-dataset", opts->calibDataset,
                    "calibration text: 'self' (sampled from the model, offline) or a .txt / .jsonl file")
        ->capture_default_str();
    cmd->add_option("--calib-samples", opts->calibSamples, "calibration sequences")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--calib-seqlen", opts->calibSeqLen, "tokens per calibration sequence (clamped to the model context)")
        ->check(CLI::Range(2, 1 << 20))
        ->capture_default_str();
    cmd->add_flag("--search-scale,!--no-search-scale", opts->searchScale,
                  "grid-search the AWQ scale exponent (default on; off = fixed 0.5)");
    cmd->add_flag("--search-clip", opts->searchClip, "also search weight clipping (slower)");
    cmd->add_option("--search-tokens", opts->searchTokens, "calibration tokens kept per linear for the searches")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--backend", opts->backend, "auto, cuda or cpu")->check(CLI::IsMember({"auto", "cuda", "cpu"}));
    cmd->add_option("--threads", opts->threads, "CPU threads (0 = all cores)");
    cmd->add_option("--seed", opts->seed, "seed of the self-calibration sampling");
    cmd->add_option("--ppl-text", opts->pplTextFile, "also report perplexity before/after on this text file")
        ->check(CLI::ExistingFile);
    cmd->add_option("--ppl-seqlen", opts->pplSeqLen, "perplexity window (default min(2048, model context))");
    cmd->add_flag("--overwrite", opts->overwrite, "replace a non-empty output folder (after success)");
    cmd->add_flag("-q,--quiet", *quiet, "no progress on stderr");
    cmd->callback([opts, quiet] {
        g_interrupted = false;
        auto previous = std::signal(SIGINT, onInterrupt);
        auto progress = [quiet](const engine::QuantizeProgress& p) {
            if (!*quiet) {
                std::fprintf(stderr, "\r\033[K[%s %d/%d] %s elapsed, eta %s, %s written  %s",
                             engine::quantizeStageName(p.stage), p.layer, p.numLayers, duration(p.elapsed).c_str(),
                             duration(p.eta).c_str(), engine::formatBytes(p.bytesWritten).c_str(), p.message.c_str());
                if (p.stage == engine::QuantizeStage::Done) std::fprintf(stderr, "\n");
            }
            return !g_interrupted.load();
        };
        auto r = engine::quantizeModel(*opts, progress);
        std::signal(SIGINT, previous);
        if (!*quiet) std::fprintf(stderr, "\n");
        if (!r) {
            std::fprintf(stderr, "error: %s\n", r.error().what());
            exitCode() = r.error().code() == ErrorCode::Cancelled ? 130 : 1;
            return;
        }
        std::fputs(engine::formatQuantizeReport(r.value()).c_str(), stdout);
        struct rusage ru {};
        getrusage(RUSAGE_SELF, &ru);  // includes the pages of the memory-mapped source weights it read
        std::printf("peak host memory (max RSS): %s\n", engine::formatBytes(uint64_t(ru.ru_maxrss) * 1024).c_str());
    });
});

}  // namespace

}  // namespace lmw::cli
