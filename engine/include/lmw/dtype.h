#pragma once
// Storage element types and scalar conversions shared by loaders, backends and writers.
#include <cstdint>
#include <cstring>
#include <string>

namespace lmw {

enum class DType { F32, F16, BF16, I32, I8, U8, I64, F64 };

size_t dtypeSize(DType t);
const char* dtypeName(DType t);          // safetensors spelling: "F32", "F16", "BF16", ...
bool dtypeFromName(const std::string& name, DType& out);

inline float bf16ToFloat(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t floatToBf16(float f) {  // round to nearest even, as PyTorch does
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
}

float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);  // round to nearest even

// The dtypes weights are stored in and read from.
inline bool isFloat(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Element i of float data of dtype `t` as f32; 0 for a non-float dtype. Goes through memcpy because
// a memory-mapped tensor may be unaligned.
inline float readElem(const uint8_t* p, DType t, int64_t i) {
    switch (t) {
        case DType::F32: {
            float f;
            std::memcpy(&f, p + 4 * i, 4);
            return f;
        }
        case DType::F16:
        case DType::BF16: {
            uint16_t h;
            std::memcpy(&h, p + 2 * i, 2);
            return t == DType::F16 ? halfToFloat(h) : bf16ToFloat(h);
        }
        case DType::F64: {
            double d;
            std::memcpy(&d, p + 8 * i, 8);
            return float(d);
        }
        default: return 0.0f;
    }
}

}  // namespace lmw
