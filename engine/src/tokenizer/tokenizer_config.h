#pragma once
// tokenizer_config.json as transformers reads it: named special tokens, add_bos/eos_token, the
// added tokens it lists, the chat template. Both tokenizer implementations start from this.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace lmw::engine {

struct AddedTokenSpec {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool singleWord = false;
    bool normalized = true;
};

// A named special token (bos_token, ...): absent, null, or a string.
struct NamedToken {
    bool present = false;  // the key is in the file
    std::string content;   // empty when null
};

struct TokenizerConfig {
    std::string path;  // for messages
    NamedToken bos, eos, unk, pad;
    std::vector<std::string> additionalSpecial;  // additional_special_tokens / extra_special_tokens
    std::vector<AddedTokenSpec> addedTokensDecoder;
    std::optional<bool> addBosToken, addEosToken;
    bool splitSpecialTokens = false;  // special tokens in the text are encoded as plain text
    std::string chatTemplate;
    std::string chatTemplateFile;  // the file it came from (tokenizer_config.json, chat_template.jinja, ...)
};

// Reads <dir>/tokenizer_config.json (all defaults when absent) and, when it has no chat_template,
// <dir>/chat_template.jinja or chat_template.json. Throws lmw::Error naming the file on bad JSON.
TokenizerConfig readTokenizerConfig(const std::string& dir);

// The whole file as bytes; throws lmw::Error(Io) naming it.
std::string readTextFile(const std::string& path);

// bos_token and friends are either a string or an AddedToken object {"content": ...}.
std::string tokenContent(const nlohmann::json& v);

}  // namespace lmw::engine
