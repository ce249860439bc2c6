#pragma once
// Calibration for AWQ: the token sequences (from a file or sampled from the model itself) and the
// layer-by-layer run that records what every linear of one layer sees.
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "lmw/tokenizer.h"
#include "model/weights.h"

namespace lmw::engine::quant {

struct CalibSet {
    std::vector<std::vector<int32_t>> seqs;
    std::string description;  // "self: 128 x 512 tokens", "stories.txt: 3 x 512 tokens"
};

// A .txt file (one text) or .jsonl (the "text" field of each line, joined by blank lines), tokenized
// once (BOS first) and cut into up to `samples` sequences of seqLen tokens; a text shorter than
// samples * seqLen gives fewer sequences (the last may be shorter, at least 2 tokens).
CalibSet calibFromFile(const std::string& path, const Tokenizer& tok, int samples, int seqLen);

// Sequences sampled from the model itself (temperature 1, end-of-sequence masked), starting at BOS.
// `progress(done, total)` after each batch; return false to cancel (throws Cancelled).
CalibSet calibFromModel(Backend& b, const ModelSources& src, int samples, int seqLen, uint64_t seed,
                        const std::function<bool(int, int)>& progress);

// What one linear's input looked like over the calibration tokens.
struct LinearStats {
    int64_t in = 0;
    std::vector<double> sumAbs;  // [in]
    int64_t count = 0;           // tokens
    std::vector<float> rows;     // [nRows, in] every keepEvery-th token
    int64_t nRows = 0;
    std::vector<float> seqRows;  // qkv only: every token of the first sequences (attention needs them whole)
    std::vector<int> seqLens;
    int64_t seqRowsCount() const { return in ? int64_t(seqRows.size()) / in : 0; }
    std::vector<double> meanAbs() const;
};

// The residual stream of every calibration sequence at the current layer, on the host.
struct CalibActivations {
    std::vector<int> lengths;
    std::vector<int64_t> offsets;  // row offset of each sequence
    std::vector<float> x;          // [total tokens, hidden]
    int64_t totalTokens() const { return offsets.empty() ? 0 : offsets.back() + lengths.back(); }
};

// The embeddings of the calibration tokens (read from the checkpoint, no backend needed).
CalibActivations embedCalibration(const ModelSources& src, const CalibSet& set);

// Runs layer `layer` (its original 16-bit weights) over every sequence on the backend: records the
// inputs of qkv, o, gate_up and down into stats[0..3] and replaces acts by the layer's output. The
// backend needs a 1-layer KV cache big enough for the longest sequence (kvLayer 0 is used).
// The first `wholeSeqs` sequences are also kept whole for qkv.
void runCalibrationLayer(Backend& b, const ModelSources& src, int layer, CalibActivations& acts, int64_t keepEvery,
                         int wholeSeqs, LinearStats stats[4]);

}  // namespace lmw::engine::quant
