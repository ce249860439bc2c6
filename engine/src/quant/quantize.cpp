// quantizeModel: the AWQ / RTN pipeline, one decoder layer at a time, streamed into one
// safetensors file (host memory stays near one layer's f32 copy plus the calibration activations).
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "backend/backend.h"
#include "lmw/quantize.h"
#include "lmw/tokenizer.h"
#include "model/model_writer.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "nlohmann/json.hpp"
#include "quant/backend_util.h"
#include "quant/block_error.h"
#include "quant/calibration.h"
#include "quant/layer_quant.h"
#include "quant/output_folder.h"
#include "quant/tensor_io.h"

namespace lmw::engine {

namespace fs = std::filesystem;
using namespace quant;

namespace {

using Clock = std::chrono::steady_clock;

// Writes tensors in declaration order and checks that order as it goes.
class OrderedWriter {
public:
    OrderedWriter(const std::string& path, std::vector<SafetensorsWriter::Entry> entries)
        : m_entries(std::move(entries)), m_w(path, m_entries) {}
    void put(const std::string& name, const void* data, size_t bytes) {
        if (m_next >= m_entries.size() || m_entries[m_next].name != name)
            throw Error(ErrorCode::Internal, "quantize writer: '" + name + "' written out of order");
        m_w.write(data, bytes);
        m_bytes += bytes;
        ++m_next;
    }
    // More bytes of the tensor put() last started (tensors written in pieces).
    void putMore(const void* data, size_t bytes) {
        m_w.write(data, bytes);
        m_bytes += bytes;
    }
    void finish() { m_w.finish(); }
    uint64_t bytes() const { return m_bytes; }

private:
    std::vector<SafetensorsWriter::Entry> m_entries;
    SafetensorsWriter m_w;
    size_t m_next = 0;
    uint64_t m_bytes = 0;
};

class Quantizer {
public:
    Quantizer(const QuantizeOptions& o, const QuantizeProgressFn& p) : m_opts(o), m_progress(p) {}

