// Grammar mask cost per decode step over a real vocabulary (default: qwen3-tiny, 151,936 logits),
// single-threaded: batch 1 (one matcher) and batch N (N matchers, total time per step), along
// random valid walks of a nested schema (random allowed tokens, leaning more and more towards
// tokens that close a value so that documents finish).
//   grammar_bench [model dir] [steps] [batch]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "lmw/grammar.h"
#include "lmw/tokenizer.h"

using namespace lmw::engine;
using Clock = std::chrono::steady_clock;

namespace {

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer"},
    "email": {"type": "string"},
    "role": {"enum": ["admin", "user", "guest"]},
    "address": {"type": "object", "properties": {
        "street": {"type": "string"}, "city": {"type": "string"}, "zip": {"type": "string", "minLength": 5, "maxLength": 5}},
      "required": ["street", "city", "zip"], "additionalProperties": false},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 6},
    "scores": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 4},
    "bio": {"type": "string", "minLength": 60},
    "friends": {"type": "array", "maxItems": 3, "items": {"$ref": "#/$defs/person"}}
  },
  "required": ["name", "age", "email", "role", "address", "tags", "scores", "bio"],
  "additionalProperties": false,
  "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                       "required": ["name", "note"], "additionalProperties": false}}
})";

struct Walker {
    GrammarMatcher m;
    std::mt19937 rng;
    int step = 0;
};

struct Stats {
    std::vector<double> us;
    void print(const char* what) {
        std::sort(us.begin(), us.end());
        double sum = 0;
        for (double x : us) sum += x;
        auto pct = [&](double p) { return us[std::min(us.size() - 1, size_t(p * double(us.size())))]; };
        std::printf("%-34s n=%-6zu mean %8.1f us   p50 %8.1f   p99 %8.1f   max %8.1f\n", what, us.size(),
                    sum / double(us.size()), pct(0.5), pct(0.99), us.back());
    }
};

}  // namespace

int main(int argc, char** argv) {
    const std::string dir = argc > 1 ? argv[1] : std::string(LMW_MODELS_DIR) + "/qwen3-tiny";
    const int steps = argc > 2 ? std::stoi(argv[2]) : 2000;
    const int batch = argc > 3 ? std::stoi(argv[3]) : 32;
    auto tok = Tokenizer::load(dir);
    const int vocabSize = std::max(tok->vocabSize(), 151936);  // the Qwen3 logits width
    auto t0 = Clock::now();
    auto vocab = TokenVocabulary::fromTokenizer(*tok, vocabSize);
    auto t1 = Clock::now();
    auto grammar = Grammar::fromJsonSchema(nlohmann::ordered_json::parse(kSchema));
    auto t2 = Clock::now();
    std::printf("%s: vocabulary %d tokens, built in %.1f ms; schema compiled in %.2f ms\n", dir.c_str(), vocabSize,
                std::chrono::duration<double, std::milli>(t1 - t0).count(),
                std::chrono::duration<double, std::milli>(t2 - t1).count());

    const int32_t eos = tok->eosId();
    std::vector<char> closing(static_cast<size_t>(vocabSize));
    for (int32_t i = 0; i < vocabSize; ++i) closing[size_t(i)] = vocab->tokenBytes(i).find_first_of("\"]}") != std::string::npos;
    std::vector<uint32_t> mask(size_t(vocab->maskWords()));
    std::vector<int32_t> ids, close;
    auto choose = [&](Walker& w) {
        ids.clear();
        close.clear();
        for (size_t k = 0; k < mask.size(); ++k)
            for (uint32_t b = mask[k]; b; b &= b - 1) {
                int32_t t = int32_t(k * 32 + size_t(__builtin_ctz(b)));
                ids.push_back(t);
                if (closing[size_t(t)]) close.push_back(t);
            }
        if (w.m.isComplete()) return eos;
        const double p = std::min(0.9, 0.1 + 0.002 * w.step);
        std::uniform_real_distribution<double> u(0, 1);
        return !close.empty() && u(w.rng) < p ? close[w.rng() % close.size()] : ids[w.rng() % ids.size()];
    };
    auto fresh = [&](uint32_t seed) { return Walker{GrammarMatcher(grammar, vocab, {eos}), std::mt19937(seed), 0}; };

    // Batch 1: one matcher; a finished document starts the next one.
    Stats one;
    int docs = 0;
    Walker w = fresh(1);
    std::string text;
    for (int s = 0; s < steps; ++s) {
        auto a = Clock::now();
        w.m.fillNextTokenMask(mask.data());
        auto b = Clock::now();
        one.us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
        int32_t t = choose(w);
        if (std::getenv("GRAMMAR_BENCH_SLOW") && one.us.back() > 200)
            std::printf("slow %.0f us after ...%s\n", one.us.back(), text.substr(text.size() > 60 ? text.size() - 60 : 0).c_str());
        text += vocab->tokenBytes(t);
        w.m.accept(t);
        ++w.step;
        if (w.m.isTerminated()) {
            ++docs;
            w = fresh(uint32_t(100 + s));
            text.clear();
        }
    }
    std::printf("batch 1: %d steps, %d documents finished\n", steps, docs);
    one.print("mask per token (batch 1)");

    // Batch N: N matchers at different points of their walks; time for all N masks of a step.
    Stats all;
    std::vector<Walker> ws;
    for (int i = 0; i < batch; ++i) ws.push_back(fresh(uint32_t(1000 + i)));
    std::vector<std::vector<uint32_t>> masks(size_t(batch), std::vector<uint32_t>(mask.size()));
    const int batchSteps = std::max(1, steps / 4);
    for (int s = 0; s < batchSteps; ++s) {
        auto a = Clock::now();
        for (int i = 0; i < batch; ++i) ws[size_t(i)].m.fillNextTokenMask(masks[size_t(i)].data());
        auto b = Clock::now();
        all.us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
        for (int i = 0; i < batch; ++i) {
            Walker& x = ws[size_t(i)];
            mask = masks[size_t(i)];
            x.m.accept(choose(x));
            ++x.step;
            if (x.m.isTerminated()) x = fresh(uint32_t(5000 + s * batch + i));
        }
    }
    char label[64];
    std::snprintf(label, sizeof label, "all masks per step (batch %d)", batch);
    all.print(label);
    for (double& x : all.us) x /= batch;
    all.print("  = per matcher");
    return 0;
}
