// qwen3-tiny (per-head q/k norms, explicit head_dim) and llama3-tiny (llama3 rope scaling, three eos
// ids) on the CPU backend against Hugging Face transformers, from the reference input ids: 24 greedy
// ids equal, the 64 largest last-token logits within 1e-4 relative, logsumexp within 1e-4.
// The forward pass runs through the Transformer directly; the tokenizer has its own tests.
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "greedy_run.h"
#include "lmw/engine.h"
#include "lmw/sampling.h"
#include "lmw/tokenizer.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "test_util.h"

using namespace lmw::engine;
using lmw::test::modelDir;
using nlohmann::json;

namespace {

void addModels() {
    QTest::addColumn<QString>("model");
    QTest::newRow("qwen3-tiny") << "qwen3-tiny";
    QTest::newRow("llama3-tiny") << "llama3-tiny";
}

// reference.json's logits are not what transformers 5.17 computes from these folders (in float32 or
// float64, CPU or GPU: up to 8.6e-3 relative on llama3-tiny's 181-token prompt, 1e-3 elsewhere), so the
// 1e-4 checks are against transformers' own run (tests/data/hf_tiny_logits.json) and reference.json
// is held to what transformers itself meets.
constexpr double kReferenceJsonTolerance = 1e-2;

// The cases of tests/data/hf_tiny_logits.json for a model (the same prompts as reference.json).
json transformersRun(const std::string& model) {
    return lmw::test::readJson(lmw::test::testData("hf_tiny_logits.json"))["models"][model]["cases"];
}

// Largest relative difference of our logits at a case's top64_ids from its top64_logits.
double top64RelError(const std::vector<float>& logits, const json& c) {
    const auto ids = c["top64_ids"].get<std::vector<int>>();
    const auto want = c["top64_logits"].get<std::vector<double>>();
    if (ids.size() != 64 || want.size() != 64) return INFINITY;
    double worst = 0;
    for (size_t i = 0; i < ids.size(); ++i)
        worst = std::max(worst, std::abs(double(logits[size_t(ids[i])]) - want[i]) / std::abs(want[i]));
    return worst;
}

QString caseName(const json& c) {
    return QString::fromStdString(c["prompt"].get<std::string>()) + QString(" (%1 ids)").arg(c["input_ids"].size());
}

}  // namespace

class TestGoldenHf : public QObject {
    Q_OBJECT
private slots:
    void configs() {
        const ModelConfig q = parseModelConfig(modelDir("qwen3-tiny"));
        QCOMPARE(q.family, ModelFamily::Qwen3);
        QCOMPARE(std::string(familyName(q.family)), std::string("qwen3"));
        QVERIFY(q.qkNorm);
        QVERIFY(!q.qkvBias);
        QCOMPARE(q.headDim, 32);  // given; hidden / heads would be 12
        QCOMPARE(q.hiddenSize / q.numHeads, 12);
        QCOMPARE(q.ropeTheta, 1e6);
        QCOMPARE(q.ropeScaling.type, std::string());  // "default"
        QCOMPARE(q.eosTokenIds, (std::vector<int>{151645, 151643}));
        ModelSources qs = loadModelSources(modelDir("qwen3-tiny"), q);
        QCOMPARE(qs.layers[1].qNorm->name, std::string("model.layers.1.self_attn.q_norm.weight"));
        QCOMPARE(qs.layers[1].kNorm->shape, std::vector<int64_t>{32});
        QCOMPARE(qs.layers[1].qkv.out, int64_t((4 + 2 * 2) * 32));
        QVERIFY(qs.layers[1].qkv.biasSegments.empty());
        QVERIFY(qs.layers[1].o.biasSegments.empty());

        const ModelConfig l = parseModelConfig(modelDir("llama3-tiny"));
        QCOMPARE(l.family, ModelFamily::Llama);
        QVERIFY(!l.qkNorm);
        QCOMPARE(l.headDim, 12);
        QCOMPARE(l.ropeTheta, 500000.0);
        QCOMPARE(l.ropeScaling.type, std::string("llama3"));
        QCOMPARE(l.ropeScaling.factor, 8.0);
        QCOMPARE(l.ropeScaling.lowFreqFactor, 1.0);
        QCOMPARE(l.ropeScaling.highFreqFactor, 4.0);
        QCOMPARE(l.ropeScaling.originalMaxPositionEmbeddings, 8192);
        QCOMPARE(l.eosTokenIds, (std::vector<int>{128001, 128008, 128009}));
        QVERIFY(loadModelSources(modelDir("llama3-tiny"), l).layers[0].qNorm == nullptr);
    }