    QuantizeReport run() {
        m_t0 = Clock::now();
        validate();
        m_cfg = parseModelConfig(m_opts.modelDir);
        if (m_cfg.awq)
            throw Error(ErrorCode::Unsupported, m_opts.modelDir + "/config.json: the model is already AWQ-quantized");
        m_src = loadModelSources(m_opts.modelDir, m_cfg);
        const int N = m_cfg.numLayers;
        report(QuantizeStage::Preparing, 0, "planning " + std::to_string(N) + " layers");

        if (fs::exists(m_opts.workDir) && fs::exists(m_opts.modelDir) &&
            fs::equivalent(fs::path(m_opts.workDir), fs::path(m_opts.modelDir)))
            throw Error(ErrorCode::InvalidArgument, m_opts.workDir + ": the output folder cannot be the model folder");
        OutputFolder out(m_opts.workDir, m_opts.overwrite);

        m_rep.outDir = out.finalPath();
        m_rep.method = m_opts.method;
        m_rep.bits = m_opts.bits;
        m_rep.groupSize = m_opts.groupSize;
        m_rep.sizeBefore = folderBytes(m_opts.modelDir, ".safetensors");

        m_plans.resize(size_t(N));
        for (int i = 0; i < N; ++i) {
            const LayerSources& L = m_src.layers[size_t(i)];
            for (int k = 0; k < kLinearKinds; ++k) {
                const LinearSource& lin = L.linear(k);
                if (lin.awq) throw Error(ErrorCode::Unsupported, lin.name + ": the model is already AWQ-quantized");
                m_plans[size_t(i)][k] = planLinear(lin, m_opts.groupSize);
            }
        }
        addPlanNotes();

        try {
            writeModel(out.path());
        } catch (const Error& e) {
            if (e.code() == ErrorCode::Io) {
                const int err = errno;
                throw Error(ErrorCode::Io, std::string(e.what()) + " (" + (err ? std::string(std::strerror(err)) + "; " : "") +
                                               "is the disk full or the location read-only?)");
            }
            throw;
        }
        writeSideFiles(out.path());
        m_rep.seconds = seconds();
        m_rep.sizeAfter = folderBytes(out.path(), ".safetensors");  // before the report that records it
        {
            std::ofstream f(out.path() + "/quantization_report.json");
            f << quantizeReportJson(m_rep);
            if (!f) throw Error(ErrorCode::Io, out.path() + "/quantization_report.json: write failed");
        }
        report(QuantizeStage::Finishing, N, "moving the finished folder into place");
        out.commit();
        if (!m_opts.pplTextFile.empty()) measurePerplexity();
        QuantizeProgress p = progressAt(QuantizeStage::Done, N, "done");
        p.eta = 0;
        if (m_progress) m_progress(p);
        return m_rep;
    }

private:
    // Before/after perplexity; the finished folder stays even if this fails (it is reported as -1).
    void measurePerplexity() {
        std::ifstream f(m_opts.pplTextFile, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        PerplexityOptions po;
        po.text = ss.str();
        po.seqLen = m_opts.pplSeqLen;
        po.backend = m_opts.backend;
        po.threads = m_opts.threads;
        for (int which = 0; which < 2; ++which) {
            po.modelDir = which == 0 ? m_opts.modelDir : m_rep.outDir;
            report(QuantizeStage::Finishing, m_cfg.numLayers,
                   std::string("perplexity of the ") + (which == 0 ? "source" : "quantized") + " model");
            auto r = perplexity(po);
            if (!r) {
                m_rep.notes.push_back("perplexity not measured: " + std::string(r.error().what()));
                return;
            }
            (which == 0 ? m_rep.pplBefore : m_rep.pplAfter) = r->ppl;
        }
        std::ofstream out(m_rep.outDir + "/quantization_report.json");
        out << quantizeReportJson(m_rep);
    }

    void validate() {
        const auto& o = m_opts;
        if (o.method != "awq" && o.method != "rtn")
            throw Error(ErrorCode::InvalidArgument, "method \"" + o.method + "\" is not supported (awq or rtn)");
        if (o.bits != 4) throw Error(ErrorCode::InvalidArgument, "w-bits " + std::to_string(o.bits) + " is not supported (only 4)");
        if (o.groupSize != 32 && o.groupSize != 64 && o.groupSize != 128)
            throw Error(ErrorCode::InvalidArgument, "w-group-size " + std::to_string(o.groupSize) + " is not supported (32, 64 or 128)");
        if (o.calibSamples <= 0 || o.calibSeqLen < 2)
            throw Error(ErrorCode::InvalidArgument, "calib-samples must be > 0 and calib-seqlen >= 2");
        if (o.scaleGrid <= 0 || o.searchTokens <= 0)
            throw Error(ErrorCode::InvalidArgument, "scale grid and search tokens must be positive");
    }

    double seconds() const { return std::chrono::duration<double>(Clock::now() - m_t0).count(); }

    QuantizeProgress progressAt(QuantizeStage stage, int layer, const std::string& msg) const {
        QuantizeProgress p;
        p.stage = stage;
        p.layer = layer;
        p.numLayers = m_cfg.numLayers;
        p.elapsed = seconds();
        p.eta = m_eta;
        p.bytesWritten = m_writer ? m_writer->bytes() : 0;
        p.message = msg;
        return p;
    }

    void report(QuantizeStage stage, int layer, const std::string& msg, int total = -1) {
        QuantizeProgress p = progressAt(stage, layer, msg);
        if (total >= 0) p.numLayers = total;
        if (m_progress && !m_progress(p)) throw Error(ErrorCode::Cancelled, "quantization cancelled");
    }

    void addPlanNotes() {
        const int N = m_cfg.numLayers;
        for (int k = 0; k < 4; ++k) {
            std::map<std::string, int> kept, groups;
            for (int i = 0; i < N; ++i) {
                const LinearPlan& p = m_plans[size_t(i)][k];
                if (!p.quantize) {
                    ++kept[std::regex_replace(p.keptReason, std::regex("layers\\.[0-9]+\\."), "layers.*.")];
                    m_rep.keptParams += p.in * p.out;
                } else {
                    m_rep.quantizedParams += p.in * p.out;
                    if (p.group != m_opts.groupSize) ++groups[std::to_string(p.group) + " (input size " + std::to_string(p.in) + ")"];
                }
            }
            for (const auto& [reason, n] : kept)
                m_rep.notes.push_back(std::string(linearKindName(k)) + " kept 16-bit in " + std::to_string(n) + " of " +
                                      std::to_string(N) + " layers: " + reason);
            for (const auto& [g, n] : groups)
                m_rep.notes.push_back(std::string(linearKindName(k)) + " uses group size " + g + " instead of " +
                                      std::to_string(m_opts.groupSize) + " in " + std::to_string(n) + " of " +
                                      std::to_string(N) + " layers: the requested group does not divide the input size");
        }
        if (m_opts.method == "awq" && m_cfg.numHeads != m_cfg.numKvHeads)
            m_rep.notes.push_back("grouped-query attention: o_proj input scales are shared by the " +
                                  std::to_string(m_cfg.numHeads / m_cfg.numKvHeads) +
                                  " query heads reading each v channel (so they fold into v_proj)");
        m_rep.notes.push_back("embeddings, norms, biases and the output head are stored as f16");
        if (m_cfg.qkNorm) m_rep.notes.push_back("q_norm and k_norm (per-head norms after qkv) are stored as f16");
    }

    std::vector<SafetensorsWriter::Entry> declare() {
        std::vector<SafetensorsWriter::Entry> e;
        std::set<std::string> used;
        auto dense = [&](const TensorRef* t) {
            e.push_back({t->name, DType::F16, t->shape});
            used.insert(t->name);
        };
        dense(m_src.embed);
        for (int i = 0; i < m_cfg.numLayers; ++i) {
            const LayerSources& L = m_src.layers[size_t(i)];
            for (int k = 0; k < kLinearKinds; ++k) {
                if (k == kQkv) dense(L.attnNorm);
                if (k == kGateUp) dense(L.ffnNorm);
                const LinearPlan& p = m_plans[size_t(i)][k];
                for (const SourcePart& sp : p.parts) {
                    const int64_t rows = int64_t(sp.rows.size());
                    if (p.quantize) {
                        const int64_t groups = p.in / p.group;
                        e.push_back({sp.prefix + ".qweight", DType::I32, {p.in, rows / 8}});
                        e.push_back({sp.prefix + ".qzeros", DType::I32, {groups, rows / 8}});
                        e.push_back({sp.prefix + ".scales", DType::F16, {groups, rows}});
                        used.insert(sp.weight->name);
                    } else {
                        dense(sp.weight);
                    }
                    if (sp.bias) dense(sp.bias);
                }
                // Qwen3's q/k norms act after qkv and stay 16-bit (AWQ's scales never reach them).
                if (k == kQkv && L.qNorm) {
                    dense(L.qNorm);
                    dense(L.kNorm);
                }
            }
        }
        dense(m_src.finalNorm);
        for (const WeightSegment& s : m_src.lmHead.segments)
            if (!used.count(s.src->name)) dense(s.src);
        for (const auto& [name, t] : m_src.store->tensors())
            if (!used.count(name)) {
                e.push_back({name, t.dtype, t.shape});
                m_others.push_back(&t);
            }
        return e;
    }

    void putDense(const TensorRef& t) {
        const int64_t rows = t.shape.size() >= 2 ? t.dim(0) : 1;
        const int64_t cols = t.numel() / std::max<int64_t>(rows, 1);
        const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(cols, 1));
        std::vector<float> buf;
        bool first = true;
        for (int64_t r = 0; r < rows; r += chunk) {
            const int64_t n = std::min(chunk, rows - r);
            buf.resize(size_t(n * cols));
            readRowsF32(t, r, n, buf.data());
            const std::vector<uint16_t> h = toF16(buf.data(), n * cols);
            if (first) m_writer->put(t.name, h.data(), h.size() * 2);
            else m_writer->putMore(h.data(), h.size() * 2);
            first = false;
        }
    }

