#pragma once
// GPT-2's byte-level alphabet: every byte is spelled as a printable character (space is "Ġ",
// newline "Ċ"), so that byte-level BPE vocabularies are JSON strings.
#include <array>
#include <cstdint>

namespace lmw::engine::byte_level {

// byte -> code point of its character.
inline const std::array<uint32_t, 256>& byteToChar() {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        uint32_t n = 0;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            t[b] = printable ? b : 256 + n++;
        }
        return t;
    }();
    return table;
}

// code point -> byte, or -1 when the character is not in the alphabet.
inline int charToByte(uint32_t cp) {
    static const std::array<int16_t, 324> table = [] {
        std::array<int16_t, 324> t{};
        t.fill(-1);
        for (int b = 0; b < 256; ++b) t[byteToChar()[b]] = static_cast<int16_t>(b);
        return t;
    }();
    return cp < table.size() ? table[cp] : -1;
}

}  // namespace lmw::engine::byte_level
