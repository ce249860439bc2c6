// Model folder layer: config.json parsing, safetensors mapping, family weight mapping, ModelInfo,
// and one clear error for each kind of broken folder.
#include <QProcess>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "lmw/model_info.h"
#include "model/model_writer.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Row r of a LinearSource's assembled dense weight (f32 storage only), bytes as stored.
std::vector<uint8_t> denseRows(const LinearSource& L) {
    const size_t es = dtypeSize(L.dtype);
    std::vector<uint8_t> out(size_t(L.out * L.in) * es);
    std::vector<int> covered(size_t(L.out), 0);
    for (const auto& s : L.segments) {
        const size_t rowBytes = size_t(L.in) * es;
        std::memcpy(out.data() + size_t(s.dstStart) * rowBytes, s.src->data + size_t(s.srcStart) * rowBytes,
                    size_t(s.count) * rowBytes);
        for (int64_t r = 0; r < s.count; ++r) covered[size_t(s.dstStart + r)]++;
    }
    for (int c : covered)
        if (c != 1) throw std::runtime_error(L.name + ": segments do not cover every row exactly once");
    return out;
}

std::vector<uint8_t> tensorBytes(const TensorRef& t) { return {t.data, t.data + t.bytes}; }

float f32At(const TensorRef& t, int64_t i) {
    float f;
    std::memcpy(&f, t.data + i * 4, 4);
    return f;
}

// Copies a model folder (files only) into `dst`.
void copyModel(const std::string& src, const std::string& dst) {
    fs::create_directories(dst);
    for (const auto& e : fs::directory_iterator(src))
        if (e.is_regular_file()) fs::copy_file(e.path(), dst + "/" + e.path().filename().string());
}

void editConfig(const std::string& dir, const std::function<void(json&)>& edit, const std::string& file = "config.json") {
    json j = test::readJson(dir + "/" + file);
    edit(j);
    std::ofstream(dir + "/" + file, std::ios::binary | std::ios::trunc) << j.dump(2);
}

void writeRaw(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string le64(uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(n >> (8 * i)));
    return s;
}

// Rewrites dir/model.safetensors from the tensors of `srcDir`, letting `edit` drop or change entries.
void rewriteTensors(const std::string& srcDir, const std::string& dir,
                    const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    auto store = TensorStore::open(srcDir);
    std::vector<TensorToWrite> ts;
    for (const auto& [name, t] : store->tensors()) ts.push_back({name, t.dtype, t.shape, t.data, t.bytes});
    edit(ts);
    writeSafetensors(dir + "/model.safetensors.tmp", ts);
    fs::rename(dir + "/model.safetensors.tmp", dir + "/model.safetensors");
}

int64_t expectedStoriesParams() {
    // Shapes from the README/config: vocab 512, dim 64, 5 layers, q 8x8, kv 4x8, ffn 172, tied head.
    const int64_t dim = 64, ffn = 172, q = 64, kv = 32, vocab = 512, layers = 5;
    const int64_t perLayer = dim /*attn norm*/ + q * dim + 2 * kv * dim + dim * q + dim /*ffn norm*/ + 3 * ffn * dim;
    return vocab * dim + layers * perLayer + dim /*final norm*/;
}

}  // namespace

class TestModelLoading : public QObject {
    Q_OBJECT

    // Runs f, which must throw lmw::Error with `code`; returns the message.
    template <class F>
    static std::string expectError(F&& f, ErrorCode code) {
        try {
            f();
        } catch (const Error& e) {
            if (e.code() != code)
                qWarning("got code %s, expected %s: %s", errorCodeName(e.code()), errorCodeName(code), e.what());
            return e.code() == code ? std::string(e.what()) : std::string("WRONG CODE: ") + e.what();
        }
        return "NO ERROR";
    }
    static bool contains(const std::string& msg, const std::string& what) {
        const bool ok = msg.find(what) != std::string::npos;
        if (!ok) qWarning("message \"%s\" does not contain \"%s\"", msg.c_str(), what.c_str());
        return ok;
    }

private slots:
    void configStories260K() {
        const ModelConfig c = parseModelConfig(test::modelDir());
        QCOMPARE(c.architecture, std::string("LlamaForCausalLM"));
        QCOMPARE(c.family, ModelFamily::Llama);
        QCOMPARE(std::string(familyName(c.family)), std::string("llama"));
        QCOMPARE(c.qkNorm, false);
        QCOMPARE(c.hiddenSize, 64);
        QCOMPARE(c.intermediateSize, 172);
        QCOMPARE(c.numLayers, 5);
        QCOMPARE(c.numHeads, 8);
        QCOMPARE(c.numKvHeads, 4);
        QCOMPARE(c.headDim, 8);
        QCOMPARE(c.vocabSize, 512);
        QCOMPARE(c.maxPositionEmbeddings, 512);
        QCOMPARE(c.rmsNormEps, 1e-5);
        QCOMPARE(c.ropeTheta, 10000.0);
        QCOMPARE(c.ropeScaling.type, std::string());
        QCOMPARE(c.tieWordEmbeddings, true);
        QCOMPARE(c.qkvBias, false);
        QCOMPARE(c.torchDtype, std::string("float32"));
        QCOMPARE(c.bosTokenId, 1);
        QCOMPARE(c.eosTokenIds, std::vector<int>{2});
        QCOMPARE(c.awq, false);
    }

