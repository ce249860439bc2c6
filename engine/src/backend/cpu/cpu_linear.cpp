#include "backend/cpu/cpu_linear.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "lmw/dtype.h"
#include "lmw/error.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define LMW_CPU_AVX2 1
#endif

namespace lmw::engine {

namespace {

int32_t readI32(const uint8_t* p, int64_t i) {
    int32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
}

struct F32Src {
    static float scalar(const uint8_t* p, int64_t i) { return readElem(p, DType::F32, i); }
#ifdef LMW_CPU_AVX2
    static __m256 load(const uint8_t* p, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p + 4 * i)); }
#endif
};
struct F16Src {
    static float scalar(const uint8_t* p, int64_t i) { return readElem(p, DType::F16, i); }
#ifdef LMW_CPU_AVX2
    static __m256 load(const uint8_t* p, int64_t i) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
    }
#endif
};
struct BF16Src {
    static float scalar(const uint8_t* p, int64_t i) { return readElem(p, DType::BF16, i); }
#ifdef LMW_CPU_AVX2
    static __m256 load(const uint8_t* p, int64_t i) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
#endif
};

#ifdef LMW_CPU_AVX2
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

// ---- decode (T = 1): one dot product per row, weights converted in registers ----

template <class S>
float denseDot(const uint8_t* w, const float* x, int64_t in) {
    int64_t i = 0;
    float s = 0.f;
#ifdef LMW_CPU_AVX2
    // Four independent chains hide the FMA latency; decode is one long dot per row.
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (; i + 32 <= in; i += 32) {
        a0 = _mm256_fmadd_ps(S::load(w, i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(S::load(w, i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(S::load(w, i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(S::load(w, i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= in; i += 8) a0 = _mm256_fmadd_ps(S::load(w, i), _mm256_loadu_ps(x + i), a0);
    s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
    for (; i < in; ++i) s += S::scalar(w, i) * x[i];
    return s;
}

using DenseDot = float (*)(const uint8_t*, const float*, int64_t);

DenseDot denseDot(DType dt) {
    switch (dt) {
        case DType::F16: return denseDot<F16Src>;
        case DType::BF16: return denseDot<BF16Src>;
        default: return denseDot<F32Src>;
    }
}

// AWQ: weight = (q - zero) * scale per group of `groupSize` inputs.
float awqNibble(const CpuLinear& w, const uint8_t* q, int64_t i) {
    const uint8_t byte = q[(i / 32) * 16 + (i % 16)];
    return float((i % 32) < 16 ? (byte & 15) : (byte >> 4));
}

// xsum[g] = sum of x over group g (fast path only): sum_i x (q - z) s = s (sum_i x q) - s z xsum, so
// the inner loop is one convert and one FMA per 8 weights.
float awqDot(const CpuLinear& w, int64_t o, const float* x, const float* xsum) {
    const uint8_t* q = w.awqQ.get() + o * w.awqRowBytes;
    const float* scales = w.awqScale.data() + o * w.groups;
    const float* zeros = w.awqZero.data() + o * w.groups;
#ifdef LMW_CPU_AVX2
    if (w.groupSize % 32 == 0) {
        const __m128i mask = _mm_set1_epi8(0x0f);
        const int64_t blocksPerGroup = w.groupSize / 32;
        __m256 total = _mm256_setzero_ps();
        float zeroTerm = 0.f;
        for (int64_t g = 0; g < w.groups; ++g) {
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int64_t b = g * blocksPerGroup; b < (g + 1) * blocksPerGroup; ++b) {
                const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + b * 16));
                const __m128i lo = _mm_and_si128(v, mask);
                const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
                const float* xb = x + b * 32;
                acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), _mm256_loadu_ps(xb), acc[0]);
                acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))),
                                         _mm256_loadu_ps(xb + 8), acc[1]);
                acc[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), _mm256_loadu_ps(xb + 16), acc[2]);
                acc[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))),
                                         _mm256_loadu_ps(xb + 24), acc[3]);
            }
            const __m256 sumq = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            total = _mm256_fmadd_ps(_mm256_set1_ps(scales[g]), sumq, total);
            zeroTerm += scales[g] * zeros[g] * xsum[g];
        }
        return hsum(total) - zeroTerm;
    }
