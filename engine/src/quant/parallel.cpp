#include "quant/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace lmw::engine::quant {

void parallelFor(int64_t n, const std::function<void(int64_t)>& f) {
    const int64_t threads = std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency()));
    if (threads <= 1) {
        for (int64_t i = 0; i < n; ++i) f(i);
        return;
    }
    std::atomic<int64_t> next{0};
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int64_t i; (i = next.fetch_add(1)) < n;) f(i);
        });
    for (auto& t : pool) t.join();
}

void parallelRanges(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& f) {
    parallelFor((n + chunk - 1) / chunk, [&](int64_t c) { f(c * chunk, std::min(n, c * chunk + chunk)); });
}

double parallelSum(int64_t n, const std::function<double(int64_t, int64_t)>& f) {
    constexpr int64_t kChunk = 1 << 16;
    std::vector<double> part(size_t((n + kChunk - 1) / kChunk), 0.0);
    parallelRanges(n, kChunk, [&](int64_t b, int64_t e) { part[size_t(b / kChunk)] = f(b, e); });
    double total = 0;
    for (double p : part) total += p;
    return total;
}

}  // namespace lmw::engine::quant
