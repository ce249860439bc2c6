// W4A16 decode GEMV (1 <= M <= 16) on the packed layout of awq_gemm.h.
//
// A decode GEMV reads each weight byte once, so it is as fast as the bytes each SM keeps in flight and
// as slow as every point where that stream stops. The previous version (K split across CTAs, x staged
// into shared memory per CTA, partials reduced by the last CTA) stopped at every CTA boundary: ~3 waves
// of short CTAs, each a ramp of loads, a staging pass, a barrier and a global fix-up. Here:
//   - one persistent wave: one CTA of kWarps warps per SM walks tile groups (TN 16-row tiles) in a
//     grid-stride loop; a tile's K is split over the CTA's warps (chunk w + kWarps*c for warp w), so the
//     split never leaves the CTA and needs no workspace; N >= 4096 already gives >= 256 tiles;
//   - each warp keeps a register ring of 16-byte loads per lane in flight (ringSteps steps of TN tiles;
//     10 loads for the default at m <= 8, 8 otherwise) and the ring runs across tile boundaries: the
//     next tile's weights are loading while this one is summed; the cursor advances by pointer
//     increments (one precomputed delta from a tile group to the next);
//   - the step has no branch: loads are predicated, x past m or K reads zeros, so the warp's control
//     flow never splits around the mma (a split costs a warp synchronization per mma; bench/NOTES.md g4);
//   - the first ring fill is issued before griddepcontrol.wait (the kernel is launched overlapped, PDL):
//     weights do not depend on the previous kernel, so they stream during its tail and our launch;
//   - at m <= 8 x is copied into shared memory once per CTA after griddepcontrol.wait (8 KB at m = 1,
//     one round of loads while the weight ring fills) and read from there one step ahead; at m > 8 it
//     is read from L1/L2 one step ahead; the fused silu input with a small batch is evaluated once per
//     CTA into shared memory;
//   - cheaper dequantization: the mma takes the exact integers (q - z) (one lop3 plus one sub or fma
//     per 2 codes, magic-number conversion) and the scale is applied to the f32 chunk sum, once per
//     chunk and row, instead of one f16 multiply per code.
// Every tile's sums run in an order fixed by (n, k): chunks in order per warp, then warps 0..kWarps-1,
// so a row's result is bitwise independent of m, of the tile grouping and of the grid size.
#include <algorithm>

#include "awq_gemm.cuh"
#include "lmw/kernels/awq_gemm.h"

namespace lmw::kernels {
namespace {
using detail::mma16816;

constexpr int kWarps = 16;
// 16-byte weight loads in flight per lane (spread over the TN tiles of a step): 8 x 512 B per warp,
// 64 KB per SM.
constexpr int kRingLoads = 8;
// Ring depth in steps of TN loads. One token tile with two weight tiles leaves registers for a fifth
// step (10 loads in flight per lane, no spills with 128 registers); the rest keep kRingLoads.
__host__ __device__ constexpr int ringSteps(int nt, int tn) { return nt == 1 && tn == 2 ? 5 : kRingLoads / tn; }
// The fused silu input is staged in shared memory (evaluated once per element and CTA) up to this many
// bytes of x; above it, it is evaluated per use (correct, slow; the backend fuses only at tiny m).
constexpr int kMaxStagedX = 160 * 1024;

// kXStaged: plain x copied into shared memory once per CTA (m <= 8), so a step's x is a shared-memory
// read instead of an L2 round trip queued behind the weight stream.
enum XMode { kXGlobal = 0, kXSiluStaged = 1, kXSiluInline = 2, kXStaged = 3 };
__host__ __device__ constexpr bool stagesX(int xm) { return xm == kXSiluStaged || xm == kXStaged; }

// Read-once weights: no L1 allocation, whole 256-byte L2 lines (the neighbouring chunks are read next).
// volatile keeps the load where it is written (ahead of the math on older ring slots). The load is
// predicated inside the asm, so a ring slot with nothing to read keeps its old (finite) contents and
// the step needs no branch: a branch around a load splits the warp's control flow, and every mma after
// it then pays a warp synchronization.
__device__ __forceinline__ void ldStreamIf(uint4& v, const uint4* p, bool pred) {
    asm volatile(
        "{\n .reg .pred q;\n setp.ne.b32 q, %5, 0;\n"
        " @q ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n}\n"
        : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
        : "l"(p), "r"(int(pred)));
}
__device__ __forceinline__ void ldHalf2If(__half2& v, const __half2* p, bool pred) {
    asm volatile("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n @q ld.global.nc.b32 %0, [%1];\n}\n"
                 : "+r"(*reinterpret_cast<uint32_t*>(&v))
                 : "l"(p), "r"(int(pred)));
}

// x fragments for chunks past K or tokens past m read zeros from here (global x) or from the zero
// columns after each staged row (shared x), so every step's loads and math are unconditional.
__device__ const uint4 kZeroX[8] = {};

__device__ __forceinline__ uint32_t lop3AndOr(uint32_t a, uint32_t mask, uint32_t magic) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(a), "r"(mask), "r"(magic));  // (a & b) | c
    return r;
}

