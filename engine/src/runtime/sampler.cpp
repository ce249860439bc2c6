// Sampler: penalties, temperature, top-k / top-p / min-p filtering, then a draw from the request's
// own RNG. The order follows Hugging Face's logits processors (penalties, temperature, top_k, top_p,
// min_p), so a request behaves as users of transformers expect. The arithmetic (fixed-point weights,
// the filters' order, the draw from one 64-bit uniform) is lmw/kernels/sampling_math.h, shared with
// the device sampler: this file is its reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "lmw/sampling.h"

#include "lmw/kernels/sampling_math.h"

// (Not under ThreadSanitizer, whose runtime is not up yet when the loader runs an ifunc resolver:
// every test that linked the sampler crashed at start.)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define LMW_HOT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LMW_HOT_CLONES
#endif

namespace lmw::engine {

namespace {

bool inRange(float v, float lo, float hi) { return v >= lo && v <= hi; }  // false for NaN

// Largest logit, lowest id on ties; NaN compares false and is never picked (unless all are NaN).
int32_t argmax(const float* logits, int n) {
    int32_t best = 0;
    float bestV = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n; ++i) {
        if (logits[i] > bestV) {
            bestV = logits[i];
            best = i;
        }
    }
    return best;
}

}  // namespace

LMW_HOT_CLONES
double logSumExp(const float* logits, int n) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n; ++i)
        if (logits[i] > mx) mx = logits[i];
    if (!std::isfinite(mx)) return mx;
    double sum = 0.0;
    for (int i = 0; i < n; ++i)
        if (!std::isnan(logits[i])) sum += std::exp(double(logits[i]) - mx);
    return mx + std::log(sum);
}

std::string validate(const SamplingParams& p) {
    if (!inRange(p.temperature, 0.0f, 2.0f)) return "temperature must be between 0 and 2";
    if (!(p.topP > 0.0f && p.topP <= 1.0f)) return "top_p must be greater than 0 and at most 1";
    if (p.topK < 0) return "top_k must be greater than or equal to 0";
    if (!inRange(p.minP, 0.0f, 1.0f)) return "min_p must be between 0 and 1";
    if (!(p.repetitionPenalty > 0.0f) || !std::isfinite(p.repetitionPenalty))
        return "repetition_penalty must be greater than 0";
    if (!inRange(p.presencePenalty, -2.0f, 2.0f)) return "presence_penalty must be between -2 and 2";
    if (!inRange(p.frequencyPenalty, -2.0f, 2.0f)) return "frequency_penalty must be between -2 and 2";
    if (p.maxNewTokens < 1) return "max_tokens must be at least 1";
    for (const auto& [id, bias] : p.logitBias)
        if (id < 0 || !inRange(bias, -100.0f, 100.0f)) return "logit_bias must map token ids to values between -100 and 100";
    return {};
}

Sampler::Sampler(const SamplingParams& params, int vocabSize)
    : m_p(params), m_vocab(vocabSize), m_rng(params.seed ? *params.seed : std::random_device{}()) {
    if (!params.seed) {
        // random_device gives 32 bits; widen so unseeded requests do not collide as often.
        uint64_t hi = std::random_device{}();
        m_rng.seed((hi << 32) ^ m_rng());
    }
}

int32_t Sampler::sample(float* logits, const std::vector<int32_t>& history, size_t promptLen) {
    return sample(logits, history, promptLen, needsUniform() ? drawUniform() : 0);
}

