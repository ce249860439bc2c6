#pragma once
// Hands engine events to the HTTP side without a waiting thread. The sink runs on the engine
// thread: it copies the event into a queue under a short lock and, the first time events wait,
// calls the notify function (which posts a drain onto the connection's strand), as the engine
// contract asks: copy out and return at once.
#include <deque>
#include <functional>
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
                std::lock_guard lock(self->m_mutex);
                if (self->m_closed) return;
                self->m_queue.push_back({choice, e});
                self->notifyLocked();
            } catch (...) {
                // out of memory copying an event: nothing sane to do on the engine thread
            }
        };
    }

    // From now on, notify() is called once whenever events start waiting (until take()). It runs
    // under the mailbox's lock, so after close() returns it never runs again.
    void arm(std::function<void()> notify) {
        std::lock_guard lock(m_mutex);
        if (m_closed) return;
        m_notify = std::move(notify);
        if (!m_queue.empty()) notifyLocked();
    }

    // Moves the waiting events to out; the next event notifies again.
    void take(std::deque<ChoiceEvent>& out) {
        std::lock_guard lock(m_mutex);
        for (auto& e : m_queue) out.push_back(std::move(e));
        m_queue.clear();
        m_notified = false;
    }

    void close() {
        std::lock_guard lock(m_mutex);
        m_closed = true;
        m_notify = nullptr;
        m_queue.clear();
    }

private:
    void notifyLocked() {
        if (m_notified || !m_notify) return;
        m_notified = true;
        m_notify();
    }

    std::mutex m_mutex;
    std::deque<ChoiceEvent> m_queue;
    std::function<void()> m_notify;
    bool m_notified = false;
    bool m_closed = false;
};

}  // namespace lmw::server
