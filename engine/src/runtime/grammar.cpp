// The grammar builder and the matcher: a pushdown automaton over bytes whose state is a set of
// persistent stacks (nodes in a pool, sharing their parents), and the token mask as a DFS over the
// vocabulary's byte trie that drops a whole subtree at the first rejected byte.
#include <algorithm>
#include <cstring>

#include "lmw/error.h"
#include "lmw/grammar.h"
#include "runtime/grammar_impl.h"

namespace lmw::engine {

using namespace grammar;

// ---- builder -------------------------------------------------------------------------------

namespace grammar {

ByteSet stringSafeStartBytes() {
    ByteSet s;
    s.setRange(0x20, 0x7F);
    s.w['"' >> 6] &= ~(uint64_t(1) << ('"' & 63));
    s.w['\\' >> 6] &= ~(uint64_t(1) << ('\\' & 63));
    s.setRange(0xC2, 0xF4);
    return s;
}

const StringCharDfa& stringCharDfa() {
    static const StringCharDfa dfa = [] {
        enum : uint8_t { Start, C1, C2, E0, ED, C3, F0, F4, Esc, U, UD, H3, H2, H1, HS2, HS1, LB, LU, LD, LC };
        StringCharDfa d;
        std::memset(d.next, kCharReject, sizeof d.next);
        auto on = [&](uint8_t from, int lo, int hi, uint8_t to) {
            for (int b = lo; b <= hi; ++b) d.next[from][b] = to;
        };
        auto hex = [&](uint8_t from, uint8_t to) {
            on(from, '0', '9', to);
            on(from, 'a', 'f', to);
            on(from, 'A', 'F', to);
        };
        on(Start, 0x20, 0x7F, kCharDone);
        d.next[Start]['"'] = kCharReject;
        d.next[Start]['\\'] = Esc;
        on(Start, 0xC2, 0xDF, C1);
        on(Start, 0xE0, 0xE0, E0);
        on(Start, 0xE1, 0xEC, C2);
        on(Start, 0xED, 0xED, ED);
        on(Start, 0xEE, 0xEF, C2);
        on(Start, 0xF0, 0xF0, F0);
        on(Start, 0xF1, 0xF3, C3);
        on(Start, 0xF4, 0xF4, F4);
        on(C1, 0x80, 0xBF, kCharDone);
        on(C2, 0x80, 0xBF, C1);
        on(E0, 0xA0, 0xBF, C1);
        on(ED, 0x80, 0x9F, C1);
        on(C3, 0x80, 0xBF, C2);
        on(F0, 0x90, 0xBF, C2);
        on(F4, 0x80, 0x8F, C2);
        for (int c : {'"', '\\', '/', 'b', 'f', 'n', 'r', 't'}) d.next[Esc][c] = kCharDone;
        d.next[Esc]['u'] = U;
        hex(U, H3);  // then the surrogate range D800-DFFF is taken out of it
        d.next[U]['d'] = d.next[U]['D'] = UD;
        on(UD, '0', '7', H2);
        on(UD, '8', '9', HS2);
        on(UD, 'a', 'b', HS2);
        on(UD, 'A', 'B', HS2);
        hex(H3, H2);
        hex(H2, H1);
        hex(H1, kCharDone);
        hex(HS2, HS1);
        hex(HS1, LB);
        d.next[LB]['\\'] = LU;
        d.next[LU]['u'] = LD;
        d.next[LD]['d'] = d.next[LD]['D'] = LC;
        on(LC, 'c', 'f', H2);
        on(LC, 'C', 'F', H2);
        const ByteSet safe = stringSafeStartBytes();
        for (int st = 0; st < StringCharDfa::kStates; ++st) {
            d.touchesSafe[st] = false;
            for (int b = 0; b < 256; ++b) d.touchesSafe[st] |= d.next[st][b] != kCharReject && safe.has(uint8_t(b));
        }
        return d;
    }();
    return dfa;
}

int32_t GrammarBuilder::byteClass(const ByteSet& set) {
    for (size_t i = 0; i < m_classes.size(); ++i)
        if (m_classes[i] == set) return int32_t(i);
    m_classes.push_back(set);
    return int32_t(m_classes.size() - 1);
}

void GrammarBuilder::appendLiteral(std::vector<Item>& seq, std::string_view text) {
    for (char c : text) seq.push_back(byte(uint8_t(c)));
}

int32_t GrammarBuilder::newRule() {
    m_rules.emplace_back();
    return int32_t(m_rules.size() - 1);
}

void GrammarBuilder::addAlt(int32_t rule, std::vector<Item> seq) { m_rules[size_t(rule)].push_back(std::move(seq)); }

int32_t GrammarBuilder::ruleOf(std::vector<std::vector<Item>> alternatives) {
    int32_t r = newRule();
    m_rules[size_t(r)] = std::move(alternatives);
    return r;
}

GrammarData GrammarBuilder::finish(int32_t root) {
    // A rule is productive when one alternative can finish; recursion that never bottoms out (a
    // required self-reference) is not, and its alternatives are dropped so that every state the
    // matcher can reach still has a completion.
    std::vector<char> prod(m_rules.size(), 0);
    auto itemOk = [&](const Item& it) {
        switch (it.kind) {
        case ItemKind::Bytes: return m_classes[size_t(it.ref)].intersects(ByteSet{{~0ull, ~0ull, ~0ull, ~0ull}});
        case ItemKind::Rule: return prod[size_t(it.ref)] != 0;
        case ItemKind::Repeat: return it.min == 0 || prod[size_t(it.ref)] != 0;
        case ItemKind::StringChars: return true;
        }
        return false;
    };
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < m_rules.size(); ++r) {
            if (prod[r]) continue;
            for (const auto& alt : m_rules[r])
                if (std::all_of(alt.begin(), alt.end(), itemOk)) {
                    prod[r] = 1;
                    changed = true;
                    break;
                }
        }
    }
    if (!prod[size_t(root)])
        throw Error(ErrorCode::InvalidArgument, "JSON schema: no finite JSON value satisfies the schema");

