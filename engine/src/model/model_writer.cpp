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
#include "quant/int4.h"
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

namespace {

// What fills a tensor of a random model.
enum class Fill {
    Normal,  // N(0, 0.02) in the float dtype
    Ones,    // norms
    Codes,   // AWQ qweight: uniform random int4 codes (each int32 is eight of them)
    Zeros,   // AWQ qzeros: zero points 7..9 (near the middle of 0..15, as real checkpoints have)
    Scales,  // AWQ scales (f16): (code - zero) * scale then has about Normal's spread
};

// Spread of (code - zero) for uniform codes 0..15 and zeros 7..9, so scales give std ~0.02.
constexpr double kAwqScale = 0.02 / 4.7;

void fillPiece(Fill fill, DType dtype, Rng& rng, uint8_t* out, size_t m) {
    const size_t es = dtypeSize(dtype);
    switch (fill) {
        case Fill::Normal:
        case Fill::Ones:
            for (size_t i = 0; i < m; i += 2) {
                // Box-Muller: two N(0, 1) per pair of uniforms.
                const double r = std::sqrt(-2.0 * std::log(rng.uniform()));
                const double a = 6.283185307179586 * rng.uniform();
                const float z0 = fill == Fill::Ones ? 1.0f : float(0.02 * r * std::cos(a));
                const float z1 = fill == Fill::Ones ? 1.0f : float(0.02 * r * std::sin(a));
                storeFloat(out + i * es, dtype, z0);
                if (i + 1 < m) storeFloat(out + (i + 1) * es, dtype, z1);
            }
            break;
        case Fill::Codes:
            for (size_t i = 0; i < m; ++i) {
                const uint32_t v = uint32_t(rng.next());
                std::memcpy(out + i * 4, &v, 4);
            }
            break;
        case Fill::Zeros:
            for (size_t i = 0; i < m; ++i) {
                const uint64_t r = rng.next();
                uint32_t v = 0;
                for (int k = 0; k < 8; ++k) v |= uint32_t(7 + ((r >> (8 * k)) & 0xff) % 3) << (4 * k);
                std::memcpy(out + i * 4, &v, 4);
            }
            break;
        case Fill::Scales:
            for (size_t i = 0; i < m; ++i) storeFloat(out + i * es, dtype, float(kAwqScale * (0.75 + 0.5 * rng.uniform())));
            break;
    }
}

// writeRandomLlama and writeRandomLlamaAwq: awqGroup 0 = dense `dtype` linears.
void writeRandom(const std::string& dir, const ModelConfig& cfgIn, DType dtype, uint64_t seed,
                 const std::string& tokenizerFrom, int awqGroup) {
    ModelConfig c = cfgIn;
    if (c.numKvHeads <= 0) c.numKvHeads = c.numHeads;
    if (c.headDim <= 0 && c.numHeads > 0) c.headDim = c.hiddenSize / c.numHeads;
    if (c.hiddenSize <= 0 || c.intermediateSize <= 0 || c.numLayers <= 0 || c.numHeads <= 0 || c.vocabSize <= 0 ||
        c.headDim <= 0 || c.numHeads % c.numKvHeads != 0)
        throw Error(ErrorCode::InvalidArgument, "writeRandomLlama: incomplete or inconsistent ModelConfig");
    if (c.maxPositionEmbeddings <= 0) c.maxPositionEmbeddings = 2048;
    const int64_t h = c.hiddenSize, f = c.intermediateSize, q = int64_t(c.numHeads) * c.headDim,
                  kv = int64_t(c.numKvHeads) * c.headDim;
    if (awqGroup > 0) {
        if (kv % 8 != 0 || h % 8 != 0 || f % 8 != 0)
            throw Error(ErrorCode::InvalidArgument, "writeRandomLlamaAwq: output sizes must be multiples of 8 (int4 packing)");
        for (int64_t in : {h, q, f})
            if (quant::chooseGroupSize(in, awqGroup) == 0)
                throw Error(ErrorCode::InvalidArgument, "writeRandomLlamaAwq: no group size of 32 or more divides " +
                                                            std::to_string(in) + " inputs");
    }
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
    if (awqGroup > 0)  // what AutoAWQ writes for a GEMM checkpoint
        j["quantization_config"] = {{"quant_method", "awq"}, {"version", "gemm"},    {"bits", 4},
                                    {"group_size", awqGroup}, {"zero_point", true}, {"modules_to_not_convert", nullptr}};
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

    // Tensor list (Llama naming), each with what fills it.
    struct Spec {
        SafetensorsWriter::Entry entry;
        Fill fill;
    };
    std::vector<Spec> specs;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, Fill fill) {
        specs.push_back({{name, dtype, std::move(shape)}, fill});
    };
    // A linear [out, in]: dense, or AutoAWQ GEMM's qweight [in, out/8], qzeros [in/g, out/8], scales [in/g, out].
    auto linear = [&](const std::string& prefix, int64_t out, int64_t in) {
        if (awqGroup <= 0) return add(prefix + ".weight", {out, in}, Fill::Normal);
        const int64_t groups = in / quant::chooseGroupSize(in, awqGroup);
        specs.push_back({{prefix + ".qweight", DType::I32, {in, out / 8}}, Fill::Codes});
        specs.push_back({{prefix + ".qzeros", DType::I32, {groups, out / 8}}, Fill::Zeros});
        specs.push_back({{prefix + ".scales", DType::F16, {groups, out}}, Fill::Scales});
    };
    add("model.embed_tokens.weight", {c.vocabSize, h}, Fill::Normal);
    for (int i = 0; i < c.numLayers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        add(p + "input_layernorm.weight", {h}, Fill::Ones);
        linear(p + "self_attn.q_proj", q, h);
        linear(p + "self_attn.k_proj", kv, h);
        linear(p + "self_attn.v_proj", kv, h);
        linear(p + "self_attn.o_proj", h, q);
        add(p + "post_attention_layernorm.weight", {h}, Fill::Ones);
        linear(p + "mlp.gate_proj", f, h);
        linear(p + "mlp.up_proj", f, h);
        linear(p + "mlp.down_proj", h, f);
    }
    add("model.norm.weight", {h}, Fill::Ones);
    if (!c.tieWordEmbeddings) add("lm_head.weight", {c.vocabSize, h}, Fill::Normal);

