#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>

#include "backend/cpu/cpu_linear.h"
#include "lmw/error.h"

namespace lmw::engine {

namespace {

constexpr size_t kArenaChunkFloats = size_t(16) << 20;  // 64 MiB

// A 1-D norm weight, converted to f32 once (it is tiny).
class CpuVector final : public Weight {
public:
    uint64_t bytes() const override { return values.size() * 4; }
    std::vector<float> values;
};

// An embedding table read in place from the mapping.
class CpuEmbedding final : public Weight {
public:
    uint64_t bytes() const override { return uint64_t(rows) * uint64_t(cols) * dtypeSize(dtype); }
    const uint8_t* data = nullptr;
    DType dtype = DType::F32;
    int64_t rows = 0, cols = 0;
    std::string name;
};

template <class W>
const W& weightAs(const Weight& w, const char* op) {
    const W* p = dynamic_cast<const W*>(&w);
    if (!p) throw Error(ErrorCode::Internal, std::string("cpu ") + op + ": weight was not loaded by the CPU backend for this op");
    return *p;
}

[[noreturn]] void shapeError(const char* op, const std::string& what) {
    throw Error(ErrorCode::InvalidArgument, std::string("cpu ") + op + ": " + what);
}

float* f(Tensor t) { return static_cast<float*>(t.data); }

// y[0, n) = RMSNorm of x[0, n) with weight w (y may be x): rmsNorm and addRmsNorm share it.
void normalizeRun(float* y, const float* x, const float* w, int64_t n, float eps) {
    // The sum of squares in double: HF's f32 reduction is pairwise, this is at least as exact.
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
    const float mean = float(ss / double(n));
    const float inv = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}


// Splits `rows` rows into tasks of at least `minRows` so small tensors stay on one thread.
int64_t rowChunk(int64_t rows, int64_t cols, int threads) {
    const int64_t minRows = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(cols, 1));
    return std::max(minRows, (rows + threads - 1) / threads);
}

}  // namespace

CpuBackend::CpuBackend(int threads) : m_pool(threads) {}
CpuBackend::~CpuBackend() = default;

std::unique_ptr<Backend> createCpuBackend(int threads) { return std::make_unique<CpuBackend>(threads); }

DeviceInfo CpuBackend::deviceInfo() const {
    DeviceInfo info;
    info.backend = "cpu";
    info.name = "CPU";
    std::ifstream cpu("/proc/cpuinfo");
    for (std::string line; std::getline(cpu, line);) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                std::string name = line.substr(colon + 1);
                name.erase(0, name.find_first_not_of(" \t"));
                if (!name.empty()) info.name = name;
            }
            break;
        }
    }
    std::ifstream mem("/proc/meminfo");
    for (std::string key; mem >> key;) {
        uint64_t kb = 0;
        mem >> kb;
        if (key == "MemTotal:") info.totalBytes = kb * 1024;
        else if (key == "MemAvailable:") info.freeBytes = kb * 1024;
        std::string unit;
        std::getline(mem, unit);
    }
    return info;
}

// ---- weights ----

std::unique_ptr<Weight> CpuBackend::loadLinear(const LinearSource& src) { return loadCpuLinear(src, m_pool); }

std::unique_ptr<Weight> CpuBackend::loadNorm(const TensorRef& w) {
    if (!isFloat(w.dtype) || w.shape.size() != 1)
        throw Error(ErrorCode::InvalidModel, "norm weight " + w.name + " is " + dtypeName(w.dtype) + " " +
                                                 w.shapeString() + ", want a 1-D float tensor");
    auto v = std::make_unique<CpuVector>();
    v->values.resize(size_t(w.numel()));
    for (int64_t i = 0; i < w.numel(); ++i) v->values[size_t(i)] = readElem(w.data, w.dtype, i);
    return v;
}

std::unique_ptr<Weight> CpuBackend::loadEmbedding(const TensorRef& w) {
    if (!isFloat(w.dtype) || w.shape.size() != 2)
        throw Error(ErrorCode::InvalidModel, "embedding " + w.name + " is " + dtypeName(w.dtype) + " " +
                                                 w.shapeString() + ", want a 2-D float tensor");
    auto e = std::make_unique<CpuEmbedding>();
    e->data = w.data;
    e->dtype = w.dtype;
    e->rows = w.dim(0);
    e->cols = w.dim(1);
    e->name = w.name;
    return e;
}