    void putF16(const std::string& name, const std::vector<float>& v) {
        const std::vector<uint16_t> h = toF16(v.data(), int64_t(v.size()));
        m_writer->put(name, h.data(), h.size() * 2);
    }

    void writeLinear(const LinearPlan& p, const LayerQuantResult& r, int k) {
        for (const SourcePart& sp : p.parts) {
            const int64_t rows = int64_t(sp.rows.size());
            if (p.quantize) {
                const AwqPacked packed = packAwq(r.q[k], sp.rows);
                m_writer->put(sp.prefix + ".qweight", packed.qweight.data(), packed.qweight.size() * 4);
                m_writer->put(sp.prefix + ".qzeros", packed.qzeros.data(), packed.qzeros.size() * 4);
                m_writer->put(sp.prefix + ".scales", packed.scales.data(), packed.scales.size() * 2);
            } else {
                std::vector<float> w(size_t(rows * p.in));
                for (int64_t j = 0; j < rows; ++j)
                    std::copy_n(r.layer.w[k].data() + sp.rows[size_t(j)] * p.in, p.in, w.data() + j * p.in);
                putF16(sp.weight->name, w);
            }
            if (sp.bias) {
                std::vector<float> b(static_cast<size_t>(rows));
                for (int64_t j = 0; j < rows; ++j) b[size_t(j)] = r.layer.bias[k][size_t(sp.rows[size_t(j)])];
                putF16(sp.bias->name, b);
            }
        }
    }

