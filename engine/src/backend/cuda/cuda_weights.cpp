#include "backend/cuda/cuda_weights.h"

#include <cuda_runtime.h>

#include <map>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "lmw/error.h"
#include "lmw/kernels/awq_gemm.h"
#include "lmw/kernels/convert.h"

namespace lmw::engine::cuda {

namespace {
namespace k = lmw::kernels;

[[noreturn]] void bad(const std::string& layer, const std::string& what) {
    throw Error(ErrorCode::InvalidModel, "CUDA backend: " + layer + ": " + what);
}

k::SrcType srcType(const TensorRef& t, const std::string& layer) {
    switch (t.dtype) {
        case DType::F32: return k::SrcType::F32;
        case DType::F16: return k::SrcType::F16;
        case DType::BF16: return k::SrcType::BF16;
        default:
            throw Error(ErrorCode::Unsupported, "CUDA backend: " + layer + ": tensor " + t.name + " has dtype " +
                                                    dtypeName(t.dtype) + " (want F32, F16 or BF16)");
    }
}

// Uploads `count` elements of `t` starting at element `first` and writes them as f16 to dst.
void uploadAsHalf(void* dst, const TensorRef& t, int64_t first, int64_t count, const std::string& layer,
                  void* stream) {
    if (count <= 0) return;
    const size_t esize = dtypeSize(t.dtype);
    if (size_t(first + count) * esize > t.bytes) bad(layer, "tensor " + t.name + " is shorter than its shape says");
    const uint8_t* src = t.data + size_t(first) * esize;
    const k::SrcType type = srcType(t, layer);
    if (type == k::SrcType::F16) {
        LMW_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(count) * 2, cudaMemcpyHostToDevice, cudaStream_t(stream)));
        LMW_CUDA_CHECK(cudaStreamSynchronize(cudaStream_t(stream)));  // the source is pageable mmap memory
        return;
    }
    DeviceBuffer staging(size_t(count) * esize);
    LMW_CUDA_CHECK(cudaMemcpyAsync(staging.get(), src, staging.bytes(), cudaMemcpyHostToDevice, cudaStream_t(stream)));
    LMW_CUDA_CHECK(k::convertToHalf(dst, staging.get(), type, count, stream));
    LMW_CUDA_CHECK(cudaStreamSynchronize(cudaStream_t(stream)));  // before staging is freed
}

DeviceBuffer uploadRaw(const TensorRef& t, void* stream) {
    DeviceBuffer b(t.bytes);
    LMW_CUDA_CHECK(cudaMemcpyAsync(b.get(), t.data, t.bytes, cudaMemcpyHostToDevice, cudaStream_t(stream)));
    return b;
}

void checkCoverage(const LinearSource& src, const std::vector<WeightSegment>& segs, const char* what) {
    int64_t total = 0;
    for (const auto& s : segs) {
        if (!s.src) bad(src.name, std::string(what) + " segment without a source tensor");
        if (s.count < 0 || s.dstStart < 0 || s.dstStart + s.count > src.out)
            bad(src.name, std::string(what) + " segment from " + s.src->name + " lands outside [0, " +
                              std::to_string(src.out) + ")");
        total += s.count;
    }
    if (total != src.out)
        bad(src.name, std::string(what) + " segments cover " + std::to_string(total) + " of " +
                          std::to_string(src.out) + " output rows");
}

void loadBias(CudaLinear& w, const LinearSource& src, void* stream) {
    if (src.biasSegments.empty()) return;
    checkCoverage(src, src.biasSegments, "bias");
    w.bias = DeviceBuffer(size_t(src.out) * 2);
    for (const auto& s : src.biasSegments) {
        if (s.src->numel() < s.srcStart + s.count) bad(src.name, "bias " + s.src->name + " is too short");
        uploadAsHalf(w.bias.as<uint16_t>() + s.dstStart, *s.src, s.srcStart, s.count, src.name, stream);
    }
}

void loadDense(CudaLinear& w, const LinearSource& src, void* stream) {
    w.w = DeviceBuffer(size_t(src.out * src.in) * 2);
    for (const auto& s : src.segments) {
        const TensorRef& t = *s.src;
        if (t.shape.size() != 2 || t.dim(1) != src.in)
            bad(src.name, "tensor " + t.name + " has shape " + t.shapeString() + ", want [*, " +
                              std::to_string(src.in) + "]");
        if (s.srcStart < 0 || s.srcStart + s.count > t.dim(0))
            bad(src.name, "rows [" + std::to_string(s.srcStart) + ", " + std::to_string(s.srcStart + s.count) +
                              ") are outside tensor " + t.name + " " + t.shapeString());
        uploadAsHalf(w.w.as<uint16_t>() + s.dstStart * src.in, t, s.srcStart * src.in, s.count * src.in, src.name,
                     stream);
    }
}

