#include "backend/backend.h"

#include "backend/cpu/cpu_backend.h"
#include "lmw/error.h"

#include "backend/cuda_module.h"  // the CUDA backend, dlopen()ed

namespace lmw::engine {

Tensor colRange(Tensor t, int64_t begin, int64_t end) {
    if (begin < 0 || end < begin || end > t.cols)
        throw Error(ErrorCode::InvalidArgument, "colRange [" + std::to_string(begin) + ", " + std::to_string(end) +
                                                    ") outside the " + std::to_string(t.cols) + " columns of a tensor");
    t.data = static_cast<uint8_t*>(t.data) + begin * t.elemBytes;
    t.cols = end - begin;
    return t;
}

Tensor rowRange(Tensor t, int64_t begin, int64_t end) {
    if (begin < 0 || end < begin || end > t.rows)
        throw Error(ErrorCode::InvalidArgument, "rowRange [" + std::to_string(begin) + ", " + std::to_string(end) +
                                                    ") outside the " + std::to_string(t.rows) + " rows of a tensor");
    t.data = static_cast<uint8_t*>(t.data) + begin * t.stride * t.elemBytes;
    t.rows = end - begin;
    return t;
}

std::string shapeOf(Tensor t) {
    std::string s = "[";  // built step by step: GCC 12 warns falsely (-Wrestrict) on "[" + to_string
    s += std::to_string(t.rows);
    s += ", ";
    s += std::to_string(t.cols);
    if (!t.dense()) {
        s += " of ";
        s += std::to_string(t.stride);
    }
    s += "]";
    return s;
}

void requireDense(const std::string& op, std::initializer_list<Tensor> ts) {
    for (const Tensor& t : ts)
        if (!t.dense()) throw Error(ErrorCode::InvalidArgument, op + ": takes dense tensors, got a view " + shapeOf(t));
}

void Backend::siluMulLinear(Tensor out, Tensor gateUp, const Weight& w) {
    if (gateUp.cols % 2 != 0)
        throw Error(ErrorCode::InvalidArgument, "siluMulLinear: gateUp " + shapeOf(gateUp) + " has an odd column count");
    Tensor act = alloc(gateUp.rows, gateUp.cols / 2);  // [T, F]
    siluMul(act, gateUp);
    linear(out, act, w);
}

void checkKvKeyOffsets(const KvCacheShape& s, size_t count) {
    const size_t want = size_t(s.layers) * size_t(s.kvHeads) * size_t(s.headDim);
    if (count != 0 && count != want)
        throw Error(ErrorCode::InvalidArgument, "kv cache: " + std::to_string(count) +
                                                    " key offsets, want layers * kv heads * head dim = " + std::to_string(want));
}

bool cudaAvailable() {
    const CudaModule* cuda = cudaModule();
    return cuda && cuda->deviceUsable();  // no module, driver or device: all mean "use the CPU"
}

std::unique_ptr<Backend> createBackend(const std::string& name, int threads) {
    if (name == "cpu") return createCpuBackend(threads);
    if (name == "cuda") {
        std::string why;
        const CudaModule* cuda = cudaModule(&why);
        if (!cuda) throw Error(ErrorCode::Unsupported, why);
        return cuda->create();
    }
    if (name == "auto") {
        if (cudaAvailable()) return cudaModule()->create();
        return createCpuBackend(threads);
    }
    throw Error(ErrorCode::InvalidArgument, "unknown backend \"" + name + "\" (want cpu, cuda or auto)");
}

}  // namespace lmw::engine