    void writeModel(const std::string& dir) {
        const int N = m_cfg.numLayers;
        m_writer = std::make_unique<OrderedWriter>(dir + "/model.safetensors", declare());
        putDense(*m_src.embed);

        // Calibration (AWQ): token sequences, their embeddings, and a backend with a 1-layer KV cache.
        const bool awq = m_opts.method == "awq";
        std::unique_ptr<Backend> backend;
        CalibActivations acts;
        int64_t keepEvery = 1;
        int wholeSeqs = 1;
        int seqLen = std::min(m_opts.calibSeqLen, m_cfg.maxPositionEmbeddings);
        if (awq) {
            CalibSet set;
            if (m_opts.calibDataset == "self" || m_opts.calibDataset.empty()) {
                auto sampler = createBackend(m_opts.backend, m_opts.threads);
                report(QuantizeStage::Sampling, 0, "sampling calibration text from the model", m_opts.calibSamples);
                set = calibFromModel(*sampler, m_src, m_opts.calibSamples, seqLen, m_opts.seed, [&](int done, int total) {
                    QuantizeProgress p = progressAt(QuantizeStage::Sampling, done, "sampled " + std::to_string(done) + " of " +
                                                                                   std::to_string(total) + " sequences");
                    p.numLayers = total;
                    return !m_progress || m_progress(p);
                });
            } else {
                auto tok = Tokenizer::load(m_opts.modelDir);
                set = calibFromFile(m_opts.calibDataset, *tok, m_opts.calibSamples, seqLen);
            }
            m_rep.calibration = set.description;
            int maxLen = 0;
            for (const auto& s : set.seqs) maxLen = std::max(maxLen, int(s.size()));
            seqLen = maxLen;
            acts = embedCalibration(m_src, set);
            keepEvery = std::max<int64_t>(1, (acts.totalTokens() + m_opts.searchTokens - 1) / m_opts.searchTokens);
            // Whole sequences for the attention-block search: as many as fit in searchTokens, at least one.
            for (int64_t kept = acts.lengths[0]; wholeSeqs < int(acts.lengths.size()) &&
                                                 kept + acts.lengths[size_t(wholeSeqs)] <= m_opts.searchTokens;)
                kept += acts.lengths[size_t(wholeSeqs++)];
            backend = createBackend(m_opts.backend, m_opts.threads);
            backend->allocKvCache({1, m_cfg.numKvHeads, m_cfg.headDim, 64, 0}, (maxLen + 63) / 64);
            m_rep.backend = backend->deviceInfo().backend;
        } else {
            m_rep.calibration = "none (round-to-nearest)";
        }

        LayerQuantSettings settings;
        settings.awq = awq;
        settings.searchScale = m_opts.searchScale;
        settings.grid = m_opts.scaleGrid;
        settings.searchClip = m_opts.searchClip;
        const auto layersStart = Clock::now();
        for (int i = 0; i < N; ++i) {
            const auto t = Clock::now();
            report(QuantizeStage::Layer, i, "layer " + std::to_string(i + 1) + " of " + std::to_string(N));
            LinearStats stats[4];
            std::unique_ptr<LayerErrorModel> errors;
            LayerQuantReport lr;
            if (awq) {
                runCalibrationLayer(*backend, m_src, i, acts, keepEvery, wholeSeqs, stats);
                lr.calibrationSeconds = std::chrono::duration<double>(Clock::now() - t).count();
                errors = std::make_unique<LayerErrorModel>(*backend, m_cfg, m_src.layers[size_t(i)], stats, seqLen);
            }
            LayerQuantResult r = quantizeLayer(m_cfg, m_src.layers[size_t(i)], m_plans[size_t(i)].data(), settings,
                                               awq ? stats : nullptr, errors.get());
            errors.reset();
            const LayerSources& L = m_src.layers[size_t(i)];
            for (int k = 0; k < kLinearKinds; ++k) {
                if (k == kQkv) putF16(L.attnNorm->name, r.layer.attnNorm);
                if (k == kGateUp) putF16(L.ffnNorm->name, r.layer.ffnNorm);
                writeLinear(m_plans[size_t(i)][k], r, k);
                if (k == kQkv && L.qNorm) {
                    putDense(*L.qNorm);
                    putDense(*L.kNorm);
                }
            }
            lr.layer = i;
            for (int k = 0; k < 4; ++k) lr.linears.push_back(r.report[k]);
            lr.seconds = std::chrono::duration<double>(Clock::now() - t).count();
            m_rep.layers.push_back(lr);
            const double perLayer = std::chrono::duration<double>(Clock::now() - layersStart).count() / (i + 1);
            m_eta = perLayer * (N - i - 1);
            report(QuantizeStage::Layer, i + 1, layerMessage(lr));
        }
        backend.reset();
        report(QuantizeStage::Finishing, N, "writing the output head");
        putDense(*m_src.finalNorm);
        std::set<std::string> done{m_src.embed->name};
        for (const WeightSegment& s : m_src.lmHead.segments)
            if (!done.count(s.src->name)) {
                putDense(*s.src);
                done.insert(s.src->name);
            }
        for (const TensorRef* t : m_others) m_writer->put(t->name, t->data, t->bytes);
        m_writer->finish();
    }