void loadAwq(CudaLinear& w, const LinearSource& src, void* stream) {
    const int64_t K = src.in, N = src.out;
    const int g = src.groupSize;
    if (g <= 0 || K % g) bad(src.name, "AWQ group size " + std::to_string(g) + " does not divide in = " + std::to_string(K));
    const int64_t G = K / g;
    DeviceBuffer codes(size_t(N * K)), zeros(size_t(N * G)), scales(size_t(N * G) * 2);
    // A fused layer (InternLM2 wqkv) takes many segments from one tensor: upload each tensor once.
    std::map<const TensorRef*, DeviceBuffer> uploaded;
    auto device = [&](const TensorRef* t) -> const void* {
        auto it = uploaded.find(t);
        if (it == uploaded.end()) it = uploaded.emplace(t, uploadRaw(*t, stream)).first;
        return it->second.get();
    };
    std::map<const TensorRef*, DeviceBuffer> halfScales;
    for (const auto& s : src.segments) {
        if (!s.qzeros || !s.scales) bad(src.name, "AWQ segment without qzeros or scales");
        const TensorRef& qw = *s.src;
        if (qw.dtype != DType::I32 || qw.shape.size() != 2 || qw.dim(0) != K)
            bad(src.name, "qweight " + qw.name + " is " + dtypeName(qw.dtype) + " " + qw.shapeString() + ", want I32 [" +
                              std::to_string(K) + ", out/8]");
        const int64_t srcOut = qw.dim(1) * 8;
        if (s.qzeros->dtype != DType::I32 || s.qzeros->numel() != G * (srcOut / 8))
            bad(src.name, "qzeros " + s.qzeros->name + " " + s.qzeros->shapeString() + " does not match qweight " +
                              qw.shapeString() + " with group " + std::to_string(g));
        if (s.scales->numel() != G * srcOut)
            bad(src.name, "scales " + s.scales->name + " " + s.scales->shapeString() + " does not match qweight " +
                              qw.shapeString() + " with group " + std::to_string(g));
        if (s.srcStart < 0 || s.srcStart + s.count > srcOut)
            bad(src.name, "columns outside qweight " + qw.name + " " + qw.shapeString());
        const void* sc = nullptr;
        if (s.scales->dtype == DType::F16) {
            sc = device(s.scales);
        } else {
            auto it = halfScales.find(s.scales);
            if (it == halfScales.end()) {
                it = halfScales.emplace(s.scales, DeviceBuffer(size_t(G * srcOut) * 2)).first;
                uploadAsHalf(it->second.get(), *s.scales, 0, G * srcOut, src.name, stream);
            }
            sc = it->second.get();
        }
        LMW_CUDA_CHECK(k::awqUnpackSegment(codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(),
                                           static_cast<const int32_t*>(device(&qw)),
                                           static_cast<const int32_t*>(device(s.qzeros)), sc, K, srcOut, g,
                                           s.srcStart, s.count, s.dstStart, N, stream));
    }
    if (k::awqGemmSupports(N, K, g)) {
        w.awq = true;
        w.groupSize = g;
        w.qw = DeviceBuffer(size_t(N * K / 2));
        w.sz = DeviceBuffer(size_t(N * G) * 4);
        LMW_CUDA_CHECK(k::awqPack(w.qw.as<uint32_t>(), w.sz.get(), codes.as<uint8_t>(), zeros.as<uint8_t>(),
                                  scales.get(), N, K, g, stream));
    } else {
        // Shapes the packed kernel does not take (tiny test models): dequantize once, run as dense.
        w.w = DeviceBuffer(size_t(N * K) * 2);
        LMW_CUDA_CHECK(k::awqDequantIntermediate(w.w.get(), codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), N,
                                                 K, g, stream));
    }
    LMW_CUDA_CHECK(cudaStreamSynchronize(cudaStream_t(stream)));  // before the temporaries go
}
}  // namespace

std::unique_ptr<CudaLinear> loadCudaLinear(const LinearSource& src, void* stream) {
    if (src.in <= 0 || src.out <= 0) bad(src.name, "empty linear layer");
    checkCoverage(src, src.segments, "weight");
    auto w = std::make_unique<CudaLinear>();
    w->name = src.name;
    w->n = src.out;
    w->k = src.in;
    if (src.awq)
        loadAwq(*w, src, stream);
    else
        loadDense(*w, src, stream);
    loadBias(*w, src, stream);
    LMW_CUDA_CHECK(cudaStreamSynchronize(cudaStream_t(stream)));
    return w;
}

std::unique_ptr<CudaNorm> loadCudaNorm(const TensorRef& t, void* stream) {
    auto w = std::make_unique<CudaNorm>();
    w->n = t.numel();
    w->w = DeviceBuffer(size_t(w->n) * 4);
    DeviceBuffer staging = uploadRaw(t, stream);
    LMW_CUDA_CHECK(k::convertToFloat(w->w.as<float>(), staging.get(), srcType(t, t.name), w->n, stream));
    LMW_CUDA_CHECK(cudaStreamSynchronize(cudaStream_t(stream)));
    return w;
}

std::unique_ptr<CudaEmbedding> loadCudaEmbedding(const TensorRef& t, void* stream) {
    if (t.shape.size() != 2) bad(t.name, "embedding has shape " + t.shapeString() + ", want [vocab, hidden]");
    auto w = std::make_unique<CudaEmbedding>();
    w->vocab = t.dim(0);
    w->hidden = t.dim(1);
    w->table = DeviceBuffer(size_t(t.numel()) * 2);
    uploadAsHalf(w->table.get(), t, 0, t.numel(), t.name, stream);
    return w;
}

}  // namespace lmw::engine::cuda
