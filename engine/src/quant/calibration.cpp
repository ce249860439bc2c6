#include "quant/calibration.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmw/error.h"
#include "model/transformer.h"
#include "nlohmann/json.hpp"
#include "quant/tensor_io.h"

namespace lmw::engine::quant {

CalibSet calibFromFile(const std::string& path, const Tokenizer& tok, int samples, int seqLen) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ErrorCode::NotFound, path + ": calibration file cannot be read");
    std::string text;
    const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
    if (jsonl) {
        int lineNo = 0;
        for (std::string line; std::getline(f, line);) {
            ++lineNo;
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
            } catch (const nlohmann::json::parse_error&) {
                throw Error(ErrorCode::InvalidArgument, path + ": line " + std::to_string(lineNo) + " is not JSON");
            }
            if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
                throw Error(ErrorCode::InvalidArgument,
                            path + ": line " + std::to_string(lineNo) + " has no string field \"text\"");
            if (!text.empty()) text += "\n\n";
            text += j["text"].get<std::string>();
        }
    } else {
        std::stringstream ss;
        ss << f.rdbuf();
        text = ss.str();
    }
    const std::vector<int32_t> ids = tok.encode(text, true);
    CalibSet set;
    for (size_t start = 0; start + 1 < ids.size() && int(set.seqs.size()) < samples; start += size_t(seqLen))
        set.seqs.emplace_back(ids.begin() + long(start), ids.begin() + long(std::min(ids.size(), start + size_t(seqLen))));
    if (set.seqs.empty()) throw Error(ErrorCode::InvalidArgument, path + ": calibration text is empty");
    set.description = std::filesystem::path(path).filename().string() + ": " + std::to_string(set.seqs.size()) +
                      " x " + std::to_string(set.seqs.front().size()) + " tokens";
    return set;
}

CalibSet calibFromModel(Backend& b, const ModelSources& src, int samples, int seqLen, uint64_t seed,
                        const std::function<bool(int, int)>& progress) {
    const ModelConfig& cfg = src.config;
    Transformer model(b, src);
    KvCacheShape shape{cfg.numLayers, cfg.numKvHeads, cfg.headDim, 64, 0};
    const int blocksPerSeq = (seqLen + 63) / 64;
    // As many sequences at once as a third of free memory holds (KV cache), at most all of them.
    const uint64_t perSeq = b.kvBlockBytes(shape) * uint64_t(blocksPerSeq);
    const uint64_t freeBytes = b.deviceInfo().freeBytes;
    int batch = freeBytes ? int(std::clamp<uint64_t>(freeBytes / 3 / std::max<uint64_t>(perSeq, 1), 1, 64)) : 8;
    batch = std::min(batch, samples);
    b.allocKvCache(shape, int64_t(batch) * blocksPerSeq);

    const int32_t bos = cfg.bosTokenId >= 0 ? cfg.bosTokenId : 1;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    CalibSet set;
    std::vector<float> logits;
    std::vector<double> p(size_t(cfg.vocabSize));
    for (int first = 0; first < samples; first += batch) {
        const int S = std::min(batch, samples - first);
        std::vector<std::vector<int32_t>> seqs(size_t(S), std::vector<int32_t>{bos});
        for (int pos = 0; pos < seqLen - 1; ++pos) {
            StepBatch sb;
            sb.maxBlocks = blocksPerSeq;
            sb.seqStart.push_back(0);
            for (int s = 0; s < S; ++s) {
                sb.tokens.push_back(seqs[size_t(s)].back());
                sb.positions.push_back(pos);
                sb.seqStart.push_back(s + 1);
                sb.contextLen.push_back(pos + 1);
                for (int k = 0; k < blocksPerSeq; ++k) sb.blockTable.push_back(s * blocksPerSeq + k);
                std::vector<float> inv(size_t(cfg.headDim / 2));
                ropeInvFreq(cfg, pos + 1, inv.data());
                sb.invFreq.insert(sb.invFreq.end(), inv.begin(), inv.end());
                sb.logitRows.push_back(s);
            }
            // Mid-batch progress too: a batch of a 7B model takes minutes, and cancel should not wait for it.
            if (progress && pos > 0 && pos % 32 == 0 && !progress(first + int(int64_t(S) * pos / seqLen), samples))
                throw Error(ErrorCode::Cancelled, "quantization cancelled");
            logits.resize(size_t(S) * size_t(cfg.vocabSize));
            model.forward(sb, logits.data());
            for (int s = 0; s < S; ++s) {
                const float* l = logits.data() + size_t(s) * size_t(cfg.vocabSize);
                const float mx = *std::max_element(l, l + cfg.vocabSize);
                double sum = 0;
                for (int v = 0; v < cfg.vocabSize; ++v) {
                    const bool eos = std::find(cfg.eosTokenIds.begin(), cfg.eosTokenIds.end(), v) != cfg.eosTokenIds.end();
                    p[size_t(v)] = eos ? 0.0 : std::exp(double(l[v] - mx));
                    sum += p[size_t(v)];
                }
                double u = uni(rng) * sum;
                int32_t pick = cfg.vocabSize - 1;
                for (int v = 0; v < cfg.vocabSize; ++v) {
                    u -= p[size_t(v)];
                    if (u <= 0 && p[size_t(v)] > 0) {
                        pick = v;
                        break;
                    }
                }
                seqs[size_t(s)].push_back(pick);
            }
        }
        for (auto& s : seqs) set.seqs.push_back(std::move(s));
        if (progress && !progress(first + S, samples)) throw Error(ErrorCode::Cancelled, "quantization cancelled");
    }
    set.description = "self: " + std::to_string(samples) + " x " + std::to_string(seqLen) + " tokens sampled from the model";
    return set;
}

