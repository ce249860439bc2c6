#include "backend/cuda/arena.h"

#include <algorithm>

namespace lmw::engine::cuda {

namespace {
constexpr size_t kAlign = 256;
size_t alignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

void* Arena::alloc(size_t bytes) {
    bytes = alignUp(bytes == 0 ? 1 : bytes);
    m_virtual += bytes;  // where one buffer big enough for the whole step would be
    m_peak = std::max(m_peak, m_virtual);
    if (m_used + bytes <= m_main.bytes()) {
        void* p = static_cast<char*>(m_main.get()) + m_used;
        m_used += bytes;
        return p;
    }
    m_grew = true;
    m_overflow.emplace_back(bytes);
    return m_overflow.back().get();
}

void Arena::reset() {
    if (m_grew) {
        const size_t want = alignUp(m_peak + m_peak / 4);
        m_overflow.clear();
        m_main = DeviceBuffer();  // free first so the bigger buffer can take its place
        m_main = DeviceBuffer(want);
        ++m_generation;
        m_grew = false;
    }
    m_used = 0;
    m_virtual = 0;
    m_peak = 0;
}

void Arena::release(Mark m) {
    m_used = m.used;
    m_virtual = m.virtualUsed;
    // cudaFree waits for the device, so the kernels that used these chunks are done.
    while (m_overflow.size() > m.chunks) m_overflow.pop_back();
}

void Arena::skip(size_t bytes) {
    m_used = m_virtual = bytes;
    m_peak = std::max(m_peak, bytes);
}

}  // namespace lmw::engine::cuda
