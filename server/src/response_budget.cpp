#include "response_budget.h"

#include <algorithm>

namespace lmw::server {

namespace {

// Bytes of s inside a JSON string as dumpJson writes it: control characters as \u00XX, quote and
// backslash escaped, and (to stay an upper bound without validating UTF-8) every byte >= 0x80 as
// a U+FFFD replacement.
size_t jsonBytes(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += c < 0x20 ? 6 : (c == '"' || c == '\\') ? 2 : c >= 0x80 ? 3 : 1;
    return n;
}

constexpr size_t kNumber = 24;  // a logprob or an offset as JSON, generously

}  // namespace

TokenFacts tokenFacts(const engine::Tokenizer& tok) {
    TokenFacts f;
    for (int32_t id = 0; id < tok.vocabSize(); ++id) {
        const std::string bytes = tok.tokenBytes(id);
        const std::string piece = tok.idToPiece(id);
        f.maxBytes = std::max({f.maxBytes, bytes.size(), piece.size()});
        f.maxJson = std::max({f.maxJson, jsonBytes(bytes), jsonBytes(piece)});
    }
    return f;
}

size_t promptByteBound(const TokenFacts& facts, int tokens) {
    return 4 * facts.maxBytes * static_cast<size_t>(std::max(tokens, 0));
}

size_t responseBytesBound(const AnswerShape& a, const TokenFacts& f) {
    const size_t B = f.maxBytes, J = f.maxJson;
    size_t perToken = J;  // the text itself
    if (a.logprobs) {
        const size_t top = static_cast<size_t>(std::max(a.topLogprobs, 0));
        if (a.chat)  // {"bytes":[..],"logprob":..,"token":"..","top_logprobs":[{"bytes":[..],"logprob":..,"token":".."},..]}
            perToken += 64 + 4 * B + kNumber + J + top * (40 + 4 * B + kNumber + J);
        else  // "..", in tokens; a number in token_logprobs and text_offset; {"..":..} in top_logprobs
            perToken += 8 + J + 2 * kNumber + top * (4 + J + kNumber);
        if (a.stream) perToken += 64;  // the logprobs wrapper of each chunk
    }
    if (a.stream) perToken += a.envelope;
    const size_t tokens = static_cast<size_t>(std::max<int64_t>(a.tokens, 0));
    return a.fixed + static_cast<size_t>(std::max(a.choices, 1)) * a.envelope * (a.stream ? 3 : 1) + tokens * perToken;
}

bool ResponseBudget::reserve(size_t bytes) {
    std::lock_guard lock(m_mutex);
    if (m_used > 0 && m_used + bytes > m_limit) return false;
    m_used += bytes;
    return true;
}

void ResponseBudget::release(size_t bytes) {
    std::lock_guard lock(m_mutex);
    m_used -= std::min(m_used, bytes);
}

size_t ResponseBudget::used() const {
    std::lock_guard lock(m_mutex);
    return m_used;
}

}  // namespace lmw::server