    // Transformers' _compute_llama3_parameters, written out in double for head_dim 12.
    void llama3RopeFrequencies() {
        const ModelConfig cfg = parseModelConfig(modelDir("llama3-tiny"));
        std::vector<float> got(size_t(cfg.headDim / 2));
        ropeInvFreq(cfg, 1, got.data());
        const RopeScaling& rs = cfg.ropeScaling;
        const double lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
        const double highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
        int scaled = 0, smoothed = 0, kept = 0;
        for (int i = 0; i < cfg.headDim / 2; ++i) {
            const double inv = 1.0 / std::pow(cfg.ropeTheta, 2.0 * i / cfg.headDim);
            const double wavelen = 2 * M_PI / inv;
            double want = inv;
            if (wavelen > lowWavelen) {
                want = inv / rs.factor;
                ++scaled;
            } else if (wavelen >= highWavelen) {
                const double s = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) /
                                 (rs.highFreqFactor - rs.lowFreqFactor);
                want = (1 - s) * inv / rs.factor + s * inv;
                ++smoothed;
            } else {
                ++kept;
            }
            QVERIFY2(std::abs(got[size_t(i)] - want) <= 1e-6 * want,
                     qPrintable(QString("pair %1: %2 want %3").arg(i).arg(got[size_t(i)]).arg(want)));
        }
        // theta 500000 over 12 dims reaches every branch: this model checks all three.
        QVERIFY(scaled > 0 && smoothed > 0 && kept > 0);
        // llama3 scaling does not depend on the length (dynamic NTK would).
        std::vector<float> longer(got.size());
        ropeInvFreq(cfg, 100000, longer.data());
        QCOMPARE(longer, got);
    }

    // Every case of reference.json through the CPU backend against transformers run on the same folder.
    void promptLogitsMatchTransformers_data() { addModels(); }
    void promptLogitsMatchTransformers() {
        QFETCH(QString, model);
        const std::string dir = modelDir(model.toStdString());
        const json ref = lmw::test::reference(model.toStdString());
        const json hf = transformersRun(model.toStdString());
        QCOMPARE(ref["cases"].size(), size_t(6));
        QCOMPARE(hf.size(), ref["cases"].size());
        auto backend = createBackend("cpu", 2);
        for (size_t i = 0; i < hf.size(); ++i) {
            const json& c = ref["cases"][i];
            QCOMPARE(hf[i]["input_ids"], c["input_ids"]);
            const auto run = lmw::test::greedyRun(*backend, dir, c["input_ids"].get<std::vector<int32_t>>(), 0);
            const std::vector<float>& l = run.promptLogits;
            const double lse = logSumExp(l.data(), int(l.size()));
            const double errHf = top64RelError(l, hf[i]), errRef = top64RelError(l, c);
            const double lseHf = std::abs(lse - hf[i]["logsumexp"].get<double>());
            const double lseRef = std::abs(lse - c["logsumexp"].get<double>());
            qInfo("%s: top-64 rel err %.1e (transformers) %.1e (reference.json), logsumexp diff %.1e / %.1e",
                  qPrintable(caseName(c)), errHf, errRef, lseHf, lseRef);
            QVERIFY2(errHf <= 1e-4 && lseHf <= 1e-4, qPrintable(caseName(c)));
            QVERIFY2(errRef <= kReferenceJsonTolerance && lseRef <= kReferenceJsonTolerance, qPrintable(caseName(c)));
            QCOMPARE(int(std::max_element(l.begin(), l.end()) - l.begin()), c["top64_ids"][0].get<int>());
            // The top 64 are the same tokens (the whole vocabulary is right, not only the ids looked at).
            std::vector<float> sorted = l;
            std::nth_element(sorted.begin(), sorted.begin() + 63, sorted.end(), std::greater<float>());
            const double want63 = hf[i]["top64_logits"][63].get<double>();
            QVERIFY2(std::abs(double(sorted[63]) - want63) <= 1e-4 * std::abs(want63), qPrintable(caseName(c)));
        }
    }

    void greedyIdsMatchTransformers_data() { addModels(); }
    void greedyIdsMatchTransformers() {
        QFETCH(QString, model);
        const std::string dir = modelDir(model.toStdString());
        const json ref = lmw::test::reference(model.toStdString());
        const json hf = transformersRun(model.toStdString());
        auto backend = createBackend("cpu", 2);
        for (size_t i = 0; i < hf.size(); ++i) {
            const json& c = ref["cases"][i];
            const auto want = hf[i]["greedy_ids"].get<std::vector<int32_t>>();
            QCOMPARE(want.size(), size_t(24));
            const auto run = lmw::test::greedyRun(*backend, dir, c["input_ids"].get<std::vector<int32_t>>(), 24);
            QCOMPARE(run.ids, want);
            // reference.json's greedy ids up to where transformers' own continuation leaves them (a near-tie
            // there: two cases, steps 18 and 17; see tests/data/README.md).
            const auto refIds = c["greedy_ids"].get<std::vector<int32_t>>();
            size_t agree = 0;
            while (agree < want.size() && want[agree] == refIds[agree]) ++agree;
            QVERIFY2(agree >= 17, qPrintable(caseName(c)));
            QCOMPARE(std::vector<int32_t>(run.ids.begin(), run.ids.begin() + long(agree)),
                     std::vector<int32_t>(refIds.begin(), refIds.begin() + long(agree)));
        }
    }

    // Llama 3 lists three eos ids in generation_config.json; each one ends generation. Checked by making
    // the token greedy decoding reaches at step 3 an eos id at each place of the list in turn (a copy of
    // the folder with the weights linked).
    void everyGenerationConfigEosIdStops() {
        const std::string src = modelDir("llama3-tiny");
        const json c = lmw::test::reference("llama3-tiny")["cases"][0];
        const int32_t third = c["greedy_ids"][2].get<int32_t>();
        const std::vector<int> listed = {128001, 128008, 128009};
        for (size_t place = 0; place < listed.size(); ++place) {
            QTemporaryDir tmp;
            const std::string dir = tmp.path().toStdString();
            for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
                std::filesystem::create_symlink(src + "/" + f, dir + "/" + f);
            json cfg = lmw::test::readJson(src + "/config.json");
            cfg["eos_token_id"] = 128001;  // the list only in generation_config.json
            std::ofstream(dir + "/config.json") << cfg.dump();
            json gen = lmw::test::readJson(src + "/generation_config.json");
            std::vector<int> eos = listed;
            eos[place] = third;
            gen["eos_token_id"] = eos;
            std::ofstream(dir + "/generation_config.json") << gen.dump();

            const auto run = lmw::test::engineGreedy(dir, c["input_ids"].get<std::vector<int32_t>>(), 16, false);
            QVERIFY2(run.error.empty(), run.error.c_str());
            QCOMPARE(run.finish, FinishReason::Stop);
            QCOMPARE(run.ids, (std::vector<int32_t>(c["greedy_ids"].begin(), c["greedy_ids"].begin() + 3)));
        }
    }

    // <|eot_id|> ends a Llama 3 chat turn: the model's template writes it, and it is a stop of chat requests.
    void eotIdEndsALlama3ChatTurn() {
        EngineConfig ec;
        ec.modelDir = modelDir("llama3-tiny");
        ec.backend = "cpu";
        ec.threads = 2;
        auto e = Engine::load(ec);
        QVERIFY2(e.ok(), e.ok() ? "" : e.error().what());
        const auto stops = e.value()->chatTemplate().stopWords();
        QVERIFY(std::find(stops.begin(), stops.end(), "<|eot_id|>") != stops.end());
        QCOMPARE(e.value()->tokenizer().tokenId("<|eot_id|>"), std::optional<int32_t>(128009));
        QVERIFY(e.value()->tokenizer().isSpecial(128009));
        const auto eos = e.value()->info().config.eosTokenIds;
        QVERIFY(std::find(eos.begin(), eos.end(), 128009) != eos.end());
    }

    // The prompts through the model's own tokenizer (tokenizer.json). Plain prompts only: the "chat:"
    // cases are rendered chat templates, which test_chat_template checks against chat_cases.
    void promptsEncodeToTheReferenceIds_data() { addModels(); }
    void promptsEncodeToTheReferenceIds() {
        QFETCH(QString, model);
        const std::string dir = modelDir(model.toStdString());
        const json ref = lmw::test::reference(model.toStdString());
        auto tok = Tokenizer::load(dir);
        int checked = 0;
        for (const auto& c : ref["cases"]) {
            const std::string prompt = c["prompt"].get<std::string>();
            if (prompt.rfind("chat:", 0) == 0) continue;
            QCOMPARE(tok->encode(prompt), c["input_ids"].get<std::vector<int32_t>>());
            QCOMPARE(QString::fromStdString(tok->decode(c["greedy_ids"].get<std::vector<int32_t>>())),
                     QString::fromStdString(c["greedy_text"].get<std::string>()));
            ++checked;
        }
        QCOMPARE(checked, 4);
    }
};

QTEST_GUILESS_MAIN(TestGoldenHf)
#include "test_golden_hf.moc"
