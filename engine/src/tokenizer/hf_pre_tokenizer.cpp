// Pre-tokenizers as the `tokenizers` library defines them (pre_tokenizers/*.rs, and the split of
// NormalizedString with its delimiter behaviors in tokenizer/normalizer.rs).
#include "tokenizer/hf_pre_tokenizer.h"

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// The pieces of `text` around the matches of a regex: (start, end, isMatch), covering all of it.
void regexSpans(const Regex& re, std::string_view text, std::vector<Span>& out) {
    out.clear();
    size_t prev = 0;
    re.forEachMatch(text, [&](size_t start, size_t end) {
        if (prev != start) out.push_back({prev, start, false});
        out.push_back({start, end, true});
        prev = end;
    });
    if (prev != text.size() || text.empty()) out.push_back({prev, text.size(), false});
}

// The same for a per-character predicate: each matching character is a match of its own.
template <class Pred>
void charSpans(std::string_view text, Pred pred, std::vector<Span>& out) {
    out.clear();
    size_t last = 0;
    for (const char* p = text.data(); p < text.data() + text.size();) {
        const size_t at = p - text.data();
        if (pred(utf8::next(p))) {
            const size_t end = p - text.data();
            if (last < at) out.push_back({last, at, false});
            out.push_back({at, end, true});
            last = end;
        }
    }
    if (last < text.size() || text.empty()) out.push_back({last, text.size(), false});
}

// NormalizedString::split: which pieces the matches leave, by behavior (kept[i].flag = removed).
void applyBehavior(const std::vector<Span>& spans, Behavior b, std::vector<Span>& kept) {
    kept.clear();
    switch (b) {
        case Behavior::Isolated:
            for (const Span& s : spans) kept.push_back({s.start, s.end, false});
            break;
        case Behavior::Removed:
            kept = spans;
            break;
        case Behavior::Contiguous: {
            bool prevMatch = false;
            for (const Span& s : spans) {
                if (s.flag == prevMatch && !kept.empty()) kept.back().end = s.end;
                else kept.push_back({s.start, s.end, false});
                prevMatch = s.flag;
            }
            break;
        }
        case Behavior::MergedWithPrevious: {
            bool prevMatch = false;
            for (const Span& s : spans) {
                if (s.flag && !prevMatch && !kept.empty()) kept.back().end = s.end;
                else kept.push_back({s.start, s.end, false});
                prevMatch = s.flag;
            }
            break;
        }
        case Behavior::MergedWithNext: {
            bool prevMatch = false;
            for (size_t i = spans.size(); i-- > 0;) {
                const Span& s = spans[i];
                if (s.flag && !prevMatch && !kept.empty()) kept.back().start = s.start;
                else kept.push_back({s.start, s.end, false});
                prevMatch = s.flag;
            }
            std::reverse(kept.begin(), kept.end());
            break;
        }
    }
}

void emitKept(std::string_view text, bool atOrigin, const std::vector<Span>& kept, const PieceSink& next) {
    for (const Span& s : kept)
        if (!s.flag && s.end > s.start) next(text.substr(s.start, s.end - s.start), atOrigin && s.start == 0);
}

