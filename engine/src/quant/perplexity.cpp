// Perplexity over non-overlapping windows (definition in lmw/quantize.h), through the one forward pass.
#include <chrono>
#include <cmath>

#include "backend/backend.h"
#include "lmw/quantize.h"
#include "lmw/sampling.h"
#include "lmw/tokenizer.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace lmw::engine {

Result<PerplexityResult> perplexity(const PerplexityOptions& opts) {
    return catchErrors([&] {
        const auto t0 = std::chrono::steady_clock::now();
        const ModelConfig cfg = parseModelConfig(opts.modelDir);
        auto tok = Tokenizer::load(opts.modelDir);
        const std::vector<int32_t> ids = tok->encode(opts.text);
        if (ids.size() < 2) throw Error(ErrorCode::InvalidArgument, "perplexity: the text has fewer than 2 tokens");
        PerplexityResult r;
        r.textTokens = int64_t(ids.size());
        r.seqLen = opts.seqLen > 0 ? opts.seqLen : 2048;
        r.seqLen = std::min(r.seqLen, cfg.maxPositionEmbeddings);
        if (r.seqLen < 2) throw Error(ErrorCode::InvalidArgument, "perplexity: seqlen must be at least 2");

        ModelSources src = loadModelSources(opts.modelDir, cfg);
        auto backend = createBackend(opts.backend, opts.threads);
        Transformer model(*backend, src);
        const int blocks = (r.seqLen + 63) / 64;
        backend->allocKvCache({cfg.numLayers, cfg.numKvHeads, cfg.headDim, 64, opts.quantPolicy}, blocks);
        if (opts.quantPolicy != 0) model.calibrateKvKeyOffsets(*tok, int64_t(blocks) * 64);

        const int total = int((ids.size() + size_t(r.seqLen) - 1) / size_t(r.seqLen));
        double nll = 0;
        std::vector<float> logits;
        for (int w = 0; w < total; ++w) {
            const size_t start = size_t(w) * size_t(r.seqLen);
            const int len = int(std::min(ids.size() - start, size_t(r.seqLen)));
            if (len < 2) continue;
            StepBatch b = sequenceBatch(cfg, len, ids.data() + start);
            for (int i = 0; i < len; ++i) b.logitRows.push_back(i);
            logits.resize(size_t(len) * size_t(cfg.vocabSize));
            model.forward(b, logits.data());
            for (int i = 0; i + 1 < len; ++i) {
                const float* l = logits.data() + size_t(i) * size_t(cfg.vocabSize);
                nll += logSumExp(l, cfg.vocabSize) - double(l[b.tokens[size_t(i + 1)]]);
                ++r.scoredTokens;
            }
            ++r.windows;
            if (opts.progress && !opts.progress(w + 1, total)) throw Error(ErrorCode::Cancelled, "perplexity cancelled");
        }
        r.meanNll = nll / double(r.scoredTokens);
        r.ppl = std::exp(r.meanNll);
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return r;
    });
}

}  // namespace lmw::engine
