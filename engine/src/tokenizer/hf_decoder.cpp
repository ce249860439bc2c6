// Decoders as the `tokenizers` library defines them (decoders/*.rs), run one token at a time so
// that StreamDecoder and decode() share them. What cannot be run that way (a step after Fuse other
// than stripping the start, stripping the end of the whole text) is refused when loading.
#include "tokenizer/hf_decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/hf_normalizer.h"
#include "tokenizer/regex.h"

namespace lmw::engine {

struct HfDecoder::Step {
    enum class Kind { Replace, ByteFallback, ByteLevel, Metaspace, Strip } kind;
    std::unique_ptr<Regex> regex;  // Replace
    std::string content;           // Replace
    uint32_t ch = 0;               // Metaspace replacement, Strip content
    bool prependNever = false;     // Metaspace
    int start = 0, stop = 0;       // Strip
};

namespace {

// The code point at s[i] and its length; invalid bytes (a token's raw byte) are 0xFFFFFFFF, 1.
uint32_t charAt(std::string_view s, size_t i, size_t& len) {
    if (utf8::classify(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i, len) != utf8::Seq::Valid) {
        len = 1;
        return 0xFFFFFFFF;
    }
    const char* p = s.data() + i;
    return utf8::next(p);
}

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void stripToken(std::string& s, uint32_t ch, int start, int stop) {
    size_t begin = 0;
    for (int k = 0; k < start && begin < s.size(); ++k) {
        size_t len;
        if (charAt(s, begin, len) != ch) break;
        begin += len;
    }
    size_t end = s.size();
    for (int k = 0; k < stop && end > begin; ++k) {
        size_t at = end - 1;
        while (at > begin && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
        size_t len;
        if (charAt(s, at, len) != ch || at + len != end) break;
        end = at;
    }
    s = s.substr(begin, end - begin);
}

}  // namespace

HfDecoder::HfDecoder(const Json& j, const JsonAt& at) {
    if (j.is_null()) m_join = true;
    else add(j, at);
}

HfDecoder::~HfDecoder() = default;
HfDecoder::HfDecoder(HfDecoder&&) noexcept = default;

void HfDecoder::add(const Json& j, const JsonAt& at) {
    const std::string type = typeField(j, at);
    if (type == "Sequence") {
        const Json& list = requireField(j, at, "decoders");
        if (!list.is_array()) (at / "decoders").fail("must be an array");
        for (size_t i = 0; i < list.size(); ++i) add(list[i], (at / "decoders")[i]);
        return;
    }
    if (type == "Fuse") {
        m_fused = true;
        return;
    }
    if (m_fused) {
        // One string is left: only "strip its start" can still be applied as tokens arrive.
        if (type != "Strip") (at / "type").unsupported("decoder '" + type + "' after Fuse");
        if (intField(j, at, "stop", 0) != 0) (at / "stop").unsupported("Strip of the end of the decoded text");
        m_stripChar = charField(j, at, "content");
        m_stripStart = static_cast<int>(intField(j, at, "start", 0));
        return;
    }
    Step s{};
    if (type == "Replace") {
        s.kind = Step::Kind::Replace;
        const std::string pattern = replacePattern(j, at);
        try {
            s.regex = std::make_unique<Regex>(pattern);
        } catch (const std::invalid_argument& e) {
            (at / "pattern").fail(std::string("is not a valid regex: ") + e.what());
        }
        s.content = stringField(j, at, "content");
    } else if (type == "ByteFallback") {
        s.kind = Step::Kind::ByteFallback;
    } else if (type == "ByteLevel") {
        s.kind = Step::Kind::ByteLevel;
        m_byteLevel = true;
    } else if (type == "Metaspace") {
        s.kind = Step::Kind::Metaspace;
        s.ch = charField(j, at, "replacement");
        s.prependNever = stringField(j, at, "prepend_scheme", "always") == "never" || !boolField(j, at, "add_prefix_space", true);
    } else if (type == "Strip") {
        s.kind = Step::Kind::Strip;
        s.ch = charField(j, at, "content");
        s.start = static_cast<int>(intField(j, at, "start", 0));
        s.stop = static_cast<int>(intField(j, at, "stop", 0));
    } else {
        (at / "type").unsupported("decoder '" + type + "'");
    }
    m_steps.push_back(std::move(s));
}

void HfDecoder::append(std::string_view token, DecodeState& state, std::string& out) const {
    std::string cur(token);
    for (const Step& s : m_steps) {
        switch (s.kind) {
            case Step::Kind::Replace: {
                std::string r;
                size_t last = 0;
                s.regex->forEachMatch(cur, [&](size_t start, size_t end) {
                    r.append(cur, last, start - last);
                    r += s.content;
                    last = end;
                });
                r.append(cur, last, std::string::npos);
                cur.swap(r);
                break;
            }
            case Step::Kind::ByteFallback:
                if (cur.size() == 6 && cur.compare(0, 3, "<0x") == 0 && cur[5] == '>' && hexDigit(cur[3]) >= 0 &&
                    hexDigit(cur[4]) >= 0)
                    cur.assign(1, static_cast<char>(hexDigit(cur[3]) * 16 + hexDigit(cur[4])));
                break;
            case Step::Kind::ByteLevel: {
                // Every character back to its byte; a token with others (an added token) stays as written.
                std::string bytes;
                bool all = true;
                for (size_t i = 0; i < cur.size() && all;) {
                    size_t len;
                    const int b = byte_level::charToByte(charAt(cur, i, len));
                    all = b >= 0;
                    bytes += static_cast<char>(b);
                    i += len;
                }
                if (all) cur.swap(bytes);
                break;
            }
            case Step::Kind::Metaspace: {
                // The library drops the replacement characters of the first token, and spaces the others.
                const bool first = state.tokens == 0 && !s.prependNever;
                std::string r;
                for (size_t i = 0; i < cur.size();) {
                    size_t len;
                    if (charAt(cur, i, len) == s.ch) {
                        if (!first) r += ' ';
                    } else {
                        r.append(cur, i, len);
                    }
                    i += len;
                }
                cur.swap(r);
                break;
            }
            case Step::Kind::Strip:
                stripToken(cur, s.ch, s.start, s.stop);
                break;
        }
    }
    if (m_join && state.tokens > 0) out += ' ';
    if (m_stripStart > 0 && state.atStart) {
        size_t i = 0;
        while (state.stripped < m_stripStart && i < cur.size()) {
            size_t len;
            if (charAt(cur, i, len) != m_stripChar) break;
            i += len;
            ++state.stripped;
        }
        cur.erase(0, i);
    }
    if (!cur.empty()) state.atStart = false;
    out += cur;
}

}  // namespace lmw::engine