Behavior behaviorField(const Json& j, const JsonAt& at) {
    const std::string b = stringField(j, at, "behavior");
    if (b == "Removed") return Behavior::Removed;
    if (b == "Isolated") return Behavior::Isolated;
    if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
    if (b == "MergedWithNext") return Behavior::MergedWithNext;
    if (b == "Contiguous") return Behavior::Contiguous;
    (at / "behavior").fail("'" + b + "' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

std::unique_ptr<Regex> compile(const std::string& pattern, const JsonAt& at) {
    try {
        return std::make_unique<Regex>(pattern);
    } catch (const std::invalid_argument& e) {
        at.fail(std::string("is not a valid regex: ") + e.what());
    }
}

class SplitStep final : public PreTokenizerStep {
public:
    SplitStep(const Json& j, const JsonAt& at) : m_behavior(behaviorField(j, at)), m_invert(boolField(j, at, "invert", false)) {
        const Json& p = requireField(j, at, "pattern");
        if (const Json* s = optionalField(p, "String"); s && s->is_string())
            m_regex = compile(Regex::escape(s->get<std::string>()), at / "pattern" / "String");
        else if (const Json* r = optionalField(p, "Regex"); r && r->is_string())
            m_regex = compile(r->get<std::string>(), at / "pattern" / "Regex");
        else
            (at / "pattern").fail("must be {\"String\": ...} or {\"Regex\": ...}");
    }
    void apply(std::string_view piece, bool atOrigin, PreTokenizeScratch::Level& s, const PieceSink& next) const override {
        if (m_behavior == Behavior::Isolated && !m_invert) {  // the common case, straight from the matches
            size_t prev = 0;
            m_regex->forEachMatch(piece, [&](size_t start, size_t end) {
                if (prev != start) next(piece.substr(prev, start - prev), atOrigin && prev == 0);
                if (end > start) next(piece.substr(start, end - start), atOrigin && start == 0);
                prev = end;
            });
            if (prev < piece.size()) next(piece.substr(prev), atOrigin && prev == 0);
            return;
        }
        regexSpans(*m_regex, piece, s.spans);
        if (m_invert)
            for (Span& sp : s.spans) sp.flag = !sp.flag;
        applyBehavior(s.spans, m_behavior, s.kept);
        emitKept(piece, atOrigin, s.kept, next);
    }

private:
    Behavior m_behavior;
    bool m_invert;
    std::unique_ptr<Regex> m_regex;
};

// GPT-2's word pattern, used by ByteLevel when use_regex is set.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelStep final : public PreTokenizerStep {
public:
    ByteLevelStep(const Json& j, const JsonAt& at)
        : m_addPrefixSpace(boolField(j, at, "add_prefix_space", true)) {
        if (boolField(j, at, "use_regex", true)) m_regex = std::make_unique<Regex>(kGpt2Pattern);
    }
    bool raw = false;  // hand raw bytes on (the model reads them as alphabet characters)

    void apply(std::string_view piece, bool atOrigin, PreTokenizeScratch::Level& s, const PieceSink& next) const override {
        std::string_view text = piece;
        if (m_addPrefixSpace && text[0] != ' ') {
            s.a.assign(1, ' ');
            s.a.append(piece);
            text = s.a;
        }
        auto emit = [&](std::string_view sub, bool origin) {
            if (raw) return next(sub, origin);
            s.b.clear();
            for (unsigned char c : sub) utf8::append(s.b, byte_level::byteToChar()[c]);
            next(s.b, origin);
        };
        if (!m_regex) return emit(text, atOrigin);
        size_t prev = 0;
        m_regex->forEachMatch(text, [&](size_t start, size_t end) {
            if (prev != start) emit(text.substr(prev, start - prev), atOrigin && prev == 0);
            if (end > start) emit(text.substr(start, end - start), atOrigin && start == 0);
            prev = end;
        });
        if (prev < text.size()) emit(text.substr(prev), atOrigin && prev == 0);
    }

private:
    bool m_addPrefixSpace;
    std::unique_ptr<Regex> m_regex;
};

class MetaspaceStep final : public PreTokenizerStep {
public:
    enum class Prepend { Always, First, Never };
    MetaspaceStep(const Json& j, const JsonAt& at) : m_replacement(charField(j, at, "replacement")) {
        m_rep = utf8::encode(m_replacement);
        const std::string scheme = stringField(j, at, "prepend_scheme", "always");
        if (scheme == "always") m_prepend = Prepend::Always;
        else if (scheme == "first") m_prepend = Prepend::First;
        else if (scheme == "never") m_prepend = Prepend::Never;
        else (at / "prepend_scheme").fail("'" + scheme + "' is not one of always, first, never");
        if (!boolField(j, at, "add_prefix_space", true)) {  // the older spelling of "never"
            if (m_prepend != Prepend::Never && optionalField(j, "prepend_scheme"))
                (at / "add_prefix_space").fail("false does not match prepend_scheme '" + scheme + "'");
            m_prepend = Prepend::Never;
        }
        m_split = boolField(j, at, "split", true);
    }
    void apply(std::string_view piece, bool atOrigin, PreTokenizeScratch::Level& s, const PieceSink& next) const override {
        s.a.clear();
        for (char c : piece) {
            if (c == ' ') s.a += m_rep;
            else s.a += c;
        }
        const bool starts = s.a.compare(0, m_rep.size(), m_rep) == 0;
        if (!starts && (m_prepend == Prepend::Always || (m_prepend == Prepend::First && atOrigin))) s.a.insert(0, m_rep);
        std::string_view text = s.a;
        if (!m_split) return next(text, atOrigin);
        charSpans(text, [&](uint32_t cp) { return cp == m_replacement; }, s.spans);
        applyBehavior(s.spans, Behavior::MergedWithNext, s.kept);
        emitKept(text, atOrigin, s.kept, next);
    }

private:
    uint32_t m_replacement;
    std::string m_rep;
    Prepend m_prepend = Prepend::Always;
    bool m_split = true;
};

class DigitsStep final : public PreTokenizerStep {
public:
    DigitsStep(const Json& j, const JsonAt& at) : m_individual(boolField(j, at, "individual_digits", false)) {}
    void apply(std::string_view piece, bool atOrigin, PreTokenizeScratch::Level& s, const PieceSink& next) const override {
        charSpans(piece, utf8::isNumeric, s.spans);
        applyBehavior(s.spans, m_individual ? Behavior::Isolated : Behavior::Contiguous, s.kept);
        emitKept(piece, atOrigin, s.kept, next);
    }

private:
    bool m_individual;
};

// WhitespaceSplit: words between whitespace; Whitespace: runs of word characters and runs of
// other non-space characters (the library's \w+|[^\w\s]+).
class WhitespaceStep final : public PreTokenizerStep {
public:
    explicit WhitespaceStep(bool splitOnly) : m_splitOnly(splitOnly) {
        if (!splitOnly) m_regex = std::make_unique<Regex>(R"(\w+|[^\w\s]+)");
    }
    void apply(std::string_view piece, bool atOrigin, PreTokenizeScratch::Level& s, const PieceSink& next) const override {
        if (m_splitOnly) {
            charSpans(piece, utf8::isWhitespace, s.spans);
        } else {
            regexSpans(*m_regex, piece, s.spans);
            for (Span& sp : s.spans) sp.flag = !sp.flag;
        }
        applyBehavior(s.spans, Behavior::Removed, s.kept);
        emitKept(piece, atOrigin, s.kept, next);
    }

private:
    bool m_splitOnly;
    std::unique_ptr<Regex> m_regex;
};

}  // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::fromJson(const Json& j, const JsonAt& at) {
    if (j.is_null()) return nullptr;
    auto p = std::make_unique<PreTokenizer>();
    p->add(j, at);
    return p;
}

