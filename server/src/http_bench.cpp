#include "lmw/http_bench.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>

#include "nlohmann/json.hpp"

namespace lmw::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Split {
    std::string scheme, host;
    int port = 80;
};

Split splitUrl(const std::string& url) {
    Split s;
    std::string rest = url;
    auto p = rest.find("://");
    s.scheme = p == std::string::npos ? "http" : rest.substr(0, p);
    if (p != std::string::npos) rest = rest.substr(p + 3);
    rest = rest.substr(0, rest.find('/'));
    auto colon = rest.rfind(':');
    if (colon != std::string::npos && rest.find(']') == std::string::npos) {
        s.host = rest.substr(0, colon);
        s.port = std::atoi(rest.c_str() + colon + 1);
    } else {
        s.host = rest;
        s.port = s.scheme == "https" ? 443 : 80;
    }
    return s;
}

struct One {
    bool ok = false;
    std::string error;
    double ttft = -1, total = 0;
    std::vector<double> gaps;
    int promptTokens = 0, outputTokens = 0;
};

One runOne(httplib::Client& cli, const HttpBenchOptions& o, const std::string& model, const std::string& prompt) {
    One r;
    json body = {{"model", model}, {"max_tokens", o.maxTokens}, {"temperature", o.temperature}, {"stream", true},
                 {"stream_options", {{"include_usage", true}}}, {"ignore_eos", o.ignoreEos}};
    bool chat = o.endpoint != "completions";
    if (chat) body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
    else body["prompt"] = prompt;
    httplib::Request req;
    req.method = "POST";
    req.path = chat ? "/v1/chat/completions" : "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", "text/event-stream");
    if (!o.apiKey.empty()) req.set_header("Authorization", "Bearer " + o.apiKey);
    std::string buffer, errorBody;
    auto start = Clock::now();
    auto last = start;
    bool done = false;
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
        buffer.append(data, len);
        size_t pos;
        while ((pos = buffer.find("\n\n")) != std::string::npos) {
            std::string event = buffer.substr(0, pos);
            buffer.erase(0, pos + 2);
            if (event.rfind("data: ", 0) != 0) continue;
            std::string payload = event.substr(6);
            if (payload == "[DONE]") {
                done = true;
                continue;
            }
            json j = json::parse(payload, nullptr, false);
            if (j.is_discarded()) continue;
            if (j.contains("error")) {
                errorBody = payload;
                continue;
            }
            if (j.contains("usage") && j["usage"].is_object()) {
                r.promptTokens = j["usage"].value("prompt_tokens", 0);
                r.outputTokens = j["usage"].value("completion_tokens", 0);
            }
            if (!j.contains("choices") || j["choices"].empty()) continue;
            const json& c = j["choices"][0];
            std::string text = chat ? c.value("delta", json::object()).value("content", std::string())
                                    : c.value("text", std::string());
            if (text.empty()) continue;
            auto now = Clock::now();
            if (r.ttft < 0) r.ttft = std::chrono::duration<double>(now - start).count();
            else r.gaps.push_back(std::chrono::duration<double>(now - last).count());
            last = now;
        }
        return true;
    };
    auto res = cli.send(req);
    r.total = std::chrono::duration<double>(Clock::now() - start).count();
    if (!res) {
        r.error = "connection error: " + httplib::to_string(res.error());
    } else if (res->status != 200) {
        r.error = "HTTP " + std::to_string(res->status) + " " + buffer.substr(0, 300);
    } else if (!errorBody.empty()) {
        r.error = errorBody.substr(0, 300);
    } else if (!done) {
        r.error = "stream ended without [DONE]";
    } else {
        r.ok = true;
    }
    return r;
}

std::string fmt(const char* f, double a, double b, double c, double d) {
    char buf[160];
    std::snprintf(buf, sizeof buf, f, a, b, c, d);
    return buf;
}

}  // namespace

