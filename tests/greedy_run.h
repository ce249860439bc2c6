#pragma once
// Greedy decoding of prompt ids two ways: one sequence through the Transformer on a backend, without
// the engine's scheduler or a tokenizer (greedyRun), and one request to an Engine (engineGreedy, on
// the CPU unless told).
#include <algorithm>
#include <cmath>
#include <future>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "lmw/engine.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace lmw::test {

struct GreedyRun {
    std::vector<float> promptLogits;  // [vocab] after the last prompt token
    std::vector<int32_t> ids;         // the greedy continuation
    std::vector<float> margins;       // [steps] top-1 minus top-2 logit where each id was picked
};

// A prefill of the prompt ids, then one token a step. The block table is reversed, so paging is exercised.
inline GreedyRun greedyRun(engine::Backend& backend, const std::string& dir, const std::vector<int32_t>& prompt, int steps,
                           int quantPolicy = 0) {
    using namespace lmw::engine;
    const ModelConfig cfg = parseModelConfig(dir);
    ModelSources src = loadModelSources(dir, cfg);
    Transformer model(backend, src);
    KvCacheShape shape;
    shape.layers = cfg.numLayers;
    shape.kvHeads = cfg.numKvHeads;
    shape.headDim = cfg.headDim;
    shape.quantPolicy = quantPolicy;
    const int maxBlocks = int((prompt.size() + size_t(steps) + 63) / 64) + 1;
    backend.allocKvCache(shape, maxBlocks + 2);
    GreedyRun run;
    std::vector<float> logits(size_t(cfg.vocabSize));
    std::vector<int32_t> tokens = prompt;
    int pos = 0;
    for (int step = 0; step <= steps; ++step) {
        StepBatch b;
        b.tokens = tokens;
        for (size_t i = 0; i < tokens.size(); ++i) b.positions.push_back(pos + int(i));
        b.seqStart = {0, int(tokens.size())};
        b.contextLen = {pos + int(tokens.size())};
        b.maxBlocks = maxBlocks;
        for (int i = 0; i < maxBlocks; ++i) b.blockTable.push_back(maxBlocks - i);
        b.invFreq.resize(size_t(cfg.headDim / 2));
        ropeInvFreq(cfg, b.contextLen[0], b.invFreq.data());
        b.logitRows = {int(tokens.size()) - 1};
        model.forward(b, logits.data());
        if (step == 0) run.promptLogits = logits;
        pos += int(tokens.size());
        const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (step < steps) {
            float second = -INFINITY;
            for (size_t i = 0; i < logits.size(); ++i)
                if (int32_t(i) != next) second = std::max(second, logits[i]);
            run.ids.push_back(next);
            run.margins.push_back(logits[size_t(next)] - second);
        }
        tokens = {next};
    }
    return run;
}

struct EngineRun {
    std::vector<int32_t> ids;
    std::string text;
    engine::FinishReason finish = engine::FinishReason::None;
    std::string error;
};

// Loads `dir` into an Engine on `backend` (the CPU unless told; its tokenizer too) and runs request `r`
// greedily.
inline EngineRun engineGreedy(const std::string& dir, engine::Request r, int maxNewTokens, bool ignoreEos,
                              const std::string& backend = "cpu") {
    using namespace lmw::engine;
    EngineConfig c;
    c.modelDir = dir;
    c.backend = backend;
    c.threads = 2;
    auto e = Engine::load(c);
    if (!e) return {{}, {}, FinishReason::Error, e.error().what()};
    r.sampling.temperature = 0;
    r.sampling.maxNewTokens = maxNewTokens;
    r.sampling.ignoreEos = ignoreEos;
    std::promise<EngineRun> done;
    EngineRun run;
    e.value()->submit(std::move(r), [&](const Event& ev) {
        run.ids.insert(run.ids.end(), ev.tokens.begin(), ev.tokens.end());
        run.text += ev.text;
        if (ev.final) {
            run.finish = ev.finish;
            run.error = ev.error;
            done.set_value(run);
        }
    });
    return done.get_future().get();
}

inline EngineRun engineGreedy(const std::string& dir, const std::vector<int32_t>& prompt, int maxNewTokens,
                              bool ignoreEos, const std::string& backend = "cpu") {
    engine::Request r;
    r.promptIds = prompt;
    return engineGreedy(dir, std::move(r), maxNewTokens, ignoreEos, backend);
}

}  // namespace lmw::test