void PreTokenizer::add(const Json& j, const JsonAt& at) {
    const std::string type = typeField(j, at);
    bool byteLevel = false;
    if (type == "Sequence") {
        const Json& list = requireField(j, at, "pretokenizers");
        if (!list.is_array()) (at / "pretokenizers").fail("must be an array");
        for (size_t i = 0; i < list.size(); ++i) add(list[i], (at / "pretokenizers")[i]);
        return;
    } else if (type == "Split") {
        m_steps.push_back(std::make_unique<SplitStep>(j, at));
    } else if (type == "ByteLevel") {
        m_steps.push_back(std::make_unique<ByteLevelStep>(j, at));
        byteLevel = true;
    } else if (type == "Metaspace") {
        m_steps.push_back(std::make_unique<MetaspaceStep>(j, at));
    } else if (type == "Digits") {
        m_steps.push_back(std::make_unique<DigitsStep>(j, at));
    } else if (type == "WhitespaceSplit" || type == "Whitespace") {
        m_steps.push_back(std::make_unique<WhitespaceStep>(type == "WhitespaceSplit"));
    } else {
        (at / "type").unsupported("pre-tokenizer '" + type + "'");
    }
    m_isByteLevel.push_back(byteLevel);
}

bool PreTokenizer::byteLevel() const {
    for (bool b : m_isByteLevel)
        if (b) return true;
    return false;
}

bool PreTokenizer::endsWithByteLevel() const { return !m_isByteLevel.empty() && m_isByteLevel.back(); }

void PreTokenizer::setRawByteOutput(bool on) {
    if (endsWithByteLevel()) static_cast<ByteLevelStep&>(*m_steps.back()).raw = on;
}

void PreTokenizer::run(std::string_view text, bool atOrigin, PreTokenizeScratch& s, const PieceSink& sink) const {
    if (text.empty()) return;
    if (s.levels.size() < m_steps.size()) s.levels.resize(m_steps.size());
    runFrom(0, text, atOrigin, s, sink);
}

void PreTokenizer::runFrom(size_t step, std::string_view piece, bool atOrigin, PreTokenizeScratch& s,
                           const PieceSink& sink) const {
    if (step == m_steps.size()) return sink(piece, atOrigin);
    auto next = [&](std::string_view sub, bool origin) { runFrom(step + 1, sub, origin, s, sink); };
    m_steps[step]->apply(piece, atOrigin, s.levels[step], next);
}

}  // namespace lmw::engine