    void configOtherFamilies() {
        const ModelConfig i = parseModelConfig(test::modelDir("stories260K-internlm2"));
        QCOMPARE(i.family, ModelFamily::InternLM2);
        QCOMPARE(i.headDim, 8);  // no head_dim field: hidden / heads
        QCOMPARE(i.numKvHeads, 4);
        QCOMPARE(i.tieWordEmbeddings, false);
        QCOMPARE(i.qkvBias, false);
        QCOMPARE(i.ropeScaling.type, std::string());  // "rope_scaling": null

        const ModelConfig q = parseModelConfig(test::modelDir("stories260K-qwen2"));
        QCOMPARE(q.family, ModelFamily::Qwen2);
        QCOMPARE(q.qkvBias, true);
        QCOMPARE(q.headDim, 8);

        const ModelConfig lin = parseModelConfig(test::modelDir("stories260K-rope-linear"));
        QCOMPARE(lin.ropeScaling.type, std::string("linear"));
        QCOMPARE(lin.ropeScaling.factor, 4.0);
        const ModelConfig dyn = parseModelConfig(test::modelDir("stories260K-rope-dynamic"));
        QCOMPARE(dyn.ropeScaling.type, std::string("dynamic"));
        QCOMPARE(dyn.ropeScaling.factor, 2.0);
    }

