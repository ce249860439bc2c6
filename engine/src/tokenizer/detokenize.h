#pragma once
// The byte-level detokenization shared by Tokenizer::decode and StreamDecoder, so that streaming
// and one-shot decoding give the same text by construction.
#include <cstdint>
#include <string>
#include <string_view>

namespace lmw::engine {

class Tokenizer;

// Appends the raw bytes token `id` contributes. `atStart` carries sentencepiece's rule that the
// leading "▁" of the first piece is dropped; an emitted special token starts a new segment (Hugging
// Face decodes the text between special tokens separately, so each segment drops its leading space).
void appendTokenText(const Tokenizer& tok, int32_t id, bool skipSpecial, bool& atStart, std::string& raw);

// Replaces every byte that is not part of a valid UTF-8 sequence by U+FFFD, one per byte, as
// sentencepiece does for byte-fallback pieces.
std::string sanitizeUtf8(std::string_view s);

}  // namespace lmw::engine
