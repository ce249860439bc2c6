// A folder written here by hand in AutoAWQ's GEMM layout (known int4 values, zero points and scales,
// packed by this test from the format's description) loads in our engine and computes with exactly
// the dequantized weights: per linear (identity input) and through the whole forward pass.
#include <QTest>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "backend/backend.h"
#include "lmw/dtype.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
namespace fs = std::filesystem;

namespace {

const int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Known values for linear `seed`: int4 q[o][i], zero z[g][o], f16 scale s[g][o].
struct KnownLinear {
    int64_t out, in, group;
    std::vector<uint8_t> q, z;       // [out][in], [groups][out]
    std::vector<uint16_t> s;         // [groups][out]
    std::vector<int32_t> qweight, qzeros;
    std::vector<float> dequant;      // [out][in]

    KnownLinear(int64_t out_, int64_t in_, int64_t group_, int seed) : out(out_), in(in_), group(group_) {
        const int64_t G = in / group;
        q.resize(size_t(out * in));
        z.resize(size_t(G * out));
        s.resize(size_t(G * out));
        for (int64_t o = 0; o < out; ++o)
            for (int64_t i = 0; i < in; ++i) q[size_t(o * in + i)] = uint8_t((o * 7 + i * 3 + seed) % 16);
        for (int64_t g = 0; g < G; ++g)
            for (int64_t o = 0; o < out; ++o) {
                z[size_t(g * out + o)] = uint8_t((o + 5 * g + seed) % 16);
                s[size_t(g * out + o)] = floatToHalf(0.004f + 0.001f * float((o + g + seed) % 9));
            }
        // Pack: qweight [in, out/8], word j of row i holds column 8j + kOrder[k] in bits 4k.
        qweight.assign(size_t(in * out / 8), 0);
        qzeros.assign(size_t(G * out / 8), 0);
        for (int64_t j = 0; j < out / 8; ++j)
            for (int k = 0; k < 8; ++k) {
                const int64_t col = 8 * j + kOrder[k];
                for (int64_t i = 0; i < in; ++i)
                    qweight[size_t(i * out / 8 + j)] |= int32_t(uint32_t(q[size_t(col * in + i)]) << (4 * k));
                for (int64_t g = 0; g < G; ++g)
                    qzeros[size_t(g * out / 8 + j)] |= int32_t(uint32_t(z[size_t(g * out + col)]) << (4 * k));
            }
        dequant.resize(size_t(out * in));
        for (int64_t o = 0; o < out; ++o)
            for (int64_t i = 0; i < in; ++i) {
                const size_t gi = size_t((i / group) * out + o);
                dequant[size_t(o * in + i)] = (float(q[size_t(o * in + i)]) - float(z[gi])) * halfToFloat(s[gi]);
            }
    }
};

// Writes `dir` from stories260K: attention linears replaced by known weights, AWQ-packed (awq) or as
// the dequantized f32 matrices (dense). Everything else is copied as it is.
std::map<std::string, KnownLinear> writeFolder(const std::string& dir, bool awq) {
    const std::string src = test::modelDir();
    fs::create_directories(dir);
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"})
        fs::copy_file(src + "/" + f, dir + "/" + f);
    auto cfg = test::readJson(src + "/config.json");
    if (awq)
        cfg["quantization_config"] = {{"quant_method", "awq"}, {"version", "GEMM"}, {"bits", 4}, {"group_size", 64},
                                      {"zero_point", true}};
    std::ofstream(dir + "/config.json") << cfg.dump(2);

    std::map<std::string, KnownLinear> known;
    for (int l = 0; l < 5; ++l)
        for (const auto& [name, out, group] : std::vector<std::tuple<const char*, int64_t, int64_t>>{
                 {"q_proj", 64, 64}, {"k_proj", 32, 64}, {"v_proj", 32, 64}, {"o_proj", 64, 32}})
            known.emplace("model.layers." + std::to_string(l) + ".self_attn." + name,
                          KnownLinear(out, 64, group, l * 4 + int(known.size() % 4)));

    auto store = TensorStore::open(src);
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, t] : store->tensors()) {
        const std::string prefix = name.size() > 7 ? name.substr(0, name.size() - 7) : "";
        auto it = known.find(prefix);
        if (it == known.end()) {
            tensors.push_back({name, t.dtype, t.shape, t.data, t.bytes});
            continue;
        }
        const KnownLinear& k = it->second;
        const int64_t G = k.in / k.group;
        if (awq) {
            tensors.push_back({prefix + ".qweight", DType::I32, {k.in, k.out / 8}, k.qweight.data(), k.qweight.size() * 4});
            tensors.push_back({prefix + ".qzeros", DType::I32, {G, k.out / 8}, k.qzeros.data(), k.qzeros.size() * 4});
            tensors.push_back({prefix + ".scales", DType::F16, {G, k.out}, k.s.data(), k.s.size() * 2});
        } else {
            tensors.push_back({name, DType::F32, {k.out, k.in}, k.dequant.data(), k.dequant.size() * 4});
        }
    }
    writeSafetensors(dir + "/model.safetensors", tensors);
    return known;
}

}  // namespace