// One packed word (8 codes, one 16x16 A tile) -> the four A registers holding (q - z) exactly. Register
// i pairs nibbles (i, 4 + i) (awq_gemm.h); registers 0, 2 are row r0, 1, 3 row r0 + 8. Nibbles at bits
// 0 and 16 become half(1024 + q) with one lop3; those at bits 4 and 20 become half(1024 + 16 q), which
// an fma with 1/16 brings back: both paths are exact (integers below 2048 and power-of-two scaling).
// zLo = (1024 + z0) for row r0, zHiNeg = -(64 + z1) for row r0 + 8.
__device__ __forceinline__ void dequantCodes(uint32_t w, __half2 zLo, __half2 zHiNeg, uint32_t a[4]) {
    constexpr uint32_t kMagic = 0x64006400u;
    const uint32_t w8 = w >> 8;
    const uint32_t r0 = lop3AndOr(w, 0x000f000fu, kMagic), r1 = lop3AndOr(w, 0x00f000f0u, kMagic);
    const uint32_t r2 = lop3AndOr(w8, 0x000f000fu, kMagic), r3 = lop3AndOr(w8, 0x00f000f0u, kMagic);
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    const __half2 h0 = __hsub2(*reinterpret_cast<const __half2*>(&r0), zLo);
    const __half2 h1 = __hfma2(*reinterpret_cast<const __half2*>(&r1), sixteenth, zHiNeg);
    const __half2 h2 = __hsub2(*reinterpret_cast<const __half2*>(&r2), zLo);
    const __half2 h3 = __hfma2(*reinterpret_cast<const __half2*>(&r3), sixteenth, zHiNeg);
    a[0] = *reinterpret_cast<const uint32_t*>(&h0);
    a[1] = *reinterpret_cast<const uint32_t*>(&h1);
    a[2] = *reinterpret_cast<const uint32_t*>(&h2);
    a[3] = *reinterpret_cast<const uint32_t*>(&h3);
}

// 8 values of silu(gate) * up rounded to f16 as siluMul rounds them.
__device__ __forceinline__ uint4 siluMul8(uint4 gv, uint4 uv) {
    const __half2* gh = reinterpret_cast<const __half2*>(&gv);
    const __half2* uh = reinterpret_cast<const __half2*>(&uv);
    uint4 r;
    __half2* rh = reinterpret_cast<__half2*>(&r);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const float2 g = __half22float2(gh[e]), u = __half22float2(uh[e]);
        rh[e] = __halves2half2(__float2half(detail::siluTimes(g.x, u.x)), __float2half(detail::siluTimes(g.y, u.y)));
    }
    return r;
}

struct GemvArgs {
    __half* out;
    const __half* x;  // x [m][K], or gateUp [m][2K] for the silu modes
    const uint4* qw;
    const __half2* sz;
    int m, N, K, g;
    int groupShift;  // log2(g / 64) when g / 64 is a power of two, else -1
    int64_t zStep;   // half2 from a chunk's scales to those kWarps chunks on, or -1 (g does not divide kWarps * 64)
    int64_t wNext, zNext;  // uint4 / half2 from a tile group's last step to the next group's first (set at launch)
    int groups;   // tile groups of TN tiles
    int xStride;  // row stride (halves) of the staged x in shared memory
};

// Shared memory: two reduction buffers (one barrier per tile group), then the staged x if any.
constexpr size_t reductionBytes(int nt, int tn) { return size_t(2) * kWarps * tn * nt * 4 * 32 * sizeof(float); }

