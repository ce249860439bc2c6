#pragma once
// The CPU backend's inner loops, compiled once per instruction-set level (cpu_kernels_generic.cpp
// for the x86-64 baseline the engine is built for, cpu_kernels_avx2.cpp, cpu_kernels_avx512.cpp,
// each with its own -march) and chosen once at run time (cpuKernels()).
//
// Every kernel computes a row's dot products in one fixed order whatever the number of tokens T
// and whatever rows share its tile, so a row's result does not depend on its batch (backend.h).
// Levels differ from each other only in f32 summation order.
#include <cstdint>
#include <string>

#include "lmw/dtype.h"

namespace lmw::engine {

enum class CpuIsa { Generic, Avx2, Avx512 };

// Prepared activations for dense kernels: T rows of kCpuXBlock-padded floats (zeros past `in`),
// in the order the level's kernel reads them (prepareX).
constexpr int64_t kCpuXBlock = 32;
// (static: the SIMD files must not share one inline copy with the baseline code)
static constexpr int64_t cpuXStride(int64_t in) { return (in + kCpuXBlock - 1) / kCpuXBlock * kCpuXBlock; }

// AWQ int4 weights in the kernels' layout: each row is in chunks of 128 inputs, 64 bytes each;
// byte j of chunk c holds input 128c + j in its low nibble and input 128c + 64 + j in its high
// nibble (rows padded to whole chunks with zero codes). Scales and zeros are f32 [out][groups].
constexpr int64_t kAwqChunk = 128;
struct AwqRows {
    const uint8_t* q = nullptr;
    int64_t rowBytes = 0;  // (in + 127) / 128 * 64
    const float* scale = nullptr;
    const float* zero = nullptr;
    int64_t groups = 0;
    int groupSize = 128;
    int64_t in = 0;
};

// Activations quantized for the int4 x int8 kernels (groupSize a multiple of 128): per token, int8
// codes per chunk of 128 inputs with a symmetric scale d = max|x| / 127, and per group the sum of
// the dequantized codes (d * sum q over the group's chunks) for the zero-point term.
struct QuantizedX {
    const int8_t* q = nullptr;  // [T][ldq]
    int64_t ldq = 0;
    const float* d = nullptr;   // [chunks][ldd]: chunk c of token t at d[c * ldd + t]
    int64_t ldd = 0;
    const float* sum = nullptr; // [T][lds]: group g of token t at sum[t * lds + g]
    int64_t lds = 0;
};

struct CpuKernels {
    CpuIsa isa;
    const char* name;
    // xp[t * cpuXStride(in) + ...] = x[t * in + ...] in the order dense() reads rows of dtype dt.
    void (*prepareX)(DType dt, const float* x, int64_t T, int64_t in, float* xp);
    // y[t * ldy + i] = dot(rows[i], x_t) for i < n, t < T; rows of `in` elements of dt (F32, F16,
    // BF16, unaligned is fine); xp from prepareX.
    void (*dense)(DType dt, const uint8_t* const* rows, int64_t n, int64_t in, const float* xp, int64_t T, float* y,
                  int64_t ldy);
    // y[t * ldy + r - r0] = dot(dequantized row r, dequantized x_t) for r in [r0, r1): the
    // int4 x int8 kernel (w.groupSize % 128 == 0).
    void (*awq)(const AwqRows& w, int64_t r0, int64_t r1, const QuantizedX& x, int64_t T, float* y, int64_t ldy);
    // One query head's attention: out[0, D) = sum over j < n of softmax_j(scale * q . keys[j]) *
    // values[j] (f32, max subtracted); p: n floats of scratch.
    void (*attend)(const float* q, const float* const* keys, const float* const* values, int64_t n, int64_t D,
                   float scale, float* p, float* out);
    // A sum of the 8-byte words of [p, p + bytes) (bytes % 64 == 0) that the compiler cannot drop:
    // the memory read bandwidth benchmark.
    uint64_t (*readSum)(const uint8_t* p, int64_t bytes);
};

const CpuKernels& cpuKernelsGeneric();
const CpuKernels& cpuKernelsAvx2();
const CpuKernels& cpuKernelsAvx512();

const char* cpuIsaName(CpuIsa isa);                 // "generic", "avx2", "avx512"
bool cpuIsaSupported(CpuIsa isa);                   // by this CPU and its OS
const CpuKernels& cpuKernels(CpuIsa isa);           // throws InvalidArgument when unsupported
// The level the backend uses, chosen once: the best supported one, or LMW_CPU_ISA (generic, avx2,
// avx512) capped at it.
const CpuKernels& cpuKernels();
// For `lmw info` and `lmw bench`: the chosen level and what the CPU has, e.g. "avx512 (AVX-512
// F/BW/DQ/VL + VNNI; AMX present, usable, unused)".
std::string cpuKernelSummary();

}  // namespace lmw::engine