    GrammarData g;
    g.classes = m_classes;
    const ByteSet safe = stringSafeStartBytes();
    for (const auto& c : g.classes) g.classTouchesSafe.push_back(c.intersects(safe));
    for (size_t r = 0; r < m_rules.size(); ++r) {
        g.altBegin.push_back(int32_t(g.alts.size()));
        for (auto alt : m_rules[r]) {
            if (!std::all_of(alt.begin(), alt.end(), itemOk)) continue;
            for (auto& it : alt)
                if (it.kind == ItemKind::Repeat && !prod[size_t(it.ref)]) it.max = 0;
            g.alts.push_back(int32_t(g.seqBegin.size()));
            g.seqBegin.push_back(int32_t(g.items.size()));
            g.items.insert(g.items.end(), alt.begin(), alt.end());
        }
    }
    g.altBegin.push_back(int32_t(g.alts.size()));
    g.seqBegin.push_back(int32_t(g.items.size()));
    g.root = root;
    return g;
}

}  // namespace grammar

Grammar::Grammar(std::unique_ptr<GrammarData> data) : m_data(std::move(data)) {}
Grammar::~Grammar() = default;

// ---- matcher -------------------------------------------------------------------------------

namespace {

constexpr int32_t kAccept = -1;      // a leaf meaning "the whole document is done"
constexpr int kMaxExpandDepth = 400; // a path deeper than this without a byte is left recursion

// A stack frame: the position `item` in a sequence ending at `end`; `count` repetitions of a
// Repeat item (characters of a StringChars item) done so far; `sub` the string character automaton
// state; `parent` the frame that called this sequence (-1: the root).
struct Node {
    int32_t item, end, count, parent;
    uint8_t sub;
};

}  // namespace

struct GrammarMatcher::Scratch {
    std::vector<Node> pool;
    std::vector<int32_t> leaves;  // committed state: frames whose item is a byte class, or kAccept
    size_t compactAt = 1 << 15;
    // Work space of advance / the mask walk.
    std::vector<int32_t> buf;
    std::vector<int32_t> popped;
    std::vector<int32_t> spanBegin, spanEnd, poolAfter;
};

