#pragma once
// The regular expressions of tokenizer.json (Split pre-tokenizers, Replace normalizers/decoders)
// through PCRE2 with its JIT: Unicode properties (\p{L}, \p{N}), case-insensitive groups and
// look-ahead (\s+(?!\S)) as the `tokenizers` library's Oniguruma gives them.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace lmw::engine {

class Regex {
public:
    // Throws std::invalid_argument with PCRE2's message and the offset when the pattern is bad.
    explicit Regex(const std::string& pattern);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // A pattern that matches `literal` exactly.
    static std::string escape(std::string_view literal);

    // Calls onMatch(start, end) for each match in text, left to right, with the iteration rule of
    // the Rust onig crate that `tokenizers` uses: an empty match right after the previous match is
    // skipped. text must be valid UTF-8. Throws lmw::Error if PCRE2 runs out of its limits.
    template <class F>
    void forEachMatch(std::string_view text, F&& onMatch) const {
        size_t pos = 0, lastEnd = size_t(-1);
        while (pos <= text.size()) {
            size_t start, end;
            if (!find(text, pos, start, end)) return;
            if (start == end && start == lastEnd) {  // empty match touching the last one: step a character
                if (start >= text.size()) return;
                pos = start + charLength(text, start);
                continue;
            }
            onMatch(start, end);
            lastEnd = end;
            pos = end;  // an empty match is then found again and stepped past by the rule above
        }
    }

private:
    bool find(std::string_view text, size_t from, size_t& start, size_t& end) const;
    static size_t charLength(std::string_view text, size_t at);

    pcre2_real_code_8* m_code = nullptr;
    bool m_jit = false;
    std::string m_pattern;
};

}  // namespace lmw::engine
