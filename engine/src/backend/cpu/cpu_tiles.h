#pragma once
// How the SIMD kernels (cpu_kernels_avx2.cpp, cpu_kernels_avx512.cpp) walk rows and tokens: blocks
// of tokens whose activations stay in L2, and in each block tiles of R rows x TT tokens (TT <= 4),
// whose weights stay in registers while the TT tokens pass over them. A tile computes each of its
// (row, token) dot products in one chain, in the same order as any other tile would, so the tiling
// never changes a result. Internal linkage: each kernel file has its own copy (and no std::
// algorithm, whose one shared instantiation the linker could take from another level's file).
#include <cmath>
#include <cstdint>

namespace lmw::engine::tiles {

template <int R, class Tile>
static void tokenTiles(const Tile& tile, int64_t i, int64_t t0, int64_t t1) {
    int64_t t = t0;
    for (; t + 4 <= t1; t += 4) tile.template operator()<R, 4>(i, t);
    for (; t + 2 <= t1; t += 2) tile.template operator()<R, 2>(i, t);
    for (; t < t1; ++t) tile.template operator()<R, 1>(i, t);
}

// tile.operator()<R', TT>(i, t): rows [i, i + R'), tokens [t, t + TT); R' = R, and 1 for the last
// n % R rows.
template <int R, class Tile>
static void forTiles(int64_t n, int64_t T, int64_t tokenBlock, const Tile& tile) {
    for (int64_t t0 = 0; t0 < T; t0 += tokenBlock) {
        const int64_t t1 = t0 + tokenBlock < T ? t0 + tokenBlock : T;
        int64_t i = 0;
        for (; i + R <= n; i += R) tokenTiles<R>(tile, i, t0, t1);
        for (; i < n; ++i) tokenTiles<1>(tile, i, t0, t1);
    }
}

// forTiles for kernels that fill a tile's results, out[r * TT + k] for row i + r and token t + k,
// through kernel.operator()<R', TT>(i, t, out); they land in y[token * ldy + row].
template <int R, class Kernel>
static void forTilesInto(int64_t n, int64_t T, int64_t tokenBlock, float* y, int64_t ldy, const Kernel& kernel) {
    forTiles<R>(n, T, tokenBlock, [&]<int RR, int TT>(int64_t i, int64_t t) {
        float out[RR * TT];
        kernel.template operator()<RR, TT>(i, t, out);
        for (int r = 0; r < RR; ++r)
            for (int k = 0; k < TT; ++k) y[(t + k) * ldy + i + r] = out[r * TT + k];
    });
}

// p[0, n) = softmax(p) in place: max subtracted, libm's expf, normalized (every level's attend).
static void softmax(float* p, int64_t n) {
    float mx = p[0];
    for (int64_t j = 1; j < n; ++j) mx = p[j] > mx ? p[j] : mx;
    float sum = 0.f;
    for (int64_t j = 0; j < n; ++j) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; ++j) p[j] *= inv;
}

// Tokens per block: about 512 KiB of activations of `rowBytes` each, a multiple of 4.
static int64_t tokenBlock(int64_t rowBytes) {
    const int64_t n = int64_t(512) * 1024 / (rowBytes > 0 ? rowBytes : 1) / 4 * 4;
    return n < 4 ? 4 : n > 64 ? 64 : n;
}

}  // namespace lmw::engine::tiles
