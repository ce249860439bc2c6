// Kernel benchmarks on the measured ceilings of this GPU:
//   - device-to-device copy bandwidth (bytes read + written) and cuBLAS f16 GEMM, measured in this run
//   - W4A16 GEMM (lmw_kernels::awqGemm) at 7B decode shapes: time, GB/s, fraction of copy bandwidth,
//     speed-up over cuBLAS f16 on the same shape; plus the dequantize + cuBLAS path for larger M
//   - W4A16 decode GEMV (lmw_kernels::awqGemv, M <= 16) on the fused 7B shapes against the read bandwidth
//     (sumWords32) and cuBLAS f16, on a stream and replayed from a CUDA graph, plus a configuration sweep
//   - 16-bit skinny GEMM (lmw_kernels::skinnyGemm, M <= 16) on the 7B and 8B shapes in f16 and bf16
//     against the read bandwidth and cuBLAS in the same types, the silu-fused down input, a tuning sweep
//   - paged decode attention at batch 32, context 2048, for f16 / int8 / int4 KV
//   - the fused per-layer kernels (addRmsNorm, ropeKvStore) against the kernel pairs they replace
// Inputs are random (never zeros) and rotated over enough copies that they do not sit in L2.
//   - the 7B layer's four skinny GEMMs chained over 32 layers in one graph, plain vs overlapped launch
// Usage: kernels_bench [--quick] [--gemm-only | --attn-only | --skinny-only | --chain-only | --w4-only |
//        --fused-only]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "lmw/kernels/add.h"
#include "lmw/kernels/awq_gemm.h"
#include "lmw/kernels/kv_cache.h"
#include "lmw/kernels/paged_attention.h"
#include "lmw/kernels/read_sum.h"
#include "lmw/kernels/rms_norm.h"
#include "lmw/kernels/rope.h"
#include "lmw/kernels/rope_kv_store.h"
#include "lmw/kernels/silu_mul.h"
#include "lmw/kernels/skinny_gemm.h"

namespace k = lmw::kernels;

#define CK(x)                                                                                    \
    do {                                                                                         \
        const int e_ = int(x);                                                                   \
        if (e_) {                                                                                \
            std::fprintf(stderr, "%s:%d: %s failed: %d (%s)\n", __FILE__, __LINE__, #x, e_,      \
                         cudaGetErrorString(cudaError_t(e_)));                                   \
            std::exit(1);                                                                        \
        }                                                                                        \
    } while (0)

namespace {
__device__ uint32_t hash32(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return uint32_t(x);
}
__global__ void fillBits(uint32_t* p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        p[i] = hash32(i * 2654435761ull + seed);
}
// Halves uniform in [lo, hi).
__global__ void fillHalf(__half* p, size_t n, float lo, float hi, uint64_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        p[i] = __float2half(lo + (hi - lo) * float(hash32(i + seed * 0x9e3779b97f4a7c15ull) >> 8) / 16777216.f);
}
// AWQ scales/zeros: scale in [0.002, 0.02), 1024 + zero with zero in 0..15.
__global__ void fillSz(__half2* p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        const uint32_t h = hash32(i + seed);
        p[i] = __halves2half2(__float2half(0.002f + 0.018f * float(h >> 8) / 16777216.f), __float2half(1024.f + float(h & 15)));
    }
}

void* dalloc(size_t bytes) {
    void* p = nullptr;
    CK(cudaMalloc(&p, bytes));
    return p;
}

// Median milliseconds per call of fn(i), i = rotation index: 7 rounds of `reps` calls, events around each round.
template <class F>
float timeMs(F fn, int reps, int warm = 5) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < warm; ++i) fn(i);
    CK(cudaDeviceSynchronize());
    std::vector<float> t;
    int idx = 0;
    for (int r = 0; r < 7; ++r) {
        CK(cudaEventRecord(a));
        for (int i = 0; i < reps; ++i) fn(idx++);
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms / reps);
    }
    CK(cudaGetLastError());
    std::sort(t.begin(), t.end());
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return t[t.size() / 2];
}

float copyBandwidthGBs() {
    const size_t bytes = size_t(1) << 30;
    void* a = dalloc(bytes);
    void* b = dalloc(bytes);
    CK(cudaMemset(a, 1, bytes));
    const float ms = timeMs([&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 10, 2);
    cudaFree(a);
    cudaFree(b);
    return float(2.0 * bytes / (ms * 1e-3) / 1e9);
}

// Read-only bandwidth (the decode roofline): lmw_kernels::sumWords32 over 2 GiB, best of the rounds.
float readBandwidthGBs() {
    const size_t bytes = size_t(2) << 30;
    void* a = dalloc(bytes);
    auto* sum = static_cast<uint64_t*>(dalloc(sizeof(uint64_t)));
    CK(cudaMemset(a, 1, bytes));
    const float ms = timeMs([&](int) { CK(k::sumWords32(a, int64_t(bytes), sum, nullptr)); }, 5, 2);
    uint64_t got = 0;
    CK(cudaMemcpy(&got, sum, sizeof got, cudaMemcpyDeviceToHost));
    if (got != uint64_t(bytes / 4) * 0x01010101ull) std::fprintf(stderr, "read probe: wrong sum %llu\n", (unsigned long long)got);
    cudaFree(a);
    cudaFree(sum);
    return float(double(bytes) / (ms * 1e-3) / 1e9);
}

// Milliseconds per call of fn(i) replayed from a CUDA graph of `reps` calls (so host launch cost is not
// in the figure, as in the engine's graph-replayed decode step). fn must launch on `s`.
template <class F>
float graphMs(F fn, int reps, cudaStream_t s) {
    cudaGraph_t g;
    cudaGraphExec_t ge;
    fn(0);  // outside the capture: first-call setup (function attributes) happens here
    CK(cudaStreamSynchronize(s));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < reps; ++i) fn(i);
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const float ms = timeMs([&](int) { CK(cudaGraphLaunch(ge, s)); }, 3, 2);
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    return ms / float(reps);
}

