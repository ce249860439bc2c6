#pragma once
// Structured output by constrained decoding: a JSON Schema (subset) compiled to a byte-level
// grammar, a per-tokenizer vocabulary organised as a byte trie, and a per-request matcher that
// gives each decode step the bitset of tokens that keep the output a valid, completable document.
//
// Sharing: Grammar and TokenVocabulary are immutable after construction and safe to read from any
// thread (one vocabulary per tokenizer, one grammar per distinct schema). A GrammarMatcher is one
// request's state and belongs to one thread at a time (the engine thread).
//
// Output shape (the choices a grammar makes among the many texts a schema allows):
// - whitespace: at most GrammarOptions::maxWhitespace characters of [ \t\n\r] where JSON allows
//   whitespace, none before the first or after the last byte, so a model cannot loop on spaces;
// - numbers: at most 15 integer digits (integers fit an int64 exactly), 1..15 fraction digits and
//   a 1..2 digit exponent;
// - objects with `properties` emit the listed properties in the schema's order (required ones always,
//   optional ones may be left out) and no other keys, whatever additionalProperties says; an object
//   with no `properties` takes any keys, with values of the additionalProperties schema (any value
//   when it is true or absent);
// - `oneOf` is compiled as `anyOf` (give it disjoint branches); `enum`/`const` values are emitted
//   exactly as nlohmann::json::dump() writes them (compact).
// Unsupported keywords (pattern, format, minimum, ...) throw lmw::Error(InvalidArgument) naming the
// keyword and its JSON pointer, e.g. "unsupported JSON Schema keyword 'minimum' at /properties/age".
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace lmw::engine {

class Tokenizer;

struct GrammarOptions {
    int maxWhitespace = 4;  // longest whitespace run between JSON tokens (0 = compact output)
};

namespace grammar {
struct GrammarData;
struct VocabData;
}  // namespace grammar

// A compiled grammar. Build with fromJsonSchema / anyJsonObject / anyJson.
class Grammar {
public:
    // response_format json_schema. Throws lmw::Error(InvalidArgument) for an unsupported keyword,
    // a malformed schema, or a schema no finite JSON value satisfies.
    // Properties are emitted in the schema's order: document order for an ordered_json (parse the
    // request's schema with nlohmann::ordered_json to keep it), key order for a json (a std::map).
    static std::shared_ptr<const Grammar> fromJsonSchema(const nlohmann::ordered_json& schema,
                                                         const GrammarOptions& options = {});
    static std::shared_ptr<const Grammar> fromJsonSchema(const nlohmann::json& schema,
                                                         const GrammarOptions& options = {});
    // response_format json_object: any JSON object.
    static std::shared_ptr<const Grammar> anyJsonObject(const GrammarOptions& options = {});
    // Any JSON value (the empty schema).
    static std::shared_ptr<const Grammar> anyJson(const GrammarOptions& options = {});

    explicit Grammar(std::unique_ptr<grammar::GrammarData> data);
    ~Grammar();
    const grammar::GrammarData& data() const { return *m_data; }

private:
    std::unique_ptr<grammar::GrammarData> m_data;
};

// The token byte strings of one tokenizer, precomputed for masks: a byte trie over all grammar
// tokens, plus the "string-safe" tokens (valid UTF-8 with no quote, backslash or control byte),
// which inside a JSON string are allowed together as one precomputed bitset.
class TokenVocabulary {
public:
    // vocabSize: the model's logits width (may exceed the tokenizer's; ids past it are never allowed).
    // Special tokens and tokens with no bytes are never allowed inside the grammar.
    static std::shared_ptr<const TokenVocabulary> fromTokenizer(const Tokenizer& tokenizer, int vocabSize = -1);
    // For tests: token i is bytes[i]; an empty string is a token the grammar never allows.
    static std::shared_ptr<const TokenVocabulary> fromTokenBytes(std::vector<std::string> bytes);

    explicit TokenVocabulary(std::unique_ptr<grammar::VocabData> data);
    ~TokenVocabulary();
    int vocabSize() const;
    int maskWords() const { return (vocabSize() + 31) / 32; }  // uint32 words of a token mask
    const std::string& tokenBytes(int32_t id) const;
    const grammar::VocabData& data() const { return *m_data; }

private:
    std::unique_ptr<grammar::VocabData> m_data;
};

// One request's position in the grammar: a pushdown automaton over bytes (a set of persistent
// stacks, so copying and advancing are cheap). Copyable: a copy is an independent state.
class GrammarMatcher {
public:
    // endTokens: EOS / stop ids, allowed exactly when the document is complete.
    GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab,
                   std::vector<int32_t> endTokens);
    ~GrammarMatcher();
    GrammarMatcher(const GrammarMatcher&);
    GrammarMatcher& operator=(const GrammarMatcher&);

    // Advances by the token's bytes. False (state unchanged) if the grammar does not allow it.
    // An end token is accepted only when isComplete(); afterwards isTerminated() and nothing more is.
    bool accept(int32_t token);
    // Advances by raw bytes (e.g. a forced prefix); false (state unchanged) if not allowed.
    bool acceptBytes(std::string_view bytes);
    // bits[maskWords()]: bit i of word i/32 set = token i allowed next. Not thread-safe per matcher
    // (uses the matcher's scratch), independent across matchers.
    void fillNextTokenMask(uint32_t* bits);
    // A full value has been produced; the end tokens are allowed (for a value that can still
    // continue, e.g. a top-level number, other tokens may be allowed too).
    bool isComplete() const;
    bool isTerminated() const { return m_terminated; }
    bool isEndToken(int32_t token) const;
    const TokenVocabulary& vocabulary() const { return *m_vocab; }

    struct Scratch;

private:
    std::shared_ptr<const Grammar> m_grammar;
    std::shared_ptr<const TokenVocabulary> m_vocab;
    std::vector<int32_t> m_endTokens;
    std::unique_ptr<Scratch> m_s;  // persistent stack pool, current leaves, mask scratch
    bool m_terminated = false;
};

}  // namespace lmw::engine
