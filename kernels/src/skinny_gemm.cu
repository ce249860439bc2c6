// 16-bit skinny GEMM (M <= 16): weights streamed once with 16-byte loads into mma.m16n8k16.
//
// A warp owns 16 output features (W rows, the mma's m; 2 x 16 with tiles = 2) and one or two n8 tiles of
// tokens. Lane (g, t) = (lane / 4, lane % 4) loads 8 contiguous k of W rows g and g + 8 at k offset 8t of
// each 32-wide k chunk.
// The dot product does not care about the order of k, so those 8 values are taken as the fragment
// slots {2t, 2t+1, 2t+8, 2t+9} of two consecutive k16 steps (values 0-3: step 0, 4-7: step 1), and x is
// loaded (16 contiguous bytes of token g) with the same mapping: every load is 16 bytes wide, nothing is
// shuffled. The warps of a CTA split K (blocks of `unroll` chunks, round robin) and are summed through
// shared memory in a fixed order. Nothing of the schedule depends on M, which is what makes a row's
// result independent of the batch around it.
#include <cuda_bf16.h>

#include "common.cuh"
#include "lmw/kernels/skinny_gemm.h"

namespace lmw::kernels {
namespace {

constexpr int kChunk = 32;  // k per lane-row load round: 4 lanes x 8 values

template <class T>
struct Elem16;

template <>
struct Elem16<__half> {
    static __device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
    static __device__ __forceinline__ __half fromFloat(float f) { return __float2half_rn(f); }
    static __device__ __forceinline__ void mma(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
};

template <>
struct Elem16<__nv_bfloat16> {
    static __device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
    static __device__ __forceinline__ __nv_bfloat16 fromFloat(float f) { return __float2bfloat16_rn(f); }
    static __device__ __forceinline__ void mma(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
};

// Weights are read once: keep them out of L1 (x lives there) and ask L2 for whole 256-byte lines, which
// the neighbouring chunks of the same row use next.
__device__ __forceinline__ uint4 loadStream(const void* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

// 8 values of act = silu(gate) * up, rounded to T as silu_mul.cu rounds them.
template <class T>
__device__ __forceinline__ uint4 siluMul8(uint4 gate, uint4 up) {
    const T* g = reinterpret_cast<const T*>(&gate);
    const T* u = reinterpret_cast<const T*>(&up);
    uint4 r;
    T* o = reinterpret_cast<T*>(&r);
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = Elem16<T>::fromFloat(detail::siluTimes(Elem16<T>::toFloat(g[i]), Elem16<T>::toFloat(u[i])));
    return r;
}

// NT n8 token tiles (M <= 8 * NT); MT m16 feature tiles per CTA (each warp loads MT x 16 weight rows
// and multiplies them all by the x it loads once, so x is read MT times less per weight byte). x rows are
// xStride elements apart (K, or 2K for gateUp).
template <class T, int NT, int MT, bool kSilu, int kWarps, int kUnroll>
__global__ void __launch_bounds__(kWarps * 32, (16 / kWarps) > 0 ? 16 / kWarps : 1)
    skinnyGemmKernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ w, int m, int64_t n,
                     int64_t k, int l2Blocks) {
    __shared__ float red[kWarps][MT * NT * 4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int64_t tile0 = int64_t(blockIdx.x) * MT;
    // Rows past N load the last row (valid memory) and are never stored.
    const T* wr[MT][2];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) wr[i][h] = w + min((tile0 + i) * 16 + g + 8 * h, n - 1) * k + 8 * t;
    const int64_t xStride = kSilu ? 2 * k : k;
    const T* xr[NT];
    bool xok[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) {
        const int tok = j * 8 + g;
        xok[j] = tok < m;
        xr[j] = x + int64_t(xok[j] ? tok : 0) * xStride + 8 * t;
    }
    const int64_t chunks = (k + kChunk - 1) / kChunk;
    const int64_t blocks = (chunks + kUnroll - 1) / kUnroll;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

    // All weight loads of a block first: they are the long DRAM round trips to overlap.
    uint4 wv[kUnroll][MT][2];
    auto loadWeights = [&](int64_t b) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t off = (b * kUnroll + u) * kChunk;
            // K % 8 == 0: a lane's 8-group is wholly inside K or wholly past it (then zero, and unread).
            const bool ok = off + 8 * t < k;
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int h = 0; h < 2; ++h) wv[u][i][h] = ok ? loadStream(wr[i][h] + off) : make_uint4(0, 0, 0, 0);
        }
    };
    auto multiplyBlock = [&](int64_t b) {
        uint4 xv[kUnroll][NT];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t off = (b * kUnroll + u) * kChunk;
            const bool ok = off + 8 * t < k;
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                if (ok && xok[j]) {
                    if constexpr (kSilu) {
                        xv[u][j] = siluMul8<T>(__ldg(reinterpret_cast<const uint4*>(xr[j] + off)),
                                               __ldg(reinterpret_cast<const uint4*>(xr[j] + k + off)));
                    } else {
                        xv[u][j] = __ldg(reinterpret_cast<const uint4*>(xr[j] + off));
                    }
                } else {
                    xv[u][j] = make_uint4(0, 0, 0, 0);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                // k16 step 0 takes the lane's values 0-3 (words x, y), step 1 values 4-7 (words z, w).
                const uint4 wa = wv[u][i][0], wb = wv[u][i][1];
#pragma unroll
                for (int j = 0; j < NT; ++j) {
                    Elem16<T>::mma(acc[i][j], wa.x, wb.x, wa.y, wb.y, xv[u][j].x, xv[u][j].y);
                    Elem16<T>::mma(acc[i][j], wa.z, wb.z, wa.w, wb.w, xv[u][j].z, xv[u][j].w);
                }
            }
    };

