#include "quant/backend_util.h"

namespace lmw::engine::quant {

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