class TestQuantizeAwqFolder : public QObject {
    Q_OBJECT
    QTemporaryDir m_tmp;
    std::string m_awq, m_dense;
    std::map<std::string, KnownLinear> m_known;

private slots:
    void initTestCase() {
        QVERIFY(m_tmp.isValid());
        m_awq = m_tmp.path().toStdString() + "/autoawq";
        m_dense = m_tmp.path().toStdString() + "/dense";
        m_known = writeFolder(m_awq, true);
        writeFolder(m_dense, false);
    }

    void linearsComputeWithTheDequantizedWeights() {
        const ModelConfig cfg = parseModelConfig(m_awq);
        QVERIFY(cfg.awq);
        QCOMPARE(cfg.awqGroupSize, 64);
        ModelSources src = loadModelSources(m_awq, cfg);
        auto b = createBackend("cpu", 2);
        // Identity input: row i of the output is column i of W, i.e. out[i][o] = W[o][i].
        std::vector<float> eye(64 * 64, 0.0f);
        for (int i = 0; i < 64; ++i) eye[size_t(i * 65)] = 1.0f;
        for (int l = 0; l < 5; ++l) {
            const LayerSources& L = src.layers[size_t(l)];
            QVERIFY(L.qkv.awq);
            QCOMPARE(L.qkv.groupSize, 64);
            QVERIFY(L.o.awq);
            QCOMPARE(L.o.groupSize, 32);  // from the scales' shape, not config.json
            QVERIFY(!L.gateUp.awq);
            const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
            struct Part {
                const LinearSource* lin;
                std::vector<std::pair<std::string, int64_t>> pieces;  // name, first output row
            };
            for (const Part& part : {Part{&L.qkv, {{"q_proj", 0}, {"k_proj", 64}, {"v_proj", 96}}}, Part{&L.o, {{"o_proj", 0}}}}) {
                auto w = b->loadLinear(*part.lin);
                b->beginStep(sequenceBatch(cfg, 64));
                Tensor x = b->upload(eye.data(), 64, 64);
                Tensor y = b->alloc(64, part.lin->out);
                b->linear(y, x, *w);
                std::vector<float> out(size_t(64 * part.lin->out));
                b->readF32(y, out.data());
                for (const auto& [name, first] : part.pieces) {
                    const KnownLinear& k = m_known.at(p + name);
                    for (int64_t o = 0; o < k.out; ++o)
                        for (int64_t i = 0; i < 64; ++i) {
                            const float want = k.dequant[size_t(o * 64 + i)];
                            const float got = out[size_t(i * part.lin->out + first + o)];
                            QVERIFY2(std::fabs(got - want) <= 1e-6f * std::max(1.0f, std::fabs(want)),
                                     qPrintable(QString("%1 [%2,%3]: %4 vs %5").arg(QString::fromStdString(p + name))
                                                    .arg(o).arg(i).arg(got).arg(want)));
                        }
                }
            }
        }
        // A spot value computed by hand: q_proj of layer 0, o=1, i=2: q = (7 + 6 + 0) % 16 = 13,
        // zero = (1 + 0 + 0) % 16 = 1, scale = f16(0.004 + 0.001 * 1) -> (13 - 1) * 0.005 = 0.06.
        QVERIFY(std::fabs(m_known.at("model.layers.0.self_attn.q_proj").dequant[size_t(1 * 64 + 2)] - 0.06f) < 1e-4f);
    }

    void forwardMatchesTheDenseFolder() {
        auto run = [](const std::string& dir) {
            const ModelConfig cfg = parseModelConfig(dir);
            ModelSources src = loadModelSources(dir, cfg);
            auto b = createBackend("cpu", 2);
            Transformer t(*b, src);
            b->allocKvCache({cfg.numLayers, cfg.numKvHeads, cfg.headDim, 64, 0}, 1);
            const std::vector<int32_t> ids = {1, 403, 407, 261, 378, 429, 36, 46, 10};
            StepBatch sb = sequenceBatch(cfg, int(ids.size()), ids.data());
            for (int i = 0; i < int(ids.size()); ++i) sb.logitRows.push_back(i);
            std::vector<float> logits(ids.size() * size_t(cfg.vocabSize));
            t.forward(sb, logits.data());
            return logits;
        };
        const std::vector<float> a = run(m_awq), d = run(m_dense);
        QCOMPARE(a.size(), d.size());
        double maxDiff = 0, maxAbs = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            maxDiff = std::max(maxDiff, double(std::fabs(a[i] - d[i])));
            maxAbs = std::max(maxAbs, double(std::fabs(d[i])));
        }
        QVERIFY(maxAbs > 0.1);  // the logits are not trivially zero
        QVERIFY2(maxDiff < 1e-4, qPrintable(QString("max logit difference %1").arg(maxDiff)));
    }
};

QTEST_APPLESS_MAIN(TestQuantizeAwqFolder)
#include "test_quantize_awq_folder.moc"
