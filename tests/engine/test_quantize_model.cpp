// W4A16 quantization of the real stories260K end to end: the shape rule and report, the AutoAWQ
// layout (unpacked here independently), loading and generating, perplexity AWQ <= RTN, cancel and
// unwritable / full output locations.
#include <QTest>

#include <sys/resource.h>

#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>

#include "lmw/engine.h"
#include "lmw/quantize.h"
#include "model/safetensors.h"
#include "greedy_run.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
namespace fs = std::filesystem;

namespace {

float f32At(const TensorRef& t, int64_t i) { return readElem(t.data, t.dtype, i); }

int32_t i32At(const TensorRef& t, int64_t i) {
    int32_t v;
    std::memcpy(&v, t.data + 4 * i, 4);
    return v;
}

// The AutoAWQ GEMM layout, written from its description: qweight [in, out/8], nibble k of word j
// holds output column 8j + order[k]; qzeros [in/g, out/8] likewise; scales f16 [in/g, out].
struct Dequantized {
    int64_t in = 0, out = 0, group = 0;
    std::vector<float> w;     // [out, in]
    std::vector<float> step;  // [out, in/g] scale of each group
};

Dequantized dequantizeAwq(const TensorStore& s, const std::string& prefix) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const TensorRef& qw = s.get(prefix + ".qweight");
    const TensorRef& qz = s.get(prefix + ".qzeros");
    const TensorRef& sc = s.get(prefix + ".scales");
    Dequantized d;
    d.in = qw.dim(0);
    d.out = qw.dim(1) * 8;
    const int64_t groups = sc.dim(0);
    d.group = d.in / groups;
    if (qw.dtype != DType::I32 || qz.dtype != DType::I32 || sc.dtype != DType::F16 || sc.dim(1) != d.out ||
        qz.dim(0) != groups || qz.dim(1) != d.out / 8)
        qFatal("%s: unexpected AWQ tensor types/shapes", prefix.c_str());
    auto nibble = [&](const TensorRef& t, int64_t row, int64_t col) {
        const uint32_t word = uint32_t(i32At(t, row * (d.out / 8) + col / 8));
        for (int k = 0; k < 8; ++k)
            if (order[k] == col % 8) return int((word >> (4 * k)) & 15);
        return -1;
    };
    d.w.resize(size_t(d.out * d.in));
    d.step.resize(size_t(d.out * groups));
    for (int64_t o = 0; o < d.out; ++o)
        for (int64_t g = 0; g < groups; ++g) {
            const float scale = f32At(sc, g * d.out + o);
            const int zero = nibble(qz, g, o);
            d.step[size_t(o * groups + g)] = scale;
            for (int64_t i = g * d.group; i < (g + 1) * d.group; ++i)
                d.w[size_t(o * d.in + i)] = float(nibble(qw, i, o) - zero) * scale;
        }
    return d;
}

// A greedy continuation of prompt text on the CPU, EOS ignored.
test::EngineRun greedy(const std::string& dir, const std::string& prompt, int n) {
    Request r;
    r.prompt = prompt;
    test::EngineRun run = test::engineGreedy(dir, std::move(r), n, true);
    if (!run.error.empty()) qFatal("greedy on %s failed: %s", dir.c_str(), run.error.c_str());
    return run;
}

double ppl(const std::string& dir) {
    PerplexityOptions o;
    o.modelDir = dir;
    o.text = test::readFile(test::testData("stories.txt"));
    o.backend = "cpu";
    o.threads = 2;
    auto r = perplexity(o);
    if (!r) qFatal("perplexity of %s failed: %s", dir.c_str(), r.error().what());
    return r->ppl;
}

QuantizeOptions options(const std::string& out, const std::string& method) {
    QuantizeOptions o;
    o.modelDir = test::modelDir();
    o.workDir = out;
    o.method = method;
    o.backend = "cpu";
    o.threads = 2;
    return o;
}

bool hasPartialSibling(const std::string& parent) {
    for (const auto& e : fs::directory_iterator(parent))
        if (e.path().filename().string().find(".partial-") != std::string::npos) return true;
    return false;
}

}  // namespace

