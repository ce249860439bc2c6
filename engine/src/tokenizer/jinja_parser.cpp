// Jinja parser: recursive descent with Jinja2's operator precedence (lowest first):
// "x if c else y", or, and, not, comparisons / in / not in, + -, ~, * / // %, **, unary -, then
// postfix (.attr, [i], [a:b], (call)) with filters "|f" and tests "is t" binding tightest.
#include <cerrno>
#include <cstdlib>
#include <set>

#include "lmw/error.h"
#include "tokenizer/jinja_internal.h"

namespace lmw::engine::jinja {

namespace {

NodePtr makeNode(Node::Kind kind, size_t pos) {
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->pos = pos;
    return n;
}

class Parser {
public:
    Parser(const std::string& src, std::vector<Token> toks) : m_src(src), m_toks(std::move(toks)) {}

    Body parseTemplate() {
        std::string endTag;
        Body body = parseBody({}, endTag);
        return body;
    }

private:
    const std::string& m_src;
    std::vector<Token> m_toks;
    size_t m_i = 0;

    [[noreturn]] void fail(size_t pos, const std::string& what) const {
        throw Error(ErrorCode::InvalidArgument,
                    "chat template syntax error at " + describePosition(m_src, pos) + ": " + what);
    }
    const Token& peek(size_t ahead = 0) const { return m_toks[std::min(m_i + ahead, m_toks.size() - 1)]; }
    const Token& next() { return m_toks[std::min(m_i++, m_toks.size() - 1)]; }
    bool isOp(const char* op, size_t ahead = 0) const { return peek(ahead).type == Tok::Op && peek(ahead).text == op; }
    bool isName(const char* name, size_t ahead = 0) const {
        return peek(ahead).type == Tok::Name && peek(ahead).text == name;
    }
    void expectOp(const char* op) {
        if (!isOp(op)) fail(peek().pos, std::string("expected '") + op + "'" + found());
        ++m_i;
    }
    std::string expectName() {
        if (peek().type != Tok::Name) fail(peek().pos, "expected a name" + found());
        return next().text;
    }
    void expectBlockEnd() {
        if (peek().type != Tok::BlockEnd) fail(peek().pos, "expected '%}'" + found());
        ++m_i;
    }
    std::string found() const {
        const Token& t = peek();
        switch (t.type) {
            case Tok::Eof: return ", found end of template";
            case Tok::BlockEnd: return ", found '%}'";
            case Tok::VarEnd: return ", found '}}'";
            default: return ", found '" + t.text + "'";
        }
    }