int copiesFor(size_t bytes) { return int(std::max<size_t>(2, (size_t(256) << 20) / bytes + 1)); }
// W4A16 decode GEMV (awqGemv) on the 7B shapes as the engine runs them (q/k/v and gate/up fused):
// time per call on a stream and replayed from a CUDA graph, GB/s of int4 weights + scales/zeros, the
// fraction of the measured read bandwidth, and the speed-up over cuBLAS f16 on the same shape. down
// also runs with the silu input fused (awqGemvSiluMul) against siluMul + awqGemv. Without --quick, a
// sweep of the kernel's tile grouping at M = 1 and 16 (the default picks it by M).
void w4Gemv(cublasHandle_t blas, float readBw, bool quick) {
    struct Shape {
        int k, n;
        const char* what;
    } shapes[] = {{4096, 12288, "qkv"}, {4096, 4096, "o"}, {4096, 22016, "gate_up"}, {11008, 4096, "down"}};
    const int g = 128;
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    CK(cublasSetStream(blas, st));
    std::printf("\nW4A16 decode GEMV (awqGemv, group %d). bytes = K*N/2 + K/g*N*4 (weights + scales/zeros).\n", g);
    std::printf("stream = back-to-back launches; graph = replayed from a CUDA graph; %% of read = graph GB/s / %.0f GB/s;\n", readBw);
    std::printf("x cuBLAS = cuBLAS f16 time (stream) / awqGemv time (stream | graph); old = awqGemm (stream).\n");
    std::printf("%-8s %6s %6s %3s | %9s %9s %8s %7s | %9s %7s %7s | %8s\n", "layer", "K", "N", "M", "stream us", "graph us",
                "GB/s", "of read", "cuBLAS us", "x strm", "x graph", "old us");
    for (const auto& s : shapes) {
        const int64_t K = s.k, N = s.n, G = K / g;
        const size_t qwBytes = size_t(N * K / 2), szBytes = size_t(N * G * 4), wBytes = size_t(N * K * 2);
        const int nq = copiesFor(qwBytes + szBytes), nw = copiesFor(wBytes);
        std::vector<void*> qw(static_cast<size_t>(nq)), sz(static_cast<size_t>(nq)), w16(static_cast<size_t>(nw));
        for (int i = 0; i < nq; ++i) {
            qw[size_t(i)] = dalloc(qwBytes);
            sz[size_t(i)] = dalloc(szBytes);
            fillBits<<<1024, 256>>>(static_cast<uint32_t*>(qw[size_t(i)]), qwBytes / 4, uint64_t(i) * 77 + 1);
            fillSz<<<1024, 256>>>(static_cast<__half2*>(sz[size_t(i)]), size_t(N * G), uint64_t(i) * 31 + 5);
        }
        for (int i = 0; i < nw; ++i) {
            w16[size_t(i)] = dalloc(wBytes);
            fillHalf<<<1024, 256>>>(static_cast<__half*>(w16[size_t(i)]), size_t(N * K), -0.05f, 0.05f, uint64_t(i) + 3);
        }
        const int maxM = int(k::kAwqGemvMaxM);
        void* x = dalloc(size_t(maxM * K * 2));
        void* gateUp = dalloc(size_t(maxM * 2 * K * 2));
        void* act = dalloc(size_t(maxM * K * 2));
        void* out = dalloc(size_t(maxM * N * 2));
        fillHalf<<<1024, 256>>>(static_cast<__half*>(x), size_t(maxM * K), -1.f, 1.f, 11);
        fillHalf<<<1024, 256>>>(static_cast<__half*>(gateUp), size_t(maxM * 2 * K), -4.f, 4.f, 13);
        CK(cudaDeviceSynchronize());
        const double bytes = double(qwBytes + szBytes);
        auto qwAt = [&](int i) { return static_cast<uint32_t*>(qw[size_t(i % nq)]); };
        auto szAt = [&](int i) { return sz[size_t(i % nq)]; };
        for (int M : {1, 4, 16}) {
            auto gemv = [&](int i) { CK(k::awqGemv(out, x, qwAt(i), szAt(i), M, N, K, g, st)); };
            auto old = [&](int i) { CK(k::awqGemm(out, x, qwAt(i), szAt(i), M, N, K, g, st)); };
            const float alpha = 1.f, beta = 0.f;
            auto cb = [&](int i) {
                CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), M, int(K), &alpha, w16[size_t(i % nw)], CUDA_R_16F,
                                int(K), x, CUDA_R_16F, int(K), &beta, out, CUDA_R_16F, int(N), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
            };
            // timeMs records its events on the legacy stream, which is ordered with the blocking stream st.
            const float ts = timeMs(gemv, 50), tg = graphMs(gemv, 2 * nq, st), tb = timeMs(cb, 50), to = timeMs(old, 50);
            const double gbs = bytes / (tg * 1e-3) / 1e9;
            std::printf("%-8s %6lld %6lld %3d | %9.2f %9.2f %8.0f %6.0f%% | %9.2f %6.2fx %6.2fx | %8.2f\n", s.what,
                        (long long)K, (long long)N, M, ts * 1e3, tg * 1e3, gbs, 100.0 * gbs / readBw, tb * 1e3, tb / ts,
                        tb / tg, to * 1e3);
            if (K == 11008) {
                auto fused = [&](int i) { CK(k::awqGemvSiluMul(out, gateUp, qwAt(i), szAt(i), M, N, K, g, st)); };
                auto split = [&](int i) {
                    CK(k::siluMul(act, gateUp, M, int(K), st));
                    CK(k::awqGemv(out, act, qwAt(i), szAt(i), M, N, K, g, st));
                };
                const float tf = graphMs(fused, 2 * nq, st), tsp = graphMs(split, 2 * nq, st);
                std::printf("%-8s %6s %6s %3d | silu fused (graph) %.2f us, siluMul + awqGemv (graph) %.2f us\n", "",
                            "", "", M, tf * 1e3, tsp * 1e3);
            }
        }
        if (!quick) {
            for (int M : {1, 16}) {
                std::printf("%-8s sweep M=%-2d graph us:", s.what, M);
                for (int t : {1, 2}) {
                    const k::AwqGemvConfig cfg{t};
                    const float tc = graphMs(
                        [&](int i) { CK(k::awqGemv(out, x, qwAt(i), szAt(i), M, N, K, g, st, &cfg)); }, 2 * nq, st);
                    std::printf("  tiles/warp %d %.2f", t, tc * 1e3);
                }
                if (M == 1) {  // the default stages x in shared memory at m <= 8; this reads it per step
                    const k::AwqGemvConfig cfg{0, 0};
                    const float tc = graphMs(
                        [&](int i) { CK(k::awqGemv(out, x, qwAt(i), szAt(i), M, N, K, g, st, &cfg)); }, 2 * nq, st);
                    std::printf("  x not staged %.2f", tc * 1e3);
                }
                std::printf("\n");
            }
        }
        for (void* p : qw) cudaFree(p);
        for (void* p : sz) cudaFree(p);
        for (void* p : w16) cudaFree(p);
        for (void* p : {x, gateUp, act, out}) cudaFree(p);
    }
    CK(cublasSetStream(blas, nullptr));
    CK(cudaStreamDestroy(st));
}
__global__ void fillBf16(__nv_bfloat16* p, size_t n, float lo, float hi, uint64_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        p[i] = __float2bfloat16(lo + (hi - lo) * float(hash32(i + seed * 0x9e3779b97f4a7c15ull) >> 8) / 16777216.f);
}
void fill16(void* p, size_t n, float lo, float hi, uint64_t seed, k::DType16 t) {
    if (t == k::DType16::F16) fillHalf<<<1024, 256>>>(static_cast<__half*>(p), n, lo, hi, seed);
    else fillBf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(p), n, lo, hi, seed);
    CK(cudaGetLastError());
}

