#pragma once
// tokenizer.json "normalizer": NFC / NFD / NFKC / NFKD (through utf8proc), Lowercase, Strip,
// Prepend, Replace, and Sequence of them. Applied to each piece of text between added tokens.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hf_json.h"

namespace lmw::engine {

class NormalizerStep {
public:
    virtual ~NormalizerStep() = default;
    virtual void apply(std::string& text) const = 0;  // in place; text is valid UTF-8
};

class Normalizer {
public:
    // nullptr for a JSON null (no normalization).
    static std::unique_ptr<Normalizer> fromJson(const Json& j, const JsonAt& at);
    // The normalized text, in buffer (or `in` itself when nothing changes it).
    std::string_view apply(std::string_view in, std::string& buffer) const;

private:
    void add(const Json& j, const JsonAt& at);
    std::vector<std::unique_ptr<NormalizerStep>> m_steps;
};

// The pattern of a Replace ({"String": s} or {"Regex": r}) as a regular expression.
std::string replacePattern(const Json& obj, const JsonAt& at);

}  // namespace lmw::engine
