// Added-token matching as tokenizers' AddedVocabulary::find_matches does it.
#include "tokenizer/hf_added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {

// The code point that ends at text[end] (end > 0), and where it starts.
uint32_t charBefore(std::string_view text, size_t end, size_t& start) {
    start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    const char* p = text.data() + start;
    return utf8::next(p);
}

}  // namespace

void AddedTokens::add(AddedToken t) {
    if (auto it = m_byContent.find(t.content); it != m_byContent.end()) {
        AddedToken& old = m_tokens[it->second];
        const int32_t id = old.id;
        old = std::move(t);
        old.id = id;
        return;
    }
    m_maxId = std::max(m_maxId, t.id);
    m_byId[t.id] = m_tokens.size();
    m_byContent[t.content] = m_tokens.size();
    m_tokens.push_back(std::move(t));
}

void AddedTokens::build(FunctionRef<std::string(const std::string&)> normalize, bool skipSpecial) {
    m_skipSpecial = skipSpecial;
    m_raw = Trie{};
    m_normalized = Trie{};
    for (size_t i = 0; i < m_tokens.size(); ++i) {
        AddedToken& t = m_tokens[i];
        t.decodeAs = t.normalized ? normalize(t.content) : t.content;
        if (t.decodeAs.empty()) continue;
        (t.normalized ? m_normalized : m_raw).insert(t.decodeAs, static_cast<int32_t>(i));
    }
}

std::vector<std::string> AddedTokens::specialTexts() const {
    std::vector<std::string> out;
    if (m_skipSpecial) return out;
    for (const AddedToken& t : m_tokens)
        if (t.special && !t.content.empty()) out.push_back(t.content);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    return out;
}

const AddedToken* AddedTokens::byId(int32_t id) const {
    auto it = m_byId.find(id);
    return it == m_byId.end() ? nullptr : &m_tokens[it->second];
}

const AddedToken* AddedTokens::byContent(std::string_view content) const {
    auto it = m_byContent.find(std::string(content));
    return it == m_byContent.end() ? nullptr : &m_tokens[it->second];
}

void AddedTokens::Trie::insert(std::string_view s, int32_t token) {
    if (nodes.empty()) nodes.emplace_back();
    int32_t n = 0;
    for (unsigned char c : s) {
        auto& edges = nodes[n].next;
        auto it = std::find_if(edges.begin(), edges.end(), [c](const auto& e) { return e.first == c; });
        if (it == edges.end()) {
            nodes.emplace_back();
            nodes[n].next.emplace_back(c, static_cast<int32_t>(nodes.size() - 1));
            n = static_cast<int32_t>(nodes.size() - 1);
        } else {
            n = it->second;
        }
    }
    nodes[n].token = token;
    first[static_cast<unsigned char>(s[0])] = true;
}

int32_t AddedTokens::Trie::longest(std::string_view text, size_t at, size_t& end) const {
    int32_t n = 0, best = -1;
    for (size_t i = at; i < text.size(); ++i) {
        const auto& edges = nodes[n].next;
        const unsigned char c = text[i];
        auto it = std::find_if(edges.begin(), edges.end(), [c](const auto& e) { return e.first == c; });
        if (it == edges.end()) break;
        n = it->second;
        if (nodes[n].token >= 0) {
            best = nodes[n].token;
            end = i + 1;
        }
    }
    return best;
}

void AddedTokens::split(std::string_view text, bool normalizedSet, FunctionRef<void(size_t, size_t)> onText,
                        FunctionRef<void(int32_t)> onToken, FunctionRef<bool(size_t, size_t)> specialAllowed) const {
    const Trie& trie = normalizedSet ? m_normalized : m_raw;
    size_t startOffset = 0;
    if (!trie.nodes.empty()) {
        size_t pos = 0;
        while (pos < text.size()) {
            if (!trie.first[static_cast<unsigned char>(text[pos])]) {
                ++pos;
                continue;
            }
            size_t stop = 0;
            const int32_t ti = trie.longest(text, pos, stop);
            if (ti < 0) {
                ++pos;
                continue;
            }
            const AddedToken& t = m_tokens[ti];
            size_t start = pos;
            pos = stop;  // the library's match iterator goes on after the match, kept or not
            if (t.special && (m_skipSpecial || !specialAllowed(start, stop))) continue;
            size_t prev = 0;
            if (t.singleWord) {
                const bool spaceBefore = start == 0 || !utf8::isWordChar(charBefore(text, start, prev));
                const char* after = text.data() + stop;
                const bool spaceAfter = stop == text.size() || !utf8::isWordChar(utf8::next(after));
                if (!spaceBefore || !spaceAfter) continue;
            }
            if (t.lstrip)  // not into what an earlier token took
                while (start > startOffset && utf8::isWhitespace(charBefore(text, start, prev))) start = prev;
            if (t.rstrip) {
                while (stop < text.size()) {
                    const char* p = text.data() + stop;
                    if (!utf8::isWhitespace(utf8::next(p))) break;
                    stop = p - text.data();
                }
                pos = stop;
            }
            if (startOffset < start) onText(startOffset, start);
            onToken(t.id);
            startOffset = stop;
        }
    }
    if (startOffset < text.size()) onText(startOffset, text.size());
}

}  // namespace lmw::engine
