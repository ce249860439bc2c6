// What `lmw bench` measures with: the random AutoAWQ-layout model (writeRandomLlamaAwq) loads and
// generates on the CPU, with the layout, group sizes, value ranges and byte count of an AutoAWQ
// GEMM checkpoint; and the decode roofline (ModelInfo::decodeBytesPerStep) counts weights once
// plus every sequence's KV.
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <map>

#include "greedy_run.h"
#include "lmw/model_info.h"
#include "model/model_writer.h"
#include "model/safetensors.h"
#include "quant/int4.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;

namespace {

// A small Llama with awkward sizes: 320 inputs take group 64 (not 128), GQA 5:1, two layers.
ModelConfig smallConfig() {
    ModelConfig c = parseModelConfig(test::modelDir());
    c.hiddenSize = 320;
    c.intermediateSize = 640;
    c.numLayers = 2;
    c.numHeads = 5;
    c.numKvHeads = 1;
    c.headDim = 64;
    c.maxPositionEmbeddings = 1024;
    c.tieWordEmbeddings = false;
    c.ropeScaling = {};
    c.eosTokenIds = {2};
    return c;
}

// AutoAWQ GEMM bytes of one [out, in] linear at group g: int4 codes, f16 scales, int4 zeros.
uint64_t awqBytes(int64_t out, int64_t in, int64_t g) {
    return uint64_t(in * out / 2 + (in / g) * out * 2 + (in / g) * (out / 8) * 4);
}

}  // namespace

class TestBenchModels : public QObject {
    Q_OBJECT

private slots:
    void awqSyntheticLayoutAndValues() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/awq";
        const ModelConfig cfg = smallConfig();
        writeRandomLlamaAwq(d, cfg, 7, test::modelDir(), 128);

        const ModelConfig c = parseModelConfig(d);
        QVERIFY(c.awq);
        QCOMPARE(c.awqGroupSize, 128);
        QCOMPARE(c.torchDtype, std::string("float16"));
        auto info = readModelInfo(d);
        QVERIFY2(info.ok(), info.ok() ? "" : info.error().what());
        QCOMPARE(info->dtype, std::string("AWQ-INT4"));
        const int64_t h = 320, f = 640, kv = 64, V = cfg.vocabSize;
        // Per layer: q, k, v, o, gate, up at group 64 (320 inputs), down at 128; norms, embedding, head f16.
        const uint64_t layer = awqBytes(h, h, 64) + 2 * awqBytes(kv, h, 64) + awqBytes(h, h, 64) +
                               2 * awqBytes(f, h, 64) + awqBytes(h, f, 128) + 2 * h * 2;
        const uint64_t want = 2 * layer + uint64_t(2 * V * h * 2 + h * 2);
        QCOMPARE(info->weightBytes, want);
        QCOMPARE(info->embeddingBytes, uint64_t(V * h * 2));

        auto store = TensorStore::open(d);
        const TensorRef& qw = store->get("model.layers.1.mlp.gate_proj.qweight", {h, f / 8});
        const TensorRef& qz = store->get("model.layers.1.mlp.gate_proj.qzeros", {h / 64, f / 8});
        const TensorRef& sc = store->get("model.layers.1.mlp.gate_proj.scales", {h / 64, f});
        QCOMPARE(qw.dtype, DType::I32);
        QCOMPARE(sc.dtype, DType::F16);
        store->get("model.layers.0.mlp.down_proj.scales", {f / 128, h});
        QCOMPARE(store->get("lm_head.weight", {V, h}).dtype, DType::F16);

