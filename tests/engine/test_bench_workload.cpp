// The throughput test's workloads (lmw/workload.h): fixed and ShareGPT-like lengths, Poisson
// arrivals, and the summary of a run (percentiles, tokens/s, goodput under latency limits).
#include <QtTest>

#include <cmath>
#include <numeric>

#include "lmw/error.h"
#include "lmw/workload.h"

namespace e = lmw::engine;

class TestBenchWorkload : public QObject {
    Q_OBJECT
private slots:
    void fixedLengthsAllAtOnce() {
        e::WorkloadOptions o;
        o.inputLen = 100, o.outputLen = 7;
        const auto plan = e::planWorkload(o, 5);
        QCOMPARE(plan.size(), size_t(5));
        for (const auto& r : plan) {
            QCOMPARE(r.arrival, 0.0);
            QCOMPARE(r.inputLen, 100);
            QCOMPARE(r.outputLen, 7);
        }
        QVERIFY(e::planWorkload(o, 0).empty());
    }

    // Log-normal lengths: the medians exp(mu) of the two distributions (what truncation moves least),
    // a long tail, every request inside the limits, the same plan for the same seed only.
    void shareGptLengths() {
        e::WorkloadOptions o;
        o.lengths = e::WorkloadOptions::Lengths::ShareGpt;
        const int n = 20000;
        const auto plan = e::planWorkload(o, n);
        std::vector<double> in, out;
        for (const auto& r : plan) {
            QVERIFY(r.inputLen >= e::kShareGptMinLen && r.inputLen <= o.maxInputLen);
            QVERIFY(r.outputLen >= e::kShareGptMinLen && r.inputLen + r.outputLen <= o.maxTotalLen);
            in.push_back(r.inputLen), out.push_back(r.outputLen);
        }
        auto expectMedian = [](e::LogNormalLength l) { return l.mean * std::exp(-0.5 * l.sigma * l.sigma); };
        const double medianIn = e::percentiles(in).p50, medianOut = e::percentiles(out).p50;
        QVERIFY2(std::abs(medianIn / expectMedian(e::kShareGptInput) - 1) < 0.06, qPrintable(QString::number(medianIn)));
        QVERIFY2(std::abs(medianOut / expectMedian(e::kShareGptOutput) - 1) < 0.08, qPrintable(QString::number(medianOut)));
        std::sort(in.begin(), in.end());
        QVERIFY(in[size_t(n * 0.99)] > 5 * in[size_t(n / 2)]);  // long-tailed, like conversations
        const auto again = e::planWorkload(o, n);
        QVERIFY(std::equal(plan.begin(), plan.end(), again.begin(), [](const auto& a, const auto& b) {
            return a.inputLen == b.inputLen && a.outputLen == b.outputLen;
        }));
        o.seed = 2;
        const auto other = e::planWorkload(o, 100);
        int same = 0;
        for (int i = 0; i < 100; ++i) same += other[size_t(i)].inputLen == plan[size_t(i)].inputLen;
        QVERIFY(same < 20);
        // A short session bounds every request; one with no room is refused.
        o.maxTotalLen = 300, o.maxInputLen = 200;
        for (const auto& r : e::planWorkload(o, 2000)) QVERIFY(r.inputLen <= 200 && r.inputLen + r.outputLen <= 300);
        o.maxTotalLen = 2 * e::kShareGptMinLen - 1;
        QVERIFY_THROWS_EXCEPTION(lmw::Error, e::planWorkload(o, 1));
    }

    // Exponential gaps at the given rate: mean 1/rate, coefficient of variation 1, in order.
    void poissonArrivals() {
        e::WorkloadOptions o;
        o.requestRate = 8;
        const int n = 20000;
        const auto plan = e::planWorkload(o, n);
        std::vector<double> gaps;
        double prev = 0;
        for (const auto& r : plan) {
            QVERIFY(r.arrival >= prev);
            gaps.push_back(r.arrival - prev);
            prev = r.arrival;
        }
        const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / n;
        double var = 0;
        for (double g : gaps) var += (g - mean) * (g - mean) / n;
        QVERIFY2(std::abs(mean * o.requestRate - 1) < 0.03, qPrintable(QString::number(mean)));
        QVERIFY2(std::abs(std::sqrt(var) / mean - 1) < 0.05, qPrintable(QString::number(std::sqrt(var) / mean)));
    }

    void percentilesAreNearestRank() {
        std::vector<double> v;
        for (int i = 100; i >= 1; --i) v.push_back(i);
        const auto p = e::percentiles(v);
        QCOMPARE(p.p50, 50.0);
        QCOMPARE(p.p90, 90.0);
        QCOMPARE(p.p99, 99.0);
        QCOMPARE(p.mean, 50.5);
        const auto one = e::percentiles({3.0});
        QCOMPARE(one.p50, 3.0);
        QCOMPARE(one.p99, 3.0);
        QCOMPARE(e::percentiles({}).p99, 0.0);
    }

    // Four requests with known timings over a 10 s run: one fast, one with a slow first token, one
    // with slow tokens, one that failed.
    void summaryAndGoodput() {
        auto run = [](double sent, double first, int tokens, double gap, bool ok, int input) {
            e::RequestTiming t;
            t.sent = sent, t.ok = ok, t.inputLen = input;
            for (int k = 0; k < tokens; ++k) t.tokenTimes.push_back(sent + first + k * gap);
            return t;
        };
        const std::vector<e::RequestTiming> runs = {run(0, 0.5, 11, 0.02, true, 100), run(1, 3.0, 11, 0.02, true, 50),
                                                    run(2, 0.1, 5, 0.10, true, 10), run(3, 0.2, 4, 0.01, false, 7)};
        const auto s = e::summarizeThroughput(runs, 10.0, e::LatencyLimits{2.0, 0.05});
        QCOMPARE(s.requests, 4);
        QCOMPARE(s.ok, 3);
        QCOMPARE(s.good, 1);  // the first: the second's first token and the third's tokens are too slow
        QCOMPARE(s.goodput, 0.1);
        QCOMPARE(s.requestsPerSecond, 0.3);
        QCOMPARE(s.outputTokensPerSecond, 2.7);  // 11 + 11 + 5 tokens of the ok requests
        QCOMPARE(s.inputTokensPerSecond, 16.0);
        QCOMPARE(s.ttft.p50, 0.5);
        QCOMPARE(s.ttft.p99, 3.0);
        QVERIFY(std::abs(s.tpot.p50 - 0.02) < 1e-12);
        QVERIFY(std::abs(s.tpot.p99 - 0.10) < 1e-12);
        QVERIFY(std::abs(s.itl.p99 - 0.10) < 1e-12);
        QVERIFY(std::abs(s.itl.mean - (20 * 0.02 + 4 * 0.10) / 24) < 1e-12);
        const auto loose = e::summarizeThroughput(runs, 10.0, e::LatencyLimits{5.0, 0.2});
        QCOMPARE(loose.good, 3);
    }
};

QTEST_GUILESS_MAIN(TestBenchWorkload)
#include "test_bench_workload.moc"
