#pragma once
// A fixed pool of worker threads for the CPU backend's ops. The calling thread takes part in
// every job, so a pool of N threads starts N-1 workers. Workers spin briefly between jobs
// (decode runs hundreds of small ops per step, a sleep and wake per op would dominate) and then
// sleep on a condition variable.
//
// A job does not wait for workers that have not joined it yet: once the caller has claimed the
// last index it closes the job and waits only for the workers inside it. On a busy machine a
// descheduled worker therefore cannot stall every op of a step.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lmw::engine {

class ThreadPool {
public:
    explicit ThreadPool(int threads);  // 0 = std::thread::hardware_concurrency()
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return int(m_workers.size()) + 1; }

    // Calls fn(i) for every i in [0, n), spread over the pool (dynamic: each thread takes the next
    // index). Returns when all are done; rethrows the first exception a call threw.
    void parallelFor(int64_t n, const std::function<void(int64_t)>& fn);

private:
    // m_state: generation in the high 32 bits, kOpen while workers may still join, and the number
    // of workers inside the job in the low bits.
    static constexpr uint64_t kOpen = uint64_t(1) << 31;
    static constexpr uint64_t kActiveMask = kOpen - 1;

    void workerLoop();
    void work();

    std::vector<std::thread> m_workers;
    std::atomic<uint64_t> m_state{0};
    std::atomic<int64_t> m_next{0};
    std::atomic<bool> m_stop{false};
    int64_t m_count = 0;
    const std::function<void(int64_t)>* m_fn = nullptr;
    // Sleeping (after the spin) goes through a mutex and condition variables; every change a
    // sleeper waits for is made under m_mutex, so a wake-up cannot be lost.
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::condition_variable m_done;
    std::mutex m_errorMutex;
    std::exception_ptr m_error;
};

}  // namespace lmw::engine
