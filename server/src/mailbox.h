#pragma once
// Hands engine events to the HTTP thread that waits for them. The sink runs on the engine thread:
// it only copies the event into a queue under a short lock and notifies, as the engine contract asks.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include "lmw/engine.h"

namespace lmw::server {

struct ChoiceEvent {
    int choice = 0;
    engine::Event event;
};

class Mailbox : public std::enable_shared_from_this<Mailbox> {
public:
    // A sink for choice `choice`; it keeps the mailbox alive, so late events after the HTTP side
    // gave up land harmlessly.
    engine::Sink sinkFor(int choice) {
        auto self = shared_from_this();
        return [self, choice](const engine::Event& e) noexcept {
            try {
                {
                    std::lock_guard lock(self->m_mutex);
                    self->m_queue.push_back({choice, e});
                }
                self->m_cv.notify_one();
            } catch (...) {
                // out of memory copying an event: nothing sane to do on the engine thread
            }
        };
    }

    // Waits until events are queued or `timeout` passes (or wake()); moves the queued events to out.
    bool wait(std::deque<ChoiceEvent>& out, std::chrono::milliseconds timeout) {
        std::unique_lock lock(m_mutex);
        m_cv.wait_for(lock, timeout, [&] { return !m_queue.empty() || m_woken; });
        m_woken = false;
        if (m_queue.empty()) return false;
        for (auto& e : m_queue) out.push_back(std::move(e));
        m_queue.clear();
        return true;
    }

    void wake() {
        {
            std::lock_guard lock(m_mutex);
            m_woken = true;
        }
        m_cv.notify_one();
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<ChoiceEvent> m_queue;
    bool m_woken = false;
};

}  // namespace lmw::server
