#include "quant/tensor_io.h"

#include <cstring>

#include "lmw/error.h"

namespace lmw::engine::quant {

void readRowsF32(const TensorRef& t, int64_t row, int64_t n, float* dst) {
    const int64_t cols = t.shape.size() >= 2 ? t.numel() / t.dim(0) : t.numel();
    const int64_t rows = t.shape.size() >= 2 ? t.dim(0) : 1;
    if (row < 0 || row + n > rows)
        throw Error(ErrorCode::Internal, t.name + ": rows [" + std::to_string(row) + ", " + std::to_string(row + n) +
                                             ") outside " + t.shapeString());
    const size_t es = dtypeSize(t.dtype);
    const uint8_t* p = t.data + size_t(row * cols) * es;
    const int64_t count = n * cols;
    switch (t.dtype) {
        case DType::F32: std::memcpy(dst, p, size_t(count) * 4); return;
        case DType::F16:
        case DType::BF16:
            for (int64_t i = 0; i < count; ++i) dst[i] = readElem(p, t.dtype, i);
            return;
        default:
            throw Error(ErrorCode::Unsupported, t.file + ": tensor '" + t.name + "' has dtype " + dtypeName(t.dtype) +
                                                    " (expected F32, F16 or BF16)");
    }
}

std::vector<float> readF32(const TensorRef& t) {
    std::vector<float> v(size_t(t.numel()));
    const int64_t rows = t.shape.size() >= 2 ? t.dim(0) : 1;
    readRowsF32(t, 0, rows, v.data());
    return v;
}

std::vector<uint16_t> toF16(const float* v, int64_t n) {
    std::vector<uint16_t> h(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) h[size_t(i)] = floatToHalf(v[i]);
    return h;
}

}  // namespace lmw::engine::quant
