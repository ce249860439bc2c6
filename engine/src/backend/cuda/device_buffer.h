#pragma once
// Owning device allocation (cudaMalloc / cudaFree) and a growable pinned host buffer.
#include <cstddef>
#include <cstdint>
#include <utility>

namespace lmw::engine::cuda {

class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes);  // throws lmw::Error (OutOfMemory names the size)
    ~DeviceBuffer() { reset(); }
    DeviceBuffer(DeviceBuffer&& o) noexcept : m_ptr(std::exchange(o.m_ptr, nullptr)), m_bytes(std::exchange(o.m_bytes, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            reset();
            m_ptr = std::exchange(o.m_ptr, nullptr);
            m_bytes = std::exchange(o.m_bytes, 0);
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void reset();
    void* get() const { return m_ptr; }
    template <class T>
    T* as() const { return static_cast<T*>(m_ptr); }
    size_t bytes() const { return m_bytes; }
    explicit operator bool() const { return m_ptr != nullptr; }

private:
    void* m_ptr = nullptr;
    size_t m_bytes = 0;
};

class PinnedBuffer {
public:
    PinnedBuffer() = default;
    ~PinnedBuffer();
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    void reserve(size_t bytes);  // keeps nothing when it grows
    uint8_t* data() const { return m_ptr; }

private:
    uint8_t* m_ptr = nullptr;
    size_t m_bytes = 0;
};

}  // namespace lmw::engine::cuda
