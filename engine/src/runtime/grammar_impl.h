#pragma once
// The grammar and vocabulary data behind lmw/grammar.h, shared by json_schema.cpp (which builds a
// grammar), token_trie.cpp (which builds a vocabulary) and grammar.cpp (which runs the matcher).
//
// A grammar is a context-free grammar over bytes: rules are alternatives of sequences; a sequence
// item is a byte class, a rule, or a bounded repetition of a rule (the counter lives in the stack
// frame, so maxLength / maxItems cost no states). Flattened into arrays for the hot loop.
#include <cstdint>
#include <string>
#include <vector>

namespace lmw::engine::grammar {

struct ByteSet {
    uint64_t w[4] = {0, 0, 0, 0};
    bool has(uint8_t b) const { return (w[b >> 6] >> (b & 63)) & 1; }
    void set(int b) { w[b >> 6] |= uint64_t(1) << (b & 63); }
    void setRange(int lo, int hi) {
        for (int b = lo; b <= hi; ++b) set(b);
    }
    bool operator==(const ByteSet& o) const {
        return w[0] == o.w[0] && w[1] == o.w[1] && w[2] == o.w[2] && w[3] == o.w[3];
    }
    bool intersects(const ByteSet& o) const {
        return (w[0] & o.w[0]) | (w[1] & o.w[1]) | (w[2] & o.w[2]) | (w[3] & o.w[3]);
    }
};

// StringChars: min..max characters of a JSON string body (UTF-8 or escapes), matched by the small
// automaton below instead of rules, so that a byte inside a string costs one frame, not a dozen.
enum class ItemKind : uint8_t { Bytes, Rule, Repeat, StringChars };

constexpr int32_t kUnbounded = INT32_MAX;

struct Item {
    ItemKind kind = ItemKind::Bytes;
    int32_t ref = 0;          // byte class id (Bytes) or rule id (Rule, Repeat)
    int32_t min = 1, max = 1; // Repeat / StringChars bounds
};

// Flat form: sequence s is items[seqBegin[s] .. seqBegin[s+1]); rule r's alternatives are the
// sequence ids alts[altBegin[r] .. altBegin[r+1]).
struct GrammarData {
    std::vector<ByteSet> classes;
    std::vector<bool> classTouchesSafe;  // the class holds a byte that can start a string-safe token
    std::vector<Item> items;
    std::vector<int32_t> seqBegin;  // size seqs + 1
    std::vector<int32_t> alts;
    std::vector<int32_t> altBegin;  // size rules + 1
    int32_t root = 0;               // rule id of the whole document
};

// Builds a grammar; rules may be reserved first and filled later (recursive $ref).
class GrammarBuilder {
public:
    int32_t byteClass(const ByteSet& set);
    Item bytes(const ByteSet& set) { return Item{ItemKind::Bytes, byteClass(set), 1, 1}; }
    Item byte(uint8_t b) {
        ByteSet s;
        s.set(b);
        return bytes(s);
    }
    static Item rule(int32_t r) { return Item{ItemKind::Rule, r, 1, 1}; }
    static Item repeat(int32_t r, int32_t min, int32_t max) { return Item{ItemKind::Repeat, r, min, max}; }
    static Item stringChars(int32_t min, int32_t max) { return Item{ItemKind::StringChars, 0, min, max}; }
    void appendLiteral(std::vector<Item>& seq, std::string_view text);

    int32_t newRule();
    void addAlt(int32_t rule, std::vector<Item> seq);
    int32_t ruleOf(std::vector<std::vector<Item>> alternatives);
    size_t altCount(int32_t rule) const { return m_rules[size_t(rule)].size(); }

    // Drops alternatives that can never finish (unproductive recursion) and flattens.
    // Throws lmw::Error(InvalidArgument) when the root itself can never finish.
    GrammarData finish(int32_t root);

private:
    std::vector<ByteSet> m_classes;
    std::vector<std::vector<std::vector<Item>>> m_rules;  // rule -> alternatives -> items
};

// One JSON string character as a byte automaton: state 0 = at a character boundary; next[s][b] is
// the state after byte b, kCharDone when b completes a character, kCharReject when b cannot come.
// Escapes are \" \\ \/ \b \f \n \r \t and \uXXXX (a surrogate only as a high+low pair).
constexpr uint8_t kCharDone = 0xFE, kCharReject = 0xFF;
struct StringCharDfa {
    static constexpr int kStates = 20;
    uint8_t next[kStates][256];
    bool touchesSafe[kStates];  // the state takes a byte that can start a string-safe token
};
const StringCharDfa& stringCharDfa();

// The bytes that can start a string-safe token (printable ASCII but '"' and '\\', UTF-8 lead bytes).
ByteSet stringSafeStartBytes();

// A byte trie in preorder: node i has byte[i] at depth[i] (1 = a child of the root); its subtree is
// nodes [i, next[i]); the tokens whose bytes end at node i are toks[tokBegin[i] .. tokBegin[i+1]).
struct TokenTrie {
    std::vector<uint8_t> byte;
    std::vector<uint16_t> depth;
    std::vector<int32_t> next;
    std::vector<int32_t> tokBegin;  // size nodes + 1
    std::vector<int32_t> toks;
    int maxDepth = 0;
};

// Safe tokens of at most this many characters are bitsets by length; longer ones are walked.
constexpr int kSafeBuckets = 32;

struct VocabData {
    int vocabSize = 0;
    std::vector<std::string> bytes;  // per token; empty = never allowed
    TokenTrie all;                   // every allowed token
    TokenTrie slow;                  // tokens outside safeUpTo[kSafeBuckets]: not string-safe, or long
    // The slow tokens that can follow a character boundary inside a string: a string character
    // or '"' first, and no control byte before the first '"' (the string must close before one).
    TokenTrie inString;
    // safeUpTo[k]: string-safe tokens of 1..k characters (a trailing incomplete UTF-8 character
    // counts as one: it takes a character of room) (k = 0..kSafeBuckets), maskWords each.
    std::vector<std::vector<uint32_t>> safeUpTo;
};

}  // namespace lmw::engine::grammar
