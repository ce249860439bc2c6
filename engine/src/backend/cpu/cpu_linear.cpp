#include "backend/cpu/cpu_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <new>
#include <vector>

#include "lmw/dtype.h"
#include "lmw/error.h"

namespace lmw::engine {

namespace {

int32_t readI32(const uint8_t* p, int64_t i) {
    int32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
}

// The byte of an AWQ row (kernels' layout) that holds input i, and whether in its high nibble.
int64_t awqByte(int64_t i) { return i / kAwqChunk * 64 + i % 64; }
bool awqHigh(int64_t i) { return i % kAwqChunk >= 64; }

// Writes output row r's dequantized weights as f32 into dst (the fallback for group sizes the
// int4 x int8 kernels do not take).
void awqRowToF32(const CpuLinear& w, int64_t r, float* dst) {
    const uint8_t* q = w.awqQ.get() + r * w.awqRowBytes;
    const float* scales = w.awqScale.data() + r * w.groups;
    const float* zeros = w.awqZero.data() + r * w.groups;
    for (int64_t i = 0; i < w.in; ++i) {
        const uint8_t b = q[awqByte(i)];
        const int64_t g = i / w.groupSize;
        dst[i] = (float(awqHigh(i) ? b >> 4 : b & 15) - zeros[g]) * scales[g];
    }
}

// One token: int8 codes per chunk of 128 inputs, d = max|x| / 127 (QuantizedX; d with the stride
// ld).
void quantizeRow(const float* x, int64_t in, int groupSize, int8_t* q, float* d, int64_t ld, float* sum) {
    const int64_t chunks = in / kAwqChunk, perGroup = groupSize / kAwqChunk;
    for (int64_t c = 0; c < chunks; ++c) {
        const float* xc = x + c * kAwqChunk;
        float amax = 0.f;
        for (int64_t j = 0; j < kAwqChunk; ++j) amax = std::max(amax, std::fabs(xc[j]));
        const float inv = amax > 0.f ? 127.f / amax : 0.f;
        int32_t total = 0;
        for (int64_t j = 0; j < kAwqChunk; ++j) {
            // Round to nearest even by the 1.5 * 2^23 trick (|x * inv| <= 127): lrintf is a libm call.
            const int8_t v = int8_t(int32_t((xc[j] * inv + 12582912.f) - 12582912.f));
            q[c * kAwqChunk + j] = v;
            total += v;
        }
        d[c * ld] = amax / 127.f;
        if (c % perGroup == 0) sum[c / perGroup] = 0.f;
        sum[c / perGroup] += d[c * ld] * float(total);
    }
}

// Buffers of the calling thread (linear runs on the engine thread, one call at a time), kept between
// calls up to 64 MiB each (a long prefill's are given back by trim()).
template <class T>
T* scratch(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}
template <class T>
void trim(std::vector<T>& v) {
    if (v.size() * sizeof(T) > (size_t(64) << 20)) std::vector<T>().swap(v);
}

// ---- loading ----

[[noreturn]] void badSource(const LinearSource& src, const std::string& what) {
    throw Error(ErrorCode::InvalidModel, "linear " + src.name + ": " + what);
}


void checkCoverage(const LinearSource& src, const std::vector<WeightSegment>& segs, int64_t n,
                   bool mustCover, const char* what) {
    std::vector<char> covered(size_t(n), 0);
    for (const auto& s : segs) {
        if (s.count < 0 || s.dstStart < 0 || s.dstStart + s.count > n)
            badSource(src, std::string(what) + " segment of " + (s.src ? s.src->name : "?") +
                               " goes to rows [" + std::to_string(s.dstStart) + ", " +
                               std::to_string(s.dstStart + s.count) + ") outside [0, " + std::to_string(n) + ")");
        for (int64_t r = 0; r < s.count; ++r) {
            if (covered[size_t(s.dstStart + r)])
                badSource(src, std::string(what) + " row " + std::to_string(s.dstStart + r) + " given twice");
            covered[size_t(s.dstStart + r)] = 1;
        }
    }
    if (mustCover)
        for (int64_t r = 0; r < n; ++r)
            if (!covered[size_t(r)])
                badSource(src, std::string(what) + " row " + std::to_string(r) + " not covered by any segment");
}

void loadBias(const LinearSource& src, CpuLinear& w) {
    if (src.biasSegments.empty()) return;
    checkCoverage(src, src.biasSegments, src.out, true, "bias");
    w.bias.assign(size_t(src.out), 0.f);
    for (const auto& s : src.biasSegments) {
        if (!s.src) badSource(src, "bias segment without a tensor");
        const TensorRef& t = *s.src;
        if (!isFloat(t.dtype)) badSource(src, "bias " + t.name + " has dtype " + dtypeName(t.dtype));
        if (s.srcStart < 0 || s.srcStart + s.count > t.numel())
            badSource(src, "bias " + t.name + " " + t.shapeString() + " has no elements [" +
                               std::to_string(s.srcStart) + ", " + std::to_string(s.srcStart + s.count) + ")");
        for (int64_t r = 0; r < s.count; ++r) w.bias[size_t(s.dstStart + r)] = readElem(t.data, t.dtype, s.srcStart + r);
    }
    w.m_bytes += uint64_t(src.out) * 4;
}

void loadDense(const LinearSource& src, CpuLinear& w) {
    w.rows.assign(size_t(src.out), nullptr);
    bool first = true;
    for (const auto& s : src.segments) {
        if (!s.src) badSource(src, "segment without a tensor");
        const TensorRef& t = *s.src;
        if (!isFloat(t.dtype)) badSource(src, t.name + " has dtype " + dtypeName(t.dtype) + ", want F32, F16 or BF16");
        if (first) w.dtype = t.dtype;
        else if (t.dtype != w.dtype)
            badSource(src, t.name + " is " + dtypeName(t.dtype) + " but an earlier segment is " + dtypeName(w.dtype));
        first = false;
        if (t.shape.size() != 2 || t.dim(1) != src.in)
            badSource(src, t.name + " has shape " + t.shapeString() + ", want [rows, " + std::to_string(src.in) + "]");
        if (s.srcStart < 0 || s.srcStart + s.count > t.dim(0))
            badSource(src, t.name + " " + t.shapeString() + " has no rows [" + std::to_string(s.srcStart) + ", " +
                               std::to_string(s.srcStart + s.count) + ")");
        const uint64_t rowBytes = uint64_t(src.in) * dtypeSize(t.dtype);
        for (int64_t r = 0; r < s.count; ++r) w.rows[size_t(s.dstStart + r)] = t.data + uint64_t(s.srcStart + r) * rowBytes;
        w.m_bytes += uint64_t(s.count) * rowBytes;
    }
}

void loadAwq(const LinearSource& src, CpuLinear& w, ThreadPool& pool) {
    static constexpr int kOrderInv[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // column j sits at nibble kOrderInv[j]
    const int64_t g = src.groupSize;
    if (g <= 0 || src.in % g != 0)
        badSource(src, "AWQ group size " + std::to_string(g) + " does not divide in = " + std::to_string(src.in));
    w.groupSize = int(g);
    w.groups = src.in / g;
    w.awqRowBytes = (src.in + kAwqChunk - 1) / kAwqChunk * 64;
    try {
        w.awqQ.reset(new uint8_t[size_t(src.out * w.awqRowBytes)]());
        w.awqScale.assign(size_t(src.out * w.groups), 0.f);
        w.awqZero.assign(size_t(src.out * w.groups), 0.f);
    } catch (const std::bad_alloc&) {
        throw Error(ErrorCode::OutOfMemory, "linear " + src.name + ": cannot allocate the repacked int4 weights");
    }
    for (const auto& s : src.segments) {
        if (!s.src || !s.qzeros || !s.scales) badSource(src, "AWQ segment without qweight, qzeros or scales");
        const TensorRef &qw = *s.src, &qz = *s.qzeros, &sc = *s.scales;
        if (sc.dtype != DType::F16 || sc.shape.size() != 2 || sc.dim(0) != w.groups)
            badSource(src, sc.name + " is " + dtypeName(sc.dtype) + " " + sc.shapeString() + ", want F16 [" +
                               std::to_string(w.groups) + ", out]");
        const int64_t srcOut = sc.dim(1), packs = (srcOut + 7) / 8;
        if (qw.dtype != DType::I32 || qw.shape != std::vector<int64_t>{src.in, packs})
            badSource(src, qw.name + " is " + dtypeName(qw.dtype) + " " + qw.shapeString() + ", want I32 [" +
                               std::to_string(src.in) + ", " + std::to_string(packs) + "]");
        if (qz.dtype != DType::I32 || qz.shape != std::vector<int64_t>{w.groups, packs})
            badSource(src, qz.name + " is " + dtypeName(qz.dtype) + " " + qz.shapeString() + ", want I32 [" +
                               std::to_string(w.groups) + ", " + std::to_string(packs) + "]");
        if (s.srcStart < 0 || s.srcStart + s.count > srcOut)
            badSource(src, qw.name + " has no output columns [" + std::to_string(s.srcStart) + ", " +
                               std::to_string(s.srcStart + s.count) + ")");
    }
    // One task per segment and run of 64 output rows: it walks the inputs once, reading a few
    // consecutive words of each qweight row.
    struct Task {
        const WeightSegment* seg;
        int64_t r0, r1;
    };
    std::vector<Task> tasks;
    for (const auto& s : src.segments)
        for (int64_t r = 0; r < s.count; r += 64) tasks.push_back({&s, r, std::min(s.count, r + 64)});
    pool.parallelFor(int64_t(tasks.size()), [&](int64_t ti) {
        const Task& task = tasks[size_t(ti)];
        const WeightSegment& s = *task.seg;
        const int64_t packs = s.src->dim(1);
        for (int64_t r = task.r0; r < task.r1; ++r) {
            const int64_t o = s.dstStart + r, c = s.srcStart + r;
            const int shift = 4 * kOrderInv[c % 8];
            uint8_t* row = w.awqQ.get() + o * w.awqRowBytes;
            for (int64_t i = 0; i < src.in; ++i) {
                const int nib = (readI32(s.src->data, i * packs + c / 8) >> shift) & 15;
                uint8_t& byte = row[awqByte(i)];
                byte = uint8_t(byte | (awqHigh(i) ? nib << 4 : nib));
            }
            for (int64_t gi = 0; gi < w.groups; ++gi) {
                w.awqZero[size_t(o * w.groups + gi)] = float((readI32(s.qzeros->data, gi * packs + c / 8) >> shift) & 15);
                uint16_t h;
                std::memcpy(&h, s.scales->data + 2 * (gi * s.scales->dim(1) + c), 2);
                w.awqScale[size_t(o * w.groups + gi)] = halfToFloat(h);
            }
        }
    });
    w.m_bytes += uint64_t(src.out) * uint64_t(w.awqRowBytes) + uint64_t(src.out * w.groups) * 8;
}

}  // namespace

std::unique_ptr<CpuLinear> loadCpuLinear(const LinearSource& src, ThreadPool& pool) {
    if (src.in <= 0 || src.out <= 0)
        badSource(src, "bad shape in = " + std::to_string(src.in) + ", out = " + std::to_string(src.out));
    checkCoverage(src, src.segments, src.out, true, "weight");
    auto w = std::make_unique<CpuLinear>();
    w->name = src.name;
    w->in = src.in;
    w->out = src.out;
    w->awq = src.awq;
    if (src.awq) loadAwq(src, *w, pool);
    else loadDense(src, *w);
    loadBias(src, *w);
    return w;
}

void cpuLinear(ThreadPool& pool, const CpuLinear& w, const float* x, int64_t T, float* y) {
    if (T <= 0) return;
    const CpuKernels& kernels = cpuKernels();
    const int64_t out = w.out, in = w.in;
    const int64_t threads = pool.size();
    // Rows per task: whole row tiles (4), enough tasks for dynamic balance over the threads, and for
    // T > 1 few enough that a task's weights stay in L2 while every block of tokens passes over them.
    int64_t chunk = std::max<int64_t>(16, (out + threads * 8 - 1) / (threads * 8));
    if (T > 1) {
        const uint64_t rowBytes = w.awq ? uint64_t(w.awqRowBytes) : uint64_t(in) * dtypeSize(w.dtype);
        chunk = std::min<int64_t>(chunk, std::max<int64_t>(4, int64_t((256u << 10) / std::max<uint64_t>(rowBytes, 1))));
    }
    chunk = (chunk + 3) / 4 * 4;
    if (uint64_t(out) * uint64_t(in) * uint64_t(T) < (1u << 16)) chunk = out;  // waking threads costs more
    const int64_t tasks = (out + chunk - 1) / chunk;
    const float* bias = w.bias.empty() ? nullptr : w.bias.data();
    auto addBias = [&](int64_t r0, int64_t r1) {
        if (bias)
            for (int64_t t = 0; t < T; ++t)
                for (int64_t r = r0; r < r1; ++r) y[t * out + r] += bias[r];
    };
    // Per-token preparation, spread over the pool when there are many tokens.
    auto perToken = [&](const std::function<void(int64_t)>& fn) {
        if (T >= 8) pool.parallelFor(T, fn);
        else
            for (int64_t t = 0; t < T; ++t) fn(t);
    };

    if (w.awqInt8()) {
        static thread_local std::vector<int8_t> qBuf;
        static thread_local std::vector<float> dBuf, sumBuf;
        const int64_t chunks = in / kAwqChunk;
        int8_t* q = scratch(qBuf, size_t(T * in));
        float* d = scratch(dBuf, size_t(T * chunks));
        float* sum = scratch(sumBuf, size_t(T * w.groups));
        perToken([&](int64_t t) { quantizeRow(x + t * in, in, w.groupSize, q + t * in, d + t, T, sum + t * w.groups); });
        const QuantizedX qx{q, in, d, T, sum, w.groups};
        const AwqRows rows = w.awqRows();
        pool.parallelFor(tasks, [&](int64_t task) {
            const int64_t r0 = task * chunk, r1 = std::min(out, r0 + chunk);
            kernels.awq(rows, r0, r1, qx, T, y + r0, out);
            addBias(r0, r1);
        });
        trim(qBuf);
        return;
    }

    static thread_local std::vector<float> xBuf;
    const int64_t ld = cpuXStride(in);
    float* xp = scratch(xBuf, size_t(T * ld));
    const DType dt = w.awq ? DType::F32 : w.dtype;
    perToken([&](int64_t t) { kernels.prepareX(dt, x + t * in, 1, in, xp + t * ld); });
    pool.parallelFor(tasks, [&](int64_t task) {
        const int64_t r0 = task * chunk, r1 = std::min(out, r0 + chunk);
        if (!w.awq) {
            kernels.dense(dt, w.rows.data() + r0, r1 - r0, in, xp, T, y + r0, out);
        } else {  // AWQ with a group size the int8 kernels do not take: rows dequantized to f32
            std::vector<float> rowsF32(size_t((r1 - r0) * in));
            std::vector<const uint8_t*> ptrs(size_t(r1 - r0));
            for (int64_t r = r0; r < r1; ++r) {
                awqRowToF32(w, r, rowsF32.data() + (r - r0) * in);
                ptrs[size_t(r - r0)] = reinterpret_cast<const uint8_t*>(rowsF32.data() + (r - r0) * in);
            }
            kernels.dense(dt, ptrs.data(), r1 - r0, in, xp, T, y + r0, out);
        }
        addBias(r0, r1);
    });
    trim(xBuf);
}

}  // namespace lmw::engine
