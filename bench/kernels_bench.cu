// Kernel benchmarks on the measured ceilings of this GPU:
//   - device-to-device copy bandwidth (bytes read + written) and cuBLAS f16 GEMM, measured in this run
//   - W4A16 GEMM (lmw_kernels::awqGemm) at 7B decode shapes: time, GB/s, fraction of copy bandwidth,
//     speed-up over cuBLAS f16 on the same shape; plus the dequantize + cuBLAS path for larger M
//   - paged decode attention at batch 32, context 2048, for f16 / int8 / int4 KV
// Inputs are random (never zeros) and rotated over enough copies that they do not sit in L2.
// Usage: kernels_bench [--quick] [--gemm-only | --attn-only]
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "lmw/kernels/awq_gemm.h"
#include "lmw/kernels/kv_cache.h"
#include "lmw/kernels/paged_attention.h"

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

int copiesFor(size_t bytes) { return int(std::max<size_t>(2, (size_t(256) << 20) / bytes + 1)); }
}  // namespace

int main(int argc, char** argv) {
    bool quick = false, gemm = true, attnOn = true;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        if (!std::strcmp(argv[i], "--gemm-only")) attnOn = false;
        if (!std::strcmp(argv[i], "--attn-only")) gemm = false;
    }
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    const float copyBw = copyBandwidthGBs();
    std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copyBw);

    cublasHandle_t blas;
    CK(cublasCreate(&blas));

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

    // ---- Paged decode attention ----
    struct AttnShape {
        int heads, kvHeads, d;
        const char* what;
    } attn[] = {{32, 32, 128, "llama2-7b"}, {32, 8, 128, "llama3-8b"}};
    const int batch = 32, ctx = 2048, bs = 64;
    std::printf("\nPaged decode attention: batch %d, context %d, one layer. GB/s counts the K and V bytes read "
                "(+ scale/zero) once.\n", batch, ctx);
    std::printf("%-10s %5s %4s %4s | %9s %8s %7s\n", "model", "kv", "H", "KVH", "time us", "GB/s", "of copy");
    for (const auto& a : attn) {
        if (!attnOn) break;
        for (int quant : {0, 8, 4}) {
            k::KvLayout L;
            L.layers = 1;
            L.kvHeads = a.kvHeads;
            L.headDim = a.d;
            L.blockSize = bs;
            L.quant = quant;
            const int blocksPerSeq = ctx / bs, numBlocks = batch * blocksPerSeq;
            const size_t cacheBytes = size_t(numBlocks) * size_t(L.blockBytes());
            void* cache = dalloc(cacheBytes);
            fillHalf<<<2048, 256>>>(static_cast<__half*>(cache), cacheBytes / 2, -1.f, 1.f, 17);
            if (quant) {  // sensible scale/zero params so decoded values stay finite
                for (int b = 0; b < numBlocks; ++b)
                    for (int w = 0; w < 2; ++w) {
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
            void* ws = dalloc(std::max<size_t>(1, k::pagedAttentionWorkspaceBytes(batch, a.heads, a.d, ctx)));
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
            p.workspace = ws;
            CK(cudaDeviceSynchronize());
            const float t = timeMs([&](int) { CK(k::pagedAttention(p, nullptr)); }, 20);
            const double bytes = double(batch) * ctx * a.kvHeads * 2 * double(L.dataBytesPerToken() + L.paramBytesPerToken());
            const double gbs = bytes / (t * 1e-3) / 1e9;
            std::printf("%-10s %5s %4d %4d | %9.1f %8.0f %6.0f%%\n", a.what, quant == 0 ? "f16" : quant == 8 ? "int8" : "int4",
                        a.heads, a.kvHeads, t * 1e3, gbs, 100.0 * gbs / copyBw);
            for (void* q : {cache, (void*)dTable, (void*)dPos, (void*)dSeq, qkv, out, ws}) cudaFree(q);
        }
    }
    cublasDestroy(blas);
    return 0;
}
