// config.json (+ generation_config.json) -> ModelConfig. Every error names the file and field so a
// user with a broken folder knows what to fix.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmw/model_info.h"
#include "nlohmann/json.hpp"

namespace lmw::engine {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

json readJsonFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ErrorCode::Io, path + ": cannot be read");
    std::stringstream ss;
    ss << f.rdbuf();
    try {
        return json::parse(ss.str());  // parse_error, and out_of_range for 1e600
    } catch (const json::exception& e) {
        throw Error(ErrorCode::InvalidModel, path + ": not valid JSON (" + e.what() + ")");
    }
}

// Typed field access that names file and field in every complaint.
class Fields {
public:
    Fields(const json& j, std::string file) : m_j(j), m_file(std::move(file)) {}

    bool has(const char* key) const { return m_j.contains(key) && !m_j.at(key).is_null(); }

    int requiredInt(const char* key) const {
        if (!has(key)) throw Error(ErrorCode::InvalidModel, m_file + ": missing required field \"" + key + "\"");
        return toInt(m_j.at(key), key);
    }
    int optInt(const char* key, int def) const { return has(key) ? toInt(m_j.at(key), key) : def; }

    double optDouble(const char* key, double def) const {
        if (!has(key)) return def;
        const json& v = m_j.at(key);
        if (!v.is_number()) throw invalid(key, "a number");
        return v.get<double>();
    }
    bool optBool(const char* key, bool def) const {
        if (!has(key)) return def;
        const json& v = m_j.at(key);
        if (!v.is_boolean()) throw invalid(key, "true or false");
        return v.get<bool>();
    }
    std::string optString(const char* key, const std::string& def) const {
        if (!has(key)) return def;
        const json& v = m_j.at(key);
        if (!v.is_string()) throw invalid(key, "a string");
        return v.get<std::string>();
    }
    // An int or a list of ints (eos_token_id is either).
    std::vector<int> optIntList(const char* key) const {
        std::vector<int> out;
        if (!has(key)) return out;
        const json& v = m_j.at(key);
        if (v.is_array()) {
            for (const auto& e : v) out.push_back(toInt(e, key));
        } else {
            out.push_back(toInt(v, key));
        }
        return out;
    }

    Error invalid(const std::string& key, const std::string& what) const {
        return Error(ErrorCode::InvalidModel, m_file + ": field \"" + key + "\" must be " + what);
    }

private:
    int toInt(const json& v, const char* key) const {
        // Range first: get<int>() wraps 2^32 to 0 and casting 1e40 to an integer is undefined.
        constexpr double lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
        if (v.is_number_unsigned()) {
            if (v.get<uint64_t>() <= uint64_t(hi)) return int(v.get<uint64_t>());
        } else if (v.is_number_integer()) {
            if (v.get<int64_t>() >= int64_t(lo) && v.get<int64_t>() <= int64_t(hi)) return int(v.get<int64_t>());
        } else if (v.is_number_float()) {
            // Some exporters write 4096.0; accept integral floats.
            const double d = v.get<double>();
            if (d >= lo && d <= hi && d == std::trunc(d)) return int(d);
        } else {
            throw invalid(key, "an integer");
        }
        throw invalid(key, "an integer from " + std::to_string(int64_t(lo)) + " to " + std::to_string(int64_t(hi)));
    }

    const json& m_j;
    std::string m_file;
};

