// Normalizers as the `tokenizers` library defines them (normalizers/*.rs). Unicode normalization
// and case mapping come from utf8proc's tables, so they follow the Unicode standard rather than
// tables written here.
#include "tokenizer/hf_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {

bool isAscii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}

class UnicodeForm final : public NormalizerStep {
public:
    explicit UnicodeForm(int options) : m_options(options) {}
    void apply(std::string& text) const override {
        if (isAscii(text)) return;  // every normalization form leaves ASCII as it is
        utf8proc_uint8_t* out = nullptr;
        const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &out,
                                    static_cast<utf8proc_option_t>(m_options));
        if (n < 0) return;  // not reached for valid UTF-8; the text then stays as it was
        text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
        std::free(out);
    }

private:
    int m_options;
};

// Per character, as Rust's char::to_lowercase (İ is the one character whose lowercase is two).
class Lowercase final : public NormalizerStep {
public:
    void apply(std::string& text) const override {
        std::string out;
        out.reserve(text.size());
        for (const char* p = text.data(); p < text.data() + text.size();) {
            const uint32_t cp = utf8::next(p);
            if (cp < 0x80) out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            else if (cp == 0x130) out += "i\xCC\x87";
            else utf8::append(out, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
        }
        text.swap(out);
    }
};

class Strip final : public NormalizerStep {
public:
    Strip(bool left, bool right) : m_left(left), m_right(right) {}
    void apply(std::string& text) const override {
        size_t begin = 0, end = text.size();
        if (m_left) {
            const char* p = text.data();
            while (p < text.data() + end) {
                const char* q = p;
                if (!utf8::isWhitespace(utf8::next(q))) break;
                p = q;
            }
            begin = p - text.data();
        }
        if (m_right) {
            while (end > begin) {
                size_t start = end - 1;
                while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
                const char* p = text.data() + start;
                if (!utf8::isWhitespace(utf8::next(p))) break;
                end = start;
            }
        }
        text = text.substr(begin, end - begin);
    }

private:
    bool m_left, m_right;
};

class Prepend final : public NormalizerStep {
public:
    explicit Prepend(std::string s) : m_prefix(std::move(s)) {}
    void apply(std::string& text) const override {
        if (!text.empty()) text.insert(0, m_prefix);
    }

private:
    std::string m_prefix;
};

class Replace final : public NormalizerStep {
public:
    Replace(const std::string& pattern, std::string content) : m_regex(pattern), m_content(std::move(content)) {}
    void apply(std::string& text) const override {
        std::string out;
        size_t last = 0;
        bool matched = false;
        m_regex.forEachMatch(text, [&](size_t start, size_t end) {
            out.append(text, last, start - last);
            out += m_content;
            last = end;
            matched = true;
        });
        if (!matched) return;
        out.append(text, last, std::string::npos);
        text.swap(out);
    }

private:
    Regex m_regex;
    std::string m_content;
};

}  // namespace

// The pattern of a Replace ({"String": s} or {"Regex": r}) as a regular expression.
std::string replacePattern(const Json& obj, const JsonAt& at) {
    const Json& p = requireField(obj, at, "pattern");
    if (const Json* s = optionalField(p, "String"); s && s->is_string()) return Regex::escape(s->get<std::string>());
    if (const Json* r = optionalField(p, "Regex"); r && r->is_string()) return r->get<std::string>();
    (at / "pattern").fail("must be {\"String\": ...} or {\"Regex\": ...}");
}

std::unique_ptr<Normalizer> Normalizer::fromJson(const Json& j, const JsonAt& at) {
    if (j.is_null()) return nullptr;
    auto n = std::make_unique<Normalizer>();
    n->add(j, at);
    return n;
}

void Normalizer::add(const Json& j, const JsonAt& at) {
    const std::string type = typeField(j, at);
    if (type == "Sequence") {
        const Json& list = requireField(j, at, "normalizers");
        if (!list.is_array()) (at / "normalizers").fail("must be an array");
        for (size_t i = 0; i < list.size(); ++i) add(list[i], (at / "normalizers")[i]);
    } else if (type == "NFC") {
        m_steps.push_back(std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    } else if (type == "NFD") {
        m_steps.push_back(std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
    } else if (type == "NFKC") {
        m_steps.push_back(std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    } else if (type == "NFKD") {
        m_steps.push_back(std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
    } else if (type == "Lowercase") {
        m_steps.push_back(std::make_unique<Lowercase>());
    } else if (type == "Strip") {
        m_steps.push_back(std::make_unique<Strip>(boolField(j, at, "strip_left", true), boolField(j, at, "strip_right", true)));
    } else if (type == "Prepend") {
        m_steps.push_back(std::make_unique<Prepend>(stringField(j, at, "prepend")));
    } else if (type == "Replace") {
        const std::string pattern = replacePattern(j, at);
        try {
            m_steps.push_back(std::make_unique<Replace>(pattern, stringField(j, at, "content")));
        } catch (const std::invalid_argument& e) {
            (at / "pattern").fail(std::string("is not a valid regex: ") + e.what());
        }
    } else {
        (at / "type").unsupported("normalizer '" + type + "'");
    }
}

std::string_view Normalizer::apply(std::string_view in, std::string& buffer) const {
    buffer.assign(in);
    for (const auto& s : m_steps) s->apply(buffer);
    return buffer;
}

}  // namespace lmw::engine