Result<HttpBenchResult> runHttpBench(const HttpBenchOptions& o, const std::function<void(int, int)>& progress) {
    if (o.concurrency < 1 || o.requests < 1) return Error(ErrorCode::InvalidArgument, "concurrency and requests must be >= 1");
    if (o.prompts.empty()) return Error(ErrorCode::InvalidArgument, "no prompts");
    Split u = splitUrl(o.url);
    if (u.scheme != "http") return Error(ErrorCode::Unsupported, "only http:// URLs are supported: " + o.url);
    std::string model = o.model;
    if (model.empty()) {
        httplib::Client cli(u.host, u.port);
        httplib::Headers h;
        if (!o.apiKey.empty()) h.emplace("Authorization", "Bearer " + o.apiKey);
        auto res = cli.Get("/v1/models", h);
        if (!res) return Error(ErrorCode::Io, "cannot reach " + o.url + ": " + httplib::to_string(res.error()));
        if (res->status != 200) return Error(ErrorCode::Io, "GET /v1/models: HTTP " + std::to_string(res->status) + " " + res->body);
        json j = json::parse(res->body, nullptr, false);
        if (j.is_discarded() || !j.contains("data") || j["data"].empty())
            return Error(ErrorCode::Io, "GET /v1/models: no model in " + res->body.substr(0, 200));
        model = j["data"][0].value("id", std::string());
    }

    std::atomic<int> next{0}, finished{0};
    std::mutex mutex;
    std::vector<One> all;
    all.reserve(static_cast<size_t>(o.requests));
    auto start = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < std::min(o.concurrency, o.requests); ++w) {
        workers.emplace_back([&] {
            httplib::Client cli(u.host, u.port);
            cli.set_read_timeout(o.timeoutSeconds, 0);
            cli.set_keep_alive(true);
            cli.set_tcp_nodelay(true);  // else Nagle + delayed ACK add ~40 ms to every request
            for (int i; (i = next++) < o.requests;) {
                One r = runOne(cli, o, model, o.prompts[static_cast<size_t>(i) % o.prompts.size()]);
                {
                    std::lock_guard lock(mutex);
                    all.push_back(std::move(r));
                }
                int d = ++finished;
                if (progress) progress(d, o.requests);
            }
        });
    }
    for (auto& t : workers) t.join();

    HttpBenchResult res;
    res.wallSeconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> ttft, gaps, latency;
    for (auto& r : all) {
        if (!r.ok) {
            ++res.failed;
            if (res.firstError.empty()) res.firstError = r.error;
            continue;
        }
        ++res.ok;
        res.promptTokens += r.promptTokens;
        res.outputTokens += r.outputTokens;
        if (r.ttft >= 0) ttft.push_back(r.ttft);
        gaps.insert(gaps.end(), r.gaps.begin(), r.gaps.end());
        latency.push_back(r.total);
    }
    res.requestsPerSecond = res.ok / res.wallSeconds;
    res.outputTokensPerSecond = static_cast<double>(res.outputTokens) / res.wallSeconds;
    res.ttft = engine::percentiles(std::move(ttft));
    res.itl = engine::percentiles(std::move(gaps));
    res.latency = engine::percentiles(std::move(latency));
    return res;
}

std::string HttpBenchResult::toText() const {
    std::string s;
    char buf[256];
    std::snprintf(buf, sizeof buf, "requests: %d ok, %d failed in %.2f s\n", ok, failed, wallSeconds);
    s += buf;
    std::snprintf(buf, sizeof buf, "throughput: %.2f requests/s, %.1f output tokens/s (%lld prompt, %lld output tokens)\n",
                  requestsPerSecond, outputTokensPerSecond, promptTokens, outputTokens);
    s += buf;
    s += fmt("TTFT (ms):          p50 %8.2f  p90 %8.2f  p99 %8.2f  mean %8.2f\n", ttft.p50 * 1e3, ttft.p90 * 1e3, ttft.p99 * 1e3, ttft.mean * 1e3);
    s += fmt("inter-token (ms):   p50 %8.2f  p90 %8.2f  p99 %8.2f  mean %8.2f\n", itl.p50 * 1e3, itl.p90 * 1e3, itl.p99 * 1e3, itl.mean * 1e3);
    s += fmt("latency (ms):       p50 %8.2f  p90 %8.2f  p99 %8.2f  mean %8.2f\n", latency.p50 * 1e3, latency.p90 * 1e3, latency.p99 * 1e3, latency.mean * 1e3);
    if (!firstError.empty()) s += "first error: " + firstError + "\n";
    return s;
}

std::string HttpBenchResult::toJson() const {
    auto pc = [](const Percentiles& p) { return json{{"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"mean", p.mean}}; };
    return json{{"ok", ok}, {"failed", failed}, {"wall_seconds", wallSeconds}, {"requests_per_second", requestsPerSecond},
                {"output_tokens_per_second", outputTokensPerSecond}, {"prompt_tokens", promptTokens},
                {"output_tokens", outputTokens}, {"ttft_seconds", pc(ttft)}, {"inter_token_seconds", pc(itl)},
                {"latency_seconds", pc(latency)}, {"first_error", firstError}}
        .dump(2);
}

}  // namespace lmw::server