void parseRopeScaling(const json& rs, const std::string& file, const char* field, RopeScaling& out) {
    if (rs.is_null()) return;
    if (!rs.is_object())
        throw Error(ErrorCode::InvalidModel, file + ": field \"" + field + "\" must be an object or null");
    const std::string sub = std::string(field) + ".";
    std::string type;
    if (rs.contains("rope_type") && rs["rope_type"].is_string()) type = rs["rope_type"].get<std::string>();
    else if (rs.contains("type") && rs["type"].is_string()) type = rs["type"].get<std::string>();
    if (type.empty() || type == "default") return;  // transformers writes "default" for plain RoPE
    if (type != "linear" && type != "dynamic" && type != "llama3")
        throw Error(ErrorCode::Unsupported, file + ": field \"" + sub + "rope_type\" = \"" + type +
                                                "\" is not supported (supported: linear, dynamic, llama3)");
    Fields f(rs, file + " (" + field + ")");
    out.type = type;
    out.factor = f.optDouble("factor", 1.0);
    if (!(out.factor > 0)) throw Error(ErrorCode::InvalidModel, file + ": field \"" + sub + "factor\" must be > 0");
    if (type == "llama3") {
        out.lowFreqFactor = f.optDouble("low_freq_factor", out.lowFreqFactor);
        out.highFreqFactor = f.optDouble("high_freq_factor", out.highFreqFactor);
        out.originalMaxPositionEmbeddings =
            f.optInt("original_max_position_embeddings", out.originalMaxPositionEmbeddings);
    }
}

void parseQuantization(const json& q, const std::string& file, ModelConfig& cfg) {
    if (q.is_null()) return;
    if (!q.is_object())
        throw Error(ErrorCode::InvalidModel, file + ": field \"quantization_config\" must be an object");
    Fields f(q, file);
    const std::string method = f.optString("quant_method", "");
    if (method != "awq")
        throw Error(ErrorCode::Unsupported, file + ": field \"quantization_config.quant_method\" = \"" + method +
                                                "\" is not supported (only awq)");
    cfg.awq = true;
    cfg.awqBits = f.optInt("bits", f.optInt("w_bit", 4));
    cfg.awqGroupSize = f.optInt("group_size", f.optInt("q_group_size", 128));
    cfg.awqZeroPoint = f.optBool("zero_point", true);
    std::string version = f.optString("version", "gemm");
    for (auto& c : version) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (cfg.awqBits != 4)
        throw Error(ErrorCode::Unsupported, file + ": field \"quantization_config.bits\" = " +
                                                std::to_string(cfg.awqBits) + " is not supported (only 4)");
    if (version != "gemm")
        throw Error(ErrorCode::Unsupported, file + ": field \"quantization_config.version\" = \"" + version +
                                                "\" is not supported (only gemm)");
    if (cfg.awqGroupSize <= 0 || cfg.awqGroupSize % 8 != 0)
        throw Error(ErrorCode::InvalidModel, file + ": field \"quantization_config.group_size\" must be a positive "
                                                    "multiple of 8");
}

}  // namespace

const char* familyName(ModelFamily f) {
    switch (f) {
        case ModelFamily::Llama: return "llama";
        case ModelFamily::Mistral: return "mistral";
        case ModelFamily::InternLM2: return "internlm2";
        case ModelFamily::Qwen2: return "qwen2";
        case ModelFamily::Qwen3: return "qwen3";
    }
    return "?";
}

