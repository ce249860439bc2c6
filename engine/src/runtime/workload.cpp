#include "lmw/workload.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "lmw/error.h"

namespace lmw::engine {

std::vector<PlannedRequest> planWorkload(const WorkloadOptions& o, int count) {
    if (o.lengths == WorkloadOptions::Lengths::ShareGpt &&
        (o.maxInputLen < kShareGptMinLen || o.maxTotalLen < 2 * kShareGptMinLen))
        throw Error(ErrorCode::InvalidArgument, "ShareGPT-like lengths need requests of at least " +
                                                    std::to_string(2 * kShareGptMinLen) + " tokens (the session allows " +
                                                    std::to_string(o.maxTotalLen) + ")");
    std::mt19937_64 rng(o.seed);
    auto logNormal = [](LogNormalLength l) {  // mean exp(mu + sigma^2 / 2) = l.mean
        return std::lognormal_distribution<double>(std::log(l.mean) - 0.5 * l.sigma * l.sigma, l.sigma);
    };
    auto inputDist = logNormal(kShareGptInput), outputDist = logNormal(kShareGptOutput);
    std::exponential_distribution<double> gap(o.requestRate > 0 ? o.requestRate : 1.0);
    std::vector<PlannedRequest> plan(size_t(std::max(0, count)));
    double t = 0;
    for (auto& r : plan) {
        if (o.requestRate > 0) t += gap(rng);
        r.arrival = o.requestRate > 0 ? t : 0;
        if (o.lengths == WorkloadOptions::Lengths::Fixed) {
            r.inputLen = o.inputLen, r.outputLen = o.outputLen;
            continue;
        }
        do {
            r.inputLen = int(std::lround(inputDist(rng)));
            r.outputLen = int(std::lround(outputDist(rng)));
        } while (r.inputLen < kShareGptMinLen || r.outputLen < kShareGptMinLen || r.inputLen > o.maxInputLen ||
                 r.inputLen + r.outputLen > o.maxTotalLen);
    }
    return plan;
}

Percentiles percentiles(std::vector<double> s) {
    Percentiles p;
    if (s.empty()) return p;
    std::sort(s.begin(), s.end());
    auto at = [&](double q) {
        const size_t rank = size_t(std::ceil(q * double(s.size())));
        return s[std::min(s.size() - 1, rank == 0 ? 0 : rank - 1)];
    };
    p.p50 = at(0.5);
    p.p90 = at(0.9);
    p.p99 = at(0.99);
    double sum = 0;
    for (double v : s) sum += v;
    p.mean = sum / double(s.size());
    return p;
}

ThroughputSummary summarizeThroughput(const std::vector<RequestTiming>& runs, double wall, const LatencyLimits& limits) {
    ThroughputSummary r;
    r.requests = int(runs.size());
    r.wall = wall;
    std::vector<double> ttft, itl, tpot;
    double outputTokens = 0, inputTokens = 0;
    for (const auto& run : runs) {
        if (!run.ok || run.tokenTimes.empty()) continue;
        ++r.ok;
        outputTokens += double(run.tokenTimes.size());
        inputTokens += run.inputLen;
        const double first = run.tokenTimes.front() - run.sent;
        ttft.push_back(first);
        for (size_t k = 1; k < run.tokenTimes.size(); ++k) itl.push_back(run.tokenTimes[k] - run.tokenTimes[k - 1]);
        const size_t gaps = run.tokenTimes.size() - 1;
        const double meanGap = gaps ? (run.tokenTimes.back() - run.tokenTimes.front()) / double(gaps) : 0;
        tpot.push_back(meanGap);
        r.good += first <= limits.ttft && meanGap <= limits.itl;
    }
    r.ttft = percentiles(std::move(ttft));
    r.itl = percentiles(std::move(itl));
    r.tpot = percentiles(std::move(tpot));
    if (wall > 0) {
        r.requestsPerSecond = r.ok / wall;
        r.outputTokensPerSecond = outputTokens / wall;
        r.inputTokensPerSecond = inputTokens / wall;
        r.goodput = r.good / wall;
    }
    return r;
}

}  // namespace lmw::engine
