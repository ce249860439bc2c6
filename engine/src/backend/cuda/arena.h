#pragma once
// Per-step activation memory: a bump allocator over one device buffer. A step that outgrows it takes
// extra chunks (cudaMalloc) for that step only; the next reset() replaces everything with one buffer
// of the peak size, so after the first steps of each shape the hot path never allocates.
#include <cstddef>
#include <vector>

#include "backend/cuda/device_buffer.h"

namespace lmw::engine::cuda {

class Arena {
public:
    explicit Arena(size_t initialBytes) : m_main(initialBytes) {}
    void* alloc(size_t bytes);
    // Call when no kernel still uses this step's memory (the caller synchronizes first if it grew).
    void reset();
    bool grewThisStep() const { return !m_overflow.empty(); }
    size_t capacity() const { return m_main.bytes(); }

private:
    DeviceBuffer m_main;
    size_t m_used = 0;
    size_t m_peak = 0;
    std::vector<DeviceBuffer> m_overflow;
};

}  // namespace lmw::engine::cuda