// grid: min(tile groups, resident CTAs); block kWarps warps. NT: 8-token mma tiles (1: m <= 8, 2: m <= 16).
// TN: 16-row weight tiles per warp step, sharing each x fragment. ZL: p.zStep >= 0 (the scales move by a
// constant per step; a compile-time fact, so the step has no test for it).
template <int NT, int TN, int XM, bool ZL>
__global__ void __launch_bounds__(kWarps * 32, 1) awqGemvKernel(const GemvArgs p) {
    extern __shared__ uint4 smem[];
    constexpr int R = TN * NT * 4;  // accumulators per lane
    constexpr int D = ringSteps(NT, TN);
    float* red = reinterpret_cast<float*>(smem);
    __half* xs = reinterpret_cast<__half*>(red + 2 * kWarps * R * 32);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunks = p.K / 64, ntiles = p.N / 16;
    const int S = (chunks + kWarps - 1) / kWarps;  // steps per tile group, the same for every warp
    const int iters = int(blockIdx.x) < p.groups ? (p.groups - 1 - int(blockIdx.x)) / int(gridDim.x) + 1 : 0;
    const int total = iters * S;  // uniform over the CTA: the barriers below are reached by all warps

    // ---- Issue cursor: the ring slot u is refilled with the step D ahead of the one it just served.
    // Within a tile group a warp's next chunk is kWarps chunks on: its weights are kWarps * 32 uint4
    // further and (when g divides kWarps * 64) its scales p.zStep half2 further; from a group's last
    // step to the next group's first they move by p.wNext and p.zNext. So a step costs two pointer
    // increments and no branch: loads past the last step, past K or past N are predicated off, and the
    // slot keeps finite values that the zero x of such a step (loadX) multiplies away.
    uint4 raw[D][TN];
    __half2 s0[D][TN], s1[D][TN];
#pragma unroll
    for (int u = 0; u < D; ++u)
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            raw[u][j] = make_uint4(0, 0, 0, 0);
            s0[u][j] = s1[u][j] = __float2half2_rn(0.f);
        }
    const int tileStride = chunks * 32;  // uint4 between the same chunk of neighbouring tiles
    int issGrp = blockIdx.x, issC = 0, issChunk = warp, issued = 0;
    auto groupOf = [&](int chunk) { return p.groupShift >= 0 ? chunk >> p.groupShift : chunk / (p.g / 64); };
    auto scalesAt = [&](int grpIdx, int chunk) {
        return p.sz + int64_t(groupOf(chunk)) * p.N + grpIdx * TN * 16 + (lane >> 2);
    };
    const uint4* wq = p.qw + int64_t(issGrp) * TN * tileStride + warp * 32 + lane;
    const __half2* zq = scalesAt(issGrp, warp);
    auto issue = [&](uint4 (&r)[TN], __half2 (&z0)[TN], __half2 (&z1)[TN]) {
        const bool ok = issued < total && issChunk < chunks;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const bool okj = ok && (j == 0 || issGrp * TN + j < ntiles);
            ldStreamIf(r[j], wq + j * tileStride, okj);
            ldHalf2If(z0[j], zq + j * 16, okj);
            ldHalf2If(z1[j], zq + j * 16 + 8, okj);
        }
        ++issued;
        if (++issC == S) {
            issC = 0;
            issChunk = warp;
            issGrp += gridDim.x;
            wq += p.wNext;
            zq = ZL ? zq + p.zNext : scalesAt(issGrp, warp);
        } else {
            issChunk += kWarps;
            wq += kWarps * 32;
            zq = ZL ? zq + p.zStep : scalesAt(issGrp, issChunk);
        }
    };
