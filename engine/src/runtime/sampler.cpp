// Sampler: penalties, temperature, top-k / top-p / min-p filtering, then a draw from the request's
// own RNG. The order follows Hugging Face's logits processors (penalties, temperature, top_k, top_p,
// min_p), so a request behaves as users of transformers expect.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "lmw/sampling.h"

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
    const int n = m_vocab;

    for (const auto& [id, bias] : m_p.logitBias)
        if (id >= 0 && id < n) logits[id] += bias;

    // Repetition penalty (CTRL / HF): every distinct id seen in prompt + output, once.
    if (m_p.repetitionPenalty != 1.0f && !history.empty()) {
        std::unordered_set<int32_t> seen(history.begin(), history.end());
        for (int32_t id : seen) {
            if (id < 0 || id >= n) continue;
            float& l = logits[id];
            l = l > 0.0f ? l / m_p.repetitionPenalty : l * m_p.repetitionPenalty;
        }
    }
    // Presence / frequency penalties (OpenAI): over the generated tokens only.
    if ((m_p.presencePenalty != 0.0f || m_p.frequencyPenalty != 0.0f) && history.size() > promptLen) {
        std::unordered_map<int32_t, int> counts;
        for (size_t i = promptLen; i < history.size(); ++i) ++counts[history[i]];
        for (auto [id, c] : counts) {
            if (id < 0 || id >= n) continue;
            logits[id] -= m_p.frequencyPenalty * float(c) + m_p.presencePenalty;
        }
    }

    if (m_p.temperature <= 0.0f) return argmax(logits, n);

    // Unnormalized probabilities relative to the max logit (the max gets exactly 1), kept as
    // (prob, id) candidates; tokens at -inf or NaN never enter.
    const int32_t best = argmax(logits, n);
    const float mx = logits[best];
    if (!(mx > -std::numeric_limits<float>::infinity())) return best;
    const float invT = 1.0f / m_p.temperature;
    // Tokens below e^-30 of the max are left out: together they weigh under vocab * 1e-13 of the
    // mass, and skipping their exp() is most of the cost on a 150k vocabulary.
    const float cutoff = mx - 30.0f * m_p.temperature;
    auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
    };
    auto& cand = m_scratch;
    cand.clear();
    if (m_p.topK > 0 && m_p.topK < n) {
        // Top-k by logit with a heap whose top is the worst kept: one pass, most tokens cost a compare.
        const size_t k = size_t(m_p.topK);
        for (int i = 0; i < n; ++i) {
            const float l = logits[i];
            if (!(l >= cutoff)) continue;
            if (cand.size() < k) {
                cand.emplace_back(l, i);
                std::push_heap(cand.begin(), cand.end(), better);
            } else if (better({l, i}, cand.front())) {
                std::pop_heap(cand.begin(), cand.end(), better);
                cand.back() = {l, i};
                std::push_heap(cand.begin(), cand.end(), better);
            }
        }
        for (auto& c : cand) c.first = std::exp((c.first - mx) * invT);
    } else {
        cand.reserve(n);
        for (int i = 0; i < n; ++i)
            if (logits[i] >= cutoff) cand.emplace_back(std::exp((logits[i] - mx) * invT), i);  // false for NaN
    }

    size_t keep = cand.size();
    bool sorted = false;  // cand[0, keep) sorted by `better`
    if (m_p.topP < 1.0f) {
        // Smallest prefix (by probability) whose mass reaches top_p, at least one token. Sorting
        // grows in chunks so a peaked distribution never pays for sorting the whole vocabulary.
        double total = 0.0;
        for (size_t i = 0; i < keep; ++i) total += cand[i].first;
        const double target = double(m_p.topP) * total;
        double cum = 0.0;
        size_t done = 0, chunk = 256, cut = keep;
        while (done < keep) {
            const size_t end = std::min(keep, done + chunk);
            if (end < keep) std::nth_element(cand.begin() + done, cand.begin() + end, cand.begin() + keep, better);
            std::sort(cand.begin() + done, cand.begin() + end, better);
            for (size_t i = done; i < end; ++i) {
                cum += cand[i].first;
                if (cum >= target) {
                    cut = i + 1;
                    break;
                }
            }
            done = end;
            if (cut < keep || cum >= target) break;
            chunk *= 4;
        }
        keep = std::max<size_t>(std::min(cut, done), 1);
        sorted = true;
    }
    if (m_p.minP > 0.0f) {
        // The max token has probability 1 here, so the threshold is min_p itself; the ratio to
        // the max does not depend on normalization.
        const float threshold = m_p.minP;
        if (sorted) {
            size_t k = 1;
            while (k < keep && cand[k].first >= threshold) ++k;
            keep = k;
        } else {
            auto mid = std::stable_partition(cand.begin(), cand.begin() + keep,
                                             [&](const auto& c) { return c.first >= threshold; });
            keep = std::max<size_t>(size_t(mid - cand.begin()), 1);  // the max always passes (p == 1)
        }
    }

    double mass = 0.0;
    for (size_t i = 0; i < keep; ++i) mass += cand[i].first;
    std::uniform_real_distribution<double> uni(0.0, mass);
    double u = uni(m_rng);
    for (size_t i = 0; i < keep; ++i) {
        u -= cand[i].first;
        if (u < 0.0) return cand[i].second;
    }
    return cand[keep - 1].second;  // rounding left u at the very end
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