    // Parses nodes until a block tag whose keyword is in `ends`; leaves that keyword in `endTag`
    // with the parser positioned after the keyword (the caller parses the rest of that tag).
    Body parseBody(const std::set<std::string>& ends, std::string& endTag) {
        Body body;
        while (true) {
            const Token& t = peek();
            if (t.type == Tok::Eof) {
                if (!ends.empty()) {
                    std::string want;
                    for (auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
                    fail(t.pos, "unexpected end of template, expected " + want);
                }
                endTag.clear();
                return body;
            }
            if (t.type == Tok::Text) {
                auto nd = makeNode(Node::Text, t.pos);
                nd->text = t.text;
                body.push_back(nd);
                ++m_i;
            } else if (t.type == Tok::VarBegin) {
                ++m_i;
                auto nd = makeNode(Node::Output, t.pos);
                nd->expr = parseExpr();
                if (peek().type != Tok::VarEnd) fail(peek().pos, "expected '}}'" + found());
                ++m_i;
                body.push_back(nd);
            } else if (t.type == Tok::BlockBegin) {
                ++m_i;
                const Token& kw = peek();
                if (kw.type != Tok::Name) fail(kw.pos, "expected a tag name" + found());
                if (ends.count(kw.text)) {
                    ++m_i;
                    endTag = kw.text;
                    return body;
                }
                body.push_back(parseTag());
            } else {
                fail(t.pos, "unexpected token");
            }
        }
    }

    NodePtr parseTag() {
        const Token kw = next();
        const std::string& k = kw.text;
        if (k == "if") return parseIf(kw.pos);
        if (k == "for") return parseFor(kw.pos);
        if (k == "set") return parseSet(kw.pos);
        if (k == "macro") return parseMacro(kw.pos);
        if (k == "break" || k == "continue") {
            expectBlockEnd();
            return makeNode(k == "break" ? Node::Break : Node::Continue, kw.pos);
        }
        if (k == "generation" || k == "endgeneration") {  // HF training markers: no output effect
            expectBlockEnd();
            auto nd = makeNode(Node::Text, kw.pos);
            return nd;
        }
        fail(kw.pos, "unknown or misplaced tag '" + k + "'");
    }

    NodePtr parseIf(size_t pos) {
        auto nd = makeNode(Node::If, pos);
        ExprPtr cond = parseExpr();
        expectBlockEnd();
        while (true) {
            std::string endTag;
            Body body = parseBody({"elif", "else", "endif"}, endTag);
            nd->branches.emplace_back(cond, std::move(body));
            if (endTag == "elif") {
                cond = parseExpr();
                expectBlockEnd();
                continue;
            }
            expectBlockEnd();
            if (endTag == "else") {
                nd->elseBody = parseBody({"endif"}, endTag);
                expectBlockEnd();
            }
            return nd;
        }
    }

    NodePtr parseFor(size_t pos) {
        auto nd = makeNode(Node::For, pos);
        nd->targets.push_back(expectName());
        while (isOp(",")) {
            ++m_i;
            nd->targets.push_back(expectName());
        }
        if (!isName("in")) fail(peek().pos, "expected 'in'" + found());
        ++m_i;
        nd->expr = parseOr(false);  // no "x if c else y" here: a trailing "if" filters the loop
        if (isName("if")) {
            ++m_i;
            nd->filter = parseOr(true);
        }
        if (isName("recursive")) fail(peek().pos, "recursive loops are not supported");
        expectBlockEnd();
        std::string endTag;
        nd->body = parseBody({"else", "endfor"}, endTag);
        expectBlockEnd();
        if (endTag == "else") {
            nd->elseBody = parseBody({"endfor"}, endTag);
            expectBlockEnd();
        }
        return nd;
    }

    NodePtr parseSet(size_t pos) {
        auto nd = makeNode(Node::Set, pos);
        nd->targets.push_back(expectName());
        if (isOp(".")) {
            ++m_i;
            nd->attr = expectName();
        } else {
            while (isOp(",")) {
                ++m_i;
                nd->targets.push_back(expectName());
            }
        }
        if (peek().type == Tok::BlockEnd && nd->attr.empty() && nd->targets.size() == 1) {
            ++m_i;
            nd->kind = Node::SetBlock;
            std::string endTag;
            nd->body = parseBody({"endset"}, endTag);
            expectBlockEnd();
            return nd;
        }
        expectOp("=");
        nd->expr = parseTupleOrExpr();
        expectBlockEnd();
        return nd;
    }

    NodePtr parseMacro(size_t pos) {
        auto nd = makeNode(Node::Macro, pos);
        nd->targets.push_back(expectName());
        expectOp("(");
        while (!isOp(")")) {
            nd->targets.push_back(expectName());
            if (isOp("=")) {
                ++m_i;
                nd->defaults.push_back(parseExpr());
            } else {
                nd->defaults.push_back(nullptr);
            }
            if (!isOp(",")) break;
            ++m_i;
        }
        expectOp(")");
        expectBlockEnd();
        std::string endTag;
        nd->body = parseBody({"endmacro"}, endTag);
        if (peek().type == Tok::Name) ++m_i;  // {% endmacro name %}
        expectBlockEnd();
        return nd;
    }

    // ---- expressions ----
    ExprPtr make(Expr::Kind k, size_t pos) {
        auto e = std::make_shared<Expr>();
        e->kind = k;
        e->pos = pos;
        return e;
    }

    // "a, b" without brackets (set x, y = 1, 2) becomes a tuple.
    ExprPtr parseTupleOrExpr() {
        ExprPtr first = parseExpr();
        if (!isOp(",")) return first;
        auto t = make(Expr::Tuple, first->pos);
        t->args.push_back(first);
        while (isOp(",")) {
            ++m_i;
            t->args.push_back(parseExpr());
        }
        return t;
    }

    ExprPtr parseExpr() {
        ExprPtr e = parseOr(true);
        if (isName("if")) {
            auto c = make(Expr::Cond, peek().pos);
            ++m_i;
            c->a = parseOr(true);  // condition
            c->b = e;              // value when true
            if (isName("else")) {
                ++m_i;
                c->c = parseExpr();
            }
            return c;
        }
        return e;
    }

    ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, size_t pos) {
        auto e = make(Expr::Binary, pos);
        e->name = op;
        e->a = std::move(l);
        e->b = std::move(r);
        return e;
    }