    std::vector<SafetensorsWriter::Entry> entries;
    for (const auto& s : specs) entries.push_back(s.entry);
    SafetensorsWriter w(dir + "/model.safetensors", entries);
    constexpr int64_t kChunk = int64_t(1) << 20;  // elements per generated piece
    const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::vector<uint8_t>> bufs(static_cast<size_t>(threads));
    for (size_t ti = 0; ti < specs.size(); ++ti) {
        const Spec& spec = specs[ti];
        const size_t es = dtypeSize(spec.entry.dtype);
        int64_t n = 1;
        for (int64_t d : spec.entry.shape) n *= d;
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
                fillPiece(spec.fill, spec.entry.dtype, rng, buf.data(), m);
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

}  // namespace

void writeRandomLlama(const std::string& dir, const ModelConfig& cfg, DType dtype, uint64_t seed,
                      const std::string& tokenizerFrom) {
    checkTargetDtype(dtype, "writeRandomLlama");
    writeRandom(dir, cfg, dtype, seed, tokenizerFrom, 0);
}

void writeRandomLlamaAwq(const std::string& dir, const ModelConfig& cfg, uint64_t seed, const std::string& tokenizerFrom,
                         int groupSize) {
    if (groupSize < 32 || groupSize % 8 != 0)
        throw Error(ErrorCode::InvalidArgument, "writeRandomLlamaAwq: group size must be a multiple of 8, at least 32");
    writeRandom(dir, cfg, DType::F16, seed, tokenizerFrom, groupSize);
}

}  // namespace lmw::engine
