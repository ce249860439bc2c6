#pragma once
// W4A16 GEMM for AWQ weights (plain C++ launchers; device pointers, stream as void*).
//
// Loading goes through an intermediate form, one byte per code, so segments may start anywhere:
//   codes [N][K] uint8, zeros [N][K/g] uint8, scales [N][K/g] f16     (row n = output feature n)
// which is then packed into the kernel layout:
//   qw [N/16][K/64][32 lanes][4] uint32: each uint32 is one lane's mma.m16n8k16 A fragment of one
//      16x16 tile (8 codes; fragment element e in nibble {0,4,1,5,2,6,3,7}[e]), four k-tiles per 16 bytes.
//      Inside each 64-wide k chunk the k order is permuted (the kernel permutes x the same way): lane l's
//      fragment element e of tile j is k = (l%4)*16 + j*4 + (e/4)*2 + e%2, so x loads are 16 bytes wide.
//   sz [K/g][N] half2 (scale, 1024 + zero) so a code dequantizes as (half(1024 + code) - (1024 + zero)) * scale.
#include <cstddef>
#include <cstdint>

namespace lmw::kernels {

// The packed kernel needs n % 16 == 0, k % 64 == 0, groupSize % 64 == 0 and k % groupSize == 0.
bool awqGemmSupports(int64_t n, int64_t k, int groupSize);

// AutoAWQ GEMM tensors of one source: qweight [K, srcOut/8] int32, qzeros [K/g, srcOut/8] int32 (nibble
// order [0,2,4,6,1,3,5,7]), scales [K/g, srcOut] f16. Source columns [srcStart, srcStart+count) become
// intermediate rows [dstStart, dstStart+count).
int awqUnpackSegment(uint8_t* codes, uint8_t* zeros, void* scales, const int32_t* qweight, const int32_t* qzeros,
                     const void* srcScales, int64_t k, int64_t srcOut, int groupSize, int64_t srcStart,
                     int64_t count, int64_t dstStart, int64_t n, void* stream);

int awqPack(uint32_t* qw, void* sz, const uint8_t* codes, const uint8_t* zeros, const void* scales, int64_t n,
            int64_t k, int groupSize, void* stream);

// Dense f16 w [N][K] from the intermediate (fallback for shapes the packed kernel does not take).
int awqDequantIntermediate(void* w, const uint8_t* codes, const uint8_t* zeros, const void* scales, int64_t n,
                           int64_t k, int groupSize, void* stream);

// Dense f16 w [N][K] from the packed layout (large-M path: dequantize, then a tensor-core GEMM).
int awqDequantPacked(void* w, const uint32_t* qw, const void* sz, int64_t n, int64_t k, int groupSize, void* stream);

// out[M][N] (f16) = x[M][K] (f16) * W^T, W from the packed layout. Memory-bound path: weights are
// dequantized in registers straight into tensor-core fragments; M is processed 16 tokens per pass.
int awqGemm(void* out, const void* x, const uint32_t* qw, const void* sz, int64_t m, int64_t n, int64_t k,
            int groupSize, void* stream);

// ---- Decode GEMV, 1 <= m <= kAwqGemvMaxM tokens, on the same packed layout (awq_gemm.h, awq_gemv.cu) ----
// Takes every shape awqGemmSupports takes (N % 16 == 0, K % 64 == 0, g % 64 == 0, K % g == 0); x (or
// gateUp) must be 16-byte aligned and dense. One persistent wave of CTAs walks the 16-row tiles; a
// tile's K is split over the warps of one CTA and summed in a fixed order (chunks in order per warp,
// then the warps in order), so the result is deterministic and a row's result is bitwise independent
// of m and of the configuration. No workspace. Launched with programmatic dependent launch: the first
// weight loads overlap the previous kernel on the stream, x is read (and out written) only after it is
// complete. Products are exact (q - z) * x in f32, the group scale applied to each 64-wide f32 chunk
// sum, so the result differs from awqGemm's (which rounds each dequantized weight to f16) by rounding.
constexpr int64_t kAwqGemvMaxM = 16;

struct AwqGemvConfig {
    int tilesPerWarp = 0;  // 16-row tiles per warp step sharing each x load: 1, 2, or 0 = the default (2)
    // Plain x (awqGemv) copied into shared memory once per CTA: 1 = when m <= 8 and m * (k + 8) halves fit
    // in 160 KB, 0 = never (read from L1/L2 per step), -1 = the default (1). The result is the same.
    int stageX = -1;
};
bool awqGemvSupports(int64_t m, int64_t n, int64_t k, int groupSize);

// out[m][n] (f16) = x[m][k] * W^T. Returns cudaErrorInvalidValue for what awqGemvSupports rejects, a
// misaligned x or a bad config. cfg = nullptr: the default.
int awqGemv(void* out, const void* x, const uint32_t* qw, const void* sz, int64_t m, int64_t n, int64_t k,
            int groupSize, void* stream, const AwqGemvConfig* cfg = nullptr);
// The down projection's input fused in: x = silu(gateUp[:, :k]) * gateUp[:, k:] (gateUp [m][2k]), with
// the rounding of siluMul, so the result is bit for bit siluMul followed by awqGemv. Up to 160 KB of x
// (m * k halves) silu is evaluated once per element per CTA into shared memory, above that per use
// (much slower): it is meant for the smallest m (bench/kernels_bench measures both forms).
int awqGemvSiluMul(void* out, const void* gateUp, const uint32_t* qw, const void* sz, int64_t m, int64_t n,
                   int64_t k, int groupSize, void* stream, const AwqGemvConfig* cfg = nullptr);

}  // namespace lmw::kernels
