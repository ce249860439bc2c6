#include "backend/cpu/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMW_CPU_RELAX() _mm_pause()
#else
#define LMW_CPU_RELAX() std::this_thread::yield()
#endif

namespace lmw::engine {

namespace {
// About 50-100 us of spinning: long enough to bridge the gap between two ops of one step, short
// enough not to burn a shared core between steps.
constexpr int kSpinIterations = 4096;

uint32_t generationOf(uint64_t state) { return uint32_t(state >> 32); }
}  // namespace

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = int(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    m_workers.reserve(size_t(threads - 1));
    for (int i = 1; i < threads; ++i) m_workers.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stop.store(true, std::memory_order_release);
        m_state.fetch_add(uint64_t(1) << 32, std::memory_order_acq_rel);
    }
    m_wake.notify_all();
    for (auto& t : m_workers) t.join();
}

void ThreadPool::work() {
    for (;;) {
        const int64_t i = m_next.fetch_add(1, std::memory_order_relaxed);
        if (i >= m_count) break;
        try {
            (*m_fn)(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(m_errorMutex);
            if (!m_error) m_error = std::current_exception();
            m_next.store(m_count, std::memory_order_relaxed);  // skip what is left
        }
    }
}

void ThreadPool::workerLoop() {
    uint32_t seen = 0;  // generation 0 is "no job yet"
    for (;;) {
        uint64_t s = m_state.load(std::memory_order_acquire);
        for (int spin = 0; generationOf(s) == seen && spin < kSpinIterations; ++spin) {
            LMW_CPU_RELAX();
            s = m_state.load(std::memory_order_acquire);
        }
        if (generationOf(s) == seen) {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [&] { return generationOf(m_state.load(std::memory_order_acquire)) != seen; });
            s = m_state.load(std::memory_order_acquire);
        }
        if (m_stop.load(std::memory_order_acquire)) return;
        seen = generationOf(s);
        // Join the job while it is open; a job that closed (or a newer one) is not ours to touch.
        bool joined = false;
        while ((s & kOpen) && generationOf(s) == seen) {
            if (m_state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
                joined = true;
                break;
            }
        }
        if (!joined) continue;
        work();
        const uint64_t after = m_state.fetch_sub(1, std::memory_order_acq_rel) - 1;
        if ((after & kActiveMask) == 0 && !(after & kOpen)) {
            { std::lock_guard<std::mutex> lock(m_mutex); }  // the caller is either before its check or waiting
            m_done.notify_one();
        }
    }
}

void ThreadPool::parallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (m_workers.empty() || n == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    m_fn = &fn;
    m_count = n;
    m_error = nullptr;
    m_next.store(0, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        const uint32_t gen = generationOf(m_state.load(std::memory_order_relaxed)) + 1;
        m_state.store((uint64_t(gen) << 32) | kOpen, std::memory_order_release);  // publishes the job
    }
    m_wake.notify_all();
    work();
    // Every index is claimed: close the job and wait for the workers still inside it.
    uint64_t s = m_state.fetch_and(~kOpen, std::memory_order_acq_rel) & ~kOpen;
    for (int spin = 0; (s & kActiveMask) != 0 && spin < kSpinIterations; ++spin) {
        LMW_CPU_RELAX();
        s = m_state.load(std::memory_order_acquire);
    }
    if ((s & kActiveMask) != 0) {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_done.wait(lock, [&] { return (m_state.load(std::memory_order_acquire) & kActiveMask) == 0; });
    }
    m_fn = nullptr;
    if (m_error) {
        std::exception_ptr e = m_error;
        m_error = nullptr;
        std::rethrow_exception(e);
    }
}

}  // namespace lmw::engine
