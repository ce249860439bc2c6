#pragma once
// UTF-8 and the few Unicode properties the tokenizers need. Character classes come from utf8proc's
// tables; only the White_Space list (25 code points, fixed by Unicode) is written here.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lmw::engine::utf8 {

enum class Seq { Valid, Invalid, Truncated };

// Classifies the sequence starting at s[0] (Unicode table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF). len: the sequence length when Valid; the length of the maximal
// subpart (the bytes that started a sequence before it broke, at least 1) when Invalid.
Seq classify(const unsigned char* s, size_t n, size_t& len);

bool isValid(std::string_view s);

// How invalid bytes become U+FFFD: one per byte (sentencepiece, the ByteFallback decoder) or one
// per maximal subpart (Rust's String::from_utf8_lossy, which the ByteLevel decoder uses).
enum class Lossy { PerByte, PerSubpart };
std::string sanitize(std::string_view s, Lossy mode);

// Decodes the code point at p (valid UTF-8 assumed) and advances p.
inline uint32_t next(const char*& p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    uint32_t c = u[0];
    if (c < 0x80) {
        p += 1;
        return c;
    }
    if (c < 0xE0) {
        p += 2;
        return ((c & 0x1F) << 6) | (u[1] & 0x3F);
    }
    if (c < 0xF0) {
        p += 3;
        return ((c & 0x0F) << 12) | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    }
    p += 4;
    return ((c & 0x07) << 18) | ((u[1] & 0x3F) << 12) | ((u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}

// Byte length of the character that starts with byte c (valid UTF-8 assumed).
inline size_t charLen(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

void append(std::string& out, uint32_t cp);
inline std::string encode(uint32_t cp) {
    std::string s;
    append(s, cp);
    return s;
}

bool isWhitespace(uint32_t cp);  // Unicode White_Space: Rust's char::is_whitespace and regex \s
bool isWordChar(uint32_t cp);    // regex \w: letters, marks, decimal digits, connector punctuation
bool isNumeric(uint32_t cp);     // Rust's char::is_numeric: Nd, Nl, No

}  // namespace lmw::engine::utf8