#pragma unroll
    for (int u = 0; u < D; ++u) issue(raw[u], s0[u], s1[u]);
    // Everything above reads weights only; the next kernel may be scheduled as our CTAs leave.
    detail::allowDependents();
    detail::waitPriorGrid();

    if constexpr (stagesX(XM)) {
        // Units of 8 values (K % 64 == 0: a unit never straddles rows); kU per thread and round, all
        // loads of a round first, so the staging costs about one L2 round trip per round.
        constexpr bool kSilu = XM == kXSiluStaged;
        constexpr int kU = kSilu ? 4 : 8;
        const int rowStride = kSilu ? 2 * p.K : p.K;  // gateUp rows hold gate then up
        const int units = p.m * (p.K / 8);
        for (int base = threadIdx.x; base < units; base += kU * blockDim.x) {
            uint4 gv[kU], uv[kU];
#pragma unroll
            for (int q = 0; q < kU; ++q) {
                const int e = (base + q * int(blockDim.x)) * 8;
                if (e >= units * 8) continue;
                const uint4* gp = reinterpret_cast<const uint4*>(p.x + int64_t(e / p.K) * rowStride + e % p.K);
                gv[q] = gp[0];
                if constexpr (kSilu) uv[q] = gp[p.K / 8];
            }
#pragma unroll
            for (int q = 0; q < kU; ++q) {
                const int e = (base + q * int(blockDim.x)) * 8;
                if (e >= units * 8) continue;
                uint4* xp = reinterpret_cast<uint4*>(xs + (e / p.K) * p.xStride + e % p.K);
                if constexpr (kSilu) *xp = siluMul8(gv[q], uv[q]);
                else *xp = gv[q];
            }
        }
        // The 64 zero columns after row 0, read for chunks past K and tokens past m.
        if (threadIdx.x < 8) reinterpret_cast<uint4*>(xs + p.K)[threadIdx.x] = make_uint4(0, 0, 0, 0);
        __syncthreads();
    }
    // The lane's B fragments of step c (x is the same for every tile): token t*8 + lane/4, 16 values at
    // k = chunk*64 + (lane%4)*16 (the k permutation of awq_gemm.h); zeros for tokens past m and chunks
    // past K. Plain loads: x was written by the previous kernel, so not through the read-only path.
    auto loadX = [&](uint4 (&xv)[NT][2], int c) {
        const int chunk = warp + c * kWarps;
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            const int tok = t * 8 + (lane >> 2);
            const bool ok = tok < p.m && chunk < chunks;
            const int col = chunk * 64 + (lane & 3) * 16;
            if constexpr (XM == kXSiluInline) {
                xv[t][0] = xv[t][1] = make_uint4(0, 0, 0, 0);
                if (!ok) continue;
                const uint4* gp = reinterpret_cast<const uint4*>(p.x + int64_t(tok) * 2 * p.K + col);
                xv[t][0] = siluMul8(gp[0], gp[p.K / 8]);
                xv[t][1] = siluMul8(gp[1], gp[p.K / 8 + 1]);
            } else {
                const uint4* xp;
                if constexpr (stagesX(XM))
                    xp = reinterpret_cast<const uint4*>(xs + (ok ? tok * p.xStride + col : p.K + (lane & 3) * 16));
                else
                    xp = ok ? reinterpret_cast<const uint4*>(p.x + int64_t(tok) * p.K + col) : kZeroX + (lane & 3) * 2;
                xv[t][0] = xp[0];
                xv[t][1] = xp[1];
            }
        }
    };

    float acc[TN][NT][4] = {};
    uint4 xb[NT][2];
    loadX(xb, 0);
    int grp = blockIdx.x, c = 0, it = 0;
    for (int i0 = 0; i0 < total; i0 += D) {
#pragma unroll
        for (int u = 0; u < D; ++u) {
            if (i0 + u >= total) break;
            const int cn = c + 1 == S ? 0 : c + 1;
            uint4 xn[NT][2];
            loadX(xn, cn);  // one step ahead: covers the L2 round trip of x
            {
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    const __half2 zLo = __high2half2(s0[u][j]);
                    // 960 - (1024 + z1) = -(64 + z1), exact: one fma instead of a subtraction and a negation.
                    const __half2 zHiNeg =
                        __hfma2(__high2half2(s1[u][j]), __float2half2_rn(-1.f), __float2half2_rn(960.f));
                    const uint32_t words[4] = {raw[u][j].x, raw[u][j].y, raw[u][j].z, raw[u][j].w};
                    float cs[NT][4] = {};
#pragma unroll
                    for (int kt = 0; kt < 4; ++kt) {
                        uint32_t a[4];
                        dequantCodes(words[kt], zLo, zHiNeg, a);
#pragma unroll
                        for (int t = 0; t < NT; ++t) {
                            const uint32_t* xw = reinterpret_cast<const uint32_t*>(&xb[t][0]);
                            // k-tile kt takes the lane's x words 2kt and 2kt + 1 (awq_gemm.h's permutation).
                            mma16816(cs[t], a, xw[2 * kt], xw[2 * kt + 1]);
                        }
                    }
                    // C fragment: c0, c1 are row r0 (scale of s0), c2, c3 row r0 + 8 (s1).
                    const float sc0 = __low2float(s0[u][j]), sc1 = __low2float(s1[u][j]);
#pragma unroll
                    for (int t = 0; t < NT; ++t) {
                        acc[j][t][0] = fmaf(sc0, cs[t][0], acc[j][t][0]);
                        acc[j][t][1] = fmaf(sc0, cs[t][1], acc[j][t][1]);
                        acc[j][t][2] = fmaf(sc1, cs[t][2], acc[j][t][2]);
                        acc[j][t][3] = fmaf(sc1, cs[t][3], acc[j][t][3]);
                    }
                }
            }
            issue(raw[u], s0[u], s1[u]);
            if (cn == 0) {
                // Tile group done: warps meet in one of two buffers (so one barrier per group suffices:
                // a buffer is rewritten only after the next group's barrier, when every read of it is done).
                float* rb = red + (it & 1) * kWarps * R * 32;
#pragma unroll
                for (int j = 0; j < TN; ++j)
#pragma unroll
                    for (int t = 0; t < NT; ++t)
#pragma unroll
                        for (int q = 0; q < 4; ++q) {
                            rb[(warp * R + (j * NT + t) * 4 + q) * 32 + lane] = acc[j][t][q];
                            acc[j][t][q] = 0.f;
                        }
                __syncthreads();
                // Output (tok, feature f of the group), features fastest for coalesced stores. It sits in
                // C register q = (r/8)*2 + tok%2 of lane (r%8)*4 + (tok%8)/2, token tile tok/8.
                for (int o = threadIdx.x; o < p.m * TN * 16; o += blockDim.x) {
                    // Unsigned: o >= 0, and the divisions by powers of two become plain shifts and masks.
                    const unsigned uo = unsigned(o), f = uo % (TN * 16), j = f / 16, r = f % 16;
                    const int tok = int(uo / (TN * 16));
                    const int tile = grp * TN + int(j);
                    if (tile >= ntiles) continue;
                    const unsigned ut = unsigned(tok);
                    const int l = int((r % 8) * 4 + (ut % 8) / 2), q = int((r / 8) * 2 + ut % 2);
                    const int idx = int((j * NT + ut / 8) * 4) + q;
                    float s = 0.f;
#pragma unroll
                    for (int w = 0; w < kWarps; ++w) s += rb[(w * R + idx) * 32 + l];
                    p.out[int64_t(tok) * p.N + tile * 16 + r] = __float2half(s);
                }
                grp += gridDim.x;
                ++it;
            }
            c = cn;
#pragma unroll
            for (int t = 0; t < NT; ++t) xb[t][0] = xn[t][0], xb[t][1] = xn[t][1];
        }
    }
}