    ExprPtr parseOr(bool) {
        ExprPtr l = parseAnd();
        while (isName("or")) {
            size_t pos = next().pos;
            l = binary("or", l, parseAnd(), pos);
        }
        return l;
    }
    ExprPtr parseAnd() {
        ExprPtr l = parseNot();
        while (isName("and")) {
            size_t pos = next().pos;
            l = binary("and", l, parseNot(), pos);
        }
        return l;
    }
    ExprPtr parseNot() {
        if (isName("not")) {
            auto e = make(Expr::Unary, next().pos);
            e->name = "not";
            e->a = parseNot();
            return e;
        }
        return parseCompare();
    }
    ExprPtr parseCompare() {
        ExprPtr l = parseAdd();
        while (true) {
            const Token& t = peek();
            std::string op;
            if (t.type == Tok::Op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == ">" ||
                                      t.text == "<=" || t.text == ">=")) {
                op = t.text;
                ++m_i;
            } else if (isName("in")) {
                op = "in";
                ++m_i;
            } else if (isName("not") && isName("in", 1)) {
                op = "not in";
                m_i += 2;
            } else {
                return l;
            }
            l = binary(op, l, parseAdd(), t.pos);
        }
    }
    ExprPtr parseAdd() {
        ExprPtr l = parseConcat();
        while (isOp("+") || isOp("-")) {
            const Token& t = next();
            l = binary(t.text, l, parseConcat(), t.pos);
        }
        return l;
    }
    ExprPtr parseConcat() {
        ExprPtr l = parseMul();
        while (isOp("~")) {
            size_t pos = next().pos;
            l = binary("~", l, parseMul(), pos);
        }
        return l;
    }
    ExprPtr parseMul() {
        ExprPtr l = parsePow();
        while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
            const Token& t = next();
            l = binary(t.text, l, parsePow(), t.pos);
        }
        return l;
    }
    ExprPtr parsePow() {
        ExprPtr l = parseUnary();
        while (isOp("**")) {
            size_t pos = next().pos;
            l = binary("**", l, parseUnary(), pos);
        }
        return l;
    }
    ExprPtr parseUnary() {
        if (isOp("-") || isOp("+")) {
            const Token& t = next();
            auto e = make(Expr::Unary, t.pos);
            e->name = t.text;
            e->a = parseUnary();
            return e;
        }
        return parseFilters(parsePostfix(parsePrimary()));
    }

    void parseCallArgs(Expr& e) {
        expectOp("(");
        while (!isOp(")")) {
            if (peek().type == Tok::Name && isOp("=", 1)) {
                std::string key = next().text;
                ++m_i;
                e.kwargs.emplace_back(key, parseExpr());
            } else {
                e.args.push_back(parseExpr());
            }
            if (!isOp(",")) break;
            ++m_i;
        }
        expectOp(")");
    }

    ExprPtr parseFilters(ExprPtr e) {
        while (true) {
            if (isOp("|")) {
                ++m_i;
                auto f = make(Expr::Filter, peek().pos);
                f->name = expectName();
                f->a = e;
                if (isOp("(")) parseCallArgs(*f);
                e = parsePostfix(f);
            } else if (isName("is")) {
                auto t = make(Expr::Test, next().pos);
                if (isName("not")) {
                    ++m_i;
                    t->negate = true;
                }
                // "is none" / "is true" etc: the test name may be a keyword-looking name.
                t->name = expectName();
                t->a = e;
                if (isOp("(")) {
                    parseCallArgs(*t);
                } else if (peek().type == Tok::String || peek().type == Tok::Int || peek().type == Tok::Float) {
                    t->args.push_back(parsePrimary());  // "is divisibleby 3", "is sameas 'x'"
                }
                e = t;
            } else {
                return e;
            }
        }
    }

