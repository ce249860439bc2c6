// W4A16: AutoAWQ tensors -> intermediate codes -> mma-fragment packing, and the GEMM on that packing.
#include "awq_gemm.cuh"
#include "lmw/kernels/awq_gemm.h"

namespace lmw::kernels {
namespace {
using detail::dequantFragment;
using detail::mma16816;

// AutoAWQ stores column c of each group of 8 in nibble kAwqNibble[c] (its order_map [0,2,4,6,1,3,5,7]
// inverted).
__constant__ int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};
// Fragment element e (a0..a7 of mma.m16n8k16's A) sits in nibble kFragNibble[e] so that
// (word >> 4i) & 0x000f000f yields the half2 pair (a[2i], a[2i+1]).
__device__ __forceinline__ int fragNibble(int e) { return (e & 1) ? 4 + (e >> 1) : (e >> 1); }

// Row and k offset (inside its 64-wide chunk) of fragment element e of k-tile j for `lane`. The k order
// inside a chunk is permuted (the same permutation for W and x leaves the dot product unchanged) so that
// the B operand of all four k-tiles is 16 consecutive x values per lane: two 16-byte loads.
__device__ __forceinline__ void fragPos(int lane, int j, int e, int& row, int& k) {
    row = (lane >> 2) + ((e >> 1) & 1) * 8;
    k = (lane & 3) * 16 + j * 4 + (e >> 2) * 2 + (e & 1);
}

__global__ void unpackKernel(uint8_t* codes, uint8_t* zeros, __half* scales, const int32_t* qweight,
                             const int32_t* qzeros, const __half* srcScales, int64_t K, int64_t srcOut, int g,
                             int64_t srcStart, int64_t count, int64_t dstStart) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t G = K / g;
    if (idx < K * count) {
        const int64_t j = idx % count, k = idx / count;
        const int64_t c = srcStart + j;
        const uint32_t word = uint32_t(qweight[k * (srcOut / 8) + c / 8]);
        codes[(dstStart + j) * K + k] = uint8_t((word >> (4 * kAwqNibble[c % 8])) & 0xf);
    }
    if (idx < G * count) {
        const int64_t j = idx % count, gi = idx / count;
        const int64_t c = srcStart + j;
        const uint32_t word = uint32_t(qzeros[gi * (srcOut / 8) + c / 8]);
        zeros[(dstStart + j) * G + gi] = uint8_t((word >> (4 * kAwqNibble[c % 8])) & 0xf);
        scales[(dstStart + j) * G + gi] = srcScales[gi * srcOut + c];
    }
}

// One thread per (n tile, k chunk of 64, lane): builds that lane's 16 bytes.
__global__ void packKernel(uint4* qw, const uint8_t* codes, int64_t N, int64_t K) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t chunks = K / 64;
    if (idx >= (N / 16) * chunks * 32) return;
    const int lane = int(idx % 32);
    const int64_t kc = (idx / 32) % chunks, nt = idx / (32 * chunks);
    uint32_t w[4];
    for (int j = 0; j < 4; ++j) {
        uint32_t v = 0;
        for (int e = 0; e < 8; ++e) {
            int r, c;
            fragPos(lane, j, e, r, c);
            const uint32_t code = codes[(nt * 16 + r) * K + kc * 64 + c];
            v |= code << (4 * fragNibble(e));
        }
        w[j] = v;
    }
    qw[idx] = make_uint4(w[0], w[1], w[2], w[3]);
}

__global__ void packScalesKernel(__half2* sz, const uint8_t* zeros, const __half* scales, int64_t N, int64_t G) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= N * G) return;
    const int64_t n = idx % N, gi = idx / N;
    sz[idx] = __halves2half2(scales[n * G + gi], __float2half(1024.f + float(zeros[n * G + gi])));
}

__global__ void dequantIntermediateKernel(__half* w, const uint8_t* codes, const uint8_t* zeros,
                                          const __half* scales, int64_t N, int64_t K, int g) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= N * K) return;
    const int64_t n = idx / K, k = idx % K, G = K / g;
    const __half d = __hsub(__float2half(float(codes[idx])), __float2half(float(zeros[n * G + k / g])));
    w[idx] = __hmul(d, scales[n * G + k / g]);
}

__global__ void dequantPackedKernel(__half* w, const uint4* qw, const __half2* sz, int64_t N, int64_t K, int g) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t chunks = K / 64;
    if (idx >= (N / 16) * chunks * 32) return;
    const int lane = int(idx % 32);
    const int64_t kc = (idx / 32) % chunks, nt = idx / (32 * chunks);
    const uint4 raw = qw[idx];
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    const int64_t r0 = nt * 16 + (lane >> 2), gi = kc * 64 / g;
    const __half2 sz0 = sz[gi * N + r0], sz1 = sz[gi * N + r0 + 8];
    // This lane owns k = kc*64 + (lane%4)*16 + [0, 16) of rows r0 and r0 + 8: tile j, pair i gives
    // row r0 + (i&1)*8, k offset j*4 + (i>>1)*2.
    uint32_t row0[8], row1[8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        uint32_t a[4];
        dequantFragment(words[j], sz0, sz1, a);
        row0[j * 2] = a[0];
        row0[j * 2 + 1] = a[2];
        row1[j * 2] = a[1];
        row1[j * 2 + 1] = a[3];
    }
    const int64_t k0 = kc * 64 + (lane & 3) * 16;
    uint4* d0 = reinterpret_cast<uint4*>(w + r0 * K + k0);
    uint4* d1 = reinterpret_cast<uint4*>(w + (r0 + 8) * K + k0);
    d0[0] = make_uint4(row0[0], row0[1], row0[2], row0[3]);
    d0[1] = make_uint4(row0[4], row0[5], row0[6], row0[7]);
    d1[0] = make_uint4(row1[0], row1[1], row1[2], row1[3]);
    d1[1] = make_uint4(row1[4], row1[5], row1[6], row1[7]);
}

