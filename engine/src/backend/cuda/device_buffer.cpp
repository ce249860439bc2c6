#include "backend/cuda/device_buffer.h"

#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/cuda_check.h"
#include "lmw/error.h"

namespace lmw::engine::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) : m_bytes(bytes) {
    if (bytes == 0) return;
    const cudaError_t e = cudaMalloc(&m_ptr, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        m_ptr = nullptr;
        size_t freeB = 0, totalB = 0;
        cudaMemGetInfo(&freeB, &totalB);
        throw Error(ErrorCode::OutOfMemory, "CUDA out of memory allocating " + std::to_string(bytes >> 20) +
                                                " MiB (" + std::to_string(freeB >> 20) + " MiB free of " +
                                                std::to_string(totalB >> 20) + " MiB)");
    }
    LMW_CUDA_CHECK(e);
}

void DeviceBuffer::reset() {
    if (m_ptr) cudaFree(m_ptr);  // errors here have nowhere to go (destructors)
    m_ptr = nullptr;
    m_bytes = 0;
}

PinnedBuffer::~PinnedBuffer() {
    if (m_ptr) cudaFreeHost(m_ptr);
}

void PinnedBuffer::reserve(size_t bytes) {
    if (bytes <= m_bytes) return;
    if (m_ptr) cudaFreeHost(m_ptr);
    m_ptr = nullptr;
    m_bytes = 0;
    const size_t want = bytes + bytes / 2;
    void* p = nullptr;
    LMW_CUDA_CHECK(cudaMallocHost(&p, want));
    m_ptr = static_cast<uint8_t*>(p);
    m_bytes = want;
}

}  // namespace lmw::engine::cuda
