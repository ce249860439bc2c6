#pragma once
// Bench helpers for `lmw bench`: how fast this machine streams memory, and how close the CPU
// backend's linear layer comes to it.
#include <cstdint>

#include "lmw/dtype.h"

namespace lmw::engine {

// Read bandwidth in GB/s (1e9 bytes/s): `threads` threads (0 = all cores) sum a buffer much larger
// than the caches (1 GiB, less when memory is short); best of a few runs.
double measureMemoryBandwidthGBs(int threads);

// Weight bytes streamed per second (GB/s) by the CPU backend's linear at T=1 (decode) over a
// random [rows, cols] weight of `dtype` (F32, F16, BF16), best of `iterations` runs. The weight
// set is sized to `totalBytes` (several layers of this shape, cycled) so it does not sit in cache.
double benchCpuLinearGBs(int threads, DType dtype, int64_t rows, int64_t cols, uint64_t totalBytes = uint64_t(1) << 30,
                         int iterations = 5);

}  // namespace lmw::engine
