#pragma once
// The added tokens of a tokenizer.json (special tokens like <|im_start|> and plain added words):
// found in the text before anything else runs, leftmost first and longest at one position (the
// library's Aho-Corasick, MatchKind::LeftmostLongest), with lstrip / rstrip / single_word.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/function_ref.h"

namespace lmw::engine {

struct AddedToken {
    int32_t id = -1;
    std::string content;
    std::string decodeAs;  // the normalized content for normalized tokens (what decoding sees)
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool singleWord = false;
    bool normalized = true;
};

class AddedTokens {
public:
    // Adds or replaces (same content: the new properties win, as when transformers re-adds one).
    void add(AddedToken t);
    // Builds the two matchers: tokens matched in the raw text and, by their normalized form, in the
    // normalized text. normalize is applied to normalized tokens' content.
    void build(FunctionRef<std::string(const std::string&)> normalize, bool skipSpecial);

    const AddedToken* byId(int32_t id) const;
    const AddedToken* byContent(std::string_view content) const;
    int32_t maxId() const { return m_maxId; }

    // Cuts text at the tokens of one matcher: onText(start, end) for the text between (non-empty),
    // onToken(id) for each token, in order. A special token matched at [start, end) is kept only
    // when specialAllowed(start, end) (else it is text, as with split_special_tokens).
    void split(std::string_view text, bool normalizedSet, FunctionRef<void(size_t, size_t)> onText,
               FunctionRef<void(int32_t)> onToken, FunctionRef<bool(size_t, size_t)> specialAllowed) const;
    std::vector<std::string> specialTexts() const;  // contents of the special tokens split() can keep

private:
    struct Trie {
        struct Node {
            std::vector<std::pair<unsigned char, int32_t>> next;
            int32_t token = -1;  // index into m_tokens ending here
        };
        std::vector<Node> nodes;
        bool first[256] = {};
        void insert(std::string_view s, int32_t token);
        int32_t longest(std::string_view text, size_t at, size_t& end) const;  // token index or -1
    };
    std::vector<AddedToken> m_tokens;
    std::unordered_map<int32_t, size_t> m_byId;
    std::unordered_map<std::string, size_t> m_byContent;
    Trie m_raw, m_normalized;
    int32_t m_maxId = -1;
    bool m_skipSpecial = false;
};

}  // namespace lmw::engine