    // Programmatic dependent launch: the weights are no output of the kernel before this one, so the
    // first block of them (and, with l2Blocks, an L2 prefetch of the next ones) is requested while that
    // kernel finishes. x is its output and `out` may be its input: both only after the wait. The next
    // kernel may then be scheduled as soon as all of this grid runs (it waits for this grid's end before it reads).
    int64_t b = warp;
    if (b < blocks) loadWeights(b);
    for (int p = 1; p <= l2Blocks; ++p) {
        // Lane t covers the quarter t of the row's kUnroll * 64 contiguous bytes of that block.
        const int64_t off = ((b + int64_t(p) * kWarps) * kUnroll) * kChunk + 8 * t * kUnroll;
        if (off < k)
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int h = 0; h < 2; ++h) asm volatile("prefetch.global.L2 [%0];" ::"l"(wr[i][h] - 8 * t + off));
    }
    detail::allowDependents();
    detail::waitPriorGrid();
    if (b < blocks) multiplyBlock(b);
    for (b += kWarps; b < blocks; b += kWarps) {
        loadWeights(b);
        multiplyBlock(b);
    }

#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int c = 0; c < 4; ++c) red[warp][(i * NT + j) * 4 + c][lane] = acc[i][j][c];
    __syncthreads();
    for (int e = threadIdx.x; e < MT * NT * 4 * 32; e += blockDim.x) {
        const int l = e % 32, ijc = e / 32, c = ijc % 4, j = (ijc / 4) % NT, i = ijc / (4 * NT);
        float s = 0.f;
#pragma unroll
        for (int v = 0; v < kWarps; ++v) s += red[v][ijc][l];
        // C fragment: c0, c1 at (feature l/4, tokens 2(l%4) + {0,1}); c2, c3 at feature + 8.
        const int64_t feat = (tile0 + i) * 16 + (l >> 2) + (c >= 2 ? 8 : 0);
        const int tok = j * 8 + (l & 3) * 2 + (c & 1);
        if (tok < m && feat < n) out[int64_t(tok) * n + feat] = Elem16<T>::fromFloat(s);
    }
}

