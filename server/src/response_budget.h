#pragma once
// Memory bounds of answers, decided before any work is done: an upper bound of a response's bytes
// from n, max_tokens and top_logprobs (a 400 over the per-request limit), a budget of the bytes
// that answers in flight may hold (a 429 when it is spent), and a byte bound on prompts that
// rejects a prompt that cannot fit the context without tokenizing it.
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "lmw/tokenizer.h"

namespace lmw::server {

struct TokenFacts {
    size_t maxBytes = 1;  // longest token text in bytes (special tokens' text included)
    size_t maxJson = 6;   // longest token as JSON string content (escapes; U+FFFD for stray bytes)
};
TokenFacts tokenFacts(const engine::Tokenizer& tok);

// Prompts longer than this many bytes have more than `tokens` tokens, so they are refused before
// tokenizing. Sound because every token of the supported tokenizers covers at most maxBytes bytes
// of normalized text (byte-level BPE and byte-fallback sentencepiece never merge unknown text into
// one token), and Unicode normalization (NFC/NFKC) shrinks text at most 4x (one 4-byte code point
// such as U+1D400 becomes the 1-byte "A"). A normalizer that deletes text (sentencepiece's
// remove_extra_whitespaces, used by none of the supported families) would break the bound.
size_t promptByteBound(const TokenFacts& facts, int tokens);

struct AnswerShape {
    bool chat = true;
    bool stream = false;
    int choices = 1;
    int64_t tokens = 0;      // the choices' max new tokens, summed
    bool logprobs = false;
    int topLogprobs = 0;
    size_t envelope = 0;     // stream: one chunk without text; whole: one choice without text
    size_t fixed = 0;        // once per answer (whole: the body around the choices; echo)
};
// Upper bound of the bytes of such an answer (a stream counts one chunk per token).
size_t responseBytesBound(const AnswerShape& a, const TokenFacts& facts);

// Bytes reserved by answers in flight. One request alone is always admitted (after the
// per-request limit), so a lone request never waits for a budget it can never get.
class ResponseBudget {
public:
    explicit ResponseBudget(size_t limit) : m_limit(limit) {}
    bool reserve(size_t bytes);
    void release(size_t bytes);
    size_t used() const;
    size_t limit() const { return m_limit; }

private:
    mutable std::mutex m_mutex;
    size_t m_limit;
    size_t m_used = 0;
};

}  // namespace lmw::server