ModelConfig parseModelConfig(const std::string& dir) {
    const std::string file = dir + "/config.json";
    if (!fs::exists(file)) throw Error(ErrorCode::NotFound, file + ": not found");
    const json j = readJsonFile(file);
    if (!j.is_object()) throw Error(ErrorCode::InvalidModel, file + ": not a JSON object");
    Fields f(j, file);

    ModelConfig cfg;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
        !j["architectures"][0].is_string())
        throw Error(ErrorCode::InvalidModel, file + ": missing required field \"architectures\" (a list of names)");
    cfg.architecture = j["architectures"][0].get<std::string>();
    if (cfg.architecture == "LlamaForCausalLM" || cfg.architecture == "MistralForCausalLM") {
        // Mistral uses Llama's weight names; its own family picks its chat template.
        cfg.family = cfg.architecture == "LlamaForCausalLM" ? ModelFamily::Llama : ModelFamily::Mistral;
        cfg.qkvBias = f.optBool("attention_bias", false);
    } else if (cfg.architecture == "InternLM2ForCausalLM") {
        cfg.family = ModelFamily::InternLM2;
        cfg.qkvBias = f.optBool("bias", false);
    } else if (cfg.architecture == "Qwen2ForCausalLM") {
        cfg.family = ModelFamily::Qwen2;
        cfg.qkvBias = true;
    } else if (cfg.architecture == "Qwen3ForCausalLM") {
        cfg.family = ModelFamily::Qwen3;
        cfg.qkvBias = f.optBool("attention_bias", false);
        cfg.qkNorm = true;
    } else {
        throw Error(ErrorCode::Unsupported,
                    file + ": field \"architectures\" = \"" + cfg.architecture +
                        "\" is not supported (supported: LlamaForCausalLM, MistralForCausalLM, "
                        "InternLM2ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
    }

    cfg.hiddenSize = f.requiredInt("hidden_size");
    cfg.intermediateSize = f.requiredInt("intermediate_size");
    cfg.numLayers = f.requiredInt("num_hidden_layers");
    cfg.numHeads = f.requiredInt("num_attention_heads");
    cfg.vocabSize = f.requiredInt("vocab_size");
    cfg.numKvHeads = f.optInt("num_key_value_heads", cfg.numHeads);
    cfg.maxPositionEmbeddings = f.optInt("max_position_embeddings", 2048);  // transformers' default
    cfg.rmsNormEps = f.optDouble("rms_norm_eps", 1e-6);
    cfg.ropeTheta = f.optDouble("rope_theta", 10000.0);
    cfg.tieWordEmbeddings = f.optBool("tie_word_embeddings", false);
    cfg.torchDtype = f.optString("torch_dtype", f.optString("dtype", ""));
    cfg.bosTokenId = f.optInt("bos_token_id", -1);
    cfg.eosTokenIds = f.optIntList("eos_token_id");

    auto positive = [&](int v, const char* key) {
        if (v <= 0) throw f.invalid(key, "a positive integer");
    };
    positive(cfg.hiddenSize, "hidden_size");
    positive(cfg.intermediateSize, "intermediate_size");
    positive(cfg.numLayers, "num_hidden_layers");
    positive(cfg.numHeads, "num_attention_heads");
    positive(cfg.numKvHeads, "num_key_value_heads");
    positive(cfg.vocabSize, "vocab_size");
    positive(cfg.maxPositionEmbeddings, "max_position_embeddings");
    if (cfg.numHeads % cfg.numKvHeads != 0)
        throw f.invalid("num_key_value_heads", "a divisor of num_attention_heads (" + std::to_string(cfg.numHeads) + ")");
    if (f.has("head_dim")) {
        cfg.headDim = f.optInt("head_dim", 0);
        positive(cfg.headDim, "head_dim");
    } else {
        if (cfg.hiddenSize % cfg.numHeads != 0)
            throw f.invalid("num_attention_heads", "a divisor of hidden_size when head_dim is absent");
        cfg.headDim = cfg.hiddenSize / cfg.numHeads;
    }
    if (cfg.headDim % 2 != 0) throw f.invalid("head_dim", "even (rotary embedding pairs)");

    // rope_scaling (transformers < 5) or rope_parameters (transformers 5, which also carries rope_theta).
    if (j.contains("rope_scaling")) {
        parseRopeScaling(j["rope_scaling"], file, "rope_scaling", cfg.ropeScaling);
    } else if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
        parseRopeScaling(j["rope_parameters"], file, "rope_parameters", cfg.ropeScaling);
        if (!f.has("rope_theta")) cfg.ropeTheta = Fields(j["rope_parameters"], file).optDouble("rope_theta", cfg.ropeTheta);
    }

    if (j.contains("quantization_config")) parseQuantization(j["quantization_config"], file, cfg);

    // generation_config.json is what generate() obeys; its eos ids join the config's.
    const std::string genFile = dir + "/generation_config.json";
    if (fs::exists(genFile)) {
        const json g = readJsonFile(genFile);
        if (g.is_object()) {
            Fields gf(g, genFile);
            for (int id : gf.optIntList("eos_token_id"))
                if (std::find(cfg.eosTokenIds.begin(), cfg.eosTokenIds.end(), id) == cfg.eosTokenIds.end())
                    cfg.eosTokenIds.push_back(id);
            cfg.bosTokenId = gf.optInt("bos_token_id", cfg.bosTokenId);
        }
    }
    return cfg;
}

}  // namespace lmw::engine