template <int NT, int TN, int XM, bool ZL>
int launchZ(const GemvArgs& a, size_t smem, cudaStream_t s) {
    auto* kern = awqGemvKernel<NT, TN, XM, ZL>;
    static const int attr = int(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                     int(reductionBytes(NT, TN) + (stagesX(XM) ? kMaxStagedX : 0))));
    if (attr) return attr;
    int dev = 0, sms = 0;
    if (const cudaError_t e = cudaGetDevice(&dev)) return int(e);
    if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)) return int(e);
    // Residency depends on registers (fixed per instance) and shared memory (fixed unless x is staged).
    static const int perSmPlain = [&] {
        int v = 0;
        return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, kern, kWarps * 32, reductionBytes(NT, TN)) ? 1 : v;
    }();
    int perSm = perSmPlain;
    if (stagesX(XM))
        if (const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kern, kWarps * 32, smem))
            return int(e);
    // One resident wave: more CTAs than fit would only queue behind the persistent ones.
    const int grid = std::max(1, std::min(a.groups, sms * std::max(perSm, 1)));
    GemvArgs ga = a;
    const int64_t chunks = a.K / 64, steps = (chunks + kWarps - 1) / kWarps;  // S of the kernel
    ga.wNext = int64_t(grid) * TN * chunks * 32 - (steps - 1) * kWarps * 32;
    ga.zNext = a.zStep >= 0 ? int64_t(grid) * TN * 16 - (steps - 1) * a.zStep : 0;
    const int e = detail::launchOverlapped(kern, dim3(unsigned(grid)), dim3(kWarps * 32), smem, s, ga);
    if (e != int(cudaErrorNotSupported)) return e;
    // No programmatic launch here: the ordinary one is equally correct (griddepcontrol.wait is a no-op).
    cudaGetLastError();
    kern<<<unsigned(grid), kWarps * 32, smem, s>>>(ga);
    return detail::launchStatus();
}

template <int NT, int TN, int XM>
int launchT(const GemvArgs& a, size_t smem, cudaStream_t s) {
    return a.zStep >= 0 ? launchZ<NT, TN, XM, true>(a, smem, s) : launchZ<NT, TN, XM, false>(a, smem, s);
}