template <class T, int NT, int MT, bool kSilu, int kWarps, int kUnroll>
int launchKernel(T* out, const T* x, const T* w, int m, int64_t n, int64_t k, const SkinnyGemmTuning& tu,
                 cudaStream_t s) {
    const dim3 grid(unsigned((n + 16 * MT - 1) / (16 * MT))), block(kWarps * 32);
    auto* kernel = skinnyGemmKernel<T, NT, MT, kSilu, kWarps, kUnroll>;
    if (tu.overlap) return detail::launchOverlapped(kernel, grid, block, 0, s, out, x, w, m, n, k, tu.l2Blocks);
    kernel<<<grid, block, 0, s>>>(out, x, w, m, n, k, tu.l2Blocks);
    return detail::launchStatus();
}

template <class T, int MT, int kWarps, int kUnroll>
int launchTyped(void* out, const void* x, const void* w, int64_t m, int64_t n, int64_t k, bool silu,
                const SkinnyGemmTuning& tu, void* stream) {
    const cudaStream_t s = detail::asStream(stream);
    auto* o = static_cast<T*>(out);
    const auto* xi = static_cast<const T*>(x);
    const auto* wi = static_cast<const T*>(w);
    const int mi = int(m);
    if (m <= 8) {
        if (silu) return launchKernel<T, 1, MT, true, kWarps, kUnroll>(o, xi, wi, mi, n, k, tu, s);
        return launchKernel<T, 1, MT, false, kWarps, kUnroll>(o, xi, wi, mi, n, k, tu, s);
    }
    if (silu) return launchKernel<T, 2, MT, true, kWarps, kUnroll>(o, xi, wi, mi, n, k, tu, s);
    return launchKernel<T, 2, MT, false, kWarps, kUnroll>(o, xi, wi, mi, n, k, tu, s);
}

template <int MT, int kWarps, int kUnroll>
int launch(void* out, const void* x, const void* w, int64_t m, int64_t n, int64_t k, DType16 type, bool silu,
           const SkinnyGemmTuning& tu, void* stream) {
    if (type == DType16::BF16) return launchTyped<__nv_bfloat16, MT, kWarps, kUnroll>(out, x, w, m, n, k, silu, tu, stream);
    return launchTyped<__half, MT, kWarps, kUnroll>(out, x, w, m, n, k, silu, tu, stream);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
}  // namespace

bool skinnyGemmSupports(int64_t m, int64_t n, int64_t k) {
    return m >= 1 && m <= kSkinnyGemmMaxM && n >= 1 && (n + 15) / 16 <= 0x7fffffff && k >= 8 && k % 8 == 0;
}

int skinnyGemmTuned(void* out, const void* x, const void* w, int64_t m, int64_t n, int64_t k, DType16 type,
                    bool siluInput, SkinnyGemmTuning tuning, void* stream) {
    if (!skinnyGemmSupports(m, n, k) || !aligned16(out) || !aligned16(x) || !aligned16(w) ||
        (type != DType16::F16 && type != DType16::BF16) || tuning.l2Blocks < 0 || tuning.l2Blocks > 16 ||
        tuning.unroll < 1 || tuning.unroll > 99 || tuning.warps < 1 || tuning.warps > 99)
        return int(cudaErrorInvalidValue);
    const int wu = tuning.tiles * 10000 + tuning.warps * 100 + tuning.unroll;
    switch (wu) {
        case 10804: return launch<1, 8, 4>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 10808: return launch<1, 8, 8>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 10408: return launch<1, 4, 8>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 11602: return launch<1, 16, 2>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 11604: return launch<1, 16, 4>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 20802: return launch<2, 8, 2>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 21602: return launch<2, 16, 2>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        case 20404: return launch<2, 4, 4>(out, x, w, m, n, k, type, siluInput, tuning, stream);
        default: return int(cudaErrorInvalidValue);
    }
}

int skinnyGemm(void* out, const void* x, const void* w, int64_t m, int64_t n, int64_t k, DType16 type,
               bool siluInput, void* stream) {
    return skinnyGemmTuned(out, x, w, m, n, k, type, siluInput, kSkinnyDefaultTuning, stream);
}

}  // namespace lmw::kernels