std::vector<double> LinearStats::meanAbs() const {
    std::vector<double> m(sumAbs.size());
    for (size_t c = 0; c < m.size(); ++c) m[c] = count ? sumAbs[c] / double(count) : 0.0;
    return m;
}

CalibActivations embedCalibration(const ModelSources& src, const CalibSet& set) {
    const int64_t hidden = src.config.hiddenSize;
    CalibActivations a;
    int64_t total = 0;
    for (const auto& s : set.seqs) {
        a.lengths.push_back(int(s.size()));
        a.offsets.push_back(total);
        total += int64_t(s.size());
    }
    a.x.resize(size_t(total * hidden));
    int64_t row = 0;
    for (const auto& s : set.seqs)
        for (int32_t id : s) {
            if (id < 0 || id >= src.embed->dim(0))
                throw Error(ErrorCode::InvalidArgument, "calibration token id " + std::to_string(id) + " outside the vocabulary");
            readRowsF32(*src.embed, id, 1, a.x.data() + row++ * hidden);
        }
    return a;
}

namespace {

class StatsTap final : public LinearTap {
public:
    explicit StatsTap(LinearStats* stats) : m_stats(stats) {}
    int keptRows = 0;        // rows of this step picked by the batch's logitRows for the searches
    bool keepWhole = false;  // keep this sequence's qkv input whole

    // The column sums run on the backend; only the kept rows travel to the host.
    void onLinearInput(int, LinearKind kind, Tensor in, Backend& b) override {
        LinearStats& s = m_stats[kind];
        if (s.in == 0) {
            s.in = in.cols;
            s.sumAbs.assign(size_t(in.cols), 0.0);
        }
        b.addColumnAbsSums(in, s.sumAbs.data());
        s.count += in.rows;
        if (keptRows > 0) {
            Tensor kept = b.alloc(keptRows, in.cols);
            b.gatherRows(kept, in);
            s.rows.resize(size_t((s.nRows + keptRows) * in.cols));
            b.readF32(kept, s.rows.data() + s.nRows * in.cols);
            s.nRows += keptRows;
        }
        if (keepWhole && kind == kQkv) {
            s.seqRows.resize(s.seqRows.size() + size_t(in.rows * in.cols));
            b.readF32(in, s.seqRows.data() + s.seqRows.size() - size_t(in.rows * in.cols));
            s.seqLens.push_back(int(in.rows));
        }
    }

private:
    LinearStats* m_stats;
};

}  // namespace

void runCalibrationLayer(Backend& b, const ModelSources& src, int layer, CalibActivations& acts, int64_t keepEvery,
                         int wholeSeqs, LinearStats stats[4]) {
    const ModelConfig& cfg = src.config;
    const int64_t hidden = cfg.hiddenSize;
    LayerWeights w = loadLayer(b, src.layers[size_t(layer)]);
    StatsTap tap(stats);
    keepEvery = std::max<int64_t>(1, keepEvery);
    for (size_t s = 0; s < acts.lengths.size(); ++s) {
        const int len = acts.lengths[s];
        float* rows = acts.x.data() + acts.offsets[s] * hidden;
        StepBatch batch = sequenceBatch(cfg, len);
        for (int t = 0; t < len; ++t)
            if ((acts.offsets[s] + t) % keepEvery == 0) batch.logitRows.push_back(t);
        b.beginStep(batch);
        Tensor x = b.upload(rows, len, hidden);
        tap.keptRows = int(batch.logitRows.size());
        tap.keepWhole = int(s) < wholeSeqs;
        decoderLayer(b, cfg, w, layer, 0, x, &tap);
        b.readF32(x, rows);
    }
}

}  // namespace lmw::engine::quant
