// Model folder writers for tests and benchmarks. Both stream tensor by tensor through
// SafetensorsWriter so peak memory is one tensor (or one chunk), not the whole model.
#include "model/model_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace lmw::engine {

namespace fs = std::filesystem;

namespace {

// Float tensors to convert (F64 too: it is read, and written in the target dtype).
bool converted(DType t) { return isFloat(t) || t == DType::F64; }

void storeFloat(uint8_t* p, DType t, float f) {
    if (t == DType::F32) {
        std::memcpy(p, &f, 4);
    } else {
        const uint16_t h = t == DType::F16 ? floatToHalf(f) : floatToBf16(f);
        std::memcpy(p, &h, 2);
    }
}

const char* torchDtypeName(DType t) {
    switch (t) {
        case DType::F16: return "float16";
        case DType::BF16: return "bfloat16";
        default: return "float32";
    }
}

void checkTargetDtype(DType t, const char* who) {
    if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
        throw Error(ErrorCode::InvalidArgument, std::string(who) + ": target dtype must be F32, F16 or BF16, not " +
                                                    dtypeName(t));
}


void writeText(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw Error(ErrorCode::Io, path + ": write failed");
}

// splitmix64: tiny, fast, and the same on every platform (std::normal_distribution is not).
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
};

}  // namespace

bool isSideFile(const std::string& name) {
    static const char* const prefixes[] = {"generation_config", "tokenizer", "special_tokens_map", "added_tokens",
                                           "vocab", "merges", "chat_template", "preprocessor_config",
                                           "LICENSE", "NOTICE", "USE_POLICY"};
    for (const char* p : prefixes)
        if (name.rfind(p, 0) == 0) return true;
    const std::string ext = fs::path(name).extension().string();
    return ext == ".py" || ext == ".tiktoken";  // remote code, tiktoken vocabularies
}

void convertModel(const std::string& srcDir, const std::string& dstDir, DType dtype) {
    checkTargetDtype(dtype, "convertModel");
    const std::string cfgPath = srcDir + "/config.json";
    if (!fs::exists(cfgPath)) throw Error(ErrorCode::NotFound, cfgPath + ": not found");
    fs::create_directories(dstDir);

    std::ifstream cf(cfgPath, std::ios::binary);
    std::stringstream ss;
    ss << cf.rdbuf();
    nlohmann::ordered_json cfg;
    try {
        cfg = nlohmann::ordered_json::parse(ss.str());
    } catch (const std::exception& e) {
        throw Error(ErrorCode::InvalidModel, cfgPath + ": not valid JSON (" + e.what() + ")");
    }
    if (cfg.contains("quantization_config"))
        throw Error(ErrorCode::Unsupported, cfgPath + ": already quantized; convertModel only converts float models");
    cfg["torch_dtype"] = torchDtypeName(dtype);
    writeText(dstDir + "/config.json", cfg.dump(2) + "\n");
    for (const auto& e : fs::directory_iterator(srcDir)) {
        const std::string name = e.path().filename().string();
        if (e.is_regular_file() && isSideFile(name))
            fs::copy_file(e.path(), dstDir + "/" + name, fs::copy_options::overwrite_existing);
    }

    auto store = TensorStore::open(srcDir);
    std::vector<SafetensorsWriter::Entry> entries;
    for (const auto& [name, t] : store->tensors())
        entries.push_back({name, converted(t.dtype) ? dtype : t.dtype, t.shape});
    SafetensorsWriter w(dstDir + "/model.safetensors", entries);
    std::vector<uint8_t> buf;
    const size_t outSize = dtypeSize(dtype);
    for (const auto& [name, t] : store->tensors()) {
        if (!converted(t.dtype)) {
            w.write(t.data, t.bytes);
            continue;
        }
        const size_t n = size_t(t.numel());
        buf.resize(n * outSize);
        for (size_t i = 0; i < n; ++i) storeFloat(buf.data() + i * outSize, dtype, readElem(t.data, t.dtype, int64_t(i)));
        w.write(buf.data(), buf.size());
    }
    w.finish();
}