        const auto codes = quant::unpackAwqTransposed(reinterpret_cast<const int32_t*>(qw.data), h, f);  // [f][h]
        const auto zeros = quant::unpackAwqTransposed(reinterpret_cast<const int32_t*>(qz.data), h / 64, f);
        std::map<int, int> histogram, zeroCounts;
        for (uint8_t q : codes) ++histogram[q];
        for (uint8_t z : zeros) ++zeroCounts[z];
        QCOMPARE(int(histogram.size()), 16);
        for (const auto& [code, n] : histogram)  // uniform codes: each near 1/16 of them
            QVERIFY2(std::abs(n - int(codes.size()) / 16) < int(codes.size()) / 80, qPrintable(QString::number(code)));
        QCOMPARE(int(zeroCounts.size()), 3);
        QVERIFY(zeroCounts.count(7) && zeroCounts.count(8) && zeroCounts.count(9));
        // Dequantized (code - zero) * scale: about the N(0, 0.02) spread of the float models.
        double sq = 0;
        for (int64_t o = 0; o < f; ++o)
            for (int64_t i = 0; i < h; ++i) {
                uint16_t s;
                std::memcpy(&s, sc.data + ((i / 64) * f + o) * 2, 2);
                const double w = (double(codes[size_t(o * h + i)]) - zeros[size_t(o * (h / 64) + i / 64)]) * halfToFloat(s);
                sq += w * w;
            }
        const double sd = std::sqrt(sq / double(f * h));
        QVERIFY2(std::abs(sd - 0.02) < 0.002, qPrintable(QString::number(sd)));

        // Deterministic for a seed.
        writeRandomLlamaAwq(d + "2", cfg, 7, test::modelDir(), 128);
        QCOMPARE(test::readFile(d + "2/model.safetensors"), test::readFile(d + "/model.safetensors"));
    }

    void awqSyntheticGeneratesOnCpu() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/awq";
        writeRandomLlamaAwq(d, smallConfig(), 11, test::modelDir(), 128);
        const std::vector<int32_t> prompt = {1, 403, 12, 77, 250, 9};
        const test::EngineRun a = test::engineGreedy(d, prompt, 8, true);
        QVERIFY2(a.finish == FinishReason::Length, a.error.c_str());
        QCOMPARE(int(a.ids.size()), 8);
        for (int32_t id : a.ids) QVERIFY(id >= 0 && id < 512);
        // The same run through the Transformer directly (no scheduler) picks the same ids.
        auto backend = createBackend("cpu", 2);
        const test::GreedyRun b = test::greedyRun(*backend, d, prompt, 8);
        QCOMPARE(b.ids, a.ids);
        for (float v : b.promptLogits) QVERIFY(std::isfinite(v));
    }

    void awqSyntheticRejectsShapesWithoutAGroup() {
        QTemporaryDir tmp;
        ModelConfig c = smallConfig();
        c.intermediateSize = 8 * 37;  // 296 inputs of down_proj: no group of 32 or more divides them
        bool threw = false;
        try {
            writeRandomLlamaAwq(tmp.path().toStdString() + "/bad", c, 1, test::modelDir(), 128);
        } catch (const Error& e) {
            threw = e.code() == ErrorCode::InvalidArgument && std::string(e.what()).find("296") != std::string::npos;
        }
        QVERIFY(threw);
    }

    void decodeBytesPerStepCountsWeightsOnceAndEveryKv() {
        // stories260K ties its head to the embedding: the table is streamed, so all weights count.
        auto tied = readModelInfo(test::modelDir());
        QVERIFY(tied.ok());
        QVERIFY(tied->embeddingBytes > 0);
        QCOMPARE(tied->decodeBytesPerStep(1, 0, 0), double(tied->weightBytes));
        QCOMPARE(tied->decodeBytesPerStep(4, 100.5, 0),
                 double(tied->weightBytes) + 4 * 100.5 * double(tied->kvBytesPerToken(0)));
        QCOMPARE(tied->decodeBytesPerStep(16, 512, 8, "cpu"),
                 double(tied->weightBytes) + 16.0 * 512 * double(tied->kvBytesPerToken(8, "cpu")));

        // An untied head: only the batch's embedding rows are read, so the table is left out.
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/awq";
        writeRandomLlamaAwq(d, smallConfig(), 3, test::modelDir(), 128);
        auto info = readModelInfo(d);
        QVERIFY(info.ok());
        const double weights = double(info->weightBytes - info->embeddingBytes);
        QCOMPARE(info->decodeBytesPerStep(1, 512, 0), weights + 512.0 * double(info->kvBytesPerToken(0)));
        // 2 layers x 1 kv head x (K and V) x 64 x f16 per token on CUDA.
        QCOMPARE(info->kvBytesPerToken(0), uint64_t(2 * 1 * 2 * 64 * 2));
        QCOMPARE(info->decodeBytesPerStep(3, 8192, 0), weights + 3.0 * 8192 * 512);
    }
};

QTEST_APPLESS_MAIN(TestBenchModels)
#include "test_bench_models.moc"