// ---- KV cache ----

uint64_t CpuBackend::kvBlockBytes(const KvCacheShape& shape) const { return CpuKvCache::blockBytes(shape); }
void CpuBackend::allocKvCache(const KvCacheShape& shape, int64_t numBlocks) { m_kv.allocate(shape, numBlocks); }
void CpuBackend::copyKvBlock(int32_t from, int32_t to) { m_kv.copyBlock(from, to); }

// ---- step and arena ----

void CpuBackend::FreeDeleter::operator()(float* p) const { std::free(p); }

CpuBackend::ArenaChunk CpuBackend::newArenaChunk(size_t floats) {
    ArenaChunk c;
    const size_t bytes = (floats * 4 + 63) / 64 * 64;
    c.data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!c.data) throw Error(ErrorCode::OutOfMemory, "cpu alloc: cannot allocate " + std::to_string(bytes) + " bytes");
    c.capacity = floats;
    return c;
}

void CpuBackend::resetArena() {
    if (m_arena.size() > 1) {
        // Last step spilled into several chunks: replace them with one that holds it all.
        size_t total = 0;
        for (const auto& c : m_arena) total += c.capacity;
        m_arena.clear();
        m_arena.push_back(newArenaChunk(total));
    }
    for (auto& c : m_arena) c.used = 0;
}

void CpuBackend::beginStep(const StepBatch& batch) {
    const int S = batch.numSeqs(), T = batch.numTokens();
    if (S < 0 || batch.seqStart.empty() || batch.seqStart.front() != 0 || batch.seqStart.back() != T)
        throw Error(ErrorCode::InvalidArgument, "cpu beginStep: seqStart must run from 0 to the token count " + std::to_string(T));
    if (int(batch.positions.size()) != T)
        throw Error(ErrorCode::InvalidArgument, "cpu beginStep: " + std::to_string(batch.positions.size()) +
                                                    " positions for " + std::to_string(T) + " tokens");
    m_batch = batch;
    m_rowSeq.assign(size_t(T), 0);
    for (int s = 0; s < S; ++s) {
        if (batch.seqStart[size_t(s + 1)] < batch.seqStart[size_t(s)])
            throw Error(ErrorCode::InvalidArgument, "cpu beginStep: seqStart is not increasing at sequence " + std::to_string(s));
        for (int t = batch.seqStart[size_t(s)]; t < batch.seqStart[size_t(s + 1)]; ++t) m_rowSeq[size_t(t)] = s;
    }
    resetArena();
}

Tensor CpuBackend::alloc(int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) throw Error(ErrorCode::InvalidArgument, "cpu alloc: negative shape");
    // Round up to 16 floats so every tensor starts on a 64-byte line.
    const size_t n = (size_t(rows) * size_t(cols) + 15) / 16 * 16;
    ArenaChunk* chunk = m_arena.empty() ? nullptr : &m_arena.back();
    if (!chunk || chunk->capacity - chunk->used < n) {
        m_arena.push_back(newArenaChunk(std::max(kArenaChunkFloats, n)));
        chunk = &m_arena.back();
    }
    Tensor t = denseTensor(chunk->data.get() + chunk->used, rows, cols, 4);
    chunk->used += n;
    return t;
}

Tensor CpuBackend::upload(const float* host, int64_t rows, int64_t cols) {
    Tensor t = alloc(rows, cols);
    if (rows * cols > 0) std::memcpy(t.data, host, size_t(rows * cols) * 4);
    return t;
}

// ---- elementwise ops ----

void CpuBackend::embed(Tensor out, const Weight& table) {
    const auto& e = weightAs<CpuEmbedding>(table, "embed");
    const int64_t T = m_batch.numTokens();
    requireDense("cpu embed", {out});
    if (out.rows != T || out.cols != e.cols)
        shapeError("embed", "out is " + shapeOf(out) + ", want [" + std::to_string(T) + ", " + std::to_string(e.cols) + "]");
    for (int64_t t = 0; t < T; ++t) {
        const int32_t id = m_batch.tokens[size_t(t)];
        if (id < 0 || id >= e.rows)
            throw Error(ErrorCode::InvalidArgument, "cpu embed: token id " + std::to_string(id) + " outside the vocabulary of " +
                                                        std::to_string(e.rows) + " (" + e.name + ")");
        float* dst = f(out) + t * e.cols;
        const uint8_t* row = e.data + uint64_t(id) * uint64_t(e.cols) * dtypeSize(e.dtype);
        if (e.dtype == DType::F32) std::memcpy(dst, row, size_t(e.cols) * 4);
        else
            for (int64_t i = 0; i < e.cols; ++i) dst[i] = readElem(row, e.dtype, i);
    }
}

