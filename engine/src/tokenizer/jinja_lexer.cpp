// Jinja lexer. Whitespace rules follow what Hugging Face's apply_chat_template uses:
// trim_blocks (drop the newline after a block or comment tag), lstrip_blocks (drop spaces/tabs
// before a block or comment tag at the start of a line), and explicit "-" / "+" markers.
#include <cctype>

#include "lmw/error.h"
#include "tokenizer/jinja_internal.h"

namespace lmw::engine::jinja {

namespace {

[[noreturn]] void syntaxError(const std::string& src, size_t pos, const std::string& what) {
    throw Error(ErrorCode::InvalidArgument, "chat template syntax error at " + describePosition(src, pos) + ": " + what);
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

void rstripAll(std::string& s) {
    while (!s.empty() && isSpace(s.back())) s.pop_back();
}

// lstrip_blocks: if only spaces/tabs separate the tag from the start of its line, remove them.
void lstripLine(std::string& s, bool textStartsLine) {
    size_t i = s.size();
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t')) --i;
    if ((i == 0 && textStartsLine) || (i > 0 && s[i - 1] == '\n')) s.resize(i);
}

// Reads a quoted string literal starting at src[i] (the quote); returns the decoded text.
std::string readString(const std::string& src, size_t& i) {
    const char q = src[i];
    const size_t start = i++;
    std::string out;
    while (i < src.size() && src[i] != q) {
        char c = src[i++];
        if (c != '\\') {
            out += c;
            continue;
        }
        if (i >= src.size()) break;
        char e = src[i++];
        switch (e) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case '0': out += '\0'; break;
            case '\\': out += '\\'; break;
            case '\'': out += '\''; break;
            case '"': out += '"'; break;
            case '\n': break;  // line continuation
            case 'u': case 'x': {
                const int len = e == 'u' ? 4 : 2;
                if (i + len > src.size()) syntaxError(src, i, "bad escape");
                // By hand: std::stoul throws std::invalid_argument on "\\xZZ" and accepts " 1" or "+1".
                uint32_t cp = 0;
                for (int k = 0; k < len; ++k) {
                    const char h = src[i + k];
                    if (!std::isxdigit(static_cast<unsigned char>(h))) syntaxError(src, i, "bad escape");
                    cp = cp * 16 + uint32_t(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                }
                i += len;
                if (cp < 0x80) out += char(cp);
                else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
                else { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
                break;
            }
            default: out += '\\'; out += e;  // Python keeps unknown escapes as written
        }
    }
    if (i >= src.size()) syntaxError(src, start, "unterminated string literal");
    ++i;  // closing quote
    return out;
}

}  // namespace

std::string describePosition(const std::string& source, size_t pos) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < source.size(); ++i) {
        if (source[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

std::vector<Token> lex(const std::string& src) {
    std::vector<Token> toks;
    size_t pos = 0;
    const size_t n = src.size();
    bool stripNext = false;  // the previous tag ended with "-"
    bool trimNewline = false;  // the previous tag was a block/comment (trim_blocks)

    auto skipAfterTag = [&](size_t& p) {
        if (stripNext) {
            while (p < n && isSpace(src[p])) ++p;
        } else if (trimNewline) {
            if (p < n && src[p] == '\n') ++p;
            else if (p + 1 < n && src[p] == '\r' && src[p + 1] == '\n') p += 2;
        }
        stripNext = trimNewline = false;
    };

    while (pos < n) {
        skipAfterTag(pos);
        const size_t textStart = pos;
        size_t tag = src.find('{', pos);
        while (tag != std::string::npos && tag + 1 < n && src[tag + 1] != '{' && src[tag + 1] != '%' && src[tag + 1] != '#')
            tag = src.find('{', tag + 1);
        if (tag == std::string::npos || tag + 1 >= n) {
            if (pos < n) toks.push_back({Tok::Text, src.substr(pos), pos});
            break;
        }
        std::string text = src.substr(pos, tag - pos);
        const char kind = src[tag + 1];
        size_t p = tag + 2;
        const bool minus = p < n && src[p] == '-';
        const bool plus = p < n && src[p] == '+';
        if (minus || plus) ++p;
        const bool textStartsLine = textStart == 0 || src[textStart - 1] == '\n';
        if (minus) rstripAll(text);
        else if (kind != '{' && !plus) lstripLine(text, textStartsLine);
        if (!text.empty()) toks.push_back({Tok::Text, text, textStart});

        if (kind == '#') {
            const size_t end = src.find("#}", p);
            if (end == std::string::npos) syntaxError(src, tag, "unterminated comment");
            stripNext = end > p && src[end - 1] == '-';
            trimNewline = true;
            pos = end + 2;
            continue;
        }

        // {% raw %}...{% endraw %}: copied verbatim.
        if (kind == '%') {
            size_t q = p;
            while (q < n && isSpace(src[q])) ++q;
            if (src.compare(q, 3, "raw") == 0 && (q + 3 >= n || !std::isalnum((unsigned char)src[q + 3]))) {
                size_t close = src.find("%}", q);
                if (close == std::string::npos) syntaxError(src, tag, "unterminated raw tag");
                size_t endraw = src.find("endraw", close);
                if (endraw == std::string::npos) syntaxError(src, tag, "missing endraw");
                size_t open = src.rfind("{%", endraw);
                std::string raw = src.substr(close + 2, open - close - 2);
                if (src[open + 2] == '-') rstripAll(raw);
                toks.push_back({Tok::Text, raw, close + 2});
                size_t fin = src.find("%}", endraw);
                if (fin == std::string::npos) syntaxError(src, endraw, "unterminated endraw tag");
                stripNext = src[fin - 1] == '-';
                trimNewline = true;
                pos = fin + 2;
                continue;
            }
        }

        toks.push_back({kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", tag});
        const char closeChar = kind == '{' ? '}' : '%';
        int depth = 0;  // nesting of (), [], {} so "}}" inside a dict literal is not the end
        bool closed = false;
        while (p < n) {
            const char c = src[p];
            if (isSpace(c)) {
                ++p;
                continue;
            }
            // End of tag: "}}" / "%}", optionally preceded by "-".
            if (depth == 0) {
                size_t q = p;
                bool endMinus = false;
                if (src[q] == '-' && q + 2 < n && src[q + 1] == closeChar && src[q + 2] == '}') {
                    endMinus = true;
                    ++q;
                } else if (src[q] == '+' && q + 2 < n && src[q + 1] == closeChar && src[q + 2] == '}') {
                    ++q;  // "+%}" disables trim_blocks for this tag
                }
                if (q + 1 < n && src[q] == closeChar && src[q + 1] == '}') {
                    toks.push_back({kind == '{' ? Tok::VarEnd : Tok::BlockEnd, "", q});
                    stripNext = endMinus;
                    trimNewline = kind == '%' && src[p] != '+';
                    pos = q + 2;
                    closed = true;
                    break;
                }
            }
            if (std::isalpha((unsigned char)c) || c == '_') {
                size_t s = p;
                while (p < n && (std::isalnum((unsigned char)src[p]) || src[p] == '_')) ++p;
                toks.push_back({Tok::Name, src.substr(s, p - s), s});
            } else if (std::isdigit((unsigned char)c)) {
                size_t s = p;
                bool isFloat = false;
                while (p < n && (std::isdigit((unsigned char)src[p]) || src[p] == '_')) ++p;
                if (p + 1 < n && src[p] == '.' && std::isdigit((unsigned char)src[p + 1])) {
                    isFloat = true;
                    ++p;
                    while (p < n && std::isdigit((unsigned char)src[p])) ++p;
                }
                if (p < n && (src[p] == 'e' || src[p] == 'E')) {
                    size_t q = p + 1;
                    if (q < n && (src[q] == '+' || src[q] == '-')) ++q;
                    if (q < n && std::isdigit((unsigned char)src[q])) {
                        isFloat = true;
                        p = q;
                        while (p < n && std::isdigit((unsigned char)src[p])) ++p;
                    }
                }
                std::string num = src.substr(s, p - s);
                std::erase(num, '_');
                toks.push_back({isFloat ? Tok::Float : Tok::Int, num, s});
            } else if (c == '\'' || c == '"') {
                size_t s = p;
                toks.push_back({Tok::String, readString(src, p), s});
            } else {
                static const char* twoChar[] = {"==", "!=", "<=", ">=", "//", "**"};
                std::string op;
                for (const char* t : twoChar)
                    if (src.compare(p, 2, t) == 0) op = t;
                if (op.empty()) {
                    if (std::string("+-*/%~<>=()[]{}.,:|").find(c) == std::string::npos)
                        syntaxError(src, p, std::string("unexpected character '") + c + "'");
                    op = std::string(1, c);
                }
                if (op == "(" || op == "[" || op == "{") ++depth;
                if (op == ")" || op == "]" || op == "}") --depth;
                toks.push_back({Tok::Op, op, p});
                p += op.size();
            }
        }
        if (!closed) syntaxError(src, tag, kind == '{' ? "missing '}}'" : "missing '%}'");
    }
    toks.push_back({Tok::Eof, "", n});
    return toks;
}

}  // namespace lmw::engine::jinja
