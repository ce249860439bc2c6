#pragma once
// Host loops of the quantizer on all cores (it runs once, on its own thread, so plain threads per
// call; the CPU backend has its own pool for the forward pass).
#include <cstdint>
#include <functional>

namespace lmw::engine::quant {

// Runs f(i) for i in [0, n) on up to hardware_concurrency threads (the caller's among them). An
// exception from f stops the loop and is rethrown here.
void parallelFor(int64_t n, const std::function<void(int64_t)>& f);
// Runs f(begin, end) for consecutive ranges of `chunk` indices covering [0, n), on parallelFor.
void parallelRanges(int64_t n, int64_t chunk, const std::function<void(int64_t begin, int64_t end)>& f);
// Sum of f(begin, end) over ranges covering [0, n), run on parallelFor; the result does not depend
// on the thread count.
double parallelSum(int64_t n, const std::function<double(int64_t begin, int64_t end)>& f);

}  // namespace lmw::engine::quant