// The engine is built for the x86-64 baseline; this loop over the vocabulary (and the sorting inside)
// also gets an AVX2 clone that the loader picks on CPUs that have it.
LMW_HOT_CLONES
int32_t Sampler::sample(float* logits, const std::vector<int32_t>& history, size_t promptLen, uint64_t uniform) {
    namespace sm = lmw::kernels::sampling;
    const int n = m_vocab;

    for (const auto& [id, bias] : m_p.logitBias)
        if (id >= 0 && id < n) logits[id] = sm::applyBias(logits[id], bias);

    // Repetition penalty (CTRL / HF): every distinct id seen in prompt + output, once.
    if (m_p.repetitionPenalty != 1.0f && !history.empty()) {
        std::unordered_set<int32_t> seen(history.begin(), history.end());
        for (int32_t id : seen)
            if (id >= 0 && id < n) logits[id] = sm::applyRepetition(logits[id], m_p.repetitionPenalty);
    }
    // Presence / frequency penalties (OpenAI): over the generated tokens only.
    if ((m_p.presencePenalty != 0.0f || m_p.frequencyPenalty != 0.0f) && history.size() > promptLen) {
        std::unordered_map<int32_t, int> counts;
        for (size_t i = promptLen; i < history.size(); ++i) ++counts[history[i]];
        for (auto [id, c] : counts)
            if (id >= 0 && id < n)
                logits[id] = sm::applyPresenceFrequency(logits[id], m_p.presencePenalty, m_p.frequencyPenalty, c);
    }

    if (m_p.temperature <= 0.0f) return argmax(logits, n);

    // Candidates l >= max - 30 T with fixed-point weights relative to the max (which weighs 2^44),
    // ordered by (logit desc, id asc) for the filters; NaN never enters.
    const int32_t best = argmax(logits, n);
    const float mx = logits[best];
    if (!std::isfinite(mx)) return best;
    const float invT = sm::inverseTemperature(m_p.temperature);
    const float cutoff = sm::cutoffOf(mx, m_p.temperature);
    auto& cand = m_cand;
    cand.clear();
    for (int i = 0; i < n; ++i)
        if (logits[i] >= cutoff) {
            const float p = sm::relativeProb(logits[i], mx, invT);
            cand.push_back({sm::orderKey(logits[i], i), sm::weightOf(p), p});
        }

    // The filters keep a prefix of that order: every token whose key is >= limit.
    uint64_t limit = 0;
    auto& order = m_order;
    auto desc = [](const Candidate& a, const Candidate& b) { return a.key > b.key; };
    if (m_p.topK > 0 && size_t(m_p.topK) < cand.size()) {
        order.assign(cand.begin(), cand.end());
        std::nth_element(order.begin(), order.begin() + (m_p.topK - 1), order.end(), desc);
        limit = order[size_t(m_p.topK - 1)].key;
    }
    if (m_p.topP < 1.0f) {
        // Smallest prefix whose mass reaches ceil(top_p * mass) (at least one token). Sorting grows
        // in chunks so a peaked distribution never pays for sorting the whole vocabulary.
        order.clear();
        uint64_t total = 0;
        for (const auto& c : cand)
            if (c.key >= limit) {
                order.push_back(c);
                total += c.weight;
            }
        const uint64_t target = sm::nucleusTarget(m_p.topP, total);
        uint64_t cum = 0;
        size_t done = 0, chunk = 256;
        bool found = false;
        while (done < order.size() && !found) {
            const size_t end = std::min(order.size(), done + chunk);
            if (end < order.size()) std::nth_element(order.begin() + done, order.begin() + end, order.end(), desc);
            std::sort(order.begin() + done, order.begin() + end, desc);
            for (size_t i = done; i < end; ++i) {
                cum += order[i].weight;
                if (cum >= target) {
                    limit = order[i].key;
                    found = true;
                    break;
                }
            }
            done = end;
            chunk *= 4;
        }
    }
    // min_p: the max has probability 1 here, so the threshold is min_p itself (the max always passes).
    auto kept = [&](const Candidate& c) { return c.key >= limit && (m_p.minP <= 0.0f || c.p >= m_p.minP); };

    // The draw walks the kept tokens by id.
    uint64_t mass = 0;
    for (const auto& c : cand)
        if (kept(c)) mass += c.weight;
    const uint64_t point = sm::drawPoint(uniform, mass);
    uint64_t cum = 0;
    for (const auto& c : cand) {
        if (!kept(c)) continue;
        cum += c.weight;
        if (cum > point) return sm::idOfKey(c.key);
    }
    return best;  // unreachable: point < mass
}

std::vector<TokenChoice> Sampler::topLogprobs(const float* logits, int vocabSize, int n) {
    n = std::clamp(n, 0, vocabSize);
    const double lse = logSumExp(logits, vocabSize);
    std::vector<int32_t> order(vocabSize);
    std::iota(order.begin(), order.end(), 0);
    auto better = [&](int32_t a, int32_t b) {
        const float la = std::isnan(logits[a]) ? -INFINITY : logits[a];
        const float lb = std::isnan(logits[b]) ? -INFINITY : logits[b];
        return la != lb ? la > lb : a < b;
    };
    std::partial_sort(order.begin(), order.begin() + n, order.end(), better);
    std::vector<TokenChoice> out;
    out.reserve(n);
    for (int i = 0; i < n; ++i) out.push_back({order[i], float(double(logits[order[i]]) - lse)});
    return out;
}

float Sampler::logprobOf(const float* logits, int vocabSize, int32_t id) {
    if (id < 0 || id >= vocabSize) return -std::numeric_limits<float>::infinity();
    return float(double(logits[id]) - logSumExp(logits, vocabSize));
}

}  // namespace lmw::engine
