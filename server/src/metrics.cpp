#include "metrics.h"

#include <cstdio>

namespace lmw::server {

namespace {

std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

std::string escapeLabel(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') { out += "\\n"; continue; }
        out += c;
    }
    return out;
}

void metric(std::string& out, const std::string& name, const char* type, const std::string& help, double value,
            const std::string& labels = {}) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + num(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : m_bounds(std::move(bounds)), m_counts(m_bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
    size_t i = 0;
    while (i < m_bounds.size() && v > m_bounds[i]) ++i;
    ++m_counts[i];
    m_sum += v;
    ++m_count;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < m_bounds.size(); ++i) {
        cumulative += m_counts[i];
        out += name + "_bucket{le=\"" + num(m_bounds[i]) + "\"} " + std::to_string(cumulative) + "\n";
    }
    cumulative += m_counts.back();
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
    out += name + "_sum " + num(m_sum) + "\n" + name + "_count " + std::to_string(m_count) + "\n";
}

Metrics::Metrics()
    : m_ttft({0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      m_latency({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}),
      m_itl({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void Metrics::requestStarted() {
    std::lock_guard lock(m_mutex);
    ++m_inFlight;
}

void Metrics::requestFinished(const std::string& endpoint, int status) {
    std::lock_guard lock(m_mutex);
    --m_inFlight;
    ++m_requests[{endpoint, status}];
}

void Metrics::generationFinished(int promptTokens, int completionTokens, double ttft, double total,
                                 double interTokenSeconds) {
    std::lock_guard lock(m_mutex);
    m_promptTokens += static_cast<uint64_t>(promptTokens);
    m_completionTokens += static_cast<uint64_t>(completionTokens);
    if (completionTokens > 0) m_ttft.observe(ttft);
    m_latency.observe(total);
    if (completionTokens > 1) m_itl.observe(interTokenSeconds);
}

void Metrics::clientDisconnected() {
    std::lock_guard lock(m_mutex);
    ++m_disconnects;
}

int Metrics::inFlight() const {
    std::lock_guard lock(m_mutex);
    return m_inFlight;
}

void Metrics::logLineDropped() {
    std::lock_guard lock(m_mutex);
    ++m_logDropped;
}

uint64_t Metrics::clientDisconnects() const {
    std::lock_guard lock(m_mutex);
    return m_disconnects;
}

std::string Metrics::render(const engine::EngineStats* s, const std::string& model) const {
    std::string out;
    std::lock_guard lock(m_mutex);
    out += "# HELP lmw_http_requests_total HTTP requests answered, by endpoint and status.\n"
           "# TYPE lmw_http_requests_total counter\n";
    for (const auto& [key, count] : m_requests)
        out += "lmw_http_requests_total{endpoint=\"" + escapeLabel(key.first) + "\",status=\"" +
               std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
    metric(out, "lmw_http_requests_in_flight", "gauge", "HTTP requests being answered now.", m_inFlight);
    metric(out, "lmw_prompt_tokens_total", "counter", "Prompt tokens of finished HTTP generation requests.",
           static_cast<double>(m_promptTokens));
    metric(out, "lmw_generation_tokens_total", "counter", "Tokens generated for HTTP requests.",
           static_cast<double>(m_completionTokens));
    metric(out, "lmw_client_disconnects_total", "counter",
           "Generation requests cancelled because the client went away.", static_cast<double>(m_disconnects));
    metric(out, "lmw_request_log_dropped_total", "counter",
           "Request log lines dropped because the log writer fell behind.", static_cast<double>(m_logDropped));
    m_ttft.render(out, "lmw_time_to_first_token_seconds", "Time from arrival to the first generated token.");
    m_latency.render(out, "lmw_request_latency_seconds", "Time from arrival to the end of a generation request.");
    m_itl.render(out, "lmw_inter_token_latency_seconds", "Mean time between tokens of a request, per request.");
    metric(out, "lmw_model_loaded", "gauge", "1 when a model is loaded and serving.", s ? 1 : 0,
           "model=\"" + escapeLabel(model) + "\"");
    if (s) {
        metric(out, "lmw_engine_requests_running", "gauge", "Sequences in the running batch.", s->running);
        metric(out, "lmw_engine_requests_waiting", "gauge", "Requests queued for admission.", s->waiting);
        metric(out, "lmw_engine_kv_blocks_total", "gauge", "KV cache blocks.", static_cast<double>(s->kvBlocksTotal));
        metric(out, "lmw_engine_kv_blocks_used", "gauge", "KV cache blocks in use.", static_cast<double>(s->kvBlocksUsed));
        metric(out, "lmw_engine_kv_cache_usage_ratio", "gauge", "Fraction of KV cache blocks in use.",
               s->kvBlocksTotal > 0 ? static_cast<double>(s->kvBlocksUsed) / static_cast<double>(s->kvBlocksTotal) : 0.0);
        metric(out, "lmw_engine_requests_finished_total", "counter", "Requests the engine finished (any reason).",
               static_cast<double>(s->requestsFinished));
        metric(out, "lmw_engine_prompt_tokens_total", "counter", "Prompt tokens the engine processed.",
               static_cast<double>(s->promptTokens));
        metric(out, "lmw_engine_generated_tokens_total", "counter", "Tokens the engine generated.",
               static_cast<double>(s->generatedTokens));
        metric(out, "lmw_engine_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.",
               static_cast<double>(s->preemptions));
        metric(out, "lmw_engine_prefix_cache_hit_blocks_total", "counter", "KV blocks reused from the prefix cache.",
               static_cast<double>(s->prefixCacheHitBlocks));
        metric(out, "lmw_engine_decode_tokens_per_second", "gauge", "Recent decode throughput, all sequences.",
               s->decodeTokensPerSecond);
        metric(out, "lmw_engine_device_memory_used_bytes", "gauge", "Device memory in use.",
               static_cast<double>(s->deviceMemoryUsed));
    }
    return out;
}

}  // namespace lmw::server