#endif
    float s = 0.f;  // group sizes that are not a multiple of 32 (small test models)
    for (int64_t i = 0; i < w.in; ++i) {
        const int64_t g = i / w.groupSize;
        s += (awqNibble(w, q, i) - zeros[g]) * scales[g] * x[i];
    }
    return s;
}

// ---- prefill (T > 1): rows converted to f32 once per block of tokens, then a register tile ----

// Writes output row r's weights as f32 into dst (in floats).
void rowToF32(const CpuLinear& w, int64_t r, float* dst) {
    const int64_t in = w.in;
    if (w.awq) {
        const uint8_t* q = w.awqQ.get() + r * w.awqRowBytes;
        const float* scales = w.awqScale.data() + r * w.groups;
        const float* zeros = w.awqZero.data() + r * w.groups;
#ifdef LMW_CPU_AVX2
        if (w.groupSize % 32 == 0) {
            const __m128i mask = _mm_set1_epi8(0x0f);
            for (int64_t b = 0; b < in / 32; ++b) {
                const int64_t g = b * 32 / w.groupSize;
                const __m256 vs = _mm256_set1_ps(scales[g]), vz = _mm256_set1_ps(zeros[g]);
                const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + b * 16));
                const __m128i lo = _mm_and_si128(v, mask);
                const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
                const __m256i parts[4] = {_mm256_cvtepu8_epi32(lo), _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)),
                                          _mm256_cvtepu8_epi32(hi), _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))};
                for (int k = 0; k < 4; ++k)
                    _mm256_storeu_ps(dst + b * 32 + 8 * k, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(parts[k]), vz), vs));
            }
            return;
        }
#endif
        for (int64_t i = 0; i < in; ++i) {
            const int64_t g = i / w.groupSize;
            dst[i] = (awqNibble(w, q, i) - zeros[g]) * scales[g];
        }
        return;
    }
    const uint8_t* src = w.rows[size_t(r)];
    int64_t i = 0;
#ifdef LMW_CPU_AVX2
    if (w.dtype == DType::F16)
        for (; i + 8 <= in; i += 8) _mm256_storeu_ps(dst + i, F16Src::load(src, i));
    else if (w.dtype == DType::BF16)
        for (; i + 8 <= in; i += 8) _mm256_storeu_ps(dst + i, BF16Src::load(src, i));
#endif
    for (; i < in; ++i) dst[i] = readElem(src, w.dtype, i);
}

// sums[r * TT + t] = dot(w[r], x row t) for R rows and TT tokens: R*TT accumulators, R + 1 loads
// feed R*TT FMAs (3x4 uses all 16 AVX2 registers).
template <int R, int TT>
void tile(const float* const* w, const float* x, int64_t ldx, int64_t in, float* sums) {
    int64_t i = 0;
    float tail[R * TT] = {};
#ifdef LMW_CPU_AVX2
    __m256 acc[R * TT];
    for (int k = 0; k < R * TT; ++k) acc[k] = _mm256_setzero_ps();
    for (; i + 8 <= in; i += 8) {
        __m256 wv[R];
        for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_ps(w[r] + i);
        for (int t = 0; t < TT; ++t) {
            const __m256 xv = _mm256_loadu_ps(x + t * ldx + i);
            for (int r = 0; r < R; ++r) acc[r * TT + t] = _mm256_fmadd_ps(wv[r], xv, acc[r * TT + t]);
        }
    }
    for (int k = 0; k < R * TT; ++k) tail[k] = hsum(acc[k]);
#endif
    for (; i < in; ++i)
        for (int r = 0; r < R; ++r)
            for (int t = 0; t < TT; ++t) tail[r * TT + t] += w[r][i] * x[t * ldx + i];
    for (int k = 0; k < R * TT; ++k) sums[k] = tail[k];
}

using TileKernel = void (*)(const float* const*, const float*, int64_t, int64_t, float*);

template <int R>
TileKernel tileFor(int tt) {
    switch (tt) {
        case 1: return tile<R, 1>;
        case 2: return tile<R, 2>;
        case 3: return tile<R, 3>;
        default: return tile<R, 4>;
    }
}

TileKernel tileKernel(int rows, int tt) {
    switch (rows) {
        case 1: return tileFor<1>(tt);
        case 2: return tileFor<2>(tt);
        default: return tileFor<3>(tt);
    }
}

