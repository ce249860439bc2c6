#include "backend/cpu/membw.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_linear.h"
#include "backend/cpu/thread_pool.h"
#include "lmw/error.h"


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
    const CpuKernels& kernels = cpuKernels();
    double best = 0;
    for (int run = 0; run < 5; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.parallelFor(tasks, [&](int64_t t) {
            sink[size_t(t)] = double(kernels.readSum(buf.get() + t * chunkBytes, chunkBytes));
        });
        const double dt = seconds(t0, std::chrono::steady_clock::now());
        best = std::max(best, double(bytes) / dt / 1e9);
    }
    volatile double keep = 0;
    for (double v : sink) keep = keep + v;  // the sums must look used
    return best;
}

double benchCpuLinearGFlops(int threads, DType dtype, bool awq, int64_t rows, int64_t cols, int64_t T, int iterations) {
    if (!awq && dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
        throw Error(ErrorCode::InvalidArgument, "bench: linear dtype must be F32, F16 or BF16");
    if (awq && (cols % 128 != 0 || rows % 8 != 0))
        throw Error(ErrorCode::InvalidArgument, "bench: an AWQ linear needs cols % 128 == 0 and rows % 8 == 0");
    ThreadPool pool(threads);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    // Random storage (any finite values do for a timing): dense rows, or AWQ qweight/qzeros/scales.
    const int64_t groups = cols / 128, packs = rows / 8;
    std::vector<uint8_t> data, zeros, scales;
    auto fill16 = [&](std::vector<uint8_t>& v, size_t n, bool half) {
        v.resize(n * 2);
        for (size_t i = 0; i < n; ++i) {
            const float f = half ? 0.01f + 0.01f * std::fabs(u(rng)) : u(rng);
            const uint16_t h = dtype == DType::BF16 && !half ? floatToBf16(f) : floatToHalf(f);
            std::memcpy(&v[2 * i], &h, 2);
        }
    };
    TensorRef w, qz, sc;
    LinearSource src;
    src.name = w.name = "bench";
    src.in = cols;
    src.out = rows;
    if (awq) {
        data.resize(size_t(cols * packs * 4));
        zeros.resize(size_t(groups * packs * 4));
        for (auto& b : data) b = uint8_t(rng());
        for (auto& b : zeros) b = uint8_t(rng());
        fill16(scales, size_t(groups * rows), true);
        w = {"qweight", DType::I32, {cols, packs}, data.data(), data.size(), {}};
        qz = {"qzeros", DType::I32, {groups, packs}, zeros.data(), zeros.size(), {}};
        sc = {"scales", DType::F16, {groups, rows}, scales.data(), scales.size(), {}};
        src.awq = true;
        src.groupSize = 128;
        src.segments.push_back({&w, &qz, &sc, 0, rows, 0});
    } else {
        if (dtype == DType::F32) {
            data.resize(size_t(rows * cols * 4));
            for (int64_t i = 0; i < rows * cols; ++i) {
                const float f = u(rng);
                std::memcpy(&data[size_t(i) * 4], &f, 4);
            }
        } else {
            fill16(data, size_t(rows * cols), false);
        }
        w = {"weight", dtype, {rows, cols}, data.data(), data.size(), {}};
        src.dtype = dtype;
        src.segments.push_back({&w, nullptr, nullptr, 0, rows, 0});
    }
    const auto linear = loadCpuLinear(src, pool);
    std::vector<float> x(size_t(T * cols)), y(size_t(T * rows));
    for (auto& v : x) v = u(rng);
    cpuLinear(pool, *linear, x.data(), T, y.data());  // warm-up
    double best = 0;
    for (int it = 0; it < std::max(1, iterations); ++it) {
        const auto t0 = std::chrono::steady_clock::now();
        cpuLinear(pool, *linear, x.data(), T, y.data());
        best = std::max(best, 2.0 * double(rows) * double(cols) * double(T) / seconds(t0, std::chrono::steady_clock::now()) / 1e9);
    }
    return best;
}

uint64_t cpuLastLevelCacheBytes() {
    uint64_t best = 0;
    for (int index = 0; index < 8; ++index) {
        std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
        std::string size;
        if (!(f >> size) || size.empty()) continue;
        uint64_t v = std::strtoull(size.c_str(), nullptr, 10);
        const char unit = size.back();
        v <<= unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
        best = std::max(best, v);
    }
    return best;
}

}  // namespace lmw::engine
