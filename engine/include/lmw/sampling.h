#pragma once
// Sampling parameters of a request and the sampler that turns logits into the next token.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace lmw::engine {

struct SamplingParams {
    float temperature = 1.0f;  // 0 = greedy
    int topK = 0;              // 0 = off
    float topP = 1.0f;         // 1 = off
    float minP = 0.0f;         // 0 = off
    float repetitionPenalty = 1.0f;  // HF/CTRL style, over prompt + generated tokens
    float presencePenalty = 0.0f;    // OpenAI style, over generated tokens
    float frequencyPenalty = 0.0f;   // OpenAI style, over generated tokens
    std::optional<uint64_t> seed;    // same seed, same tokens
    int maxNewTokens = 512;
    std::vector<std::string> stop;   // stop strings: generation ends before them, they are not emitted
    std::vector<int32_t> stopIds;    // extra stop token ids (eos ids are always stops unless ignoreEos)
    bool ignoreEos = false;
    bool skipSpecialTokens = true;   // special tokens are not turned into text
    // OpenAI logit_bias: (token id, bias in [-100, 100]) added to the logits before anything else
    // (-100 bans a token, 100 all but forces it); logprobs are still reported from the raw logits.
    std::vector<std::pair<int32_t, float>> logitBias;
};

// log(sum(exp(logits[0..n)))) in double with the max taken out (NaNs ignored): log-softmax and
// perplexity both start from it.
double logSumExp(const float* logits, int n);

// Checks ranges; returns an empty string when valid, else a message naming the field.
std::string validate(const SamplingParams& p);

struct TokenChoice {
    int32_t id;
    float logprob;  // log-softmax of the raw logits (before penalties/temperature), as OpenAI reports
};

// One sampler per request: owns the RNG so a seeded request is reproducible whatever it is
// batched with.
class Sampler {
public:
    Sampler(const SamplingParams& params, int vocabSize);

    // Picks the next token from `logits` (length vocabSize; modified in place).
    // `history`: prompt + generated ids; history[promptLen..] are the generated ones.
    // Draws one uniform from the request's RNG when the temperature is above 0, none when greedy.
    int32_t sample(float* logits, const std::vector<int32_t>& history, size_t promptLen);
    // The same with the uniform given (drawUniform()): the device sampler consumes it the same way
    // (lmw/kernels/sampling_math.h), so from the same logits a seeded request gets the same tokens on
    // either path.
    int32_t sample(float* logits, const std::vector<int32_t>& history, size_t promptLen, uint64_t uniform);
    bool needsUniform() const { return m_p.temperature > 0.0f; }
    uint64_t drawUniform() { return m_rng(); }

    // log-softmax of logits, the chosen token's logprob and the top `n` alternatives.
    static std::vector<TokenChoice> topLogprobs(const float* logits, int vocabSize, int n);
    static float logprobOf(const float* logits, int vocabSize, int32_t id);

private:
    SamplingParams m_p;
    int m_vocab;
    std::mt19937_64 m_rng;
    struct Candidate {
        uint64_t key;     // the filters' order (lmw::kernels::sampling::orderKey)
        uint64_t weight;  // fixed-point probability relative to the max
        float p;          // probability relative to the max (min_p)
    };
    std::vector<Candidate> m_cand;   // by id
    std::vector<Candidate> m_order;  // partly sorted by key for top-k / top-p
};

}  // namespace lmw::engine
