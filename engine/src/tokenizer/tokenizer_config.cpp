// tokenizer_config.json: the part of a Hugging Face tokenizer that transformers keeps outside
// tokenizer.json / tokenizer.model.
#include "tokenizer/tokenizer_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmw/error.h"

namespace lmw::engine {

namespace fs = std::filesystem;

std::string readTextFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ErrorCode::Io, "cannot read " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string tokenContent(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return {};
}

namespace {

nlohmann::json parseJsonFile(const std::string& path) {
    try {
        return nlohmann::json::parse(readTextFile(path));
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::InvalidModel, "cannot parse " + path + ": " + e.what());
    }
}

NamedToken namedToken(const nlohmann::json& cfg, const char* key) {
    NamedToken t;
    if (auto it = cfg.find(key); it != cfg.end()) {
        t.present = true;
        t.content = tokenContent(*it);
    }
    return t;
}

// chat_template is a string, or a list of named templates where "default" is the chat one
// ("tool_use", "rag" are others).
std::string chatTemplateOf(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    std::string found;
    if (!v.is_array()) return found;
    for (auto& t : v) {
        if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) continue;
        const bool isDefault = t.value("name", "") == "default";
        if (found.empty() || isDefault) found = t["template"].get<std::string>();
        if (isDefault) break;
    }
    return found;
}

bool flag(const nlohmann::json& obj, const char* key, bool dflt) {
    auto it = obj.find(key);
    return it != obj.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

}  // namespace

TokenizerConfig readTokenizerConfig(const std::string& dir) {
    TokenizerConfig c;
    c.path = dir + "/tokenizer_config.json";
    if (fs::exists(c.path)) {
        const nlohmann::json cfg = parseJsonFile(c.path);
        if (!cfg.is_object()) throw Error(ErrorCode::InvalidModel, c.path + " is not a JSON object");

        if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && it->is_object()) {
            for (auto& [key, val] : it->items()) {
                AddedTokenSpec t;
                try {
                    size_t used = 0;
                    t.id = std::stoi(key, &used);
                    if (used != key.size() || t.id < 0) throw std::invalid_argument(key);
                } catch (const std::exception&) {
                    throw Error(ErrorCode::InvalidModel, c.path + ": added_tokens_decoder key '" + key + "' is not an id");
                }
                t.content = tokenContent(val);
                if (val.is_object()) {
                    t.special = flag(val, "special", false);
                    t.lstrip = flag(val, "lstrip", false);
                    t.rstrip = flag(val, "rstrip", false);
                    t.singleWord = flag(val, "single_word", false);
                    t.normalized = flag(val, "normalized", !t.special);
                }
                if (!t.content.empty()) c.addedTokensDecoder.push_back(std::move(t));
            }
        }
        c.bos = namedToken(cfg, "bos_token");
        c.eos = namedToken(cfg, "eos_token");
        c.unk = namedToken(cfg, "unk_token");
        c.pad = namedToken(cfg, "pad_token");
        for (const char* key : {"additional_special_tokens", "extra_special_tokens"})
            if (auto it = cfg.find(key); it != cfg.end() && it->is_array())
                for (auto& v : *it)
                    if (auto s = tokenContent(v); !s.empty()) c.additionalSpecial.push_back(s);
        if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean()) c.addBosToken = it->get<bool>();
        if (auto it = cfg.find("add_eos_token"); it != cfg.end() && it->is_boolean()) c.addEosToken = it->get<bool>();
        c.splitSpecialTokens = flag(cfg, "split_special_tokens", false);
        if (auto it = cfg.find("chat_template"); it != cfg.end()) c.chatTemplate = chatTemplateOf(*it);
        if (!c.chatTemplate.empty()) c.chatTemplateFile = "tokenizer_config.json";
    }
    // Newer transformers save the template next to the config instead of inside it.
    if (c.chatTemplate.empty()) {
        if (const std::string jinja = dir + "/chat_template.jinja"; fs::exists(jinja)) {
            c.chatTemplate = readTextFile(jinja);
            c.chatTemplateFile = "chat_template.jinja";
        } else if (const std::string json = dir + "/chat_template.json"; fs::exists(json)) {
            const nlohmann::json j = parseJsonFile(json);
            if (j.is_object() && j.contains("chat_template")) c.chatTemplate = chatTemplateOf(j["chat_template"]);
            if (!c.chatTemplate.empty()) c.chatTemplateFile = "chat_template.json";
        }
    }
    return c;
}

}  // namespace lmw::engine
