#pragma once
// Prometheus counters and histograms of the HTTP side, plus the engine's own gauges at scrape time.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lmw/engine.h"

namespace lmw::server {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    // Appends "<name>_bucket{le=...}", _sum and _count lines.
    void render(std::string& out, const std::string& name, const std::string& help) const;

private:
    std::vector<double> m_bounds;
    std::vector<uint64_t> m_counts;  // per bucket, not cumulative
    double m_sum = 0;
    uint64_t m_count = 0;
};

class Metrics {
public:
    Metrics();
    void requestStarted();
    void requestFinished(const std::string& endpoint, int status);
    void generationFinished(int promptTokens, int completionTokens, double ttft, double total,
                            double interTokenSeconds);
    void clientDisconnected();
    void logLineDropped();
    int inFlight() const;
    uint64_t clientDisconnects() const;

    // Prometheus text exposition format 0.0.4. stats is null while no engine is loaded.
    std::string render(const engine::EngineStats* stats, const std::string& model) const;

private:
    mutable std::mutex m_mutex;
    std::map<std::pair<std::string, int>, uint64_t> m_requests;  // (endpoint, status) -> count
    int m_inFlight = 0;
    uint64_t m_promptTokens = 0;
    uint64_t m_completionTokens = 0;
    uint64_t m_disconnects = 0;
    uint64_t m_logDropped = 0;
    Histogram m_ttft;
    Histogram m_latency;
    Histogram m_itl;
};

}  // namespace lmw::server