void CpuBackend::rmsNorm(Tensor out, Tensor in, const Weight& w, float eps) {
    const auto& v = weightAs<CpuVector>(w, "rmsNorm");
    const int64_t n = int64_t(v.values.size());
    if (out.rows != in.rows || out.cols != in.cols || n == 0 || in.cols % n != 0)
        shapeError("rmsNorm", "out " + shapeOf(out) + ", in " + shapeOf(in) + ", weight [" + std::to_string(n) + "]");
    const int64_t groups = in.cols / n;
    const int64_t chunk = rowChunk(in.rows, in.cols, m_pool.size());
    m_pool.parallelFor((in.rows + chunk - 1) / chunk, [&](int64_t task) {
        for (int64_t r = task * chunk; r < std::min(in.rows, (task + 1) * chunk); ++r)
            for (int64_t g = 0; g < groups; ++g)
                normalizeRun(f(out) + r * out.stride + g * n, f(in) + r * in.stride + g * n, v.values.data(), n, eps);
    });
}

void CpuBackend::linear(Tensor out, Tensor in, const Weight& w) {
    const auto& lin = weightAs<CpuLinear>(w, "linear");
    requireDense("cpu linear", {out, in});
    if (in.cols != lin.in || out.cols != lin.out || out.rows != in.rows)
        shapeError("linear", lin.name + ": in " + shapeOf(in) + ", out " + shapeOf(out) + ", weight [" + std::to_string(lin.out) +
                                 ", " + std::to_string(lin.in) + "]");
    cpuLinear(m_pool, lin, f(in), in.rows, f(out));
}

void CpuBackend::rope(Tensor qkv, int heads, int kvHeads, int headDim) {
    const int64_t T = m_batch.numTokens();
    requireDense("cpu rope", {qkv});
    if (qkv.rows != T || qkv.cols != int64_t(heads + 2 * kvHeads) * headDim || headDim % 2 != 0)
        shapeError("rope", "qkv is " + shapeOf(qkv) + " for " + std::to_string(T) + " tokens, " + std::to_string(heads) +
                               " + 2*" + std::to_string(kvHeads) + " heads of " + std::to_string(headDim));
    const int half = headDim / 2;
    const int S = m_batch.numSeqs();
    const bool shared = int64_t(m_batch.invFreq.size()) == half;  // one table for every sequence
    if (!shared && int64_t(m_batch.invFreq.size()) != int64_t(S) * half)
        shapeError("rope", "invFreq has " + std::to_string(m_batch.invFreq.size()) + " values, want " +
                               std::to_string(int64_t(S) * half));
    const int64_t chunk = rowChunk(T, qkv.cols, m_pool.size());
    m_pool.parallelFor((T + chunk - 1) / chunk, [&](int64_t task) {
        std::vector<float> cs(static_cast<size_t>(headDim));
        for (int64_t t = task * chunk; t < std::min(T, (task + 1) * chunk); ++t) {
            const float* invFreq = m_batch.invFreq.data() + (shared ? 0 : int64_t(m_rowSeq[size_t(t)]) * half);
            const float pos = float(m_batch.positions[size_t(t)]);
            for (int i = 0; i < half; ++i) {
                const float angle = pos * invFreq[i];  // f32 like PyTorch
                cs[size_t(i)] = std::cos(angle);
                cs[size_t(half + i)] = std::sin(angle);
            }
            float* row = f(qkv) + t * qkv.cols;
            for (int h = 0; h < heads + kvHeads; ++h) {
                float* x = row + int64_t(h) * headDim;
                for (int i = 0; i < half; ++i) {
                    const float a = x[i], b = x[i + half], c = cs[size_t(i)], s = cs[size_t(half + i)];
                    x[i] = a * c - b * s;
                    x[i + half] = b * c + a * s;
                }
            }
        }
    });
}