constexpr int kGemmWarps = 8;
constexpr int kGemmUnroll = 8;

// One CTA per 16 output features; its 8 warps split K (chunks of 64) and are summed through shared
// memory. Per chunk a lane loads 16 bytes of weights (four 16x16 A fragments), one (scale, zero) pair for
// each of its two rows, and 32 bytes of x per 8-token tile: C^T[16 features x 8 tokens] += W x^T.
template <int NT>
__global__ void __launch_bounds__(kGemmWarps * 32) awqGemmKernel(__half* out, const __half* x, const uint4* qw,
                                                                 const __half2* sz, int m, int64_t N, int64_t K,
                                                                 int g) {
    __shared__ float red[kGemmWarps][NT * 4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nt = blockIdx.x;
    const int chunks = int(K / 64);
    const int64_t r0 = nt * 16 + (lane >> 2);
    // Two accumulator sets (even / odd k-tiles) halve the chain of dependent mma instructions.
    float acc[NT][4] = {}, acc2[NT][4] = {};
    const uint4* wbase = qw + nt * chunks * 32 + lane;
    const __half* xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const int tok = t * 8 + (lane >> 2);
        xok[t] = tok < m;
        xrow[t] = x + int64_t(xok[t] ? tok : 0) * K + (lane & 3) * 16;
    }
    auto loadX = [&](int kc, uint4 (&xb)[NT][2]) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (xok[t] && kc < chunks) {
                const uint4* xp = reinterpret_cast<const uint4*>(xrow[t] + int64_t(kc) * 64);
                xb[t][0] = __ldg(xp);
                xb[t][1] = __ldg(xp + 1);
            } else {
                xb[t][0] = xb[t][1] = make_uint4(0, 0, 0, 0);
            }
        }
    };
    for (int kc0 = warp; kc0 < chunks; kc0 += kGemmWarps * kGemmUnroll) {
        // Issue every weight and scale load of this round before using any, and keep the next chunk's x
        // loads in flight while this chunk computes: the chain of dependent L2 round trips is what
        // otherwise bounds a decode-sized GEMM.
        uint4 raw[kGemmUnroll];
        __half2 sz0[kGemmUnroll], sz1[kGemmUnroll];
#pragma unroll
        for (int u = 0; u < kGemmUnroll; ++u) {
            const int kc = kc0 + u * kGemmWarps;
            const bool ok = kc < chunks;
            raw[u] = ok ? __ldg(wbase + int64_t(kc) * 32) : make_uint4(0, 0, 0, 0);
            const int64_t gi = int64_t(ok ? kc : 0) * 64 / g;
            sz0[u] = __ldg(sz + gi * N + r0);
            sz1[u] = __ldg(sz + gi * N + r0 + 8);
        }
        uint4 xb[NT][2];
        loadX(kc0, xb);
#pragma unroll
        for (int u = 0; u < kGemmUnroll; ++u) {
            const int kc = kc0 + u * kGemmWarps;
            if (kc >= chunks) break;
            uint4 xn[NT][2];
            if (u + 1 < kGemmUnroll) loadX(kc + kGemmWarps, xn);
            const uint32_t words[4] = {raw[u].x, raw[u].y, raw[u].z, raw[u].w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                uint32_t a[4];
                dequantFragment(words[j], sz0[u], sz1[u], a);
#pragma unroll
                for (int t = 0; t < NT; ++t) {
                    const uint32_t* xv = reinterpret_cast<const uint32_t*>(&xb[t][0]);
                    // k-tile j uses x words 2j (k offset j*4) and 2j+1 (j*4 + 2) of the lane's 16 values.
                    mma16816((j & 1) ? acc2[t] : acc[t], a, xv[2 * j], xv[2 * j + 1]);
                }
            }
            if (u + 1 < kGemmUnroll) {
#pragma unroll
                for (int t = 0; t < NT; ++t) xb[t][0] = xn[t][0], xb[t][1] = xn[t][1];
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int c = 0; c < 4; ++c) red[warp][t * 4 + c][lane] = acc[t][c] + acc2[t][c];
    __syncthreads();
    for (int i = threadIdx.x; i < NT * 4 * 32; i += blockDim.x) {
        const int l = i % 32, tc = i / 32, t = tc / 4, c = tc % 4;
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < kGemmWarps; ++w) s += red[w][tc][l];
        // C fragment: c0, c1 at (feature l/4, tokens (l%4)*2 + {0,1}); c2, c3 at feature + 8.
        const int64_t feat = nt * 16 + (l >> 2) + (c >= 2 ? 8 : 0);
        const int tok = t * 8 + (l & 3) * 2 + (c & 1);
        if (tok < m) out[int64_t(tok) * N + feat] = __float2half(s);
    }
}

