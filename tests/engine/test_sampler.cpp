// Sampler: greedy, reproducibility, filters, penalties, validation and the sampled distribution.
#include <QtTest>

#include <cmath>
#include <random>
#include <set>

#include "lmw/sampling.h"

using namespace lmw::engine;

namespace {

std::vector<int32_t> drawMany(SamplingParams p, const std::vector<float>& logits, int n) {
    Sampler s(p, int(logits.size()));
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
        auto l = logits;
        out.push_back(s.sample(l.data(), {}, 0));
    }
    return out;
}

std::vector<float> randomLogits(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 2.0f);
    std::vector<float> l(n);
    for (auto& v : l) v = d(rng);
    return l;
}

}  // namespace

class TestSampler : public QObject {
    Q_OBJECT

private slots:
    void greedyPicksArgmax() {
        SamplingParams p;
        p.temperature = 0.0f;
        Sampler s(p, 6);
        std::vector<float> l = {0.1f, 3.0f, -1.0f, 2.9f, 3.0f, -INFINITY};
        QCOMPARE(s.sample(l.data(), {}, 0), 1);  // tie between 1 and 4 -> lowest id
        std::vector<float> l2 = {-5.0f, -4.0f, -3.0f, -2.0f, -1.5f, -7.0f};
        QCOMPARE(s.sample(l2.data(), {}, 0), 4);
        auto big = randomLogits(32000, 3);
        const int want = int(std::max_element(big.begin(), big.end()) - big.begin());
        Sampler s2(p, 32000);
        QCOMPARE(s2.sample(big.data(), {}, 0), want);
    }

    void seedReproducible() {
        const auto logits = randomLogits(100, 1);
        SamplingParams p;
        p.temperature = 1.0f;
        p.seed = 42;
        const auto a = drawMany(p, logits, 50);
        const auto b = drawMany(p, logits, 50);
        QCOMPARE(a, b);
        p.seed = 43;
        const auto c = drawMany(p, logits, 50);
        QVERIFY(a != c);
        // the draws are not all the same token (it does sample)
        QVERIFY(std::set<int32_t>(a.begin(), a.end()).size() > 5);
    }

    void topKOneIsGreedy() {
        const auto logits = randomLogits(1000, 2);
        const int want = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        SamplingParams p;
        p.temperature = 1.5f;
        p.topK = 1;
        p.seed = 5;
        for (int id : drawMany(p, logits, 100)) QCOMPARE(id, want);
    }

    void topKRestrictsToTopK() {
        std::vector<float> logits = {1.0f, 5.0f, 4.0f, 0.5f, 4.5f, 0.0f};
        SamplingParams p;
        p.topK = 3;
        p.seed = 9;
        std::set<int32_t> seen;
        for (int id : drawMany(p, logits, 2000)) seen.insert(id);
        QCOMPARE(seen, std::set<int32_t>({1, 2, 4}));
    }

    void topPTinyIsGreedy() {
        const auto logits = randomLogits(1000, 4);
        const int want = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        SamplingParams p;
        p.temperature = 1.0f;
        p.topP = 1e-6f;
        p.seed = 6;
        for (int id : drawMany(p, logits, 100)) QCOMPARE(id, want);
    }

    void topPKeepsNucleus() {
        // probs 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps {0,1} (0.5 < 0.75 <= 0.8)
        std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
        SamplingParams p;
        p.topP = 0.75f;
        p.seed = 11;
        std::set<int32_t> seen;
        for (int id : drawMany(p, logits, 2000)) seen.insert(id);
        QCOMPARE(seen, std::set<int32_t>({0, 1}));
        p.topP = 0.85f;
        seen.clear();
        for (int id : drawMany(p, logits, 2000)) seen.insert(id);
        QCOMPARE(seen, std::set<int32_t>({0, 1, 2}));
    }

    void minP() {
        // probs 0.5, 0.3, 0.15, 0.05; min_p 0.5 -> threshold 0.25 keeps {0,1}; 0.2 -> 0.1 keeps {0,1,2}
        std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
        SamplingParams p;
        p.minP = 0.5f;
        p.seed = 12;
        std::set<int32_t> seen;
        for (int id : drawMany(p, logits, 2000)) seen.insert(id);
        QCOMPARE(seen, std::set<int32_t>({0, 1}));
        p.minP = 0.2f;
        seen.clear();
        for (int id : drawMany(p, logits, 2000)) seen.insert(id);
        QCOMPARE(seen, std::set<int32_t>({0, 1, 2}));
        p.minP = 1.0f;  // only the max survives
        for (int id : drawMany(p, logits, 200)) QCOMPARE(id, 0);
    }

    void repetitionPenalty() {
        SamplingParams p;
        p.temperature = 0.0f;
        p.repetitionPenalty = 2.0f;
        Sampler s(p, 5);
        std::vector<float> l = {4.0f, -1.0f, 3.0f, 0.5f, 1.0f};
        // history has 0 twice and 1 once, in the prompt; 3 generated. Each distinct id once.
        const std::vector<int32_t> history = {0, 1, 0, 3};
        const int32_t id = s.sample(l.data(), history, 3);
        QCOMPARE(l[0], 2.0f);   // positive: divided
        QCOMPARE(l[1], -2.0f);  // negative: multiplied
        QCOMPARE(l[2], 3.0f);   // unseen: untouched
        QCOMPARE(l[3], 0.25f);
        QCOMPARE(l[4], 1.0f);
        QCOMPARE(id, 2);  // the penalty changed the argmax
    }

