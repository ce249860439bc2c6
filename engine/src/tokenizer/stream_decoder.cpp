// Streaming detokenizer: emits text as ids arrive, holding back a UTF-8 sequence until it is
// complete, so a client never sees half a character. push()* + flush() == Tokenizer::decode(ids),
// because both run the tokenizer's appendDecoded() and cut only where a new character starts.
#include "lmw/tokenizer.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

size_t completeUtf8Prefix(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        size_t len = 0;
        switch (utf8::classify(p + i, s.size() - i, len)) {
            case utf8::Seq::Valid: i += len; break;
            case utf8::Seq::Invalid: i += len; break;  // final: it becomes U+FFFD whatever follows
            case utf8::Seq::Truncated: return i;       // may still be completed by the next token
        }
    }
    return i;
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skipSpecial, bool afterText)
    : m_tok(tok), m_skipSpecial(skipSpecial) {
    if (afterText) {
        m_state.atStart = false;
        m_state.tokens = 1;
    }
}

std::string StreamDecoder::push(int32_t id) {
    m_tok.appendDecoded(id, m_skipSpecial, m_state, m_pending);
    const size_t n = completeUtf8Prefix(m_pending);
    if (n == 0) return {};
    std::string out = m_tok.finishDecoded(std::string_view(m_pending).substr(0, n));
    m_pending.erase(0, n);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = m_tok.finishDecoded(m_pending);
    m_pending.clear();
    return out;
}

}  // namespace lmw::engine
