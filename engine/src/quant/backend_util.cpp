#include "quant/backend_util.h"

namespace lmw::engine::quant {

Tensor uploadRows(Backend& b, const float* rows, int64_t n, int64_t cols, Upload& holder) {
    holder.ref = TensorRef{};
    holder.ref.name = "quantization activations";
    holder.ref.dtype = DType::F32;
    holder.ref.shape = {n, cols};
    holder.ref.data = reinterpret_cast<const uint8_t*>(rows);
    holder.ref.bytes = size_t(n * cols) * 4;
    holder.ref.file = "(host memory)";
    holder.table = b.loadEmbedding(holder.ref);
    Tensor t = b.alloc(n, cols);
    b.embed(t, *holder.table);
    return t;
}

HostLinear::HostLinear(Backend& b, const float* w, int64_t out, int64_t in, const std::string& name,
                       std::vector<float> bias)
    : biasData(std::move(bias)) {
    ref.name = name;
    ref.dtype = DType::F32;
    ref.shape = {out, in};
    ref.data = reinterpret_cast<const uint8_t*>(w);
    ref.bytes = size_t(out * in) * 4;
    ref.file = "(host memory)";
    src.name = name;
    src.in = in;
    src.out = out;
    src.dtype = DType::F32;
    WeightSegment seg;
    seg.src = &ref;
    seg.count = out;
    src.segments.push_back(seg);
    if (!biasData.empty()) {
        biasRef.name = name + " bias";
        biasRef.dtype = DType::F32;
        biasRef.shape = {out};
        biasRef.data = reinterpret_cast<const uint8_t*>(biasData.data());
        biasRef.bytes = size_t(out) * 4;
        biasRef.file = "(host memory)";
        WeightSegment bs;
        bs.src = &biasRef;
        bs.count = out;
        src.biasSegments.push_back(bs);
    }
    weight = b.loadLinear(src);
}

}  // namespace lmw::engine::quant
