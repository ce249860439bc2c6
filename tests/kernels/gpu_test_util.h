#pragma once
// Helpers for the CUDA kernel tests: device buffers, f16 conversion, random data, error norms and the
// AutoAWQ packing that the loaders undo.
#include <cuda_runtime.h>

#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lmw/dtype.h"

namespace lmw::test {

#define GPU_OK(expr) QCOMPARE(int(expr), 0)

class DeviceMem {
public:
    explicit DeviceMem(size_t bytes) : m_bytes(bytes) {
        if (cudaMalloc(&m_p, bytes ? bytes : 1) != cudaSuccess) m_p = nullptr;
    }
    ~DeviceMem() {
        if (m_p) cudaFree(m_p);
    }
    DeviceMem(const DeviceMem&) = delete;
    DeviceMem& operator=(const DeviceMem&) = delete;
    void* get() const { return m_p; }
    template <class T>
    T* as() const { return static_cast<T*>(m_p); }
    size_t bytes() const { return m_bytes; }
    // Fills with 0xff: f16 NaN, so an element no kernel wrote shows up as NaN.
    void poison() { cudaMemset(m_p, 0xff, m_bytes); }

private:
    void* m_p = nullptr;
    size_t m_bytes = 0;
};

template <class T>
inline std::unique_ptr<DeviceMem> upload(const std::vector<T>& v) {
    auto d = std::make_unique<DeviceMem>(v.size() * sizeof(T));
    cudaMemcpy(d->get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}

template <class T>
inline std::vector<T> download(const DeviceMem& d, size_t n) {
    std::vector<T> v(n);
    cudaDeviceSynchronize();
    cudaMemcpy(v.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
}

inline std::vector<uint16_t> toHalf(const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = floatToHalf(v[i]);
    return h;
}
inline std::vector<float> fromHalf(const std::vector<uint16_t>& h) {
    std::vector<float> v(h.size());
    for (size_t i = 0; i < h.size(); ++i) v[i] = halfToFloat(h[i]);
    return v;
}
// Random values already rounded to f16, so the reference sees exactly what the device sees.
inline std::vector<float> randomHalfValues(size_t n, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = halfToFloat(floatToHalf(d(rng)));
    return v;
}

// ||out - ref|| / ||ref||; NaN or Inf anywhere gives +inf.
inline double relError(const std::vector<float>& out, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < out.size(); ++i) {
        if (!std::isfinite(out[i])) return INFINITY;
        num += (out[i] - ref[i]) * (out[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1e-30));
}

// One unit in the last place of f16 (or bf16) at |v|: the spacing of the 16-bit values around v.
inline double ulp16(double v, bool bf16 = false) {
    const int mant = bf16 ? 7 : 10;
    const double minNormal = std::ldexp(1.0, bf16 ? -126 : -14);
    const double a = std::max(std::fabs(v), minNormal);
    return std::ldexp(1.0, int(std::floor(std::log2(a))) - mant);
}

inline bool gpuUsableForTests() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        return false;
    }
    cudaDeviceProp p{};
    return cudaGetDeviceProperties(&p, 0) == cudaSuccess && p.major == 9 && p.minor == 0;
}

// AutoAWQ GEMM packing: column c of each group of 8 goes to nibble i where order_map[i] = c,
// order_map = [0, 2, 4, 6, 1, 3, 5, 7].
inline std::vector<int32_t> awqPackColumns(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    std::vector<int32_t> out(size_t(rows * cols / 8), 0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c8 = 0; c8 < cols / 8; ++c8) {
            uint32_t w = 0;
            for (int i = 0; i < 8; ++i) w |= uint32_t(codes[size_t(r * cols + c8 * 8 + order[i])] & 15) << (4 * i);
            out[size_t(r * cols / 8 + c8)] = int32_t(w);
        }
    return out;
}

// A random AutoAWQ layer: qweight [K, N/8], qzeros [K/g, N/8], scales [K/g, N] (f16 bits), and the
// dequantized weight W[n][k] = (code - zero) * scale as the kernels compute it (f16 product).
struct AwqLayer {
    int64_t k = 0, n = 0;
    int g = 0;
    std::vector<int32_t> qweight, qzeros;
    std::vector<uint16_t> scales;
    std::vector<float> w;  // [n][k]
};
inline AwqLayer randomAwq(int64_t k, int64_t n, int g, std::mt19937& rng) {
    AwqLayer l;
    l.k = k;
    l.n = n;
    l.g = g;
    std::uniform_int_distribution<int> code(0, 15);
    std::uniform_real_distribution<float> sc(0.002f, 0.02f);
    std::vector<uint8_t> q(size_t(k * n)), z(size_t(k / g * n));
    for (auto& c : q) c = uint8_t(code(rng));
    for (auto& c : z) c = uint8_t(code(rng));
    l.scales.resize(size_t(k / g * n));
    for (auto& s : l.scales) s = floatToHalf(sc(rng));
    l.qweight = awqPackColumns(q, k, n);
    l.qzeros = awqPackColumns(z, k / g, n);
    l.w.resize(size_t(n * k));
    for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) {
            const int64_t gi = c / g;
            const float d = float(q[size_t(c * n + r)]) - float(z[size_t(gi * n + r)]);
            l.w[size_t(r * k + c)] = halfToFloat(floatToHalf(d * halfToFloat(l.scales[size_t(gi * n + r)])));
        }
    return l;
}

}  // namespace lmw::test
