// `lmw ppl`: perplexity of a model on a text file (definition in lmw/quantize.h).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "lmw/quantize.h"

namespace lmw::cli {

namespace {

const bool registered = registerCommand("ppl", 60, [](CLI::App& app) {
    auto opts = std::make_shared<engine::PerplexityOptions>();
    auto textFile = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("ppl", "Perplexity of a model on a text (non-overlapping windows)");
    cmd->add_option("model", opts->modelDir, "Hugging Face model folder (16-bit or AWQ)")->required();
    cmd->add_option("--text", *textFile, "UTF-8 text file")->required()->check(CLI::ExistingFile);
    cmd->add_option("--seqlen", opts->seqLen, "window length in tokens (default min(2048, model context))")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--backend", opts->backend, "auto, cuda or cpu")->check(CLI::IsMember({"auto", "cuda", "cpu"}));
    cmd->add_option("--threads", opts->threads, "CPU threads (0 = all cores)");
    cmd->add_option("--quant-policy", opts->quantPolicy, "KV cache while scoring: 0 = 16-bit, 8 = int8, 4 = int4")
        ->check(CLI::IsMember({0, 4, 8}));
    cmd->callback([opts, textFile] {
        std::ifstream f(*textFile, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        opts->text = ss.str();
        auto r = engine::perplexity(*opts);
        if (!r) {
            std::fprintf(stderr, "error: %s\n", r.error().what());
            exitCode() = 1;
            return;
        }
        const auto& p = r.value();
        std::printf("perplexity %.4f (mean NLL %.4f nats over %lld tokens; %d windows of up to %d tokens; %.1f s)\n", p.ppl,
                    p.meanNll, static_cast<long long>(p.scoredTokens), p.windows, p.seqLen, p.seconds);
    });
});

}  // namespace

}  // namespace lmw::cli