int blocksFor(int64_t n, int threads = 256) { return int((n + threads - 1) / threads); }
}  // namespace

bool awqGemmSupports(int64_t n, int64_t k, int groupSize) {
    return n > 0 && k > 0 && n % 16 == 0 && k % 64 == 0 && groupSize > 0 && groupSize % 64 == 0 && k % groupSize == 0;
}

int awqUnpackSegment(uint8_t* codes, uint8_t* zeros, void* scales, const int32_t* qweight, const int32_t* qzeros,
                     const void* srcScales, int64_t k, int64_t srcOut, int groupSize, int64_t srcStart,
                     int64_t count, int64_t dstStart, int64_t n, void* stream) {
    if (count <= 0) return 0;
    if (groupSize <= 0 || k % groupSize || srcOut % 8 || srcStart + count > srcOut || dstStart + count > n)
        return int(cudaErrorInvalidValue);
    unpackKernel<<<blocksFor(k * count), 256, 0, detail::asStream(stream)>>>(
        codes, zeros, static_cast<__half*>(scales), qweight, qzeros, static_cast<const __half*>(srcScales), k, srcOut,
        groupSize, srcStart, count, dstStart);
    return detail::launchStatus();
}

int awqPack(uint32_t* qw, void* sz, const uint8_t* codes, const uint8_t* zeros, const void* scales, int64_t n,
            int64_t k, int groupSize, void* stream) {
    if (!awqGemmSupports(n, k, groupSize)) return int(cudaErrorInvalidValue);
    const cudaStream_t s = detail::asStream(stream);
    packKernel<<<blocksFor((n / 16) * (k / 64) * 32), 256, 0, s>>>(reinterpret_cast<uint4*>(qw), codes, n, k);
    if (const int e = detail::launchStatus()) return e;
    packScalesKernel<<<blocksFor(n * (k / groupSize)), 256, 0, s>>>(static_cast<__half2*>(sz), zeros,
                                                                    static_cast<const __half*>(scales), n, k / groupSize);
    return detail::launchStatus();
}

int awqDequantIntermediate(void* w, const uint8_t* codes, const uint8_t* zeros, const void* scales, int64_t n,
                           int64_t k, int groupSize, void* stream) {
    if (n * k <= 0) return 0;
    dequantIntermediateKernel<<<blocksFor(n * k), 256, 0, detail::asStream(stream)>>>(
        static_cast<__half*>(w), codes, zeros, static_cast<const __half*>(scales), n, k, groupSize);
    return detail::launchStatus();
}

int awqDequantPacked(void* w, const uint32_t* qw, const void* sz, int64_t n, int64_t k, int groupSize, void* stream) {
    if (!awqGemmSupports(n, k, groupSize)) return int(cudaErrorInvalidValue);
    dequantPackedKernel<<<blocksFor((n / 16) * (k / 64) * 32), 256, 0, detail::asStream(stream)>>>(
        static_cast<__half*>(w), reinterpret_cast<const uint4*>(qw), static_cast<const __half2*>(sz), n, k, groupSize);
    return detail::launchStatus();
}

int awqGemm(void* out, const void* x, const uint32_t* qw, const void* sz, int64_t m, int64_t n, int64_t k,
            int groupSize, void* stream) {
    if (m <= 0) return 0;
    if (!awqGemmSupports(n, k, groupSize)) return int(cudaErrorInvalidValue);
    const cudaStream_t s = detail::asStream(stream);
    // Up to 64 tokens per pass (8 tiles of 8) so the weights are read once for decode-sized batches.
    for (int64_t m0 = 0; m0 < m; m0 += 64) {
        const int mm = int(m - m0 < 64 ? m - m0 : 64);
        __half* o = static_cast<__half*>(out) + m0 * n;
        const __half* xi = static_cast<const __half*>(x) + m0 * k;
        const auto* w = reinterpret_cast<const uint4*>(qw);
        const auto* z = static_cast<const __half2*>(sz);
        const dim3 grid(unsigned(n / 16)), block(kGemmWarps * 32);
        if (mm <= 8)
            awqGemmKernel<1><<<grid, block, 0, s>>>(o, xi, w, z, mm, n, k, groupSize);
        else if (mm <= 16)
            awqGemmKernel<2><<<grid, block, 0, s>>>(o, xi, w, z, mm, n, k, groupSize);
        else if (mm <= 32)
            awqGemmKernel<4><<<grid, block, 0, s>>>(o, xi, w, z, mm, n, k, groupSize);
        else
            awqGemmKernel<8><<<grid, block, 0, s>>>(o, xi, w, z, mm, n, k, groupSize);
        if (const int e = detail::launchStatus()) return e;
    }
    return 0;
}
}  // namespace lmw::kernels
