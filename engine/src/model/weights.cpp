// Opens a folder's tensors and hands them to the family mapper; appendLinear is the one place that
// knows how a dense or AWQ checkpoint linear looks, so shape checks live here.
#include "model/weights.h"

namespace lmw::engine {

namespace {

const TensorRef& expectShape(const TensorStore& store, const std::string& name, const std::vector<int64_t>& shape,
                             DType dtype) {
    const TensorRef& t = store.get(name, shape);
    if (t.dtype != dtype)
        throw Error(ErrorCode::InvalidModel, t.file + ": tensor '" + name + "' has dtype " + dtypeName(t.dtype) +
                                                 ", expected " + dtypeName(dtype));
    return t;
}

}  // namespace

const char* linearKindName(int kind) {
    static const char* const names[kLinearKinds] = {"qkv", "o", "gate_up", "down"};
    return kind >= 0 && kind < kLinearKinds ? names[kind] : "?";
}

ModelSources loadModelSources(const std::string& dir, const ModelConfig& config) {
    ModelSources m;
    m.config = config;
    m.store = TensorStore::open(dir);
    switch (config.family) {
        case ModelFamily::Llama:
        case ModelFamily::Mistral:
        case ModelFamily::Qwen2:
        case ModelFamily::Qwen3: mapLlamaWeights(m); break;
        case ModelFamily::InternLM2: mapInternLM2Weights(m); break;
    }
    return m;
}

void appendLinear(const ModelSources& m, LinearSource& dst, const std::string& prefix, int64_t rows, int64_t dstStart,
                  bool withBias) {
    const TensorStore& store = *m.store;
    const int64_t in = dst.in;
    if (dstStart < 0 || dstStart + rows > dst.out)
        throw Error(ErrorCode::Internal, dst.name + ": rows [" + std::to_string(dstStart) + ", " +
                                             std::to_string(dstStart + rows) + ") outside [0, " +
                                             std::to_string(dst.out) + ")");
    // A quantizer may leave some layers dense (odd shapes), so the checkpoint decides per tensor.
    const bool awq = m.config.awq && store.find(prefix + ".qweight") != nullptr;
    WeightSegment seg;
    seg.srcStart = 0;
    seg.count = rows;
    seg.dstStart = dstStart;
    DType dtype;
    int groupSize = dst.groupSize;
    if (awq) {
        if (rows % 8 != 0)
            throw Error(ErrorCode::InvalidModel, prefix + ".qweight: " + std::to_string(rows) +
                                                     " output columns are not a multiple of 8 (int4 packing)");
        const TensorRef* scales = &store.get(prefix + ".scales");
        // Group size from the checkpoint (a quantizer may pick a smaller one for odd shapes); checked to divide `in`.
        const int64_t groups = scales->shape.size() == 2 ? scales->dim(0) : 0;
        if (groups <= 0 || in % groups != 0)
            throw Error(ErrorCode::InvalidModel,
                        scales->file + ": tensor '" + scales->name + "' has shape " + scales->shapeString() +
                            ", expected [" + std::to_string(in) + "/group_size, " + std::to_string(rows) + "]");
        groupSize = int(in / groups);
        seg.src = &expectShape(store, prefix + ".qweight", {in, rows / 8}, DType::I32);
        seg.qzeros = &expectShape(store, prefix + ".qzeros", {groups, rows / 8}, DType::I32);
        seg.scales = &expectShape(store, prefix + ".scales", {groups, rows}, DType::F16);
        dtype = DType::F16;
    } else {
        seg.src = &store.get(prefix + ".weight", {rows, in});
        dtype = seg.src->dtype;
        if (!isFloat(dtype))
            throw Error(ErrorCode::Unsupported, seg.src->file + ": tensor '" + seg.src->name + "' has dtype " +
                                                    dtypeName(dtype) + " (expected F32, F16 or BF16)");
    }
    if (dst.segments.empty()) {
        dst.awq = awq;
        dst.dtype = dtype;
        dst.groupSize = awq ? groupSize : dst.groupSize;
    } else if (dst.awq != awq || dst.dtype != dtype || (awq && dst.groupSize != groupSize)) {
        throw Error(ErrorCode::InvalidModel,
                    seg.src->file + ": tensor '" + seg.src->name + "' is " +
                        (awq ? "AWQ g" + std::to_string(groupSize) : std::string(dtypeName(dtype))) + " but the other parts of " +
                        dst.name + " are " +
                        (dst.awq ? "AWQ g" + std::to_string(dst.groupSize) : std::string(dtypeName(dst.dtype))) +
                        " (a fused linear needs one storage type)");
    }
    dst.segments.push_back(seg);

    if (withBias) {
        const TensorRef& b = store.get(prefix + ".bias", {rows});
        if (!isFloat(b.dtype))
            throw Error(ErrorCode::Unsupported, b.file + ": tensor '" + b.name + "' has dtype " + dtypeName(b.dtype));
        WeightSegment bs;
        bs.src = &b;
        bs.srcStart = 0;
        bs.count = rows;
        bs.dstStart = dstStart;
        dst.biasSegments.push_back(bs);
    }
}

}  // namespace lmw::engine
