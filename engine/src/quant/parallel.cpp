#include "quant/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace lmw::engine::quant {

void parallelFor(int64_t n, const std::function<void(int64_t)>& f) {
    const int64_t threads = std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency()));
    if (threads <= 1) {
        for (int64_t i = 0; i < n; ++i) f(i);
        return;
    }
    // An exception escaping a std::thread calls std::terminate: the first one is kept, the other
    // workers stop taking indices, and it is rethrown here on the caller's thread.
    std::atomic<int64_t> next{0};
    std::exception_ptr error;
    std::mutex errorMutex;
    auto work = [&] {
        try {
            for (int64_t i; (i = next.fetch_add(1)) < n;) f(i);
        } catch (...) {
            std::lock_guard lock(errorMutex);
            if (!error) error = std::current_exception();
            next = n;
        }
    };
    std::vector<std::thread> pool;
    try {
        for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
    } catch (...) {  // no thread could be started: the ones running and this one do the work
    }
    work();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
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
