#pragma once
// The two Tokenizer implementations, as Tokenizer::load picks them.
#include <memory>
#include <string>
#include <vector>

#include "lmw/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace lmw::engine {

// Whether [begin, end) shares a byte with one of spans (Tokenizer::encodeWithPlainSpans).
inline bool overlapsAny(const std::vector<TextSpan>& spans, size_t begin, size_t end) {
    for (const TextSpan& s : spans)
        if (s.begin < end && begin < s.end) return true;
    return false;
}

// <dir>/tokenizer.model through the sentencepiece library (sp_tokenizer.cpp).
std::unique_ptr<Tokenizer> loadSentencePieceTokenizer(const std::string& modelPath, const TokenizerConfig& config);
// A Hugging Face tokenizer.json (hf_tokenizer.cpp).
std::unique_ptr<Tokenizer> loadHfTokenizer(const std::string& jsonPath, const TokenizerConfig& config);

}  // namespace lmw::engine