template <int NT, int TN>
int launchX(const GemvArgs& a, int xm, size_t smem, cudaStream_t s) {
    if (xm == kXSiluStaged) return launchT<NT, TN, kXSiluStaged>(a, smem, s);
    if (xm == kXSiluInline) return launchT<NT, TN, kXSiluInline>(a, smem, s);
    if constexpr (NT == 1)  // run() stages plain x only for one token tile
        if (xm == kXStaged) return launchT<NT, TN, kXStaged>(a, smem, s);
    return launchT<NT, TN, kXGlobal>(a, smem, s);
}

int tilesFor(const AwqGemvConfig* cfg) {
    if (cfg && cfg->tilesPerWarp) return cfg->tilesPerWarp;
    // Two tiles per step at every m: the step's x loads, loop control and cursor are shared by two
    // weight loads, and a tile group's barrier and reduction serve twice the bytes (measured faster at
    // m = 1 and 16 on every 7B shape, bench/NOTES.md).
    return 2;
}

int run(void* out, const void* x, const uint32_t* qw, const void* sz, int64_t m, int64_t n, int64_t k, int groupSize,
        void* stream, const AwqGemvConfig* cfg, bool silu) {
    if (m == 0) return 0;
    if (!awqGemvSupports(m, n, k, groupSize) || (reinterpret_cast<uintptr_t>(x) & 15))
        return int(cudaErrorInvalidValue);
    const int tn = tilesFor(cfg);
    if (tn != 1 && tn != 2) return int(cudaErrorInvalidValue);
    const int nt = m > 8 ? 2 : 1;
    GemvArgs a;
    a.out = static_cast<__half*>(out);
    a.x = static_cast<const __half*>(x);
    a.qw = reinterpret_cast<const uint4*>(qw);
    a.sz = static_cast<const __half2*>(sz);
    a.m = int(m);
    a.N = int(n);
    a.K = int(k);
    a.g = groupSize;
    a.groupShift = -1;
    for (int sh = 0; sh < 30; ++sh)
        if ((64 << sh) == groupSize) a.groupShift = sh;
    a.zStep = (kWarps * 64) % groupSize == 0 ? int64_t(kWarps * 64 / groupSize) * n : -1;
    a.groups = int((n / 16 + tn - 1) / tn);
    // 64 zero columns after each row (read by loadX past K or m) + 16 bytes against bank conflicts.
    a.xStride = int(k) + 72;
    size_t smem = reductionBytes(nt, tn);
    int xm = kXGlobal;
    const size_t staged = size_t(m) * size_t(a.xStride) * 2;
    const bool fits = staged <= size_t(kMaxStagedX);
    if (silu) {
        xm = fits ? kXSiluStaged : kXSiluInline;
    } else {
        // Plain x is staged for one token tile (at most 8 rows: one or two rounds of loads) unless cfg
        // says otherwise; 16 tokens would pay up to 8 rounds for what the register lookahead hides.
        const int want = cfg ? cfg->stageX : -1;
        if (want != -1 && want != 0 && want != 1) return int(cudaErrorInvalidValue);
        if (nt == 1 && fits && want != 0) xm = kXStaged;
    }
    if (stagesX(xm)) smem += staged;
    const cudaStream_t s = detail::asStream(stream);
    if (nt == 1) return tn == 1 ? launchX<1, 1>(a, xm, smem, s) : launchX<1, 2>(a, xm, smem, s);
    return tn == 1 ? launchX<2, 1>(a, xm, smem, s) : launchX<2, 2>(a, xm, smem, s);
}
}  // namespace

bool awqGemvSupports(int64_t m, int64_t n, int64_t k, int groupSize) {
    // N and K are 32-bit ints in the kernel (its global offsets are 64-bit).
    return m >= 1 && m <= kAwqGemvMaxM && awqGemmSupports(n, k, groupSize) && n < (int64_t(1) << 31) &&
           k < (int64_t(1) << 24);
}

int awqGemv(void* out, const void* x, const uint32_t* qw, const void* sz, int64_t m, int64_t n, int64_t k,
            int groupSize, void* stream, const AwqGemvConfig* cfg) {
    return run(out, x, qw, sz, m, n, k, groupSize, stream, cfg, false);
}

int awqGemvSiluMul(void* out, const void* gateUp, const uint32_t* qw, const void* sz, int64_t m, int64_t n,
                   int64_t k, int groupSize, void* stream, const AwqGemvConfig* cfg) {
    return run(out, gateUp, qw, sz, m, n, k, groupSize, stream, cfg, true);
}
}  // namespace lmw::kernels