namespace {

class Pda {
public:
    Pda(const GrammarData& g, GrammarMatcher::Scratch& s) : m_g(g), m_s(s) {}

    int32_t node(int32_t item, int32_t end, int32_t count, int32_t parent, uint8_t sub = 0) {
        m_s.pool.push_back(Node{item, end, count, parent, sub});
        return int32_t(m_s.pool.size() - 1);
    }

    void pushRule(int32_t rule, int32_t parent, size_t outBegin, int depth) {
        for (int32_t a = m_g.altBegin[size_t(rule)]; a < m_g.altBegin[size_t(rule) + 1]; ++a) {
            int32_t seq = m_g.alts[size_t(a)];
            expand(node(m_g.seqBegin[size_t(seq)], m_g.seqBegin[size_t(seq) + 1], 0, parent), outBegin, depth + 1);
        }
    }

    void addLeaf(int32_t id, size_t outBegin) {
        auto& buf = m_s.buf;
        if (id == kAccept) {
            for (size_t i = outBegin; i < buf.size(); ++i)
                if (buf[i] == kAccept) return;
        } else {
            const Node n = m_s.pool[size_t(id)];
            for (size_t i = outBegin; i < buf.size(); ++i) {
                if (buf[i] == kAccept) continue;
                const Node& o = m_s.pool[size_t(buf[i])];
                if (o.item == n.item && o.parent == n.parent && o.count == n.count && o.sub == n.sub) return;
            }
        }
        buf.push_back(id);
    }

    // Follows frame `id` to the frames that wait for a byte (the closure), appending them to buf.
    void expand(int32_t id, size_t outBegin, int depth) {
        if (depth > kMaxExpandDepth) return;
        const Node n = m_s.pool[size_t(id)];
        if (n.item == n.end) {
            if (n.parent < 0) return addLeaf(kAccept, outBegin);
            // Every child of one parent continues the same way: follow the parent only once.
            if (std::find(m_s.popped.begin(), m_s.popped.end(), n.parent) != m_s.popped.end()) return;
            m_s.popped.push_back(n.parent);
            const Node p = m_s.pool[size_t(n.parent)];
            const Item& it = m_g.items[size_t(p.item)];
            if (it.kind == ItemKind::Rule) return expand(node(p.item + 1, p.end, 0, p.parent), outBegin, depth + 1);
            int32_t c = p.count + 1;
            if (c < it.max) pushRule(it.ref, node(p.item, p.end, c, p.parent), outBegin, depth);
            if (c >= it.min) expand(node(p.item + 1, p.end, 0, p.parent), outBegin, depth + 1);
            return;
        }
        const Item& it = m_g.items[size_t(n.item)];
        switch (it.kind) {
        case ItemKind::Bytes: return addLeaf(id, outBegin);
        case ItemKind::Rule: return pushRule(it.ref, id, outBegin, depth);
        case ItemKind::Repeat:
            if (n.count < it.max) pushRule(it.ref, id, outBegin, depth);
            if (n.count >= it.min) expand(node(n.item + 1, n.end, 0, n.parent), outBegin, depth + 1);
            return;
        case ItemKind::StringChars:
            if (n.count < it.max || n.sub != 0) addLeaf(id, outBegin);
            if (n.count >= it.min && n.sub == 0) expand(node(n.item + 1, n.end, 0, n.parent), outBegin, depth + 1);
            return;
        }
    }

    // The state after byte b from the leaves buf[begin, end), appended to buf; false if none.
    bool advance(size_t begin, size_t end, uint8_t b) {
        const size_t outBegin = m_s.buf.size();
        m_s.popped.clear();
        for (size_t i = begin; i < end; ++i) {
            int32_t id = m_s.buf[i];
            if (id == kAccept) continue;
            const Node n = m_s.pool[size_t(id)];
            const Item& it = m_g.items[size_t(n.item)];
            if (it.kind == ItemKind::StringChars) {
                const uint8_t next = m_dfa.next[n.sub][b];
                if (next == kCharReject) continue;
                if (next == kCharDone) expand(node(n.item, n.end, n.count + 1, n.parent), outBegin, 0);
                else addLeaf(node(n.item, n.end, n.count, n.parent, next), outBegin);
                continue;
            }
            if (!m_g.classes[size_t(it.ref)].has(b)) continue;
            expand(node(n.item + 1, n.end, 0, n.parent), outBegin, 0);
        }
        return m_s.buf.size() > outBegin;
    }

