#include "backend/cpu/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_linear.h"
#include "backend/cpu/thread_pool.h"
#include "lmw/error.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lmw::engine {

namespace {

uint64_t memAvailableBytes() {
    std::ifstream mem("/proc/meminfo");
    for (std::string key; mem >> key;) {
        uint64_t kb = 0;
        mem >> kb;
        if (key == "MemAvailable:") return kb * 1024;
        std::string unit;
        std::getline(mem, unit);
    }
    return 0;
}

uint64_t benchBufferBytes(uint64_t want) {
    const uint64_t avail = memAvailableBytes();
    uint64_t bytes = want;
    if (avail) bytes = std::min(bytes, avail / 4);
    bytes = std::max<uint64_t>(bytes, uint64_t(64) << 20);
    return bytes / 4096 * 4096;
}

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

std::unique_ptr<uint8_t, FreeDeleter> allocPages(uint64_t bytes) {
    std::unique_ptr<uint8_t, FreeDeleter> p(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
    if (!p) throw Error(ErrorCode::OutOfMemory, "bench: cannot allocate " + std::to_string(bytes >> 20) + " MiB");
    return p;
}

double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

}  // namespace

double measureMemoryBandwidthGBs(int threads) {
    ThreadPool pool(threads);
    const uint64_t bytes = benchBufferBytes(uint64_t(1) << 30);
    auto buf = allocPages(bytes);
    const int64_t chunkBytes = int64_t(4) << 20;  // tasks of 4 MiB, taken dynamically
    const int64_t tasks = int64_t(bytes) / chunkBytes;
    // First touch from the pool so pages land near the threads that read them.
    pool.parallelFor(tasks, [&](int64_t t) { std::memset(buf.get() + t * chunkBytes, int(t & 0x7f), size_t(chunkBytes)); });
    std::vector<double> sink(size_t(tasks), 0.0);
    double best = 0;
    for (int run = 0; run < 5; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.parallelFor(tasks, [&](int64_t t) {
            const uint8_t* p = buf.get() + t * chunkBytes;
#if defined(__AVX2__)
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t i = 0; i < chunkBytes; i += 128) {
                a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
                a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
                a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
                a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
            }
            const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
            alignas(32) uint64_t lanes[4];  // wraps, like the lane sums: the sum only keeps the loads alive
            _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
            sink[size_t(t)] = double(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
#else
            uint64_t s = 0;
            for (int64_t i = 0; i < chunkBytes; i += 8) {
                uint64_t v;
                std::memcpy(&v, p + i, 8);
                s += v;
            }
            sink[size_t(t)] = double(s);
#endif
        });
        const double dt = seconds(t0, std::chrono::steady_clock::now());
        best = std::max(best, double(bytes) / dt / 1e9);
    }
    volatile double keep = 0;
    for (double v : sink) keep = keep + v;  // the sums must look used
    return best;
}

double benchCpuLinearGBs(int threads, DType dtype, int64_t rows, int64_t cols, uint64_t totalBytes, int iterations) {
    if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
        throw Error(ErrorCode::InvalidArgument, "bench: linear dtype must be F32, F16 or BF16");
    ThreadPool pool(threads);
    const uint64_t layerBytes = uint64_t(rows) * uint64_t(cols) * dtypeSize(dtype);
    const int layers = int(std::max<uint64_t>(1, benchBufferBytes(totalBytes) / layerBytes));
    auto buf = allocPages(layerBytes * uint64_t(layers));
    {
        // Small random values in the storage dtype (any finite numbers do for a timing).
        std::mt19937 rng(1);
        std::vector<uint8_t> pattern(1 << 16);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        for (size_t i = 0; i + 4 <= pattern.size(); i += 4) {
            const float v = u(rng);
            if (dtype == DType::F32) std::memcpy(&pattern[i], &v, 4);
            else {
                const uint16_t a = dtype == DType::F16 ? floatToHalf(v) : floatToBf16(v);
                const uint16_t b = dtype == DType::F16 ? floatToHalf(-v) : floatToBf16(-v);
                std::memcpy(&pattern[i], &a, 2);
                std::memcpy(&pattern[i + 2], &b, 2);
            }
        }
        const uint64_t total = layerBytes * uint64_t(layers);
        const int64_t pieces = int64_t((total + pattern.size() - 1) / pattern.size());
        pool.parallelFor(pieces, [&](int64_t i) {
            const uint64_t off = uint64_t(i) * pattern.size();
            std::memcpy(buf.get() + off, pattern.data(), size_t(std::min<uint64_t>(pattern.size(), total - off)));
        });
    }
    std::vector<TensorRef> refs(static_cast<size_t>(layers));
    std::vector<std::unique_ptr<CpuLinear>> weights;
    for (int l = 0; l < layers; ++l) {
        TensorRef& r = refs[size_t(l)];
        r.name = "bench." + std::to_string(l);
        r.dtype = dtype;
        r.shape = {rows, cols};
        r.data = buf.get() + uint64_t(l) * layerBytes;
        r.bytes = layerBytes;
        LinearSource src;
        src.name = r.name;
        src.in = cols;
        src.out = rows;
        src.dtype = dtype;
        src.segments.push_back({&r, nullptr, nullptr, 0, rows, 0});
        weights.push_back(loadCpuLinear(src, pool));
    }
    std::vector<float> x(static_cast<size_t>(cols), 0.01f), y(static_cast<size_t>(rows));
    for (auto& w : weights) cpuLinear(pool, *w, x.data(), 1, y.data());  // warm-up
    double best = 0;
    for (int it = 0; it < std::max(1, iterations); ++it) {
        const auto t0 = std::chrono::steady_clock::now();
        for (auto& w : weights) cpuLinear(pool, *w, x.data(), 1, y.data());
        const double dt = seconds(t0, std::chrono::steady_clock::now());
        best = std::max(best, double(layerBytes) * layers / dt / 1e9);
    }
    return best;
}

}  // namespace lmw::engine
