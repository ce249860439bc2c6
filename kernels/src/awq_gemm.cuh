#pragma once
// The W4A16 fragment arithmetic shared by the packed-layout kernels (awq_gemm.cu, awq_gemv.cu): one
// dequantization and one mma, so every kernel on the layout computes the same products.
#include "common.cuh"

namespace lmw::kernels::detail {

// One packed uint32 (8 codes of one 16x16 A tile) -> the four f16x2 registers of mma.m16n8k16's A.
// Rows: a[0], a[2] belong to fragment row r0 (sz0 = (scale, 1024 + zero)); a[1], a[3] to r0 + 8 (sz1).
__device__ __forceinline__ void dequantFragment(uint32_t word, __half2 sz0, __half2 sz1, uint32_t a[4]) {
    const __half2 s0 = __half2half2(__low2half(sz0)), z0 = __half2half2(__high2half(sz0));
    const __half2 s1 = __half2half2(__low2half(sz1)), z1 = __half2half2(__high2half(sz1));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t bits = ((word >> (4 * i)) & 0x000f000fu) | 0x64006400u;  // half2(1024 + code)
        __half2 h = *reinterpret_cast<const __half2*>(&bits);
        // The subtraction is exact (integers below 2048), so only the scale multiply rounds.
        h = (i & 1) ? __hmul2(__hsub2(h, z1), s1) : __hmul2(__hsub2(h, z0), s0);
        a[i] = *reinterpret_cast<uint32_t*>(&h);
    }
}

__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace lmw::kernels::detail