    // Sets the bits of the trie's tokens that the committed state (copied to buf[0, L)) accepts.
    void walk(const TokenTrie& t, uint32_t* bits) {
        auto& s = m_s;
        const size_t levels = size_t(t.maxDepth) + 1;
        if (s.spanBegin.size() < levels) {
            s.spanBegin.resize(levels);
            s.spanEnd.resize(levels);
            s.poolAfter.resize(levels);
        }
        s.spanBegin[0] = 0;
        s.spanEnd[0] = int32_t(s.buf.size());
        s.poolAfter[0] = int32_t(s.pool.size());
        const size_t n = t.byte.size();
        for (size_t i = 0; i < n;) {
            const int d = t.depth[i];
            // Back to the state of this node's parent.
            s.buf.resize(size_t(s.spanEnd[size_t(d - 1)]));
            s.pool.resize(size_t(s.poolAfter[size_t(d - 1)]));
            if (!advance(size_t(s.spanBegin[size_t(d - 1)]), size_t(s.spanEnd[size_t(d - 1)]), t.byte[i])) {
                i = size_t(t.next[i]);
                continue;
            }
            s.spanBegin[size_t(d)] = s.spanEnd[size_t(d - 1)];
            s.spanEnd[size_t(d)] = int32_t(s.buf.size());
            s.poolAfter[size_t(d)] = int32_t(s.pool.size());
            for (int32_t k = t.tokBegin[i]; k < t.tokBegin[i + 1]; ++k) {
                const int32_t tok = t.toks[size_t(k)];
                bits[tok >> 5] |= 1u << (tok & 31);
            }
            ++i;
        }
        s.buf.resize(size_t(s.spanEnd[0]));
        s.pool.resize(size_t(s.poolAfter[0]));
    }

private:
    const GrammarData& m_g;
    GrammarMatcher::Scratch& m_s;
    const StringCharDfa& m_dfa = stringCharDfa();
};

// Copies the frames the leaves reach into a fresh pool: accepted tokens leave dead frames behind.
void compact(GrammarMatcher::Scratch& s) {
    std::vector<int32_t> remap(s.pool.size(), -2);
    std::vector<Node> fresh;
    std::vector<int32_t> chain;
    for (int32_t& leaf : s.leaves) {
        if (leaf == kAccept) continue;
        chain.clear();
        for (int32_t id = leaf; id >= 0 && remap[size_t(id)] == -2; id = s.pool[size_t(id)].parent) chain.push_back(id);
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
            Node n = s.pool[size_t(*it)];
            if (n.parent >= 0) n.parent = remap[size_t(n.parent)];
            fresh.push_back(n);
            remap[size_t(*it)] = int32_t(fresh.size() - 1);
        }
        leaf = remap[size_t(leaf)];
    }
    s.pool = std::move(fresh);
    s.compactAt = std::max<size_t>(1 << 15, s.pool.size() * 4);
}

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab,
                               std::vector<int32_t> endTokens)
    : m_grammar(std::move(grammar)), m_vocab(std::move(vocab)), m_endTokens(std::move(endTokens)),
      m_s(std::make_unique<Scratch>()) {
    if (!m_grammar || !m_vocab) throw Error(ErrorCode::InvalidArgument, "GrammarMatcher: no grammar or vocabulary");
    Pda pda(m_grammar->data(), *m_s);
    pda.pushRule(m_grammar->data().root, -1, 0, 0);
    m_s->leaves = m_s->buf;
    m_s->buf.clear();
}

GrammarMatcher::~GrammarMatcher() = default;

GrammarMatcher::GrammarMatcher(const GrammarMatcher& o)
    : m_grammar(o.m_grammar), m_vocab(o.m_vocab), m_endTokens(o.m_endTokens),
      m_s(std::make_unique<Scratch>(*o.m_s)), m_terminated(o.m_terminated) {}

