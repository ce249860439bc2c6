// The per-tokenizer vocabulary for grammar masks: token bytes, byte tries and the string-safe
// bitsets. Built once per tokenizer and shared read-only by every request.
#include <algorithm>
#include <numeric>

#include "lmw/error.h"
#include "lmw/grammar.h"
#include "lmw/tokenizer.h"
#include "runtime/grammar_impl.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

using namespace grammar;

namespace {

// Characters of s if it is string-safe: well-formed UTF-8 (no overlongs, surrogates or code points
// past U+10FFFF, the same rule as the grammar's string character; the last character may be
// incomplete) with no '"', '\\' or control byte; -1 otherwise. Such a token is taken at any
// character boundary of a JSON string with room for its characters.
int safeChars(const std::string& s) {
    int chars = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0, len = 0; i < s.size(); i += len, ++chars) {
        // A token may end inside a character (byte-level BPE splits them): it still starts that
        // character, so it counts as one.
        const utf8::Seq seq = utf8::classify(p + i, s.size() - i, len);
        if (seq == utf8::Seq::Invalid || (p[i] < 0x20 || p[i] == '"' || p[i] == '\\')) return -1;
    }
    return chars;
}

// Preorder trie of the given token ids (by their bytes).
TokenTrie buildTrie(const std::vector<std::string>& bytes, std::vector<int32_t> ids) {
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
    TokenTrie t;
    std::vector<int32_t> path;  // open nodes, path[d-1] = node at depth d
    const std::string* prev = nullptr;
    for (int32_t id : ids) {
        const std::string& s = bytes[size_t(id)];
        size_t lcp = 0;
        if (prev)
            while (lcp < prev->size() && lcp < s.size() && (*prev)[lcp] == s[lcp]) ++lcp;
        while (path.size() > lcp) {
            t.next[size_t(path.back())] = int32_t(t.byte.size());
            path.pop_back();
        }
        for (size_t d = lcp; d < s.size(); ++d) {
            path.push_back(int32_t(t.byte.size()));
            t.byte.push_back(uint8_t(s[d]));
            t.depth.push_back(uint16_t(d + 1));
            t.next.push_back(0);
            t.tokBegin.push_back(int32_t(t.toks.size()));
        }
        // Shorter strings sort first, so a node's tokens arrive before any of its children.
        t.toks.push_back(id);
        t.maxDepth = std::max(t.maxDepth, int(s.size()));
        prev = &s;
    }
    for (int32_t n : path) t.next[size_t(n)] = int32_t(t.byte.size());
    t.tokBegin.push_back(int32_t(t.toks.size()));
    return t;
}

}  // namespace

TokenVocabulary::TokenVocabulary(std::unique_ptr<VocabData> data) : m_data(std::move(data)) {}
TokenVocabulary::~TokenVocabulary() = default;
int TokenVocabulary::vocabSize() const { return m_data->vocabSize; }

const std::string& TokenVocabulary::tokenBytes(int32_t id) const {
    static const std::string empty;
    return id >= 0 && id < m_data->vocabSize ? m_data->bytes[size_t(id)] : empty;
}

std::shared_ptr<const TokenVocabulary> TokenVocabulary::fromTokenBytes(std::vector<std::string> bytes) {
    auto d = std::make_unique<VocabData>();
    d->vocabSize = int(bytes.size());
    d->bytes = std::move(bytes);
    const int words = (d->vocabSize + 31) / 32;
    d->safeUpTo.assign(kSafeBuckets + 1, std::vector<uint32_t>(size_t(words), 0));
    std::vector<int32_t> all, slow, inString;
    for (int32_t id = 0; id < d->vocabSize; ++id) {
        const std::string& s = d->bytes[size_t(id)];
        if (s.empty()) continue;
        // Token byte strings are capped by the trie's uint16 depth; none real comes close.
        if (s.size() > 60000) throw Error(ErrorCode::InvalidArgument, "token " + std::to_string(id) + " is too long");
        all.push_back(id);
        int chars = safeChars(s);
        if (chars < 0 || chars > kSafeBuckets) {
            slow.push_back(id);
            const uint8_t first = uint8_t(s[0]);
            const size_t quote = s.find('"');
            const bool control = std::any_of(s.begin(), quote == std::string::npos ? s.end() : s.begin() + std::ptrdiff_t(quote),
                                             [](char c) { return uint8_t(c) < 0x20; });
            if ((first == '"' || first == '\\' || stringSafeStartBytes().has(first)) && !control) inString.push_back(id);
            continue;
        }
        for (int k = chars; k <= kSafeBuckets; ++k) d->safeUpTo[size_t(k)][size_t(id) >> 5] |= 1u << (id & 31);
    }
    d->all = buildTrie(d->bytes, std::move(all));
    d->slow = buildTrie(d->bytes, std::move(slow));
    d->inString = buildTrie(d->bytes, std::move(inString));
    return std::make_shared<TokenVocabulary>(std::move(d));
}

std::shared_ptr<const TokenVocabulary> TokenVocabulary::fromTokenizer(const Tokenizer& tokenizer, int vocabSize) {
    const int n = tokenizer.vocabSize();
    if (vocabSize < 0) vocabSize = n;
    std::vector<std::string> bytes(static_cast<size_t>(vocabSize));
    for (int32_t id = 0; id < std::min(n, vocabSize); ++id)
        if (!tokenizer.isSpecial(id)) bytes[size_t(id)] = tokenizer.tokenBytes(id);
    return fromTokenBytes(std::move(bytes));
}

}  // namespace lmw::engine
