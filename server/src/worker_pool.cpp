#include "worker_pool.h"

namespace lmw::server {

WorkerPool::WorkerPool(int threads, size_t maxQueued) : m_maxQueued(maxQueued) {
    for (int i = 0; i < std::max(1, threads); ++i) m_threads.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() { stop(); }

bool WorkerPool::post(std::function<void()>&& task) {
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping || m_queue.size() >= m_maxQueued) return false;
        m_queue.push_back(std::move(task));
    }
    m_cv.notify_one();
    return true;
}

void WorkerPool::stop() {
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping && m_threads.empty()) return;
        m_stopping = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) t.join();
    m_threads.clear();
}

void WorkerPool::run() {
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(m_mutex);
            m_cv.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
            if (m_queue.empty()) return;  // stopping, and nothing left
            task = std::move(m_queue.front());
            m_queue.pop_front();
        }
        try {
            task();
        } catch (...) {
            // tasks answer their own errors; nothing may escape a worker thread
        }
    }
}

}  // namespace lmw::server