void CpuBackend::siluMul(Tensor out, Tensor gateUp) {
    const int64_t F = out.cols;
    requireDense("cpu siluMul", {out, gateUp});
    if (gateUp.rows != out.rows || gateUp.cols != 2 * F)
        shapeError("siluMul", "out " + shapeOf(out) + ", gateUp " + shapeOf(gateUp));
    const int64_t chunk = rowChunk(out.rows, F, m_pool.size());
    m_pool.parallelFor((out.rows + chunk - 1) / chunk, [&](int64_t task) {
        for (int64_t r = task * chunk; r < std::min(out.rows, (task + 1) * chunk); ++r) {
            const float* g = f(gateUp) + r * 2 * F;
            const float* u = g + F;
            float* y = f(out) + r * F;
            for (int64_t i = 0; i < F; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
        }
    });
}

void CpuBackend::add(Tensor x, Tensor y) {
    requireDense("cpu add", {x, y});
    if (x.rows != y.rows || x.cols != y.cols) shapeError("add", "x " + shapeOf(x) + ", y " + shapeOf(y));
    const int64_t n = x.rows * x.cols;
    float* a = f(x);
    const float* b = f(y);
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void CpuBackend::addRmsNorm(Tensor x, Tensor y, Tensor h, const Weight& w, float eps) {
    const auto& v = weightAs<CpuVector>(w, "addRmsNorm");
    requireDense("cpu addRmsNorm", {x, y, h});
    const int64_t n = x.cols;
    if (y.rows != x.rows || y.cols != n || h.rows != x.rows || h.cols != n || int64_t(v.values.size()) != n ||
        h.data == x.data || h.data == y.data)
        shapeError("addRmsNorm", "x " + shapeOf(x) + ", y " + shapeOf(y) + ", h " + shapeOf(h) + ", weight [" +
                                     std::to_string(v.values.size()) + "] (h apart from x and y)");
    const int64_t chunk = rowChunk(x.rows, n, m_pool.size());
    m_pool.parallelFor((x.rows + chunk - 1) / chunk, [&](int64_t task) {
        for (int64_t r = task * chunk; r < std::min(x.rows, (task + 1) * chunk); ++r) {
            float* xr = f(x) + r * n;
            const float* yr = f(y) + r * n;
            for (int64_t i = 0; i < n; ++i) xr[i] += yr[i];
            normalizeRun(f(h) + r * n, xr, v.values.data(), n, eps);
        }
    });
}

void CpuBackend::gatherRows(Tensor out, Tensor in) {
    const auto& rows = m_batch.logitRows;
    requireDense("cpu gatherRows", {out, in});
    if (out.rows != int64_t(rows.size()) || out.cols != in.cols)
        shapeError("gatherRows", "out " + shapeOf(out) + " for " + std::to_string(rows.size()) + " rows of in " + shapeOf(in));
    for (size_t i = 0; i < rows.size(); ++i) {
        if (rows[i] < 0 || rows[i] >= in.rows)
            shapeError("gatherRows", "row " + std::to_string(rows[i]) + " outside in " + shapeOf(in));
        std::memcpy(f(out) + int64_t(i) * out.cols, f(in) + int64_t(rows[i]) * in.cols, size_t(in.cols) * 4);
    }
}

void CpuBackend::addColumnAbsSums(Tensor t, double* dst) {
    requireDense("cpu addColumnAbsSums", {t});
    const float* x = f(t);
    for (int64_t r = 0; r < t.rows; ++r)
        for (int64_t c = 0; c < t.cols; ++c) dst[c] += std::fabs(double(x[r * t.cols + c]));
}

void CpuBackend::addColumnSums(Tensor t, double* dst) {
    requireDense("cpu addColumnSums", {t});
    const float* x = f(t);
    for (int64_t r = 0; r < t.rows; ++r)
        for (int64_t c = 0; c < t.cols; ++c) dst[c] += double(x[r * t.cols + c]);
}

void CpuBackend::readF32(Tensor t, float* dst) {
    if (t.dense()) {
        std::memcpy(dst, t.data, size_t(t.rows * t.cols) * 4);
        return;
    }
    for (int64_t r = 0; r < t.rows; ++r) std::memcpy(dst + r * t.cols, f(t) + r * t.stride, size_t(t.cols) * 4);
}

}  // namespace lmw::engine