// 16-bit skinny GEMM (skinnyGemm) against cuBLAS (cublasGemmEx, same 16-bit type, f32 accumulate) on the
// 7B / 8B decode shapes: time per call on a stream and replayed from a CUDA graph, GB/s of weights + x +
// out (graph), the fraction of the measured read bandwidth, the speed-up over cuBLAS (stream time over
// stream | graph time). down also runs with the silu input fused against siluMul + skinnyGemm (f16:
// siluMul's type); it lost at every M, so the backend no longer uses it. With `sweep`, the built tunings.
void skinny16(cublasHandle_t blas, float readBw, bool sweep) {
    struct Shape {
        const char* model;
        const char* what;
        int64_t n, k;
    } shapes[] = {{"7b", "qkv", 12288, 4096},    {"7b", "o", 4096, 4096},         {"7b", "gate_up", 22016, 4096},
                  {"7b", "down", 4096, 11008},   {"8b", "qkv", 6144, 4096},       {"8b", "gate_up", 28672, 4096},
                  {"8b", "down", 4096, 14336},   {"8b", "lm_head", 128256, 4096}};
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    CK(cublasSetStream(blas, st));
    std::printf("\n16-bit skinny GEMM (skinnyGemm, M <= 16) vs cuBLAS in the same type. GB/s = (N*K + M*K + M*N) * 2 "
                "bytes / graph time;\n%% of read = of %.0f GB/s; x strm | x graph = cuBLAS stream time / skinny stream | "
                "graph time.\n", readBw);
    std::printf("%-3s %-8s %6s %6s %-4s %3s | %9s %9s %8s %7s | %9s %7s %7s\n", "", "layer", "N", "K", "type", "M",
                "stream us", "graph us", "GB/s", "of read", "cuBLAS us", "x strm", "x graph");
    const k::SkinnyGemmTuning tunings[] = {{8, 4},  {8, 8},  {4, 8},  {16, 2},
                                           {16, 4}, {8, 2, true, 0, 2}, {16, 2, true, 0, 2}, {4, 4, true, 0, 2}};
    for (const auto& s : shapes) {
        const int64_t N = s.n, K = s.k, maxM = k::kSkinnyGemmMaxM;
        const size_t wBytes = size_t(N * K * 2);
        const int nw = copiesFor(wBytes);
        std::vector<void*> w(static_cast<size_t>(nw));
        for (auto& p : w) p = dalloc(wBytes);
        void* x = dalloc(size_t(maxM * K * 2));
        void* gateUp = dalloc(size_t(maxM * 2 * K * 2));
        void* act = dalloc(size_t(maxM * K * 2));
        void* out = dalloc(size_t(maxM * N * 2));
        auto wAt = [&](int i) { return w[size_t(i % nw)]; };
        for (k::DType16 t : {k::DType16::F16, k::DType16::BF16}) {
            const bool f16 = t == k::DType16::F16;
            for (int i = 0; i < nw; ++i) fill16(w[size_t(i)], size_t(N * K), -0.05f, 0.05f, uint64_t(i) + 3, t);
            fill16(x, size_t(maxM * K), -1.f, 1.f, 11, t);
            fill16(gateUp, size_t(maxM * 2 * K), -4.f, 4.f, 13, t);
            CK(cudaDeviceSynchronize());
            const cudaDataType dt = f16 ? CUDA_R_16F : CUDA_R_16BF;
            for (int M : {1, 4, 16}) {
                auto sk = [&](int i) { CK(k::skinnyGemm(out, x, wAt(i), M, N, K, t, false, st)); };
                const float alpha = 1.f, beta = 0.f;
                auto cb = [&](int i) {
                    CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), M, int(K), &alpha, wAt(i), dt, int(K), x, dt,
                                    int(K), &beta, out, dt, int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                };
                const float ts = timeMs(sk, 50), tg = graphMs(sk, 2 * nw, st), tb = timeMs(cb, 50);
                const double gbs = double(wBytes + size_t(M) * (K + N) * 2) / (tg * 1e-3) / 1e9;
                std::printf("%-3s %-8s %6lld %6lld %-4s %3d | %9.2f %9.2f %8.0f %6.1f%% | %9.2f %6.2fx %6.2fx\n", s.model,
                            s.what, (long long)N, (long long)K, f16 ? "f16" : "bf16", M, ts * 1e3, tg * 1e3, gbs,
                            100.0 * gbs / readBw, tb * 1e3, tb / ts, tb / tg);
            }
            if (f16 && std::strcmp(s.what, "down") == 0) {
                std::printf("%-3s %-8s silu input, graph us (fused | siluMul + skinnyGemm):", s.model, s.what);
                for (int M : {1, 2, 4, 8, 16}) {
                    auto fused = [&](int i) { CK(k::skinnyGemm(out, gateUp, wAt(i), M, N, K, t, true, st)); };
                    auto split = [&](int i) {
                        CK(k::siluMul(act, gateUp, M, int(K), st));
                        CK(k::skinnyGemm(out, act, wAt(i), M, N, K, t, false, st));
                    };
                    std::printf("  M=%d %.2f | %.2f", M, graphMs(fused, 2 * nw, st) * 1e3, graphMs(split, 2 * nw, st) * 1e3);
                }
                std::printf("\n");
            }
            if (sweep && f16) {
                for (int M : {1, 16}) {
                    std::printf("%-3s %-8s sweep f16 M=%-2d graph us (warps x unroll):", s.model, s.what, M);
                    for (const auto& tu : tunings)
                        std::printf("  %s%dx%d %.2f", tu.tiles == 2 ? "t2:" : "", tu.warps, tu.unroll,
                                    graphMs([&](int i) { CK(k::skinnyGemmTuned(out, x, wAt(i), M, N, K, t, false, tu, st)); },
                                            2 * nw, st) * 1e3);
                    std::printf("\n");
                }
            }
        }
        for (void* p : w) cudaFree(p);
        for (void* p : {x, gateUp, act, out}) cudaFree(p);
    }
    CK(cublasSetStream(blas, nullptr));
    CK(cudaStreamDestroy(st));
}
// The four GEMMs of a 7B layer (qkv 12288x4096, o 4096x4096, gate_up 22016x4096, down 4096x11008) back to
// back for 32 layers with distinct weights (12.96 GB, more than L2 can hide), each reading the previous
// one's output, replayed from one CUDA graph: what a decode step's GEMMs cost end to end, launch ramps and
// tails included, which single-GEMM figures hide. Each row is one skinnyGemm tuning; "plain" is the
// ordinary launch, "overlap" the programmatic dependent launch (the backend's default), "+L2 n" adds the
// L2 prefetch of n blocks per warp before the wait. f16; bytes = weights + x + out of the four GEMMs.
void skinnyChain(float readBw, bool sweep) {
    const k::DType16 t = k::DType16::F16;
    struct Gemm {
        int64_t n, k;
    } gemms[4] = {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}};
    size_t layerWeights = 0;
    for (const auto& g : gemms) layerWeights += size_t(g.n * g.k * 2);
    size_t freeB = 0, totalB = 0;
    CK(cudaMemGetInfo(&freeB, &totalB));
    int layers = 32;
    while (layers > 8 && size_t(layers) * layerWeights + (size_t(1) << 30) > freeB) --layers;
    const int maxM = int(k::kSkinnyGemmMaxM);
    std::vector<void*> w(size_t(layers) * 4);
    for (int l = 0; l < layers; ++l)
        for (int j = 0; j < 4; ++j) {
            const auto& g = gemms[j];
            void*& p = w[size_t(l * 4 + j)];
            p = dalloc(size_t(g.n * g.k * 2));
            // +-sqrt(3/K): outputs keep the input's spread through the 4 * layers GEMMs (no inf).
            const float a = float(std::sqrt(3.0 / double(g.k)));
            fill16(p, size_t(g.n * g.k), -a, a, uint64_t(l * 4 + j) + 101, t);
        }
    // x -> qkv -> (first M x 4096 of it) -> o -> y -> gate_up -> gu -> (first M x 11008) -> down -> x
    void* x = dalloc(size_t(maxM) * 4096 * 2);
    void* qkv = dalloc(size_t(maxM) * 12288 * 2);
    void* y = dalloc(size_t(maxM) * 4096 * 2);
    void* gu = dalloc(size_t(maxM) * 22016 * 2);
    fill16(x, size_t(maxM) * 4096, -1.f, 1.f, 7, t);
    CK(cudaDeviceSynchronize());
    // A blocking stream: timeMs records its events on the legacy stream, which orders with this one only then.
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    std::printf("\nSkinny GEMM chain: 7B layer (qkv, o, gate_up, down) x %d layers, %.2f GB of f16 weights, one CUDA "
                "graph;\nus per layer, GB/s = (weights + x + out) / time, %% of read = of %.0f GB/s.\n",
                layers, double(layers) * double(layerWeights) / 1e9, readBw);
    std::printf("%3s  %-27s | %9s %8s %7s\n", "M", "tuning", "us/layer", "GB/s", "of read");
    std::vector<k::SkinnyGemmTuning> rows = {{8, 4, false, 0}, {8, 4, true, 0}, {8, 4, true, 2}, {8, 4, true, 4}};
    if (sweep)
        for (k::SkinnyGemmTuning tu : {k::SkinnyGemmTuning{8, 8, true, 0}, k::SkinnyGemmTuning{16, 4, true, 0},
                                       k::SkinnyGemmTuning{16, 2, true, 0}, k::SkinnyGemmTuning{4, 8, true, 0},
                                       k::SkinnyGemmTuning{16, 4, true, 2}, k::SkinnyGemmTuning{8, 2, true, 0, 2},
                                       k::SkinnyGemmTuning{16, 2, true, 0, 2}, k::SkinnyGemmTuning{4, 4, true, 0, 2},
                                       k::SkinnyGemmTuning{8, 2, true, 2, 2}})
            rows.push_back(tu);
    for (int M : {1, 4, 16}) {
        size_t bytes = layerWeights;
        for (const auto& g : gemms) bytes += size_t(M) * size_t(g.k + g.n) * 2;
        for (const auto& tu : rows) {
            auto layer = [&](int i) {
                void* const* lw = &w[size_t(i % layers) * 4];
                CK(k::skinnyGemmTuned(qkv, x, lw[0], M, 12288, 4096, t, false, tu, st));
                CK(k::skinnyGemmTuned(y, qkv, lw[1], M, 4096, 4096, t, false, tu, st));
                CK(k::skinnyGemmTuned(gu, y, lw[2], M, 22016, 4096, t, false, tu, st));
                CK(k::skinnyGemmTuned(x, gu, lw[3], M, 4096, 11008, t, false, tu, st));
            };
            const float ms = graphMs(layer, layers, st);
            const double gbs = double(bytes) / (ms * 1e-3) / 1e9;
            char name[64];
            std::snprintf(name, sizeof name, "%s%dx%d %s%s", tu.tiles == 2 ? "2 tiles " : "", tu.warps, tu.unroll,
                          tu.overlap ? "overlap" : "plain", tu.l2Blocks ? (" +L2 " + std::to_string(tu.l2Blocks)).c_str() : "");
            std::printf("%3d  %-27s | %9.2f %8.0f %6.1f%%\n", M, name, ms * 1e3, gbs, 100.0 * gbs / readBw);
        }
    }
    CK(cudaStreamDestroy(st));
    for (void* p : w) cudaFree(p);
    for (void* p : {x, qkv, y, gu}) cudaFree(p);
}
// The per-layer elementwise work of a 7B decode step, each fused kernel against the two it replaces,
// replayed from CUDA graphs (microseconds per call): residual add + RMSNorm (hidden 4096), and rotary
// embedding + KV-cache write (context 512, llama2-7b and llama3-8b heads, f16 / int8 / int4 KV).
void fusedLayerOps() {
    cudaStream_t st;
    CK(cudaStreamCreate(&st));  // blocking: timeMs records its events on the legacy stream
    std::printf("\nFused layer ops, graph us per call: fused kernel | the two kernels it replaces.\n");
    const int hidden = 4096;
    float* w = static_cast<float*>(dalloc(hidden * 4));
    const std::vector<float> ones(hidden, 1.f);
    CK(cudaMemcpy(w, ones.data(), hidden * 4, cudaMemcpyHostToDevice));
    for (int M : {1, 4, 16}) {
        const size_t n = size_t(M) * hidden;
        auto* x = static_cast<__half*>(dalloc(n * 2));
        auto* y = static_cast<__half*>(dalloc(n * 2));
        auto* h = static_cast<__half*>(dalloc(n * 2));
        fillHalf<<<64, 256, 0, st>>>(x, n, -1.f, 1.f, 1);
        fillHalf<<<64, 256, 0, st>>>(y, n, -1e-3f, 1e-3f, 2);  // small: x stays finite over the replays
        const float fused = graphMs([&](int) { CK(k::addRmsNorm(x, y, h, w, M, hidden, 1e-5f, st)); }, 200, st);
        const float split = graphMs(
            [&](int) {
                CK(k::addInPlace(x, y, int64_t(n), st));
                CK(k::rmsNorm(h, hidden, x, hidden, w, M, hidden, hidden, 1e-5f, st));
            },
            200, st);
        std::printf("addRmsNorm  hidden %d M=%-2d            | %6.2f | %6.2f (addInPlace + rmsNorm)\n", hidden, M,
                    fused * 1e3, split * 1e3);
        for (void* q : {(void*)x, (void*)y, (void*)h}) cudaFree(q);
    }
    struct Heads {
        int heads, kvHeads;
        const char* what;
    } models[] = {{32, 32, "llama2-7b"}, {32, 8, "llama3-8b"}};
    const int D = 128, ctx = 512, bs = 64;
    for (const auto& m : models)
        for (int quant : {0, 8, 4})
            for (int batch : {1, 4, 16}) {
                k::KvLayout L;
                L.layers = 1;
                L.kvHeads = m.kvHeads;
                L.headDim = D;
                L.blockSize = bs;
                L.quant = quant;
                const int blocksPerSeq = ctx / bs;
                void* cache = dalloc(size_t(batch * blocksPerSeq) * size_t(L.blockBytes()));
                std::vector<int32_t> table(static_cast<size_t>(batch * blocksPerSeq)), pos(static_cast<size_t>(batch), ctx - 1),
                    seq(static_cast<size_t>(batch));
                std::iota(table.begin(), table.end(), 0);
                std::iota(seq.begin(), seq.end(), 0);
                std::vector<float> inv(size_t(batch * D / 2)), offsets(size_t(m.kvHeads * D), 0.25f);
                for (size_t i = 0; i < inv.size(); ++i) inv[i] = float(1.0 / std::pow(10000.0, 2.0 * double(i % (D / 2)) / D));
                auto* dTable = static_cast<int32_t*>(dalloc(table.size() * 4));
                auto* dPos = static_cast<int32_t*>(dalloc(pos.size() * 4));
                auto* dSeq = static_cast<int32_t*>(dalloc(seq.size() * 4));
                auto* dInv = static_cast<float*>(dalloc(inv.size() * 4));
                auto* dOff = static_cast<float*>(dalloc(offsets.size() * 4));
                CK(cudaMemcpy(dTable, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dPos, pos.data(), pos.size() * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dSeq, seq.data(), seq.size() * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dInv, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dOff, offsets.data(), offsets.size() * 4, cudaMemcpyHostToDevice));
                const float* off = quant ? dOff : nullptr;
                const size_t qkvN = size_t(batch) * (m.heads + 2 * m.kvHeads) * D;
                auto* qkv = static_cast<__half*>(dalloc(qkvN * 2));
                fillHalf<<<64, 256, 0, st>>>(qkv, qkvN, -1.f, 1.f, 3);
                const float fused = graphMs(
                    [&](int) {
                        CK(k::ropeKvStore(cache, L, 0, qkv, dPos, dSeq, dInv, dTable, blocksPerSeq, batch, m.heads, off, st));
                    },
                    100, st);
                const float split = graphMs(
                    [&](int) {
                        CK(k::ropeRotateHalf(qkv, dPos, dSeq, dInv, batch, m.heads, m.kvHeads, D, st));
                        CK(k::kvStore(cache, L, 0, qkv, dPos, dSeq, dTable, blocksPerSeq, batch, m.heads, off, st));
                    },
                    100, st);
                std::printf("ropeKvStore %-9s %-4s batch %-2d | %6.2f | %6.2f (ropeRotateHalf + kvStore)\n", m.what,
                            quant == 0 ? "f16" : quant == 8 ? "int8" : "int4", batch, fused * 1e3, split * 1e3);
                for (void* q : {cache, (void*)dTable, (void*)dPos, (void*)dSeq, (void*)dInv, (void*)dOff, (void*)qkv}) cudaFree(q);
            }
    cudaFree(w);
    CK(cudaStreamDestroy(st));
}
}  // namespace