void writeRandomLlama(const std::string& dir, const ModelConfig& cfgIn, DType dtype, uint64_t seed,
                      const std::string& tokenizerFrom) {
    checkTargetDtype(dtype, "writeRandomLlama");
    ModelConfig c = cfgIn;
    if (c.numKvHeads <= 0) c.numKvHeads = c.numHeads;
    if (c.headDim <= 0 && c.numHeads > 0) c.headDim = c.hiddenSize / c.numHeads;
    if (c.hiddenSize <= 0 || c.intermediateSize <= 0 || c.numLayers <= 0 || c.numHeads <= 0 || c.vocabSize <= 0 ||
        c.headDim <= 0 || c.numHeads % c.numKvHeads != 0)
        throw Error(ErrorCode::InvalidArgument, "writeRandomLlama: incomplete or inconsistent ModelConfig");
    if (c.maxPositionEmbeddings <= 0) c.maxPositionEmbeddings = 2048;
    fs::create_directories(dir);

    nlohmann::ordered_json j;
    j["architectures"] = {"LlamaForCausalLM"};
    j["model_type"] = "llama";
    j["hidden_size"] = c.hiddenSize;
    j["intermediate_size"] = c.intermediateSize;
    j["num_hidden_layers"] = c.numLayers;
    j["num_attention_heads"] = c.numHeads;
    j["num_key_value_heads"] = c.numKvHeads;
    j["head_dim"] = c.headDim;
    j["vocab_size"] = c.vocabSize;
    j["max_position_embeddings"] = c.maxPositionEmbeddings;
    j["rms_norm_eps"] = c.rmsNormEps;
    j["rope_theta"] = c.ropeTheta;
    if (!c.ropeScaling.type.empty()) {
        nlohmann::ordered_json rs;
        rs["rope_type"] = c.ropeScaling.type;
        rs["factor"] = c.ropeScaling.factor;
        if (c.ropeScaling.type == "llama3") {
            rs["low_freq_factor"] = c.ropeScaling.lowFreqFactor;
            rs["high_freq_factor"] = c.ropeScaling.highFreqFactor;
            rs["original_max_position_embeddings"] = c.ropeScaling.originalMaxPositionEmbeddings;
        }
        j["rope_scaling"] = rs;
    }
    j["hidden_act"] = "silu";
    j["tie_word_embeddings"] = c.tieWordEmbeddings;
    const int bos = c.bosTokenId >= 0 ? c.bosTokenId : 1;
    const std::vector<int> eos = c.eosTokenIds.empty() ? std::vector<int>{2} : c.eosTokenIds;
    j["bos_token_id"] = bos;
    if (eos.size() == 1) j["eos_token_id"] = eos[0];
    else j["eos_token_id"] = eos;
    j["torch_dtype"] = torchDtypeName(dtype);
    writeText(dir + "/config.json", j.dump(2) + "\n");
    nlohmann::ordered_json g;
    g["bos_token_id"] = bos;
    g["eos_token_id"] = j["eos_token_id"];
    writeText(dir + "/generation_config.json", g.dump(2) + "\n");
    if (!tokenizerFrom.empty()) {
        if (!fs::is_directory(tokenizerFrom)) throw Error(ErrorCode::NotFound, tokenizerFrom + ": not a directory");
        for (const auto& e : fs::directory_iterator(tokenizerFrom)) {
            const std::string name = e.path().filename().string();
            if (e.is_regular_file() && isSideFile(name) && name.rfind("generation_config", 0) != 0)
                fs::copy_file(e.path(), dir + "/" + name, fs::copy_options::overwrite_existing);
        }
    }

    // Tensor list (Llama naming), each flagged as a norm (ones) or a random matrix.
    struct Spec {
        SafetensorsWriter::Entry entry;
        bool ones;
    };
    const int64_t h = c.hiddenSize, f = c.intermediateSize, q = int64_t(c.numHeads) * c.headDim,
                  kv = int64_t(c.numKvHeads) * c.headDim;
    std::vector<Spec> specs;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, bool ones) {
        specs.push_back({{name, dtype, std::move(shape)}, ones});
    };
    add("model.embed_tokens.weight", {c.vocabSize, h}, false);
    for (int i = 0; i < c.numLayers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        add(p + "input_layernorm.weight", {h}, true);
        add(p + "self_attn.q_proj.weight", {q, h}, false);
        add(p + "self_attn.k_proj.weight", {kv, h}, false);
        add(p + "self_attn.v_proj.weight", {kv, h}, false);
        add(p + "self_attn.o_proj.weight", {h, q}, false);
        add(p + "post_attention_layernorm.weight", {h}, true);
        add(p + "mlp.gate_proj.weight", {f, h}, false);
        add(p + "mlp.up_proj.weight", {f, h}, false);
        add(p + "mlp.down_proj.weight", {h, f}, false);
    }
    add("model.norm.weight", {h}, true);
    if (!c.tieWordEmbeddings) add("lm_head.weight", {c.vocabSize, h}, false);

    std::vector<SafetensorsWriter::Entry> entries;
    for (const auto& s : specs) entries.push_back(s.entry);
    SafetensorsWriter w(dir + "/model.safetensors", entries);
    const size_t es = dtypeSize(dtype);
    constexpr int64_t kChunk = int64_t(1) << 20;  // elements per generated piece
    const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::vector<uint8_t>> bufs(static_cast<size_t>(threads));
    for (size_t ti = 0; ti < specs.size(); ++ti) {
        int64_t n = 1;
        for (int64_t d : specs[ti].entry.shape) n *= d;
        const int64_t pieces = (n + kChunk - 1) / kChunk;
        // Pieces are generated in parallel, each from its own stream (seed, tensor, piece), so the
        // values do not depend on the thread count; a changed shape does not reshuffle other tensors.
        for (int64_t first = 0; first < pieces; first += threads) {
            const int batch = int(std::min<int64_t>(threads, pieces - first));
            auto gen = [&](int k) {
                const int64_t piece = first + k, done = piece * kChunk;
                const size_t m = size_t(std::min(kChunk, n - done));
                std::vector<uint8_t>& buf = bufs[size_t(k)];
                buf.resize(m * es);
                Rng rng{seed ^ (0x632be59bd9b4e019ull * (ti + 1)) ^ (0x9e3779b97f4a7c15ull * uint64_t(piece + 1))};
                for (size_t i = 0; i < m; i += 2) {
                    // Box-Muller: two N(0, 1) per pair of uniforms.
                    const double r = std::sqrt(-2.0 * std::log(rng.uniform()));
                    const double a = 6.283185307179586 * rng.uniform();
                    const float z0 = specs[ti].ones ? 1.0f : float(0.02 * r * std::cos(a));
                    const float z1 = specs[ti].ones ? 1.0f : float(0.02 * r * std::sin(a));
                    storeFloat(buf.data() + i * es, dtype, z0);
                    if (i + 1 < m) storeFloat(buf.data() + (i + 1) * es, dtype, z1);
                }
            };
            std::vector<std::thread> pool;
            for (int k = 1; k < batch; ++k) pool.emplace_back(gen, k);
            gen(0);
            for (auto& t : pool) t.join();
            for (int k = 0; k < batch; ++k) w.write(bufs[size_t(k)].data(), bufs[size_t(k)].size());
        }
    }
    w.finish();
}

}  // namespace lmw::engine