    void configVariants() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        editConfig(d, [](json& j) {
            j["architectures"] = {"MistralForCausalLM"};
            j.erase("num_key_value_heads");
            j.erase("head_dim");
            j["eos_token_id"] = {2, 7};
            j["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.5},
                                 {"high_freq_factor", 3.0}, {"original_max_position_embeddings", 256}};
            j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 64},
                                        {"zero_point", true}, {"version", "GEMM"}};
            j["torch_dtype"] = "float16";
        });
        editConfig(d, [](json& j) { j["eos_token_id"] = {7, 9}; j["bos_token_id"] = 3; }, "generation_config.json");
        const ModelConfig c = parseModelConfig(d);
        QCOMPARE(c.family, ModelFamily::Mistral);  // Llama weight names, its own chat template
        QCOMPARE(std::string(familyName(c.family)), std::string("mistral"));
        QCOMPARE(c.numKvHeads, 8);
        QCOMPARE(c.headDim, 8);
        QCOMPARE(c.eosTokenIds, (std::vector<int>{2, 7, 9}));
        QCOMPARE(c.bosTokenId, 3);
        QCOMPARE(c.ropeScaling.type, std::string("llama3"));
        QCOMPARE(c.ropeScaling.factor, 8.0);
        QCOMPARE(c.ropeScaling.lowFreqFactor, 1.5);
        QCOMPARE(c.ropeScaling.highFreqFactor, 3.0);
        QCOMPARE(c.ropeScaling.originalMaxPositionEmbeddings, 256);
        QCOMPARE(c.awq, true);
        QCOMPARE(c.awqBits, 4);
        QCOMPARE(c.awqGroupSize, 64);
        QCOMPARE(c.awqZeroPoint, true);
        QCOMPARE(c.torchDtype, std::string("float16"));

        editConfig(d, [](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}}; });
        const std::string msg = expectError([&] { parseModelConfig(d); }, ErrorCode::Unsupported);
        QVERIFY(contains(msg, "config.json"));
        QVERIFY(contains(msg, "quant_method"));
        QVERIFY(contains(msg, "gptq"));
    }

    void sourcesStories260K() {
        const ModelConfig c = parseModelConfig(test::modelDir());
        const ModelSources m = loadModelSources(test::modelDir(), c);
        QCOMPARE(m.embed->name, std::string("model.embed_tokens.weight"));
        QCOMPARE(m.embed->shape, (std::vector<int64_t>{512, 64}));
        QCOMPARE(int(m.layers.size()), 5);
        QCOMPARE(m.finalNorm->name, std::string("model.norm.weight"));
        for (int i = 0; i < 5; ++i) {
            const LayerSources& L = m.layers[size_t(i)];
            const std::string p = "model.layers." + std::to_string(i) + ".";
            QCOMPARE(L.attnNorm->name, p + "input_layernorm.weight");
            QCOMPARE(L.ffnNorm->name, p + "post_attention_layernorm.weight");
            QCOMPARE(L.qkv.in, int64_t(64));
            QCOMPARE(L.qkv.out, int64_t(128));
            QCOMPARE(L.qkv.dtype, DType::F32);
            QCOMPARE(L.qkv.awq, false);
            QCOMPARE(int(L.qkv.segments.size()), 3);
            const char* names[] = {"q_proj", "k_proj", "v_proj"};
            const int64_t dst[] = {0, 64, 96}, cnt[] = {64, 32, 32};
            for (int s = 0; s < 3; ++s) {
                QCOMPARE(L.qkv.segments[size_t(s)].src->name, p + "self_attn." + names[s] + ".weight");
                QCOMPARE(L.qkv.segments[size_t(s)].srcStart, int64_t(0));
                QCOMPARE(L.qkv.segments[size_t(s)].dstStart, dst[s]);
                QCOMPARE(L.qkv.segments[size_t(s)].count, cnt[s]);
            }
            QVERIFY(L.qkv.biasSegments.empty());
            QCOMPARE(L.o.in, int64_t(64));
            QCOMPARE(L.o.out, int64_t(64));
            QCOMPARE(L.o.segments.at(0).src->name, p + "self_attn.o_proj.weight");
            QCOMPARE(L.gateUp.out, int64_t(344));
            QCOMPARE(int(L.gateUp.segments.size()), 2);
            QCOMPARE(L.gateUp.segments[0].src->name, p + "mlp.gate_proj.weight");
            QCOMPARE(L.gateUp.segments[1].src->name, p + "mlp.up_proj.weight");
            QCOMPARE(L.gateUp.segments[1].dstStart, int64_t(172));
            QCOMPARE(L.down.in, int64_t(172));
            QCOMPARE(L.down.out, int64_t(64));
            QCOMPARE(L.down.segments.at(0).src->name, p + "mlp.down_proj.weight");
        }
        // Tied: the head is the embedding.
        QCOMPARE(m.lmHead.out, int64_t(512));
        QCOMPARE(m.lmHead.in, int64_t(64));
        QCOMPARE(int(m.lmHead.segments.size()), 1);
        QVERIFY(m.lmHead.segments[0].src == m.embed);
        // The mapping points into the file: the first embedding value is what the file holds.
        const std::string raw = test::readFile(test::modelDir() + "/model.safetensors");
        uint64_t n = 0;
        std::memcpy(&n, raw.data(), 8);
        const json h = json::parse(raw.substr(8, size_t(n)));
        const size_t off = 8 + size_t(n) + h["model.embed_tokens.weight"]["data_offsets"][0].get<size_t>();
        QVERIFY(std::memcmp(m.embed->data, raw.data() + off, m.embed->bytes) == 0);
    }

    void internlm2MatchesLlamaByteForByte() {
        const ModelSources a = loadModelSources(test::modelDir(), parseModelConfig(test::modelDir()));
        const std::string d = test::modelDir("stories260K-internlm2");
        const ModelSources b = loadModelSources(d, parseModelConfig(d));
        QCOMPARE(b.embed->name, std::string("model.tok_embeddings.weight"));
        QCOMPARE(tensorBytes(*b.embed), tensorBytes(*a.embed));
        QCOMPARE(b.lmHead.segments.at(0).src->name, std::string("output.weight"));
        QCOMPARE(denseRows(b.lmHead), denseRows(a.lmHead));
        QCOMPARE(tensorBytes(*b.finalNorm), tensorBytes(*a.finalNorm));
        for (size_t i = 0; i < 5; ++i) {
            const LayerSources &la = a.layers[i], &lb = b.layers[i];
            QCOMPARE(lb.qkv.out, int64_t(128));
            QCOMPARE(int(lb.qkv.segments.size()), 12);  // 4 KV groups x (q, k, v)
            // Group 1: its 2 query heads are wqkv rows [32, 48) -> q rows [16, 32); key row 48 -> 64+8; value 56 -> 96+8.
            QCOMPARE(lb.qkv.segments[1].srcStart, int64_t(32));
            QCOMPARE(lb.qkv.segments[1].dstStart, int64_t(16));
            QCOMPARE(lb.qkv.segments[1].count, int64_t(16));
            QCOMPARE(lb.qkv.segments[5].srcStart, int64_t(48));
            QCOMPARE(lb.qkv.segments[5].dstStart, int64_t(72));
            QCOMPARE(lb.qkv.segments[9].srcStart, int64_t(56));
            QCOMPARE(lb.qkv.segments[9].dstStart, int64_t(104));
            QCOMPARE(lb.qkv.segments[0].src->name, "model.layers." + std::to_string(i) + ".attention.wqkv.weight");
            QCOMPARE(denseRows(lb.qkv), denseRows(la.qkv));
            QCOMPARE(denseRows(lb.o), denseRows(la.o));
            QCOMPARE(lb.gateUp.segments.at(0).src->name, "model.layers." + std::to_string(i) + ".feed_forward.w1.weight");
            QCOMPARE(denseRows(lb.gateUp), denseRows(la.gateUp));
            QCOMPARE(denseRows(lb.down), denseRows(la.down));
            QCOMPARE(tensorBytes(*lb.attnNorm), tensorBytes(*la.attnNorm));
            QCOMPARE(tensorBytes(*lb.ffnNorm), tensorBytes(*la.ffnNorm));
        }
    }

    void qwen2Biases() {
        const std::string d = test::modelDir("stories260K-qwen2");
        const ModelSources m = loadModelSources(d, parseModelConfig(d));
        for (size_t i = 0; i < 5; ++i) {
            const LinearSource& qkv = m.layers[i].qkv;
            QCOMPARE(int(qkv.biasSegments.size()), 3);
            const char* names[] = {"q_proj", "k_proj", "v_proj"};
            const int64_t dst[] = {0, 64, 96}, cnt[] = {64, 32, 32};
            for (size_t s = 0; s < 3; ++s) {
                QCOMPARE(qkv.biasSegments[s].src->name, "model.layers." + std::to_string(i) + ".self_attn." + names[s] + ".bias");
                QCOMPARE(qkv.biasSegments[s].dstStart, dst[s]);
                QCOMPARE(qkv.biasSegments[s].count, cnt[s]);
                QCOMPARE(qkv.biasSegments[s].src->shape, std::vector<int64_t>{cnt[s]});
            }
            QVERIFY(m.layers[i].o.biasSegments.empty());
            QVERIFY(m.layers[i].gateUp.biasSegments.empty());
        }
        // Biases are real (non-zero) numbers from the file.
        QVERIFY(f32At(*m.layers[0].qkv.biasSegments[0].src, 0) != 0.0f);
    }

    // ---- broken folders: one clear message each ----

    void missingConfig() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        fs::remove(d + "/config.json");
        const std::string msg = expectError([&] { parseModelConfig(d); }, ErrorCode::NotFound);
        QCOMPARE(msg, d + "/config.json: not found");
        auto info = readModelInfo(d);
        QVERIFY(!info.ok());
        QCOMPARE(info.error().code(), ErrorCode::NotFound);
    }

    void badConfigJson() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        writeRaw(d + "/config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,,}");
        const std::string msg = expectError([&] { parseModelConfig(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, d + "/config.json"));
        QVERIFY(contains(msg, "JSON"));
    }

    void missingField() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        editConfig(d, [](json& j) { j.erase("num_hidden_layers"); });
        const std::string msg = expectError([&] { parseModelConfig(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "config.json"));
        QVERIFY(contains(msg, "\"num_hidden_layers\""));
        editConfig(d, [](json& j) { j["num_hidden_layers"] = "five"; });
        const std::string msg2 = expectError([&] { parseModelConfig(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg2, "\"num_hidden_layers\" must be an integer"));
    }

    void unknownArchitecture() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        editConfig(d, [](json& j) { j["architectures"] = {"GPTNeoXForCausalLM"}; });
        const std::string msg = expectError([&] { parseModelConfig(d); }, ErrorCode::Unsupported);
        QVERIFY(contains(msg, "config.json"));
        QVERIFY(contains(msg, "architectures"));
        QVERIFY(contains(msg, "GPTNeoXForCausalLM"));
    }

    void unknownRopeType() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        editConfig(d, [](json& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}}; });
        const std::string msg = expectError([&] { parseModelConfig(d); }, ErrorCode::Unsupported);
        QVERIFY(contains(msg, "config.json"));
        QVERIFY(contains(msg, "rope_scaling"));
        QVERIFY(contains(msg, "yarn"));
    }

    void truncatedSafetensors() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        const std::string file = d + "/model.safetensors";
        writeRaw(file, "abc");
        std::string msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, file));
        QVERIFY(contains(msg, "truncated"));
        // The length prefix promises a header the file does not hold.
        const std::string full = test::readFile(test::modelDir() + "/model.safetensors");
        writeRaw(file, full.substr(0, 100));
        msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, file));
        QVERIFY(contains(msg, "truncated"));
        // Header intact, data cut short: the last tensor's offsets run past the end.
        writeRaw(file, full.substr(0, full.size() - 4));
        msg = expectError([&] { readSafetensorsHeaders(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, file));
        QVERIFY(contains(msg, "past the end"));
        // Loading a model through the full path reports the same.
        msg = expectError([&] { loadModelSources(d, parseModelConfig(d)); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "past the end"));
    }

    void headerProblems() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        fs::create_directories(d);
        const std::string file = d + "/model.safetensors";
        const std::string data(16, '\0');
        auto withHeader = [&](const std::string& h) { writeRaw(file, le64(h.size()) + h + data); };

        withHeader(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 1000]}})");
        std::string msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, file));
        QVERIFY(contains(msg, "tensor 'w'"));
        QVERIFY(contains(msg, "[0, 1000]"));
        QVERIFY(contains(msg, "past the end"));

        withHeader(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}})");
        msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "tensor 'w'"));
        QVERIFY(contains(msg, "begin > end"));

        withHeader(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}})");
        msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "tensor 'w'"));
        QVERIFY(contains(msg, "16 bytes for shape [2, 3] of F32 (needs 24)"));

        withHeader(R"({"w": {"dtype": "F4", "shape": [2, 2], "data_offsets": [0, 16]}})");
        msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "tensor 'w'"));
        QVERIFY(contains(msg, "unknown dtype \"F4\""));

        withHeader(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]})");
        msg = expectError([&] { TensorStore::open(d); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, file));
        QVERIFY(contains(msg, "header is not valid JSON"));

        withHeader(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})");
        auto store = TensorStore::open(d);
        QCOMPARE(store->get("w").shape, (std::vector<int64_t>{2, 2}));

        fs::remove(file);
        msg = expectError([&] { TensorStore::open(d); }, ErrorCode::NotFound);
        QVERIFY(contains(msg, "no *.safetensors"));
    }

    void wrongShape() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        std::vector<float> small(32 * 64, 0.5f);
        rewriteTensors(test::modelDir(), d, [&](std::vector<TensorToWrite>& ts) {
            for (auto& t : ts)
                if (t.name == "model.layers.2.self_attn.q_proj.weight") {
                    t.shape = {32, 64};
                    t.data = small.data();
                    t.bytes = small.size() * 4;
                }
        });
        const std::string msg = expectError([&] { loadModelSources(d, parseModelConfig(d)); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "model.layers.2.self_attn.q_proj.weight"));
        QVERIFY(contains(msg, "has shape [32, 64], expected [64, 64]"));
        QVERIFY(contains(msg, d + "/model.safetensors"));
    }

    void missingTensor() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        rewriteTensors(test::modelDir(), d, [&](std::vector<TensorToWrite>& ts) {
            std::erase_if(ts, [](const TensorToWrite& t) { return t.name == "model.layers.3.mlp.up_proj.weight"; });
        });
        const std::string msg = expectError([&] { loadModelSources(d, parseModelConfig(d)); }, ErrorCode::NotFound);
        QVERIFY(contains(msg, "tensor 'model.layers.3.mlp.up_proj.weight' not found"));

        // An untied model without lm_head names the head.
        editConfig(d, [](json& j) { j["tie_word_embeddings"] = false; });
        rewriteTensors(test::modelDir(), d, [](std::vector<TensorToWrite>&) {});
        const std::string msg2 = expectError([&] { loadModelSources(d, parseModelConfig(d)); }, ErrorCode::NotFound);
        QVERIFY(contains(msg2, "'lm_head.weight'"));
    }

    void mixedDtypeInFusedLinear() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        std::vector<uint16_t> half(32 * 64, 0x3c00);
        rewriteTensors(test::modelDir(), d, [&](std::vector<TensorToWrite>& ts) {
            for (auto& t : ts)
                if (t.name == "model.layers.0.self_attn.k_proj.weight") {
                    t.dtype = DType::F16;
                    t.data = half.data();
                    t.bytes = half.size() * 2;
                }
        });
        const std::string msg = expectError([&] { loadModelSources(d, parseModelConfig(d)); }, ErrorCode::InvalidModel);
        QVERIFY(contains(msg, "model.layers.0.self_attn.k_proj.weight"));
        QVERIFY(contains(msg, "layers.0.qkv"));
    }

    // ---- writing and sharding ----

    void writeReadRoundtrip() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString();
        std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
        std::vector<uint16_t> b = {floatToHalf(0.5f), floatToHalf(-3.0f), floatToHalf(65504.0f)};
        std::vector<int32_t> c = {1, -2, 0x7fffffff};
        std::vector<uint8_t> e;  // zero-size tensor
        writeSafetensors(d + "/model.safetensors",
                         {{"a", DType::F32, {2, 3}, a.data(), a.size() * 4},
                          {"b.f16", DType::F16, {3}, b.data(), b.size() * 2},
                          {"c", DType::I32, {1, 3}, c.data(), c.size() * 4},
                          {"empty", DType::BF16, {0, 4}, e.data(), 0}},
                         {{"format", "pt"}, {"note", "test"}});
        const std::string raw = test::readFile(d + "/model.safetensors");
        uint64_t n = 0;
        std::memcpy(&n, raw.data(), 8);
        QCOMPARE(n % 8, uint64_t(0));  // data section starts 8-aligned in the file
        const json h = json::parse(raw.substr(8, size_t(n)));
        QCOMPARE(h["__metadata__"]["note"].get<std::string>(), std::string("test"));
        QCOMPARE(raw.size(), size_t(8 + n + 24 + 6 + 12));

        auto store = TensorStore::open(d);
        QCOMPARE(int(store->tensors().size()), 4);
        const TensorRef& ta = store->get("a", {2, 3});
        QCOMPARE(ta.dtype, DType::F32);
        QCOMPARE(ta.shapeString(), std::string("[2, 3]"));
        QVERIFY(std::memcmp(ta.data, a.data(), 24) == 0);
        const TensorRef& tb = store->get("b.f16");
        QCOMPARE(tb.dtype, DType::F16);
        QVERIFY(std::memcmp(tb.data, b.data(), 6) == 0);
        const TensorRef& tc = store->get("c");
        QCOMPARE(tc.dtype, DType::I32);
        QVERIFY(std::memcmp(tc.data, c.data(), 12) == 0);
        QCOMPARE(store->get("empty").numel(), int64_t(0));
        QCOMPARE(store->totalBytes(), uint64_t(42));
        QCOMPARE(store->get("c").file, d + "/model.safetensors");

        const auto headers = readSafetensorsHeaders(d);
        QCOMPARE(int(headers.size()), 4);
        QCOMPARE(headers.at("a").bytes, size_t(24));
        QVERIFY(headers.at("a").data == nullptr);

        // A byte count that disagrees with the shape is refused at write time.
        const std::string msg = expectError(
            [&] { writeSafetensors(d + "/x.safetensors", {{"a", DType::F32, {2, 2}, a.data(), 12}}); },
            ErrorCode::InvalidArgument);
        QVERIFY(contains(msg, "'a'"));
    }

    void shardedFolder() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/m";
        copyModel(test::modelDir(), d);
        fs::remove(d + "/model.safetensors");
        auto src = TensorStore::open(test::modelDir());
        std::vector<TensorToWrite> s1, s2;
        json index;
        index["metadata"] = {{"total_size", src->totalBytes()}};
        int i = 0;
        for (const auto& [name, t] : src->tensors()) {
            const bool first = (i++ % 2) == 0;
            (first ? s1 : s2).push_back({name, t.dtype, t.shape, t.data, t.bytes});
            index["weight_map"][name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        }
        writeSafetensors(d + "/model-00001-of-00002.safetensors", s1);
        writeSafetensors(d + "/model-00002-of-00002.safetensors", s2);
        std::ofstream(d + "/model.safetensors.index.json") << index.dump(2);

        const ModelSources a = loadModelSources(test::modelDir(), parseModelConfig(test::modelDir()));
        const ModelSources b = loadModelSources(d, parseModelConfig(d));
        QCOMPARE(int(b.store->tensors().size()), int(src->tensors().size()));
        QVERIFY(b.layers[0].qkv.segments[0].src->file != b.layers[0].qkv.segments[1].src->file ||
                b.layers[0].qkv.segments[1].src->file != b.layers[0].qkv.segments[2].src->file);
        for (size_t l = 0; l < 5; ++l) {
            QCOMPARE(denseRows(b.layers[l].qkv), denseRows(a.layers[l].qkv));
            QCOMPARE(denseRows(b.layers[l].gateUp), denseRows(a.layers[l].gateUp));
        }
        auto info = readModelInfo(d);
        QVERIFY(info.ok());
        QCOMPARE(info->parameters, expectedStoriesParams());

        // Without the index, every *.safetensors is taken.
        fs::rename(d + "/model.safetensors.index.json", d + "/index.bak");
        QCOMPARE(int(TensorStore::open(d)->tensors().size()), int(src->tensors().size()));
        fs::rename(d + "/index.bak", d + "/model.safetensors.index.json");

        // A shard the index names but the folder lacks.
        fs::remove(d + "/model-00002-of-00002.safetensors");
        const std::string msg = expectError([&] { TensorStore::open(d); }, ErrorCode::NotFound);
        QVERIFY(contains(msg, "model-00002-of-00002.safetensors: not found"));
    }

    void convertToHalf() {
        QTemporaryDir tmp;
        auto src = TensorStore::open(test::modelDir());
        for (DType dt : {DType::F16, DType::BF16}) {
            const std::string d = tmp.path().toStdString() + "/" + dtypeName(dt);
            convertModel(test::modelDir(), d, dt);
            QVERIFY(fs::exists(d + "/tokenizer.model"));
            QVERIFY(fs::exists(d + "/generation_config.json"));
            QVERIFY(!fs::exists(d + "/reference.json"));
            const ModelConfig c = parseModelConfig(d);
            QCOMPARE(c.torchDtype, std::string(dt == DType::F16 ? "float16" : "bfloat16"));
            auto out = TensorStore::open(d);
            QCOMPARE(out->tensors().size(), src->tensors().size());
            int64_t checked = 0;
            for (const auto& [name, t] : src->tensors()) {
                const TensorRef& o = out->get(name, t.shape);
                QCOMPARE(o.dtype, dt);
                for (int64_t i = 0; i < t.numel(); ++i) {
                    const float f = f32At(t, i);
                    uint16_t got;
                    std::memcpy(&got, o.data + i * 2, 2);
                    const uint16_t want = dt == DType::F16 ? floatToHalf(f) : floatToBf16(f);
                    if (got != want) QFAIL(qPrintable(QString("%1[%2]").arg(QString::fromStdString(name)).arg(i)));
                    ++checked;
                }
            }
            QCOMPARE(checked, expectedStoriesParams());
            const ModelSources m = loadModelSources(d, c);
            QCOMPARE(m.layers[0].qkv.dtype, dt);
            auto info = readModelInfo(d);
            QVERIFY(info.ok());
            QCOMPARE(info->dtype, std::string(dtypeName(dt)));
            QCOMPARE(info->weightBytes, uint64_t(expectedStoriesParams() * 2));
        }
    }

    void randomLlama() {
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/rand";
        ModelConfig cfg;
        cfg.hiddenSize = 128;
        cfg.intermediateSize = 256;
        cfg.numLayers = 2;
        cfg.numHeads = 4;
        cfg.numKvHeads = 2;
        cfg.vocabSize = 512;
        cfg.maxPositionEmbeddings = 1024;
        cfg.tieWordEmbeddings = false;
        cfg.eosTokenIds = {2};
        writeRandomLlama(d, cfg, DType::BF16, 42, test::modelDir());
        QVERIFY(fs::exists(d + "/tokenizer.model"));
        const ModelConfig c = parseModelConfig(d);
        QCOMPARE(c.headDim, 32);
        QCOMPARE(c.numKvHeads, 2);
        QCOMPARE(c.torchDtype, std::string("bfloat16"));
        QCOMPARE(c.eosTokenIds, std::vector<int>{2});
        const ModelSources m = loadModelSources(d, c);
        QCOMPARE(m.lmHead.segments.at(0).src->name, std::string("lm_head.weight"));
        QCOMPARE(m.layers[1].qkv.out, int64_t(256));
        const TensorRef& w = m.store->get("model.layers.1.mlp.gate_proj.weight");
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < w.numel(); ++i) {
            uint16_t v;
            std::memcpy(&v, w.data + i * 2, 2);
            const double f = bf16ToFloat(v);
            sum += f;
            sq += f * f;
        }
        const double mean = sum / double(w.numel()), sd = std::sqrt(sq / double(w.numel()) - mean * mean);
        QVERIFY2(std::abs(mean) < 0.001, qPrintable(QString::number(mean)));
        QVERIFY2(std::abs(sd - 0.02) < 0.0005, qPrintable(QString::number(sd)));
        const TensorRef& norm = m.store->get("model.layers.0.input_layernorm.weight");
        for (int64_t i = 0; i < norm.numel(); ++i) {
            uint16_t v;
            std::memcpy(&v, norm.data + i * 2, 2);
            QCOMPARE(bf16ToFloat(v), 1.0f);
        }
        // Same seed, same bytes; another seed, other bytes.
        writeRandomLlama(d + "2", cfg, DType::BF16, 42, test::modelDir());
        writeRandomLlama(d + "3", cfg, DType::BF16, 43, test::modelDir());
        const std::string f1 = test::readFile(d + "/model.safetensors");
        QCOMPARE(test::readFile(d + "2/model.safetensors"), f1);
        QVERIFY(test::readFile(d + "3/model.safetensors") != f1);
    }

    // ---- ModelInfo ----

    void modelInfoStories260K() {
        auto r = readModelInfo(test::modelDir());
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        const ModelInfo& info = *r;
        QCOMPARE(info.name, std::string("stories260K"));
        QCOMPARE(info.config.numLayers, 5);
        QCOMPARE(info.parameters, expectedStoriesParams());
        QCOMPARE(info.parameters, int64_t(260032));
        QCOMPARE(info.dtype, std::string("F32"));
        QCOMPARE(info.quantization, std::string("none"));
        QCOMPARE(info.weightBytes, uint64_t(260032 * 4));
        QCOMPARE(info.contextLength, 512);
        uint64_t disk = 0;
        for (const auto& e : fs::directory_iterator(test::modelDir()))
            if (e.is_regular_file()) disk += e.file_size();
        QCOMPARE(info.diskBytes, disk);
        // 5 layers x 4 kv heads x (K and V) x head_dim 8.
        QCOMPARE(info.kvBytesPerToken(0), uint64_t(5 * 4 * 2 * 8 * 2));
        QCOMPARE(info.kvBytesPerToken(8), uint64_t(5 * 4 * 2 * (8 + 4)));
        QCOMPARE(info.kvBytesPerToken(4), uint64_t(5 * 4 * 2 * (4 + 4)));
        QVERIFY(info.memoryNeeded(512, 0) > info.weightBytes + 512 * info.kvBytesPerToken(0));
        QVERIFY(info.memoryNeeded(512, 4) < info.memoryNeeded(512, 0));
        // Past one prefill chunk the workspace stops growing: the rest is KV, linear in the length.
        QCOMPARE(info.memoryNeeded(20000, 0) - info.memoryNeeded(10000, 0), uint64_t(10000) * info.kvBytesPerToken(0));
        QCOMPARE(info.memoryNeeded(10000, 8, 2) - info.memoryNeeded(5000, 8, 2), uint64_t(10000) * info.kvBytesPerToken(8));
        const std::string msg = expectError([&] { info.kvBytesPerToken(3); }, ErrorCode::InvalidArgument);
        QVERIFY(contains(msg, "quant_policy 3"));
        // llama3-tiny's head_dim 12 is stored as 16 on CUDA (whole vectors of 8): 2 layers x 1 kv head x K, V.
        const ModelInfo tiny = *readModelInfo(test::modelDir("llama3-tiny"));
        QCOMPARE(tiny.kvBytesPerToken(0, "cuda"), uint64_t(2 * 1 * 2 * 16 * 2));
        QCOMPARE(tiny.kvBytesPerToken(4, "cuda"), uint64_t(2 * 1 * 2 * (8 + 4)));
    }

    void modelInfoAwqCounting() {
        // A one-layer AWQ folder written by hand: qweight counts 8 parameters per int32, qzeros/scales none.
        QTemporaryDir tmp;
        const std::string d = tmp.path().toStdString() + "/awq";
        copyModel(test::modelDir(), d);
        editConfig(d, [](json& j) {
            j["num_hidden_layers"] = 1;
            j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32},
                                        {"zero_point", true}, {"version", "gemm"}};
        });
        auto src = TensorStore::open(test::modelDir());
        std::vector<TensorToWrite> ts;
        std::vector<std::vector<uint8_t>> keep;
        auto addQ = [&](const std::string& prefix, int64_t in, int64_t out) {
            keep.emplace_back(size_t(in * out / 8 * 4), 0x11);
            ts.push_back({prefix + ".qweight", DType::I32, {in, out / 8}, keep.back().data(), keep.back().size()});
            keep.emplace_back(size_t(in / 32 * out / 8 * 4), 0x88);
            ts.push_back({prefix + ".qzeros", DType::I32, {in / 32, out / 8}, keep.back().data(), keep.back().size()});
            keep.emplace_back(size_t(in / 32 * out * 2), 0x20);
            ts.push_back({prefix + ".scales", DType::F16, {in / 32, out}, keep.back().data(), keep.back().size()});
        };
        const std::string p = "model.layers.0.";
        for (const auto& [name, t] : src->tensors())
            if (name.rfind("model.layers.", 0) != 0 || name.find("layernorm") != std::string::npos)
                if (name.rfind("model.layers.", 0) != 0 || name.rfind(p, 0) == 0)
                    ts.push_back({name, t.dtype, t.shape, t.data, t.bytes});
        addQ(p + "self_attn.q_proj", 64, 64);
        addQ(p + "self_attn.k_proj", 64, 32);
        addQ(p + "self_attn.v_proj", 64, 32);
        addQ(p + "self_attn.o_proj", 64, 64);
        // 172 is not a multiple of 8: the MLP stays dense, as a quantizer would leave it.
        for (const char* n : {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}) {
            const TensorRef& t = src->get(p + n);
            ts.push_back({t.name, t.dtype, t.shape, t.data, t.bytes});
        }
        writeSafetensors(d + "/model.safetensors", ts);

        auto r = readModelInfo(d);
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        const int64_t dense = 512 * 64 + 64 + 64 + 64 + 3 * 172 * 64;
        QCOMPARE(r->parameters, dense + 64 * 64 * 2 + 32 * 64 * 2);
        QCOMPARE(r->dtype, std::string("AWQ-INT4"));
        QCOMPARE(r->quantization, std::string("AWQ W4A16 g32"));

        const ModelSources m = loadModelSources(d, parseModelConfig(d));
        const LinearSource& qkv = m.layers[0].qkv;
        QCOMPARE(qkv.awq, true);
        QCOMPARE(qkv.groupSize, 32);
        QCOMPARE(int(qkv.segments.size()), 3);
        QCOMPARE(qkv.segments[1].src->name, p + "self_attn.k_proj.qweight");
        QCOMPARE(qkv.segments[1].qzeros->name, p + "self_attn.k_proj.qzeros");
        QCOMPARE(qkv.segments[1].scales->name, p + "self_attn.k_proj.scales");
        QCOMPARE(qkv.segments[2].dstStart, int64_t(96));
        QCOMPARE(m.layers[0].gateUp.awq, false);
        QCOMPARE(m.layers[0].gateUp.dtype, DType::F32);
    }

    void lmwInfoCommand() {
        const QString bin = QString::fromStdString(test::lmwBinary());
        if (!QFileInfo::exists(bin)) QSKIP("lmw binary not built");
        QProcess p;
        p.start(bin, {"info", QString::fromStdString(test::modelDir()), "--json"});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 0);
        const json j = json::parse(p.readAllStandardOutput().toStdString());
        QCOMPARE(j["parameters"].get<int64_t>(), expectedStoriesParams());
        QCOMPARE(j["layers"].get<int>(), 5);
        QCOMPARE(j["kv_heads"].get<int>(), 4);
        QCOMPARE(j["family"].get<std::string>(), std::string("llama"));
        QCOMPARE(j["memory_full_context"]["8"]["kv_bytes_per_token"].get<uint64_t>(), uint64_t(480));

        p.start(bin, {"info", QString::fromStdString(test::modelDir())});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 0);
        const QString text = QString::fromUtf8(p.readAllStandardOutput());
        QVERIFY2(text.contains("parameters      260K (260032)"), qPrintable(text));
        QVERIFY2(text.contains("KV int4"), qPrintable(text));

        QTemporaryDir tmp;
        p.start(bin, {"info", tmp.path()});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 1);
        const QString err = QString::fromUtf8(p.readAllStandardError());
        QVERIFY2(err.startsWith("error: ") && err.contains("config.json: not found"), qPrintable(err));
    }

    void formatting() {
        QCOMPARE(formatParameters(260032), std::string("260K"));
        QCOMPARE(formatParameters(6738415), std::string("6.7M"));
        QCOMPARE(formatParameters(1234567890), std::string("1.2B"));
        QCOMPARE(formatParameters(13015864320), std::string("13B"));
        QCOMPARE(formatParameters(999), std::string("999"));
        QCOMPARE(formatParameters(999999), std::string("1.0M"));
        QCOMPARE(formatBytes(512 * 1024), std::string("512 KB"));
        QCOMPARE(formatBytes(uint64_t(3.9 * 1024 * 1024 * 1024)), std::string("3.9 GB"));
        QCOMPARE(formatBytes(100), std::string("100 B"));
        QCOMPARE(formatBytes(1044992), std::string("1.0 MB"));
        QCOMPARE(formatBytes(1023 * 1024), std::string("1.0 MB"));
    }
};

QTEST_GUILESS_MAIN(TestModelLoading)
#include "test_model_loading.moc"
