#pragma once
// Bench helpers for `lmw bench`: how fast this machine streams memory, and how close the CPU
// backend's linear layer comes to it.
#include <cstdint>

#include "lmw/dtype.h"

namespace lmw::engine {

// Read bandwidth in GB/s (1e9 bytes/s): `threads` threads (0 = all cores) sum a buffer much larger
// than the caches (1 GiB, less when memory is short); best of a few runs.
double measureMemoryBandwidthGBs(int threads);

// The CPU backend's linear alone (the GEMM prefill runs on): GFLOP/s (2 * rows * cols * T / s) of
// cpuLinear for T tokens over a random [rows, cols] weight of `dtype` (F32, F16, BF16), or AWQ int4
// group 128 when `awq` (cols a multiple of 128), best of `iterations` runs.
double benchCpuLinearGFlops(int threads, DType dtype, bool awq, int64_t rows, int64_t cols, int64_t T, int iterations = 3);

// The last-level cache of CPU 0 in bytes (0 when the OS does not say).
uint64_t cpuLastLevelCacheBytes();

}  // namespace lmw::engine
