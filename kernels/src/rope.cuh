#pragma once
// The rotate-half rotary embedding as every kernel computes it (ropeRotateHalf, ropeKvStore), so that
// they agree bit for bit.
#include "common.cuh"

namespace lmw::kernels::detail {

// (cos, sin) of the angle pos * invFreq. The angle is formed in f32 (as the reference does) but its sine
// and cosine are taken in f64: --use_fast_math would otherwise turn sincosf into the approximate
// intrinsics, which lose accuracy at angles of thousands of radians.
__device__ __forceinline__ float2 ropeCosSin(int pos, float invFreq) {
    const float angle = float(pos) * invFreq;
    double s, c;
    sincos(double(angle), &s, &c);
    return make_float2(float(c), float(s));
}

// Rotates (a, b) = (x[i], x[i + D/2]) by the angle of cs = (cos, sin). Explicit fma / mul: the
// compiler may not contract the two products differently in different kernels.
__device__ __forceinline__ void ropeRotatePair(__half& a, __half& b, float2 cs) {
    const float x1 = __half2float(a), x2 = __half2float(b);
    a = __float2half(__fmaf_rn(x1, cs.x, -__fmul_rn(x2, cs.y)));
    b = __float2half(__fmaf_rn(x2, cs.x, __fmul_rn(x1, cs.y)));
}

}  // namespace lmw::kernels::detail