constexpr int kTileRows = 3;
constexpr int kTileTokens = 4;


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
    w.awqRowBytes = (src.in + 31) / 32 * 16;
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
                uint8_t& byte = row[(i / 32) * 16 + (i % 16)];
                byte = uint8_t(byte | ((i % 32) < 16 ? nib : nib << 4));
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
    const int64_t out = w.out, in = w.in;
    const float* bias = w.bias.empty() ? nullptr : w.bias.data();
    const int64_t threads = pool.size();
    // Rows per task: enough tasks for dynamic balance over the threads.
    int64_t chunk = std::max<int64_t>(8, (out + threads * 8 - 1) / (threads * 8));
    if (T > 1) {
        // Few enough rows that a task's weights stay in L2 while every block of tokens passes over them.
        const uint64_t rowBytes = w.awq ? uint64_t(w.awqRowBytes) : uint64_t(in) * dtypeSize(w.dtype);
        chunk = std::min<int64_t>(chunk, std::max<int64_t>(kTileRows, int64_t((256u << 10) / std::max<uint64_t>(rowBytes, 1))));
        chunk = (chunk + kTileRows - 1) / kTileRows * kTileRows;
    }
    if (uint64_t(out) * uint64_t(in) * uint64_t(T) < (1u << 16)) chunk = out;  // waking threads costs more
    const int64_t tasks = (out + chunk - 1) / chunk;

    if (T == 1) {
        const DenseDot dot = w.awq ? nullptr : denseDot(w.dtype);
        std::vector<float> xsum;
        if (w.awq) {
            xsum.assign(size_t(w.groups), 0.f);
            for (int64_t i = 0; i < in; ++i) xsum[size_t(i / w.groupSize)] += x[i];
        }
        pool.parallelFor(tasks, [&](int64_t task) {
            const int64_t r1 = std::min(out, (task + 1) * chunk);
            for (int64_t r = task * chunk; r < r1; ++r)
                y[r] = (w.awq ? awqDot(w, r, x, xsum.data()) : dot(w.rows[size_t(r)], x, in)) + (bias ? bias[r] : 0.f);
        });
        return;
    }

    // Tokens per block: the block of x (f32, ~512 KiB) stays in L2 next to the task's weights.
    const int64_t tokenBlock = std::clamp<int64_t>(int64_t(512u << 10) / (in * 4) / kTileTokens * kTileTokens, kTileTokens, 64);
    // f32 rows need no conversion, unless they are not float-aligned (safetensors data offsets
    // need not be; reading them as float* is undefined): those are copied like f16 ones.
    const bool direct = !w.awq && w.dtype == DType::F32;
    pool.parallelFor(tasks, [&](int64_t task) {
        const int64_t r0 = task * chunk, r1 = std::min(out, r0 + chunk);
        std::vector<float> scratch;
        float sums[kTileRows * kTileTokens];
        for (int64_t t0 = 0; t0 < T; t0 += tokenBlock) {
            const int64_t t1 = std::min(T, t0 + tokenBlock);
            for (int64_t r = r0; r < r1; r += kTileRows) {
                const int rows = int(std::min<int64_t>(kTileRows, r1 - r));
                const float* wr[kTileRows];
                for (int k = 0; k < rows; ++k) {
                    const uint8_t* row = direct ? w.rows[size_t(r + k)] : nullptr;  // AWQ: no rows
                    if (row && reinterpret_cast<uintptr_t>(row) % alignof(float) == 0) {
                        wr[k] = reinterpret_cast<const float*>(row);
                    } else {
                        if (scratch.empty()) scratch.resize(size_t(kTileRows * in));
                        rowToF32(w, r + k, scratch.data() + k * in);
                        wr[k] = scratch.data() + k * in;
                    }
                }
                for (int64_t t = t0; t < t1; t += kTileTokens) {
                    const int tt = int(std::min<int64_t>(kTileTokens, t1 - t));
                    tileKernel(rows, tt)(wr, x + t * in, in, in, sums);
                    for (int k = 0; k < rows; ++k) {
                        const float b = bias ? bias[r + k] : 0.f;
                        for (int j = 0; j < tt; ++j) y[(t + j) * out + r + k] = sums[k * tt + j] + b;
                    }
                }
            }
        }
    });
}

}  // namespace lmw::engine