    void presenceAndFrequencyPenalties() {
        SamplingParams p;
        p.temperature = 0.0f;
        p.presencePenalty = 0.5f;
        p.frequencyPenalty = 0.25f;
        Sampler s(p, 5);
        std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
        // prompt = {0, 0, 1}; generated = {2, 2, 2, 3}: only generated tokens count.
        const std::vector<int32_t> history = {0, 0, 1, 2, 2, 2, 3};
        const int32_t id = s.sample(l.data(), history, 3);
        QCOMPARE(l[0], 1.0f);
        QCOMPARE(l[1], 1.0f);
        QCOMPARE(l[2], 1.0f - 0.5f - 3 * 0.25f);
        QCOMPARE(l[3], 1.0f - 0.5f - 0.25f);
        QCOMPARE(l[4], 1.0f);
        QCOMPARE(id, 0);

        // negative penalties encourage repetition
        p.presencePenalty = -1.0f;
        p.frequencyPenalty = 0.0f;
        Sampler s2(p, 5);
        std::vector<float> l2 = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
        QCOMPARE(s2.sample(l2.data(), history, 3), 2);
        QCOMPARE(l2[3], 2.0f);
    }

    void temperatureFollowsSoftmax() {
        // 4 tokens; chi-square of 40000 draws against softmax(logits / T) must be small (3 d.o.f.:
        // the 99.9% quantile is 16.3). A sampler that ignores T, or draws uniformly, is far above.
        const std::vector<float> logits = {2.0f, 1.0f, 0.5f, -1.0f};
        for (float temp : {1.0f, 0.5f}) {
            SamplingParams p;
            p.temperature = temp;
            p.seed = 1234;
            const int n = 40000;
            std::vector<int> counts(4, 0);
            for (int id : drawMany(p, logits, n)) counts[id]++;
            double z = 0;
            std::vector<double> e(4);
            for (int i = 0; i < 4; ++i) z += e[i] = std::exp(logits[i] / temp);
            double chi2 = 0;
            for (int i = 0; i < 4; ++i) {
                const double expected = n * e[i] / z;
                chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
            }
            QVERIFY2(chi2 < 16.3, qPrintable(QString("chi2 %1 at T=%2").arg(chi2).arg(temp)));
            // and the wrong temperature is clearly rejected by the same statistic
            double z2 = 0, chiWrong = 0;
            for (int i = 0; i < 4; ++i) z2 += std::exp(logits[i] / (temp * 2));
            for (int i = 0; i < 4; ++i) {
                const double expected = n * std::exp(logits[i] / (temp * 2)) / z2;
                chiWrong += (counts[i] - expected) * (counts[i] - expected) / expected;
            }
            QVERIFY(chiWrong > 100);
        }
    }

    void logprobs() {
        const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f};
        const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
        auto top = Sampler::topLogprobs(logits.data(), 4, 3);
        QCOMPARE(int(top.size()), 3);
        QCOMPARE(top[0].id, 1);
        QCOMPARE(top[1].id, 3);
        QCOMPARE(top[2].id, 2);
        QVERIFY(std::abs(top[0].logprob - float(3.0 - lse)) < 1e-6f);
        QVERIFY(std::abs(top[2].logprob - float(2.0 - lse)) < 1e-6f);
        QVERIFY(std::abs(Sampler::logprobOf(logits.data(), 4, 0) - float(1.0 - lse)) < 1e-6f);
        QCOMPARE(int(Sampler::topLogprobs(logits.data(), 4, 10).size()), 4);
    }

    void validateMessages() {
        SamplingParams ok;
        QCOMPARE(validate(ok), std::string());
        auto check = [](auto mutate, const std::string& msg) {
            SamplingParams p;
            mutate(p);
            QCOMPARE(validate(p), msg);
        };
        check([](SamplingParams& p) { p.temperature = 2.5f; }, "temperature must be between 0 and 2");
        check([](SamplingParams& p) { p.temperature = -0.1f; }, "temperature must be between 0 and 2");
        check([](SamplingParams& p) { p.temperature = NAN; }, "temperature must be between 0 and 2");
        check([](SamplingParams& p) { p.topP = 0.0f; }, "top_p must be greater than 0 and at most 1");
        check([](SamplingParams& p) { p.topP = 1.5f; }, "top_p must be greater than 0 and at most 1");
        check([](SamplingParams& p) { p.topK = -1; }, "top_k must be greater than or equal to 0");
        check([](SamplingParams& p) { p.minP = 1.5f; }, "min_p must be between 0 and 1");
        check([](SamplingParams& p) { p.repetitionPenalty = 0.0f; }, "repetition_penalty must be greater than 0");
        check([](SamplingParams& p) { p.presencePenalty = 2.5f; }, "presence_penalty must be between -2 and 2");
        check([](SamplingParams& p) { p.frequencyPenalty = -3.0f; }, "frequency_penalty must be between -2 and 2");
        check([](SamplingParams& p) { p.maxNewTokens = 0; }, "max_tokens must be at least 1");
        check([](SamplingParams& p) { p.temperature = 0.0f; p.topP = 1.0f; p.minP = 1.0f; p.presencePenalty = -2.0f; }, "");
    }
};

QTEST_GUILESS_MAIN(TestSampler)
#include "test_sampler.moc"
