#pragma once
// 16-bit skinny GEMM for decode (plain C++ launchers; device pointers, stream as void*).
//
//   out[M][N] = x[M][K] * W[N][K]^T        W row-major (the CUDA backend's dense layout), f32 accumulation,
//                                          out rounded once to the same 16-bit type as x and W.
// A memory-bound path for 1 <= M <= 16: every weight byte is read once with 16-byte loads and fed to
// tensor cores (W as the A operand, the tokens as the n dimension), so the time is the weight bytes over
// the read bandwidth. Larger M belongs to a tiled GEMM (cuBLAS).
//
// Determinism: the k order of every output's f32 sum depends on N and K only, never on M, so row r of an
// M-row call is bitwise the row of an M = 1 call on x[r] (and the same in every run).
#include <cstdint>

namespace lmw::kernels {

enum class DType16 { F16 = 0, BF16 = 1 };

constexpr int64_t kSkinnyGemmMaxM = 16;

// 1 <= m <= 16, n >= 1, k >= 8 with k % 8 == 0 (16-byte rows). Pointers must be 16-byte aligned.
bool skinnyGemmSupports(int64_t m, int64_t n, int64_t k);

// siluInput: x is gateUp [M][2K] and the kernel multiplies by act = silu(gate) * up (gate = columns
// [0, K), up = [K, 2K)), silu in f32 and the product rounded to the 16-bit type exactly as silu_mul.cu
// does, so the result is bit for bit siluMul followed by skinnyGemm. It recomputes act in every CTA
// (ceil(N/16) times): worth it for small M only (see the backend's threshold and bench/kernels_bench).
// Returns cudaErrorInvalidValue for shapes skinnyGemmSupports rejects or misaligned pointers.
int skinnyGemm(void* out, const void* x, const void* w, int64_t m, int64_t n, int64_t k, DType16 type,
               bool siluInput, void* stream);

// The launch shapes the benchmark sweeps (warps per CTA splitting K, 32-wide k chunks each lane keeps in
// flight). skinnyGemm uses kSkinnyDefaultTuning; other tunings are for measurement only. Returns
// cudaErrorInvalidValue for a tuning that is not built.
//
// overlap: launched as a programmatic dependent launch (Hopper). The kernel may then start while the
// kernel before it on the stream is still running and requests its first weights meanwhile; it reads x
// and writes out only after that kernel has completed, so x may be its output and out its input as
// usual. What the caller must not do with overlap on: have the IMMEDIATELY preceding kernel on the
// stream write W (weights are read before the wait). Work further back, copies and memsets, are ordered
// as always. The next kernel, if launched overlapped too, may start during this one's tail.
// l2Blocks (0-16): before that wait, each warp also prefetches its next l2Blocks weight blocks into L2.
// tiles: 16-row weight tiles per CTA (1 or 2); with 2 each x load feeds twice the weight bytes (M = 16).
// Built (tiles, warps x unroll): 1: 8x4 8x8 4x8 16x2 16x4; 2: 8x2 16x2 4x4. A row's result depends on
// warps x unroll (the k order), never on M, overlap, l2Blocks or tiles.
struct SkinnyGemmTuning {
    int warps = 8;
    int unroll = 4;
    bool overlap = true;
    int l2Blocks = 0;
    int tiles = 1;
};
constexpr SkinnyGemmTuning kSkinnyDefaultTuning{8, 4, true, 0, 1};
int skinnyGemmTuned(void* out, const void* x, const void* w, int64_t m, int64_t n, int64_t k, DType16 type,
                    bool siluInput, SkinnyGemmTuning tuning, void* stream);

}  // namespace lmw::kernels
