// Streaming detokenizer: emits text as ids arrive, holding back a UTF-8 sequence until it is
// complete, so a client never sees half a character. push()* + flush() == Tokenizer::decode(ids).
#include <cstring>

#include "lmw/tokenizer.h"
#include "tokenizer/detokenize.h"

namespace lmw::engine {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁"
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum class Utf8 { Valid, Invalid, Truncated };

// Classifies the sequence starting at s[0] (Unicode table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF). `len` is its length when Valid.
Utf8 classify(const unsigned char* s, size_t n, size_t& len) {
    const unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        len = 1;
        return Utf8::Valid;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return Utf8::Invalid;
    }
    for (size_t i = 1; i < len; ++i) {
        if (i >= n) return Utf8::Truncated;
        const unsigned char b = s[i];
        const unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) return Utf8::Invalid;
    }
    return Utf8::Valid;
}

}  // namespace

void appendTokenText(const Tokenizer& tok, int32_t id, bool skipSpecial, bool& atStart, std::string& raw) {
    if (id < 0 || id >= tok.vocabSize()) return;
    if (tok.isSpecial(id)) {
        if (skipSpecial) return;
        raw += tok.idToPiece(id);
        atStart = true;
        return;
    }
    std::string bytes = tok.tokenBytes(id);
    if (atStart && !bytes.empty() && bytes[0] == ' ' && tok.idToPiece(id).compare(0, kSpace.size(), kSpace) == 0)
        bytes.erase(0, 1);
    atStart = false;
    raw += bytes;
}

std::string sanitizeUtf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0; i < s.size();) {
        size_t len = 0;
        if (classify(p + i, s.size() - i, len) == Utf8::Valid) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out += kReplacement;
            ++i;
        }
    }
    return out;
}

size_t completeUtf8Prefix(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        size_t len = 0;
        switch (classify(p + i, s.size() - i, len)) {
            case Utf8::Valid: i += len; break;
            case Utf8::Invalid: i += 1; break;  // final: it becomes U+FFFD whatever follows
            case Utf8::Truncated: return i;     // may still be completed by the next token
        }
    }
    return i;
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skipSpecial, bool afterText)
    : m_tok(tok), m_skipSpecial(skipSpecial), m_atStart(!afterText) {}

std::string StreamDecoder::push(int32_t id) {
    m_ids.push_back(id);
    appendTokenText(m_tok, id, m_skipSpecial, m_atStart, m_pending);
    const size_t n = completeUtf8Prefix(m_pending);
    if (n == 0) return {};
    std::string out = sanitizeUtf8(std::string_view(m_pending).substr(0, n));
    m_pending.erase(0, n);
    m_emitted += out.size();
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = sanitizeUtf8(m_pending);
    m_pending.clear();
    m_emitted += out.size();
    return out;
}

}  // namespace lmw::engine
