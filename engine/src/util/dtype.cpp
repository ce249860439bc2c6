#include "lmw/dtype.h"

#include "lmw/error.h"

namespace lmw {

namespace {
struct DTypeEntry {
    DType type;
    const char* name;
    size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::I32, "I32", 4},
    {DType::I8, "I8", 1},   {DType::U8, "U8", 1},   {DType::I64, "I64", 8},   {DType::F64, "F64", 8},
};
}  // namespace

size_t dtypeSize(DType t) {
    for (const auto& e : kDTypes)
        if (e.type == t) return e.size;
    return 0;
}

const char* dtypeName(DType t) {
    for (const auto& e : kDTypes)
        if (e.type == t) return e.name;
    return "?";
}

bool dtypeFromName(const std::string& name, DType& out) {
    for (const auto& e : kDTypes)
        if (name == e.name) {
            out = e.type;
            return true;
        }
    return false;
}

float halfToFloat(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                --exp;
            }
            mant &= 0x3ff;
            u = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000 | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t floatToHalf(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000);
    const uint32_t absu = u & 0x7fffffff;
    if (absu > 0x7f800000) return sign | 0x7e00;                  // NaN
    if (absu >= 0x477ff000) return sign | 0x7c00;                 // overflow to inf (incl. rounding)
    if (absu < 0x38800000) {                                      // subnormal half or zero
        if (absu < 0x33000000) return sign;                       // < half of smallest subnormal
        const uint32_t exp = absu >> 23;
        const uint32_t mant = (absu & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - exp;  // aligns the mantissa to units of 2^-24
        uint32_t v = mant >> shift;
        const uint32_t rem = mant & ((1u << (shift)) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (v & 1))) ++v;
        return sign | uint16_t(v);
    }
    uint32_t v = ((absu >> 13) - (112u << 10));
    const uint32_t rem = absu & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) ++v;
    return sign | uint16_t(v);
}

const char* errorCodeName(ErrorCode code) {
    switch (code) {
        case ErrorCode::InvalidArgument: return "invalid_argument";
        case ErrorCode::NotFound: return "not_found";
        case ErrorCode::InvalidModel: return "invalid_model";
        case ErrorCode::Unsupported: return "unsupported";
        case ErrorCode::ContextLengthExceeded: return "context_length_exceeded";
        case ErrorCode::OutOfMemory: return "out_of_memory";
        case ErrorCode::Cancelled: return "cancelled";
        case ErrorCode::Io: return "io_error";
        case ErrorCode::Cuda: return "cuda_error";
        case ErrorCode::Internal: return "internal_error";
    }
    return "internal_error";
}

}  // namespace lmw