    ExprPtr parsePostfix(ExprPtr e) {
        while (true) {
            if (isOp(".")) {
                ++m_i;
                auto a = make(Expr::Attr, peek().pos);
                if (peek().type == Tok::Int) a->name = next().text;  // tuple.0
                else a->name = expectName();
                a->a = e;
                e = a;
            } else if (isOp("[")) {
                size_t pos = next().pos;
                ExprPtr lo, hi, step;
                bool slice = false;
                if (!isOp(":")) lo = parseExpr();
                if (isOp(":")) {
                    slice = true;
                    ++m_i;
                    if (!isOp("]") && !isOp(":")) hi = parseExpr();
                    if (isOp(":")) {
                        ++m_i;
                        if (!isOp("]")) step = parseExpr();
                    }
                }
                expectOp("]");
                auto x = make(slice ? Expr::Slice : Expr::Index, pos);
                x->a = e;
                x->b = lo;
                x->c = hi;
                x->step = step;
                e = x;
            } else if (isOp("(")) {
                auto c = make(Expr::Call, peek().pos);
                c->a = e;
                parseCallArgs(*c);
                e = c;
            } else {
                return e;
            }
        }
    }

    ExprPtr parsePrimary() {
        const Token& t = peek();
        switch (t.type) {
            case Tok::String: {
                auto e = make(Expr::Literal, t.pos);
                std::string s = next().text;
                while (peek().type == Tok::String) s += next().text;  // adjacent literals concatenate
                e->literal = s;
                return e;
            }
            case Tok::Int: {
                auto e = make(Expr::Literal, t.pos);
                // std::stoll throws std::out_of_range past 2^63: a syntax error, not a crash.
                const Token& lit = next();
                errno = 0;
                const long long v = std::strtoll(lit.text.c_str(), nullptr, 10);
                if (errno == ERANGE) fail(lit.pos, "integer literal out of range");
                e->literal = int64_t(v);
                return e;
            }
            case Tok::Float: {
                auto e = make(Expr::Literal, t.pos);
                e->literal = std::strtod(next().text.c_str(), nullptr);  // 1e999 is inf, as in Python
                return e;
            }
            case Tok::Name: {
                const std::string& n = t.text;
                auto e = make(Expr::Literal, t.pos);
                if (n == "true" || n == "True") e->literal = true;
                else if (n == "false" || n == "False") e->literal = false;
                else if (n == "none" || n == "None") e->literal = nullptr;
                else {
                    e->kind = Expr::Name;
                    e->name = n;
                }
                ++m_i;
                return e;
            }
            case Tok::Op:
                if (t.text == "(") {
                    size_t pos = next().pos;
                    if (isOp(")")) {
                        ++m_i;
                        return make(Expr::Tuple, pos);
                    }
                    ExprPtr first = parseExpr();
                    if (isOp(",")) {
                        auto tup = make(Expr::Tuple, pos);
                        tup->args.push_back(first);
                        while (isOp(",")) {
                            ++m_i;
                            if (isOp(")")) break;
                            tup->args.push_back(parseExpr());
                        }
                        expectOp(")");
                        return tup;
                    }
                    expectOp(")");
                    return first;
                }
                if (t.text == "[") {
                    auto e = make(Expr::List, next().pos);
                    while (!isOp("]")) {
                        e->args.push_back(parseExpr());
                        if (!isOp(",")) break;
                        ++m_i;
                    }
                    expectOp("]");
                    return e;
                }
                if (t.text == "{") {
                    auto e = make(Expr::Dict, next().pos);
                    while (!isOp("}")) {
                        e->args.push_back(parseExpr());
                        expectOp(":");
                        e->values.push_back(parseExpr());
                        if (!isOp(",")) break;
                        ++m_i;
                    }
                    expectOp("}");
                    return e;
                }
                break;
            default: break;
        }
        fail(t.pos, "expected an expression" + found());
    }
};

}  // namespace

std::shared_ptr<const Template> parse(const std::string& source) {
    auto t = std::make_shared<Template>();
    t->source = source;
    Parser p(t->source, lex(t->source));
    t->body = p.parseTemplate();
    return t;
}

}  // namespace lmw::engine::jinja
