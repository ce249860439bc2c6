// AWQ folds its scales into the op before each linear (norm -> qkv, v -> o with grouped-query
// heads tied, up -> down, biases with their rows). Before rounding, the folded layer must compute
// exactly what the original does: checked on stories260K-qwen2 (q/k/v biases, 8 query / 4 KV heads)
// and qwen3-tiny (per-head q/k norms after qkv, head_dim 32 != hidden / heads).
#include <QTest>

#include <cmath>

#include "backend/backend.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "quant/block_error.h"
#include "quant/calibration.h"
#include "quant/layer_quant.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using namespace lmw::engine::quant;

namespace {

// LayerSources over host f32 data of a HostLayer (canonical layout: one segment per linear).
struct HostSources {
    std::vector<TensorRef> refs;
    LayerSources src;
    explicit HostSources(const HostLayer& h, const LayerSources& shape) {
        refs.reserve(16);
        auto ref = [&](const std::vector<float>& v, std::vector<int64_t> dims) {
            TensorRef t;
            t.name = "host";
            t.dtype = DType::F32;
            t.shape = std::move(dims);
            t.data = reinterpret_cast<const uint8_t*>(v.data());
            t.bytes = v.size() * 4;
            refs.push_back(t);
            return &refs.back();
        };
        src.attnNorm = ref(h.attnNorm, {int64_t(h.attnNorm.size())});
        src.ffnNorm = ref(h.ffnNorm, {int64_t(h.ffnNorm.size())});
        src.qNorm = shape.qNorm;  // AWQ leaves the q/k norms as they are
        src.kNorm = shape.kNorm;
        const LinearSource* from[4] = {&shape.qkv, &shape.o, &shape.gateUp, &shape.down};
        LinearSource* to[4] = {&src.qkv, &src.o, &src.gateUp, &src.down};
        for (int k = 0; k < 4; ++k) {
            LinearSource& l = *to[k];
            l.name = from[k]->name;
            l.in = from[k]->in;
            l.out = from[k]->out;
            l.dtype = DType::F32;
            WeightSegment seg;
            seg.src = ref(h.w[k], {l.out, l.in});
            seg.count = l.out;
            l.segments.push_back(seg);
            if (!h.bias[k].empty()) {
                WeightSegment b;
                b.src = ref(h.bias[k], {l.out});
                b.count = l.out;
                l.biasSegments.push_back(b);
            }
        }
    }
};

std::vector<float> runLayer(Backend& b, const ModelConfig& cfg, const LayerSources& src, const std::vector<float>& x0, int len) {
    LayerWeights w = loadLayer(b, src);
    b.beginStep(sequenceBatch(cfg, len));
    Tensor x = b.upload(x0.data(), len, cfg.hiddenSize);
    decoderLayer(b, cfg, w, 1, 0, x);
    std::vector<float> out(size_t(len) * size_t(cfg.hiddenSize));
    b.readF32(x, out.data());
    return out;
}

// Quantizes layer 1 of `dir` with AWQ (scale search over calibration from `set`, every linear forced
// to int4 with group `group`, which no real model would use on these shapes: it exercises every fold),
// then checks that the folded, unrounded layer computes what the original does.
void checkFold(const std::string& dir, const CalibSet& set, int group) {
    const ModelConfig cfg = parseModelConfig(dir);
    ModelSources src = loadModelSources(dir, cfg);
    const int len = int(set.seqs[0].size());
    CalibActivations acts = embedCalibration(src, set);
    auto b = createBackend("cpu", 2);
    b->allocKvCache({1, cfg.numKvHeads, cfg.headDim, 64, 0}, (len + 63) / 64);
    LinearStats stats0[4], stats[4];
    runCalibrationLayer(*b, src, 0, acts, 1, 0, stats0);  // acts: input of layer 1
    const std::vector<float> layer1Input(acts.x.begin(), acts.x.begin() + int64_t(len) * cfg.hiddenSize);
    runCalibrationLayer(*b, src, 1, acts, 4, 1, stats);
    QCOMPARE(stats[kQkv].seqLens, std::vector<int>{len});
    QCOMPARE(stats[kDown].count, acts.totalTokens());

    const LayerSources& L = src.layers[1];
    LinearPlan plans[4];
    for (int k = 0; k < kLinearKinds; ++k) {
        plans[k] = planLinear(L.linear(k), 128);
        plans[k].quantize = true;
        plans[k].group = group;
    }
    LayerErrorModel errors(*b, cfg, L, stats, len);
    LayerQuantSettings settings;
    const LayerQuantResult r = quantizeLayer(cfg, L, plans, settings, stats, &errors);
    int scaled = 0;
    for (int k = 0; k < 4; ++k) {
        QVERIFY(r.report[k].errorFinal >= 0);
        if (r.report[k].alpha > 0) ++scaled;
    }
    QVERIFY2(scaled >= 3, qPrintable(QString("only %1 linears got scales").arg(scaled)));

    const std::vector<float> want = runLayer(*b, cfg, L, layer1Input, len);
    HostSources folded(r.layer, L);
    const std::vector<float> got = runLayer(*b, cfg, folded.src, layer1Input, len);
    double maxDiff = 0, maxAbs = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        maxDiff = std::max(maxDiff, double(std::fabs(got[i] - want[i])));
        maxAbs = std::max(maxAbs, double(std::fabs(want[i])));
    }
    QVERIFY(maxAbs > 0.1);
    QVERIFY2(maxDiff < 1e-4 * maxAbs, qPrintable(QString("max diff %1 of %2").arg(maxDiff).arg(maxAbs)));

    // And the folded weights really moved (v rows divided, o columns multiplied).
    const std::vector<float> orig = readHostLayer(L).w[kO];
    double moved = 0;
    for (size_t i = 0; i < orig.size(); ++i) moved = std::max(moved, double(std::fabs(orig[i] - r.layer.w[kO][i])));
    QVERIFY(moved > 1e-3);
}

}  // namespace

class TestQuantizeFold : public QObject {
    Q_OBJECT
private slots:
    void foldedLayerIsTheSameFunction() {
        const std::string dir = test::modelDir("stories260K-qwen2");
        const ModelConfig cfg = parseModelConfig(dir);
        QVERIFY(cfg.qkvBias);
        QVERIFY(cfg.numHeads != cfg.numKvHeads);
        auto tok = Tokenizer::load(dir);
        const CalibSet set = calibFromFile(test::testData("stories.txt"), *tok, 2, 256);
        QCOMPARE(set.seqs.size(), size_t(2));
        // stories260K's MLP cannot be int4; group 4 "divides" 64 and 172.
        checkFold(dir, set, 4);
    }

    void foldedQwen3LayerIsTheSameFunction() {
        // The qkv search scores candidates through the attention block, q/k norms included.
        const std::string dir = test::modelDir("qwen3-tiny");
        const ModelConfig cfg = parseModelConfig(dir);
        QVERIFY(cfg.qkNorm);
        QVERIFY(cfg.headDim * cfg.numHeads != cfg.hiddenSize);
        auto b = createBackend("cpu", 2);
        ModelSources src = loadModelSources(dir, cfg);
        const CalibSet set = calibFromModel(*b, src, 2, 96, 7, {});
        QCOMPARE(set.seqs.size(), size_t(2));
        checkFold(dir, set, 16);  // 16 divides hidden 48
    }
};

QTEST_APPLESS_MAIN(TestQuantizeFold)
#include "test_quantize_fold.moc"