    std::string layerMessage(const LayerQuantReport& lr) const {
        std::ostringstream s;
        s << "layer " << lr.layer + 1 << " of " << m_cfg.numLayers << " done";
        for (const auto& l : lr.linears)
            if (l.quantized && l.errorFinal >= 0) s << "; " << linearKindName(int(&l - lr.linears.data())) << " alpha " << l.alpha;
        return s.str();
    }

    void writeSideFiles(const std::string& dir) {
        std::ifstream in(m_opts.modelDir + "/config.json");
        nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(in);
        int group = 0;
        bool mixed = false;
        nlohmann::json notConverted = nlohmann::json::array();
        for (const auto& layer : m_plans)
            for (const auto& p : layer) {
                if (p.quantize) {
                    if (group && group != p.group) mixed = true;
                    group = p.group;
                } else {
                    for (const auto& sp : p.parts) notConverted.push_back(sp.prefix);
                }
            }
        if (!group || mixed) group = m_opts.groupSize;
        cfg["torch_dtype"] = "float16";
        cfg["quantization_config"] = {{"quant_method", "awq"},       {"version", "gemm"},
                                      {"bits", m_opts.bits},         {"group_size", group},
                                      {"zero_point", true},          {"modules_to_not_convert", notConverted}};
        std::ofstream out(dir + "/config.json");
        out << cfg.dump(2) << "\n";
        if (!out) throw Error(ErrorCode::Io, dir + "/config.json: write failed");
        for (const auto& e : fs::directory_iterator(m_opts.modelDir)) {
            const std::string name = e.path().filename().string();
            if (!e.is_regular_file() || !isSideFile(name)) continue;
            std::error_code ec;
            fs::copy_file(e.path(), fs::path(dir) / name, fs::copy_options::overwrite_existing, ec);
            if (ec) throw Error(ErrorCode::Io, dir + "/" + name + ": cannot copy (" + ec.message() + ")");
            fs::permissions(fs::path(dir) / name, fs::perms::owner_write, fs::perm_options::add, ec);
        }
    }

    QuantizeOptions m_opts;
    QuantizeProgressFn m_progress;
    Clock::time_point m_t0;
    double m_eta = -1;
    ModelConfig m_cfg;
    ModelSources m_src;
    std::vector<std::array<LinearPlan, 4>> m_plans;
    std::vector<const TensorRef*> m_others;
    std::unique_ptr<OrderedWriter> m_writer;
    QuantizeReport m_rep;
};

}  // namespace

Result<QuantizeReport> quantizeModel(const QuantizeOptions& opts, const QuantizeProgressFn& progress) {
    return catchErrors([&] { return Quantizer(opts, progress).run(); });
}

}  // namespace lmw::engine
