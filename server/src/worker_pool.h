#pragma once
// A fixed set of threads for the handlers' CPU work (parsing, chat templates, tokenizing, building
// large bodies), so the I/O threads only move bytes. Bounded: a full queue refuses new work.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lmw::server {

class WorkerPool {
public:
    WorkerPool(int threads, size_t maxQueued);
    ~WorkerPool();  // stop()
    // False when the queue is full or the pool stopped; task is then left as it was (the caller
    // may run it itself or answer 503).
    bool post(std::function<void()>&& task);
    // Runs what is queued, then joins the threads. Safe twice.
    void stop();

private:
    void run();

    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<std::function<void()>> m_queue;
    std::vector<std::thread> m_threads;
    size_t m_maxQueued;
    bool m_stopping = false;
};

}  // namespace lmw::server
