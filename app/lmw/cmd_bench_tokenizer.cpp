// `lmw bench-tokenizer MODEL --text FILE`: encode throughput of the model's tokenizer on one thread.
// The text is cut into documents at blank lines ("\n\n" stays with the document before it) and
// each is encoded without special tokens; bench/tokenizer/ has the same measurement for the
// Hugging Face `tokenizers` (Python) and @huggingface/transformers (Node) libraries, and the token
// count and checksum printed here must equal theirs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "lmw/error.h"
#include "lmw/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace lmw::cli {
namespace {

std::vector<std::string> documents(const std::string& text) {
    std::vector<std::string> docs;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find("\n\n", start);
        end = end == std::string::npos ? text.size() : end + 2;
        docs.push_back(text.substr(start, end - start));
        start = end;
    }
    return docs;
}

void setupBenchTokenizer(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench-tokenizer", "Tokenizer encode throughput (MB/s, one thread) on a text file");
    static std::string dir, textFile;
    static int passes = 5;
    cmd->add_option("model", dir, "model folder (tokenizer.json or tokenizer.model)")->required();
    cmd->add_option("--text", textFile, "UTF-8 text (bench/tokenizer/make_text.py writes a mixed one)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--passes", passes, "times the whole text is encoded")->check(CLI::PositiveNumber)->capture_default_str();
    cmd->callback([] {
        const std::string text = engine::readTextFile(textFile);
        const auto docs = documents(text);
        const auto t0 = std::chrono::steady_clock::now();
        auto tok = engine::Tokenizer::load(dir);
        const double loadS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

        std::vector<double> seconds;
        size_t tokens = 0;
        uint32_t checksum = 0;
        std::vector<std::vector<int32_t>> out(docs.size());
        for (int p = 0; p < passes; ++p) {
            const auto start = std::chrono::steady_clock::now();
            for (size_t i = 0; i < docs.size(); ++i) out[i] = tok->encode(docs[i], false);
            seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        for (const auto& ids : out) {  // outside the timing, as in the comparison scripts
            tokens += ids.size();
            for (int32_t id : ids) checksum = checksum * 31u + static_cast<uint32_t>(id) + 1u;
        }
        const double mb = text.size() / 1e6;
        const double best = *std::min_element(seconds.begin(), seconds.end());
        std::printf("lmw %s: %s, loaded in %.2f s\n", dir.c_str(), tok->kind().c_str(), loadS);
        std::printf("  text %.2f MB in %zu documents -> %zu tokens, checksum %08x\n", mb, docs.size(), tokens, checksum);
        std::printf("  encode, 1 thread: %.2f MB/s first pass, %.2f MB/s best of %d (%.0f tokens/s)\n", mb / seconds[0],
                    mb / best, passes, tokens / best);
    });
}

const bool registered = registerCommand("bench-tokenizer", 72, setupBenchTokenizer);

}  // namespace
}  // namespace lmw::cli