int main(int argc, char** argv) {
    bool quick = false, gemm = true, attnOn = true, skinnyOnly = false, w4Only = false, fusedOnly = false,
         chainOnly = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--fused-only")) fusedOnly = true;
        if (!std::strcmp(argv[i], "--w4-only")) w4Only = true;
        if (!std::strcmp(argv[i], "--skinny-only")) skinnyOnly = true;
        if (!std::strcmp(argv[i], "--chain-only")) chainOnly = true;
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        if (!std::strcmp(argv[i], "--gemm-only")) attnOn = false;
        if (!std::strcmp(argv[i], "--attn-only")) gemm = false;
    }
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    const float copyBw = copyBandwidthGBs();
    std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copyBw);
    const float readBw = readBandwidthGBs();
    std::printf("read (sumWords32, 2 GiB): %.0f GB/s\n", readBw);

    if (fusedOnly) {
        fusedLayerOps();
        return 0;
    }
    if (chainOnly) {
        skinnyChain(readBw, !quick);
        return 0;
    }
    cublasHandle_t blas;
    CK(cublasCreate(&blas));
    if (skinnyOnly) {
        skinny16(blas, readBw, !quick);
        skinnyChain(readBw, !quick);
        cublasDestroy(blas);
        return 0;
    }
    if (w4Only) {
        w4Gemv(blas, readBw, quick);
        cublasDestroy(blas);
        return 0;
    }

    // ---- W4A16 GEMM ----
    struct Shape {
        int k, n;
        const char* what;
    } shapes[] = {{4096, 4096, "o_proj"}, {4096, 11008, "gate/up"}, {11008, 4096, "down"}, {4096, 12288, "qkv"}};
    std::vector<int> ms = {1, 4, 16};
    if (!quick) ms.insert(ms.end(), {32, 64, 128, 512});
    const int g = 128;
    std::printf("\nW4A16 GEMM (group %d). GB/s counts int4 weights + scales/zeros + x + out once.\n", g);
    std::printf("cuBLAS = f16 weights through cublasGemmEx (f32 accumulate); speed-up = cuBLAS time / W4A16 time.\n");
    std::printf("deq+cuBLAS = dequantize int4 to an f16 scratch, then cublasGemmEx (the backend's large-M path).\n");
    std::printf("%-8s %6s %6s %4s | %9s %8s %7s | %9s %8s | %9s %8s\n", "layer", "K", "N", "M", "w4a16 us", "GB/s",
                "of copy", "cuBLAS us", "speedup", "deq+cB us", "speedup");
    for (const auto& s : shapes) {
        if (!gemm) break;
        const int64_t K = s.k, N = s.n, G = K / g;
        const size_t qwBytes = size_t(N * K / 2), szBytes = size_t(N * G * 4), wBytes = size_t(N * K * 2);
        const int nq = copiesFor(qwBytes + szBytes), nw = copiesFor(wBytes);
        std::vector<void*> qw(static_cast<size_t>(nq)), sz(static_cast<size_t>(nq)), w16(static_cast<size_t>(nw));
        for (int i = 0; i < nq; ++i) {
            qw[size_t(i)] = dalloc(qwBytes);
            sz[size_t(i)] = dalloc(szBytes);
            fillBits<<<1024, 256>>>(static_cast<uint32_t*>(qw[size_t(i)]), qwBytes / 4, uint64_t(i) * 77 + 1);
            fillSz<<<1024, 256>>>(static_cast<__half2*>(sz[size_t(i)]), size_t(N * G), uint64_t(i) * 31 + 5);
        }
        for (int i = 0; i < nw; ++i) {
            w16[size_t(i)] = dalloc(wBytes);
            fillHalf<<<1024, 256>>>(static_cast<__half*>(w16[size_t(i)]), size_t(N * K), -0.05f, 0.05f, uint64_t(i) + 3);
        }
        const int maxM = *std::max_element(ms.begin(), ms.end());
        void* x = dalloc(size_t(maxM * K * 2));
        void* out = dalloc(size_t(maxM * N * 2));
        void* scratch = dalloc(wBytes);
        fillHalf<<<1024, 256>>>(static_cast<__half*>(x), size_t(maxM * K), -1.f, 1.f, 11);
        CK(cudaDeviceSynchronize());
        for (int M : ms) {
            auto w4 = [&](int i) {
                CK(k::awqGemm(out, x, static_cast<uint32_t*>(qw[size_t(i % nq)]), sz[size_t(i % nq)], M, N, K, g, nullptr));
            };
            const float alpha = 1.f, beta = 0.f;
            auto blasOn = [&](const void* w) {
                CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), M, int(K), &alpha, w, CUDA_R_16F, int(K), x,
                                CUDA_R_16F, int(K), &beta, out, CUDA_R_16F, int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            };
            auto cb = [&](int i) { blasOn(w16[size_t(i % nw)]); };
            auto deq = [&](int i) {
                CK(k::awqDequantPacked(scratch, static_cast<uint32_t*>(qw[size_t(i % nq)]), sz[size_t(i % nq)], N, K, g, nullptr));
                blasOn(scratch);
            };
            const float t4 = timeMs(w4, 50), tb = timeMs(cb, 50), td = timeMs(deq, 20);
            const double bytes = double(qwBytes + szBytes) + double(M) * K * 2 + double(M) * N * 2;
            const double gbs = bytes / (t4 * 1e-3) / 1e9;
            std::printf("%-8s %6lld %6lld %4d | %9.1f %8.0f %6.0f%% | %9.1f %7.2fx | %9.1f %7.2fx\n", s.what,
                        (long long)K, (long long)N, M, t4 * 1e3, gbs, 100.0 * gbs / copyBw, tb * 1e3, tb / t4, td * 1e3,
                        td / t4);
        }
        for (void* p : qw) cudaFree(p);
        for (void* p : sz) cudaFree(p);
        for (void* p : w16) cudaFree(p);
        cudaFree(x);
        cudaFree(out);
        cudaFree(scratch);
    }

    // ---- W4A16 decode GEMV (awqGemv, M <= 16) on the fused 7B shapes ----
    if (gemm) w4Gemv(blas, readBw, quick);
    if (gemm) skinny16(blas, readBw, !quick);
    if (gemm) skinnyChain(readBw, !quick);

    // ---- Paged decode attention ----
    struct AttnShape {
        int heads, kvHeads, d;
        const char* what;
    } attn[] = {{32, 32, 128, "llama2-7b"}, {32, 8, 128, "llama3-8b"}};
    struct AttnCase {
        int batch, ctx;
    } attnCases[] = {{1, 512}, {4, 512}, {1, 8192}, {4, 8192}, {32, 2048}};
    const int bs = 64;
    std::printf("\nPaged decode attention, one layer per launch. GB/s counts the K and V bytes read (+ scale/zero) "
                "once; small caches rotate over up to 32 layers so that they come from DRAM, not L2. part = context "
                "tokens per partition (pagedAttentionPartition).\n");
    std::printf("%-10s %5s %4s %4s %5s %6s %4s | %9s %8s %7s\n", "model", "kv", "H", "KVH", "batch", "ctx", "part",
                "time us", "GB/s", "of read");
    const size_t numAttn = std::size(attnCases) * std::size(attn);
    for (size_t i = 0; attnOn && i < numAttn; ++i) {
        const AttnShape& a = attn[i % std::size(attn)];
        const int batch = attnCases[i / std::size(attn)].batch, ctx = attnCases[i / std::size(attn)].ctx;
        for (int quant : {0, 8, 4}) {
            k::KvLayout L;
            L.layers = 1;
            L.kvHeads = a.kvHeads;
            L.headDim = a.d;
            L.blockSize = bs;
            L.quant = quant;
            const int blocksPerSeq = ctx / bs, numBlocks = batch * blocksPerSeq;
            // blockBytes() of one layer here: enough layers for 256 MiB, five times the L2.
            L.layers = int(std::clamp<int64_t>((int64_t(256) << 20) / (int64_t(numBlocks) * L.blockBytes()), 1, 32));
            const size_t cacheBytes = size_t(numBlocks) * size_t(L.blockBytes());
            void* cache = dalloc(cacheBytes);
            fillHalf<<<2048, 256>>>(static_cast<__half*>(cache), cacheBytes / 2, -1.f, 1.f, 17);
            if (quant) {  // sensible scale/zero params so decoded values stay finite
                for (int b = 0; b < numBlocks; ++b)
                    for (int w = 0; w < 2 * L.layers; ++w) {
                        auto* sec = static_cast<uint8_t*>(cache) + size_t(b) * L.blockBytes() + size_t(w) * L.sectionBytes();
                        fillSz<<<8, 256>>>(reinterpret_cast<__half2*>(sec + size_t(a.kvHeads) * bs * L.dataBytesPerToken()),
                                           size_t(a.kvHeads) * bs, uint64_t(b * 2 + w));
                    }
            }
            std::vector<int32_t> perm(static_cast<size_t>(numBlocks));
            std::iota(perm.begin(), perm.end(), 0);
            std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
            std::vector<int32_t> pos(size_t(batch), ctx - 1), seq(static_cast<size_t>(batch));
            std::iota(seq.begin(), seq.end(), 0);
            int32_t *dTable = static_cast<int32_t*>(dalloc(perm.size() * 4)), *dPos = static_cast<int32_t*>(dalloc(batch * 4)),
                    *dSeq = static_cast<int32_t*>(dalloc(batch * 4));
            CK(cudaMemcpy(dTable, perm.data(), perm.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dPos, pos.data(), batch * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dSeq, seq.data(), batch * 4, cudaMemcpyHostToDevice));
            const int width = (a.heads + 2 * a.kvHeads) * a.d;
            void* qkv = dalloc(size_t(batch * width * 2));
            void* out = dalloc(size_t(batch * a.heads * a.d * 2));
            fillHalf<<<256, 256>>>(static_cast<__half*>(qkv), size_t(batch * width), -1.f, 1.f, 23);
            k::PagedAttentionParams p;
            p.out = out;
            p.qkv = qkv;
            p.cache = cache;
            p.layout = L;
            p.blockTable = dTable;
            p.maxBlocks = blocksPerSeq;
            p.tokenSeq = dSeq;
            p.positions = dPos;
            p.numTokens = batch;
            p.heads = a.heads;
            p.maxContext = ctx;
            p.scale = 0.088f;
            void* ws = dalloc(std::max<size_t>(1, k::pagedAttentionWorkspaceBytes(p)));
            p.workspace = ws;
            CK(cudaDeviceSynchronize());
            const float t = timeMs([&](int i) {
                p.layer = i % L.layers;
                CK(k::pagedAttention(p, nullptr));
            }, 32);
            const double bytes = double(batch) * ctx * a.kvHeads * 2 * double(L.dataBytesPerToken() + L.paramBytesPerToken());
            const double gbs = bytes / (t * 1e-3) / 1e9;
            std::printf("%-10s %5s %4d %4d %5d %6d %4d | %9.1f %8.0f %6.0f%%\n", a.what,
                        quant == 0 ? "f16" : quant == 8 ? "int8" : "int4", a.heads, a.kvHeads, batch, ctx,
                        k::pagedAttentionPartition(batch, a.heads, a.kvHeads, ctx), t * 1e3, gbs, 100.0 * gbs / readBw);
            for (void* q : {cache, (void*)dTable, (void*)dPos, (void*)dSeq, qkv, out, ws}) cudaFree(q);
        }
    }
    if (attnOn) fusedLayerOps();
    cublasDestroy(blas);
    return 0;
}