GrammarMatcher& GrammarMatcher::operator=(const GrammarMatcher& o) {
    if (this != &o) {
        m_grammar = o.m_grammar;
        m_vocab = o.m_vocab;
        m_endTokens = o.m_endTokens;
        m_s = std::make_unique<Scratch>(*o.m_s);
        m_terminated = o.m_terminated;
    }
    return *this;
}

bool GrammarMatcher::isEndToken(int32_t token) const {
    return std::find(m_endTokens.begin(), m_endTokens.end(), token) != m_endTokens.end();
}

bool GrammarMatcher::isComplete() const {
    return std::find(m_s->leaves.begin(), m_s->leaves.end(), kAccept) != m_s->leaves.end();
}

bool GrammarMatcher::acceptBytes(std::string_view bytes) {
    if (m_terminated) return false;
    Scratch& s = *m_s;
    Pda pda(m_grammar->data(), s);
    const size_t poolStart = s.pool.size();
    s.buf = s.leaves;
    for (char c : bytes) {
        const size_t end = s.buf.size();
        if (!pda.advance(0, end, uint8_t(c))) {
            s.pool.resize(poolStart);
            s.buf.clear();
            return false;
        }
        s.buf.erase(s.buf.begin(), s.buf.begin() + std::ptrdiff_t(end));
    }
    s.leaves.swap(s.buf);
    s.buf.clear();
    if (s.pool.size() > s.compactAt) compact(s);
    return true;
}

bool GrammarMatcher::accept(int32_t token) {
    if (m_terminated) return false;
    if (isEndToken(token)) {
        if (!isComplete()) return false;
        m_terminated = true;
        return true;
    }
    const std::string& b = m_vocab->tokenBytes(token);
    if (b.empty()) return false;
    return acceptBytes(b);
}

void GrammarMatcher::fillNextTokenMask(uint32_t* bits) {
    const VocabData& v = m_vocab->data();
    const GrammarData& g = m_grammar->data();
    const int words = m_vocab->maskWords();
    std::memset(bits, 0, sizeof(uint32_t) * size_t(words));
    if (m_terminated) return;
    Scratch& s = *m_s;
    if (isComplete())
        for (int32_t t : m_endTokens)
            if (t >= 0 && t < v.vocabSize) bits[t >> 5] |= 1u << (t & 31);

    // Fast path: when every frame waiting for a byte is either at a character boundary of a JSON
    // string or cannot take a string-safe token's first byte at all, the short string-safe tokens
    // are exactly those with at most `room` characters, a precomputed bitset; only the others
    // (quotes, escapes, control bytes, long tokens) need the walk.
    int64_t room = -1;
    bool fast = true;
    const StringCharDfa& dfa = stringCharDfa();
    // At a character boundary of a string (or its closing quote) only tokens in v.inString can be taken.
    bool atBoundary = true;
    ByteSet quote;
    quote.set('"');
    for (int32_t id : s.leaves) {
        if (id == kAccept) continue;
        const Node& n = s.pool[size_t(id)];
        const Item& it = g.items[size_t(n.item)];
        if (it.kind == ItemKind::StringChars) {
            if (n.sub == 0) {
                room = std::max<int64_t>(room, int64_t(it.max) - n.count);
                continue;
            }
            atBoundary = false;
            if (!dfa.touchesSafe[n.sub]) continue;  // inside a UTF-8 character: continuation bytes only
            fast = false;
            break;
        }
        if (g.classTouchesSafe[size_t(it.ref)]) {
            fast = false;
            break;
        }
        atBoundary &= g.classes[size_t(it.ref)] == quote;
    }
    Pda pda(g, s);
    s.buf = s.leaves;
    if (fast) {
        if (room > 0) {
            const uint32_t* safe = v.safeUpTo[size_t(std::min<int64_t>(room, kSafeBuckets))].data();
            for (int w = 0; w < words; ++w) bits[w] |= safe[w];
        }
        pda.walk(atBoundary && room > 0 ? v.inString : v.slow, bits);
    } else {
        pda.walk(v.all, bits);
    }
    s.buf.clear();
}

}  // namespace lmw::engine
