#pragma once
// The two Tokenizer implementations, as Tokenizer::load picks them.
#include <memory>
#include <string>

#include "lmw/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace lmw::engine {

// <dir>/tokenizer.model through the sentencepiece library (sp_tokenizer.cpp).
std::unique_ptr<Tokenizer> loadSentencePieceTokenizer(const std::string& modelPath, const TokenizerConfig& config);
// A Hugging Face tokenizer.json (hf_tokenizer.cpp).
std::unique_ptr<Tokenizer> loadHfTokenizer(const std::string& jsonPath, const TokenizerConfig& config);

}  // namespace lmw::engine
