// Sampler: greedy, reproducibility, filters, penalties, validation and the sampled distribution.
#include <QtTest>

#include <cmath>
#include <random>
#include <set>

#include "lmw/kernels/sampling_math.h"
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

    // The arithmetic the device sampler shares (lmw/kernels/sampling_math.h): exp within 3 ulp, the order key, the exact ceil(top_p * total) and the draw point.
    void sharedMath() {
        namespace sm = lmw::kernels::sampling;
        std::mt19937 rng(8);
        std::uniform_real_distribution<float> x(-86.9f, 0.0f);
        for (int i = 0; i < 100000; ++i) {
            const float v = i == 0 ? 0.0f : x(rng);
            const double want = std::exp(double(v));
            QVERIFY2(std::abs(sm::expNeg(v) - want) <= 3.6e-7 * want, qPrintable(QString::number(v)));
        }
        QCOMPARE(sm::expNeg(0.0f), 1.0f);
        QCOMPARE(sm::expNeg(-100.0f), 0.0f);
        QCOMPARE(sm::weightOf(1.0f), uint64_t(1) << sm::kWeightBits);
        QVERIFY(sm::weightOf(sm::expNeg(-30.01f)) >= 1);  // every candidate weighs something
        // Larger logit first, lower id on ties, -0 == +0.
        QVERIFY(sm::orderKey(2.0f, 9) > sm::orderKey(1.0f, 0));
        QVERIFY(sm::orderKey(1.0f, 3) > sm::orderKey(1.0f, 4));
        QVERIFY(sm::orderKey(-0.0f, 3) > sm::orderKey(0.0f, 4));
        QVERIFY(sm::orderKey(-1.0f, 0) > sm::orderKey(-INFINITY, 0));
        QCOMPARE(sm::idOfKey(sm::orderKey(-3.5f, 151935)), 151935);
        QCOMPARE(sm::logitOfKey(sm::orderKey(-3.5f, 7)), -3.5f);
        std::mt19937_64 r64(4);
        for (int i = 0; i < 20000; ++i) {
            const float p = i == 0 ? 1.0f : i == 1 ? 1e-30f : std::uniform_real_distribution<float>(0.0f, 1.0f)(r64);
            const uint64_t total = r64() >> (1 + i % 40);
            if (p <= 0.0f) continue;
            // ceil(p * total) from the exact product (a float is an integer over a power of two).
            int e = 0;
            const double f = std::frexp(double(p), &e);
            const unsigned __int128 mant = (unsigned __int128)std::ldexp(f, 24);
            const int sh = 24 - e;
            const unsigned __int128 prod = mant * total;
            const unsigned __int128 want =
                sh >= 128 ? (prod != 0) : (prod >> sh) + (((prod & ((((unsigned __int128)1) << sh) - 1)) != 0) ? 1 : 0);
            QCOMPARE(sm::nucleusTarget(p, total), uint64_t(want));
            const uint64_t u = r64();
            QCOMPARE(sm::drawPoint(u, total), uint64_t(((unsigned __int128)u * total) >> 64));
            if (total) QVERIFY(sm::drawPoint(u, total) < total);
        }
    }

    // One uniform, consumed one way: u = 0 draws the lowest kept id, u = 2^64 - 1 the highest (the draw
    // walks the kept tokens by id); greedy ignores it.
    void uniformWalksKeptIds() {
        const std::vector<float> logits = {0.0f, 3.0f, -9.0f, 2.5f, 3.0f, 1.0f, -40.0f};
        SamplingParams p;
        p.topK = 3;  // keeps 1, 4 (tie: both 3.0), 3
        Sampler s(p, 7);
        auto draw = [&](uint64_t u) {
            auto l = logits;
            return s.sample(l.data(), {}, 0, u);
        };
        QCOMPARE(draw(0), 1);
        QCOMPARE(draw(~uint64_t(0)), 4);
        p.topK = 0;
        p.temperature = 1.0f;  // -40 is below max - 30 T: never a candidate
        Sampler all(p, 7);
        auto l = logits;
        QCOMPARE(all.sample(l.data(), {}, 0, 0), 0);
        l = logits;
        QCOMPARE(all.sample(l.data(), {}, 0, ~uint64_t(0)), 5);
        p.temperature = 0.0f;
        Sampler g(p, 7);
        l = logits;
        QCOMPARE(g.sample(l.data(), {}, 0, 0), 1);
        QVERIFY(!g.needsUniform());
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