class TestQuantizeModel : public QObject {
    Q_OBJECT
    QTemporaryDir m_tmp;
    std::string m_awq, m_rtn;
    QuantizeReport m_awqReport, m_rtnReport;
    std::vector<QuantizeProgress> m_progress;

private slots:
    void initTestCase() {
        QVERIFY(m_tmp.isValid());
        m_awq = m_tmp.path().toStdString() + "/stories260K-awq";
        m_rtn = m_tmp.path().toStdString() + "/stories260K-rtn";
        // Default settings: AWQ, group 128, self calibration (128 sampled sequences), scale search on.
        auto a = quantizeModel(options(m_awq, "awq"), [&](const QuantizeProgress& p) {
            m_progress.push_back(p);
            return true;
        });
        QVERIFY2(a.ok(), a.ok() ? "" : a.error().what());
        m_awqReport = a.value();
        auto r = quantizeModel(options(m_rtn, "rtn"));
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        m_rtnReport = r.value();
        qInfo("%s", formatQuantizeReport(m_awqReport).c_str());
    }

    void reportStatesTheShapeRule() {
        const QuantizeReport& r = m_awqReport;
        QCOMPARE(r.layers.size(), size_t(5));
        QCOMPARE(r.calibration, std::string("self: 128 x 512 tokens sampled from the model"));
        for (const auto& l : r.layers) {
            QCOMPARE(l.linears.size(), size_t(4));
            QCOMPARE(l.linears[0].name, "layers." + std::to_string(l.layer) + ".qkv");
            QVERIFY(l.linears[0].quantized);
            QCOMPARE(l.linears[0].groupSize, 64);
            QVERIFY(l.linears[1].quantized);
            QCOMPARE(l.linears[1].groupSize, 64);
            QVERIFY(!l.linears[2].quantized);
            QCOMPARE(l.linears[2].keptReason, "model.layers." + std::to_string(l.layer) +
                                                  ".mlp.gate_proj has 172 outputs, not a multiple of 8 (int4 packing)");
            QVERIFY(!l.linears[3].quantized);
            QCOMPARE(l.linears[3].keptReason, std::string("input size 172 is not a multiple of 32"));
            for (int k = 0; k < 2; ++k) {
                // The search never does worse than plain RTN on its own calibration rows.
                QVERIFY(l.linears[k].errorRtn > 0 && l.linears[k].errorRtn < 0.2);
                QVERIFY2(l.linears[k].errorFinal <= l.linears[k].errorRtn * 1.0001,
                         qPrintable(QString("%1: %2 > %3").arg(QString::fromStdString(l.linears[k].name))
                                        .arg(l.linears[k].errorFinal).arg(l.linears[k].errorRtn)));
            }
        }
        const auto has = [&](const std::string& s) {
            for (const auto& n : r.notes)
                if (n == s) return true;
            return false;
        };
        QVERIFY(has("gate_up kept 16-bit in 5 of 5 layers: model.layers.*.mlp.gate_proj has 172 outputs, not a multiple of 8 (int4 packing)"));
        QVERIFY(has("down kept 16-bit in 5 of 5 layers: input size 172 is not a multiple of 32"));
        QVERIFY(has("qkv uses group size 64 (input size 64) instead of 128 in 5 of 5 layers: the requested group does not divide the input size"));
        QCOMPARE(r.quantizedParams, int64_t(5 * (128 * 64 + 64 * 64)));
        QCOMPARE(r.keptParams, int64_t(5 * (344 * 64 + 64 * 172)));
        QCOMPARE(r.sizeBefore, uint64_t(fs::file_size(test::modelDir() + "/model.safetensors")));
        QCOMPARE(r.sizeAfter, uint64_t(fs::file_size(m_awq + "/model.safetensors")));
        QVERIFY(r.sizeAfter < r.sizeBefore / 2);  // f32 -> f16 + int4 attention

        // Progress: every layer reported in order, ETA known after the first, bytes growing, done last.
        int lastLayer = -1;
        uint64_t lastBytes = 0;
        for (const auto& p : m_progress) {
            QVERIFY(p.bytesWritten >= lastBytes);
            lastBytes = p.bytesWritten;
            if (p.stage == QuantizeStage::Layer) {
                QCOMPARE(p.numLayers, 5);
                QVERIFY(p.layer >= lastLayer);
                lastLayer = p.layer;
                if (p.layer >= 1) QVERIFY(p.eta >= 0);
            }
        }
        QCOMPARE(lastLayer, 5);
        QCOMPARE(m_progress.back().stage, QuantizeStage::Done);
        QVERIFY(lastBytes > 100000);

        // config.json and copied files.
        const auto cfg = test::readJson(m_awq + "/config.json");
        const auto& q = cfg["quantization_config"];
        QCOMPARE(q["quant_method"].get<std::string>(), std::string("awq"));
        QCOMPARE(q["version"].get<std::string>(), std::string("gemm"));
        QCOMPARE(q["bits"].get<int>(), 4);
        QCOMPARE(q["group_size"].get<int>(), 64);
        QCOMPARE(q["zero_point"].get<bool>(), true);
        QCOMPARE(q["modules_to_not_convert"].size(), size_t(15));
        QCOMPARE(q["modules_to_not_convert"][2].get<std::string>(), std::string("model.layers.0.mlp.down_proj"));
        QCOMPARE(cfg["torch_dtype"].get<std::string>(), std::string("float16"));
        QCOMPARE(cfg["hidden_size"].get<int>(), 64);
        for (const char* f : {"tokenizer.model", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"})
            QCOMPARE(test::readFile(m_awq + "/" + f), test::readFile(test::modelDir() + "/" + f));
        QVERIFY(!fs::exists(m_awq + "/reference.json"));
        const auto rep = test::readJson(m_awq + "/quantization_report.json");
        QCOMPARE(rep["layers"].size(), size_t(5));
        QCOMPARE(rep["method"].get<std::string>(), std::string("awq"));
    }

    void rtnLayoutReconstructsWeights() {
        auto src = TensorStore::open(test::modelDir());
        auto out = TensorStore::open(m_rtn);
        int64_t checked = 0;
        double sumErr = 0, sumStep = 0;
        for (int l = 0; l < 5; ++l)
            for (const char* lin : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
                const std::string prefix = "model.layers." + std::to_string(l) + ".self_attn." + lin;
                QVERIFY(out->find(prefix + ".weight") == nullptr);
                const Dequantized d = dequantizeAwq(*out, prefix);
                const TensorRef& w = src->get(prefix + ".weight");
                QCOMPARE(d.out, w.dim(0));
                QCOMPARE(d.in, w.dim(1));
                QCOMPARE(d.group, int64_t(64));
                for (int64_t o = 0; o < d.out; ++o)
                    for (int64_t i = 0; i < d.in; ++i) {
                        const float step = d.step[size_t(o * (d.in / d.group) + i / d.group)];
                        const float err = std::fabs(d.w[size_t(o * d.in + i)] - f32At(w, o * d.in + i));
                        QVERIFY2(err <= 1.0001f * step, qPrintable(QString("%1 [%2,%3]: err %4 step %5")
                                                                       .arg(QString::fromStdString(prefix)).arg(o).arg(i)
                                                                       .arg(err).arg(step)));
                        sumErr += err;
                        sumStep += step;
                        ++checked;
                    }
            }
        QCOMPARE(checked, int64_t(5 * (64 * 64 * 2 + 32 * 64 * 2)));
        // Round to nearest: the mean error is about a quarter step.
        QVERIFY2(sumErr / sumStep > 0.2 && sumErr / sumStep < 0.3, qPrintable(QString::number(sumErr / sumStep)));
        // Kept linears and the rest are f16 copies of the source.
        for (const std::string name : {"model.layers.2.mlp.gate_proj.weight", "model.layers.2.mlp.down_proj.weight",
                                       "model.embed_tokens.weight", "model.norm.weight", "model.layers.4.input_layernorm.weight"}) {
            const TensorRef& a = src->get(name);
            const TensorRef& b = out->get(name);
            QCOMPARE(b.dtype, DType::F16);
            QCOMPARE(b.shape, a.shape);
            for (int64_t i = 0; i < a.numel(); ++i) QCOMPARE(f32At(b, i), halfToFloat(floatToHalf(f32At(a, i))));
        }
        QVERIFY(out->find("lm_head.weight") == nullptr);  // tied, as in the source
    }

    void awqLayoutFoldsScalesIntoTheNorm() {
        // q/k rows: Wq = Q(W diag(s)) and the norm became norm / s, so Wq * norm' ~ W * norm within a step.
        auto src = TensorStore::open(test::modelDir());
        auto out = TensorStore::open(m_awq);
        bool scaled = false;
        for (int l = 0; l < 5; ++l) {
            const std::string p = "model.layers." + std::to_string(l) + ".";
            const TensorRef& n0 = src->get(p + "input_layernorm.weight");
            const TensorRef& n1 = out->get(p + "input_layernorm.weight");
            for (int64_t c = 0; c < 64; ++c)
                if (std::fabs(f32At(n1, c) - f32At(n0, c)) > 1e-2f * std::fabs(f32At(n0, c))) scaled = true;
            for (const char* lin : {"q_proj", "k_proj"}) {
                const Dequantized d = dequantizeAwq(*out, p + "self_attn." + lin);
                const TensorRef& w = src->get(p + "self_attn." + lin + ".weight");
                for (int64_t o = 0; o < d.out; ++o)
                    for (int64_t c = 0; c < d.in; ++c) {
                        const float n1c = f32At(n1, c), ref = f32At(w, o * d.in + c) * f32At(n0, c);
                        const float err = std::fabs(d.w[size_t(o * d.in + c)] * n1c - ref);
                        const float bound = 1.0001f * d.step[size_t(o * (d.in / d.group) + c / d.group)] * std::fabs(n1c) +
                                            2e-3f * std::fabs(ref) + 1e-7f;
                        QVERIFY2(err <= bound, qPrintable(QString("layer %1 %2 [%3,%4]: %5 > %6").arg(l).arg(lin).arg(o).arg(c)
                                                              .arg(err).arg(bound)));
                    }
            }
        }
        QVERIFY(scaled);  // the search picked alpha > 0 somewhere, so norms changed
    }

    void quantizedModelGenerates() {
        const std::string prompt = "Once upon a time";
        const test::EngineRun base = greedy(test::modelDir(), prompt, 48);
        const test::EngineRun awq = greedy(m_awq, prompt, 48);
        qInfo("16-bit: %s", base.text.c_str());
        qInfo("AWQ:    %s", awq.text.c_str());
        QCOMPARE(awq.ids.size(), size_t(48));
        int same = 0;
        while (same < 48 && awq.ids[size_t(same)] == base.ids[size_t(same)]) ++same;
        QVERIFY2(same >= 8, qPrintable(QString("only %1 greedy tokens agree").arg(same)));
        QVERIFY(awq.text.find("Lily") != std::string::npos);
        // Coherent: the 16-bit model finds the quantized model's story about as likely as its own.
        PerplexityOptions o;
        o.modelDir = test::modelDir();
        o.backend = "cpu";
        o.text = prompt + awq.text;
        const double pAwqText = perplexity(o)->ppl;
        o.text = prompt + base.text;
        const double pBaseText = perplexity(o)->ppl;
        qInfo("16-bit model perplexity of the generated text: own %.3f, AWQ's %.3f", pBaseText, pAwqText);
        QVERIFY(pAwqText < 2.0 * pBaseText);
    }

    void perplexityAwqAtMostRtn() {
        const double p16 = ppl(test::modelDir()), pRtn = ppl(m_rtn), pAwq = ppl(m_awq);
        qInfo("perplexity on stories.txt: 16-bit %.4f, RTN %.4f (%+.2f%%), AWQ %.4f (%+.2f%%)", p16, pRtn,
              100 * (pRtn / p16 - 1), pAwq, 100 * (pAwq / p16 - 1));
        QVERIFY(p16 > 1.5 && p16 < 40);
        QVERIFY(pRtn > p16);
        QVERIFY2(pAwq <= pRtn, qPrintable(QString("AWQ %1 > RTN %2").arg(pAwq).arg(pRtn)));
        QVERIFY(pAwq > p16 * 0.99);
    }

    void perplexityInReport() {
        QuantizeOptions o = options(m_tmp.path().toStdString() + "/with-ppl", "rtn");
        o.pplTextFile = test::testData("stories.txt");
        auto r = quantizeModel(o);
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        QCOMPARE(r->pplBefore, ppl(test::modelDir()));
        QCOMPARE(r->pplAfter, ppl(m_rtn));
        QVERIFY(formatQuantizeReport(r.value()).find("perplexity: ") != std::string::npos);
    }

    void internlm2FusedQkvMatchesLlama() {
        // Same weights, fused grouped wqkv: quantization is per output row, so RTN must give the same model.
        QuantizeOptions o = options(m_tmp.path().toStdString() + "/internlm2-rtn", "rtn");
        o.modelDir = test::modelDir("stories260K-internlm2");
        auto r = quantizeModel(o);
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        auto out = TensorStore::open(o.workDir);
        QVERIFY(out->find("model.layers.0.attention.wqkv.qweight") != nullptr);
        QCOMPARE(out->get("model.layers.0.attention.wqkv.qweight").shape, (std::vector<int64_t>{64, 16}));
        QVERIFY(out->find("model.layers.0.feed_forward.w1.weight") != nullptr);
        const double a = ppl(o.workDir), b = ppl(m_rtn);
        QVERIFY2(std::fabs(a - b) <= 1e-4 * b, qPrintable(QString("internlm2 %1 llama %2").arg(a).arg(b)));
    }

    void awqOnFusedAndBiasedLayouts() {
        // internlm2 (grouped wqkv: v rows scattered through one tensor) must give the llama result, and
        // qwen2's v biases must be divided with their rows when o's scales fold into v.
        auto awqWithFile = [&](const std::string& model, const std::string& out) {
            QuantizeOptions o = options(m_tmp.path().toStdString() + "/" + out, "awq");
            o.modelDir = test::modelDir(model);
            o.calibDataset = test::testData("stories.txt");
            o.calibSamples = 4;
            auto r = quantizeModel(o);
            if (!r) qFatal("%s: %s", model.c_str(), r.error().what());
            return o.workDir;
        };
        const double llama = ppl(awqWithFile("stories260K", "llama-awq-file"));
        const double internlm2 = ppl(awqWithFile("stories260K-internlm2", "internlm2-awq-file"));
        QVERIFY2(std::fabs(internlm2 - llama) <= 1e-4 * llama, qPrintable(QString("internlm2 %1 llama %2").arg(internlm2).arg(llama)));
        const double qwen16 = ppl(test::modelDir("stories260K-qwen2"));
        const double qwenAwq = ppl(awqWithFile("stories260K-qwen2", "qwen2-awq-file"));
        qInfo("qwen2 layout: 16-bit %.4f, AWQ %.4f", qwen16, qwenAwq);
        // (Its random biases make this model more sensitive; that the folding itself is exact is
        // test_quantize_fold's job.)
        QVERIFY2(qwenAwq > qwen16 && qwenAwq < qwen16 * 1.10, qPrintable(QString("qwen2 %1 vs %2").arg(qwenAwq).arg(qwen16)));
        auto out = TensorStore::open(m_tmp.path().toStdString() + "/qwen2-awq-file");
        QCOMPARE(out->get("model.layers.0.self_attn.v_proj.bias").dtype, DType::F16);
    }

    void calibrationFromFiles() {
        // A .txt file is one text; a .jsonl file gives the "text" field of each line.
        QuantizeOptions o = options(m_tmp.path().toStdString() + "/calib-txt", "awq");
        o.calibDataset = test::testData("stories.txt");
        o.calibSamples = 2;
        o.calibSeqLen = 256;
        auto r = quantizeModel(o);
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        QCOMPARE(r->calibration, std::string("stories.txt: 2 x 256 tokens"));

        const std::string jsonl = m_tmp.path().toStdString() + "/calib.jsonl";
        std::ofstream(jsonl) << "{\"text\": \"Once upon a time, there was a cat.\"}\n\n{\"text\": \"The dog ran to the park.\", \"id\": 2}\n";
        o.workDir = m_tmp.path().toStdString() + "/calib-jsonl";
        o.calibDataset = jsonl;
        o.calibSamples = 128;
        r = quantizeModel(o);
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        QVERIFY2(r->calibration.rfind("calib.jsonl: 1 x ", 0) == 0, r->calibration.c_str());

        std::ofstream(jsonl) << "{\"text\": \"fine\"}\n{\"title\": \"no text\"}\n";
        o.workDir = m_tmp.path().toStdString() + "/calib-bad";
        r = quantizeModel(o);
        QVERIFY(!r.ok());
        QCOMPARE(std::string(r.error().what()), jsonl + ": line 2 has no string field \"text\"");
        QVERIFY(!fs::exists(o.workDir));
    }

    void cancelLeavesNoFolder() {
        const std::string out = m_tmp.path().toStdString() + "/cancelled";
        int calls = 0;
        QuantizeOptions o = options(out, "awq");
        o.calibDataset = test::testData("stories.txt");
        auto r = quantizeModel(o, [&](const QuantizeProgress& p) {
            ++calls;
            return !(p.stage == QuantizeStage::Layer && p.layer == 2);
        });
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code(), ErrorCode::Cancelled);
        QVERIFY(calls > 3);
        QVERIFY(!fs::exists(out));
        QVERIFY(!hasPartialSibling(m_tmp.path().toStdString()));
    }

    void unwritableLocationIsAClearError() {
        auto r = quantizeModel(options("/proc/lmw-quantize-test/out", "rtn"));
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code(), ErrorCode::Io);
        const std::string msg = r.error().what();
        QVERIFY2(msg.find("/proc/lmw-quantize-test") != std::string::npos, msg.c_str());
        QVERIFY(!fs::exists("/proc/lmw-quantize-test"));

        // An existing non-empty folder is refused rather than mixed into.
        const std::string busy = m_tmp.path().toStdString() + "/busy";
        fs::create_directories(busy);
        test::readFile(busy);  // nothing
        { std::ofstream(busy + "/keep.txt") << "mine"; }
        auto b = quantizeModel(options(busy, "rtn"));
        QVERIFY(!b.ok());
        QCOMPARE(b.error().code(), ErrorCode::InvalidArgument);
        QVERIFY(std::string(b.error().what()).find("not empty") != std::string::npos);
        QCOMPARE(test::readFile(busy + "/keep.txt"), std::string("mine"));
    }

    void fullDiskIsAClearError() {
        // A file size limit makes writes fail like a full disk does (as root, permissions would not).
        const std::string out = m_tmp.path().toStdString() + "/full";
        std::signal(SIGXFSZ, SIG_IGN);
        rlimit old{};
        getrlimit(RLIMIT_FSIZE, &old);
        rlimit small = old;
        small.rlim_cur = 64 * 1024;
        setrlimit(RLIMIT_FSIZE, &small);
        auto r = quantizeModel(options(out, "rtn"));
        setrlimit(RLIMIT_FSIZE, &old);
        QVERIFY(!r.ok());
        QCOMPARE(r.error().code(), ErrorCode::Io);
        const std::string msg = r.error().what();
        QVERIFY2(msg.find("model.safetensors") != std::string::npos && msg.find("disk full") != std::string::npos,
                 msg.c_str());
        QVERIFY(!fs::exists(out));
        QVERIFY(!hasPartialSibling(m_tmp.path().toStdString()));
    }
};

QTEST_GUILESS_MAIN(TestQuantizeModel)
#include "test_quantize_model.moc"
