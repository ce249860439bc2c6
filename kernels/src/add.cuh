#pragma once
// The residual add as every kernel rounds it (addInPlace, addRmsNorm): one f32 sum, rounded to f16 once.
#include "common.cuh"

namespace lmw::kernels::detail {

__device__ __forceinline__ __half addRounded(__half a, __half b) {
    return __float2half(__half2float(a) + __half2float(b));
}

}  // namespace lmw::kernels::detail
