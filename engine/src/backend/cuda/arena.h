#pragma once
// Per-step activation memory: a bump allocator over one device buffer. A step that outgrows it takes
// extra chunks (cudaMalloc) for that step only; the next reset() replaces everything with one buffer
// of the peak size, so after the first steps of each shape the hot path never allocates.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cuda/device_buffer.h"

namespace lmw::engine::cuda {

class Arena {
public:
    explicit Arena(size_t initialBytes) : m_main(initialBytes) {}
    void* alloc(size_t bytes);
    // Call when no kernel still uses this step's memory (the caller synchronizes first if it grew).
    void reset();
    bool grewThisStep() const { return m_grew; }
    size_t capacity() const { return m_main.bytes(); }
    // Bytes handed out since reset(), and a counter that changes whenever reset() moves the buffer
    // (a replayed CUDA graph holds addresses in it).
    size_t used() const { return m_used; }
    uint64_t generation() const { return m_generation; }
    // Marks the first `bytes` as handed out, as the step that a replayed graph recorded did.
    void skip(size_t bytes);
    // What was handed out after mark() is free again after release(): the step's ops run in stream
    // order, so later kernels reuse the memory only after the earlier ones are done with it.
    struct Mark {
        size_t used = 0, virtualUsed = 0, chunks = 0;
    };
    Mark mark() const { return {m_used, m_virtual, m_overflow.size()}; }
    void release(Mark m);

private:
    DeviceBuffer m_main;
    size_t m_used = 0;     // bytes handed out of m_main
    size_t m_virtual = 0;  // bytes handed out, overflow included
    size_t m_peak = 0;     // the most m_virtual reached this step
    uint64_t m_generation = 0;
    bool m_grew = false;   // this step took overflow chunks: reset() makes m_main big enough
    std::vector<DeviceBuffer> m_overflow;
};

}  // namespace lmw::engine::cuda
