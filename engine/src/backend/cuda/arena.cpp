#include "backend/cuda/arena.h"

namespace lmw::engine::cuda {

namespace {
constexpr size_t kAlign = 256;
size_t alignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

void* Arena::alloc(size_t bytes) {
    bytes = alignUp(bytes == 0 ? 1 : bytes);
    m_peak += bytes;  // what one buffer would need for this whole step
    if (m_used + bytes <= m_main.bytes()) {
        void* p = static_cast<char*>(m_main.get()) + m_used;
        m_used += bytes;
        return p;
    }
    m_overflow.emplace_back(bytes);
    return m_overflow.back().get();
}

void Arena::reset() {
    if (!m_overflow.empty()) {
        const size_t want = alignUp(m_peak + m_peak / 4);
        m_overflow.clear();
        m_main = DeviceBuffer();  // free first so the bigger buffer can take its place
        m_main = DeviceBuffer(want);
    }
    m_used = 0;
    m_peak = 0;
}

}  // namespace lmw::engine::cuda
