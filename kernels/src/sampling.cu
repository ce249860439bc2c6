// Device sampler: one 1024-thread block per row (see lmw/kernels/sampling.h for what it promises).
// A row is read a few times from L2 (150k logits are 300-600 KB): argmax; for the filters, a value-
// bucket histogram and a gather of the bucket that holds the cut; the kept mass; the draw.
#include <cuda_bf16.h>

#include "common.cuh"
#include "lmw/kernels/sampling.h"
#include "lmw/kernels/sampling_math.h"

namespace lmw::kernels {
namespace sm = sampling;

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = kThreads;  // one histogram bin per thread for the scan
constexpr int kSortCap = 2048;   // a bucket this small is sorted in shared memory
constexpr int kMaxLevels = 24;   // narrowing levels before the bisection fallback
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float toF(float v) { return v; }
__device__ __forceinline__ float toF(__half v) { return __half2float(v); }
__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ bool finiteF(float v) { return (sm::floatBits(v) & 0x7f800000u) != 0x7f800000u; }
__device__ __forceinline__ bool isNan(float v) { return (sm::floatBits(v) & 0x7fffffffu) > 0x7f800000u; }

struct Shared {
    uint32_t binCount[kBins];
    uint64_t binMass[kBins];
    uint64_t sortKeys[kSortCap];
    uint64_t redU64[kWarps];
    float redF[kWarps];
    float lvlHi[kMaxLevels];
    float lvlScale[kMaxLevels];
    int32_t lvlBin[kMaxLevels];
    uint64_t outU64;
    uint64_t outRem;
    int32_t outI32;
    int32_t outBin;
    uint32_t outCount;
    uint32_t gathered;
};

// ---------------------------------------------------------------- block primitives

__device__ __forceinline__ uint64_t warpMaxU64(uint64_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const uint64_t w = __shfl_xor_sync(kFull, v, o);
        v = w > v ? w : v;
    }
    return v;
}
__device__ __forceinline__ uint64_t warpSumU64(uint64_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
    return v;
}
__device__ __forceinline__ uint64_t warpInclusiveScanU64(uint64_t v) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint64_t w = __shfl_up_sync(kFull, v, o);
        if (lane >= o) v += w;
    }
    return v;
}

// Every thread gets the result.
__device__ uint64_t blockMaxU64(uint64_t v, Shared& sh) {
    v = warpMaxU64(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.redU64[threadIdx.x >> 5] = v;
    __syncthreads();
    return warpMaxU64(sh.redU64[threadIdx.x & 31]);
}
__device__ uint64_t blockSumU64(uint64_t v, Shared& sh) {
    v = warpSumU64(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.redU64[threadIdx.x >> 5] = v;
    __syncthreads();
    return warpSumU64(sh.redU64[threadIdx.x & 31]);
}
__device__ float blockSumF(float v, Shared& sh) {
    v = detail::warpSum(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh.redF[threadIdx.x >> 5] = v;
    __syncthreads();
    return detail::warpSum(sh.redF[threadIdx.x & 31]);
}
// Inclusive scan over the block in thread order.
__device__ uint64_t blockInclusiveScanU64(uint64_t v, Shared& sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warpInclusiveScanU64(v);
    __syncthreads();
    if (lane == 31) sh.redU64[warp] = v;
    __syncthreads();
    const uint64_t before = warpInclusiveScanU64(sh.redU64[lane]);  // warp `lane`'s inclusive total
    const uint64_t offset = __shfl_sync(kFull, before, (warp + 31) & 31);
    return v + (warp ? offset : 0);
}

// ---------------------------------------------------------------- the row

// One row's view: x = penalized logits (what the filters see), raw = the tensor's row (logprobs).
template <class S, class R>
struct RowCtx {
    const S* x;
    const R* raw;
    int n;
    const SampleRowParams& p;
    Shared& sh;
    float mx = 0.f, cut = 0.f, invT = 0.f;

    __device__ float at(int i) const { return toF(x[i]); }
    __device__ uint64_t weight(float v) const { return sm::weightOf(sm::relativeProb(v, mx, invT)); }

    // Value buckets of a narrowing level: monotone in v (a larger logit never lands in a later bin).
    __device__ static int bucket(float v, float hi, float scale) {
        const float d = sm::subF(hi, v);
        if (!(d > 0.f)) return 0;
        const float b = sm::mulF(d, scale);
        return b >= float(kBins - 1) ? kBins - 1 : int(b);
    }
    __device__ bool chainMatches(float v, int levels) const {
        for (int l = 0; l < levels; ++l)
            if (bucket(v, sh.lvlHi[l], sh.lvlScale[l]) != sh.lvlBin[l]) return false;
        return true;
    }
    __device__ bool inSet(int i, float v, uint64_t limit, int levels) const {
        return v >= cut && sm::orderKey(v, i) >= limit && chainMatches(v, levels);
    }

    // Smallest id whose running weight (over pred's elements, by id) exceeds t; -1 when none does.
    template <class Pred, class Weight>
    __device__ int scanFirst(Pred pred, Weight wfn, uint64_t t) {
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        const int seg = (n + kWarps * 32 - 1) / (kWarps * 32) * 32;
        const int start = warp * seg, end = min(n, start + seg);
        uint64_t local = 0;
        for (int i = start + lane; i < end; i += 32) {
            const float v = at(i);
            if (pred(i, v)) local += wfn(i, v);
        }
        local = warpSumU64(local);
        __syncthreads();
        if (lane == 0) sh.redU64[warp] = local;
        if (threadIdx.x == 0) sh.outI32 = -1;
        __syncthreads();
        if (warp == 0) {
            const uint64_t incl = warpInclusiveScanU64(sh.redU64[lane]);
            const unsigned hit = __ballot_sync(kFull, incl > t);
            if (hit) {
                const int w = __ffs(hit) - 1;
                const uint64_t excl = __shfl_sync(kFull, incl - sh.redU64[lane], w);
                if (lane == 0) {
                    sh.outBin = w;
                    sh.outU64 = excl;
                }
            } else if (lane == 0) {
                sh.outBin = -1;
            }
        }
        __syncthreads();
        if (warp == sh.outBin) {
            uint64_t base = sh.outU64;
            for (int c = start; c < end; c += 32) {
                const int i = c + lane;
                uint64_t wv = 0;
                if (i < end) {
                    const float v = at(i);
                    if (pred(i, v)) wv = wfn(i, v);
                }
                const uint64_t incl = warpInclusiveScanU64(wv);
                const unsigned hit = __ballot_sync(kFull, base + incl > t);
                if (hit) {
                    if (lane == __ffs(hit) - 1) sh.outI32 = i;
                    break;
                }
                base += __shfl_sync(kFull, incl, 31);
            }
        }
        __syncthreads();
        return sh.outI32;
    }

    // The key at which the running weight of the set (limit, chain of `levels`) in key order first
    // reaches `target` (>= 1, <= the set's weight), by bisection over keys: exact, 64 passes; only
    // for buckets the narrowing could not split.
    __device__ uint64_t bisect(bool mass, uint64_t target, uint64_t limit, int levels) {
        uint64_t lo = limit, hi = ~uint64_t(0);
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2 + 1;
            uint64_t local = 0;
            for (int i = threadIdx.x; i < n; i += kThreads) {
                const float v = at(i);
                if (inSet(i, v, limit, levels) && sm::orderKey(v, i) >= mid) local += mass ? weight(v) : 1;
            }
            if (blockSumU64(local, sh) >= target) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    // The filters' cut: the key of the element (of those with key >= limit among the candidates) at
    // which the running count (mass = false) or weight (mass = true) in key order first reaches
    // `target`; keeping key >= the result keeps the prefix. Needs 1 <= target <= the set's total.
    __device__ uint64_t select(bool mass, uint64_t target, uint64_t limit) {
        float hi = mx, lo = cut;
        int levels = 0;
        uint64_t rem = target;
        for (; levels < kMaxLevels; ++levels) {
            if (!(hi > lo)) return selectTie(mass, hi, rem, limit, levels);
            const float scale = sm::divF(float(kBins), sm::subF(hi, lo));
            for (int b = threadIdx.x; b < kBins; b += kThreads) {
                sh.binCount[b] = 0;
                sh.binMass[b] = 0;
            }
            if (threadIdx.x == 0) sh.outBin = -1;
            __syncthreads();
            for (int i = threadIdx.x; i < n; i += kThreads) {
                const float v = at(i);
                if (!inSet(i, v, limit, levels)) continue;
                const int b = bucket(v, hi, scale);
                atomicAdd(&sh.binCount[b], 1u);
                if (mass) atomicAdd(reinterpret_cast<unsigned long long*>(&sh.binMass[b]), (unsigned long long)weight(v));
            }
            __syncthreads();
            const int b = threadIdx.x;
            const uint64_t val = mass ? sh.binMass[b] : sh.binCount[b];
            const uint64_t incl = blockInclusiveScanU64(val, sh);
            if (incl >= rem && incl - val < rem) {
                sh.outBin = b;
                sh.outRem = rem - (incl - val);
                sh.outCount = sh.binCount[b];
            }
            __syncthreads();
            const int bin = sh.outBin;
            if (bin < 0) return limit;  // target above the set's total: keep it all (not reached by callers)
            rem = sh.outRem;
            const uint32_t count = sh.outCount;
            __syncthreads();
            if (count <= uint32_t(kSortCap)) return selectSorted(mass, rem, limit, levels, hi, scale, bin);
            // Narrow to the bucket's own value range.
            uint64_t lowKey = 0, highKey = 0;
            {
                uint64_t mn = 0, mxk = 0;  // ordered bits, inverted for the min
                for (int i = threadIdx.x; i < n; i += kThreads) {
                    const float v = at(i);
                    if (!inSet(i, v, limit, levels) || bucket(v, hi, scale) != bin) continue;
                    const uint64_t o = sm::orderedBits(v);
                    mxk = o > mxk ? o : mxk;
                    mn = (~o & 0xffffffffu) > mn ? (~o & 0xffffffffu) : mn;
                }
                highKey = blockMaxU64(mxk, sh);
                lowKey = ~blockMaxU64(mn, sh) & 0xffffffffu;
            }
            if (threadIdx.x == 0) {
                sh.lvlHi[levels] = hi;
                sh.lvlScale[levels] = scale;
                sh.lvlBin[levels] = bin;
            }
            __syncthreads();
            hi = sm::fromOrderedBits(uint32_t(highKey));
            lo = sm::fromOrderedBits(uint32_t(lowKey));
        }
        return bisect(mass, rem, limit, levels);
    }

    // All of the set's elements in this bucket have the value v: rank them by id.
    __device__ uint64_t selectTie(bool mass, float v, uint64_t rem, uint64_t limit, int levels) {
        const uint64_t each = mass ? weight(v) : 1;
        const uint64_t m = (rem + each - 1) / each;  // >= 1
        const int id = scanFirst([&](int i, float u) { return u == v && inSet(i, u, limit, levels); },
                                 [](int, float) { return uint64_t(1); }, m - 1);
        return id < 0 ? limit : sm::orderKey(v, id);
    }

    // The bucket `bin` of this level holds few elements: sort them by key and walk the prefix.
    __device__ uint64_t selectSorted(bool mass, uint64_t rem, uint64_t limit, int levels, float hi, float scale, int bin) {
        if (threadIdx.x == 0) sh.gathered = 0;
        for (int i = threadIdx.x; i < kSortCap; i += kThreads) sh.sortKeys[i] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += kThreads) {
            const float v = at(i);
            if (!inSet(i, v, limit, levels) || bucket(v, hi, scale) != bin) continue;
            sh.sortKeys[atomicAdd(&sh.gathered, 1u)] = sm::orderKey(v, i);
        }
        __syncthreads();
        int size = 1;
        while (size < int(sh.gathered)) size <<= 1;
        for (int k = 2; k <= size; k <<= 1)  // bitonic, descending; padding keys are 0 (below any key)
            for (int j = k >> 1; j > 0; j >>= 1) {
                for (int i = threadIdx.x; i < size; i += kThreads) {
                    const int o = i ^ j;
                    if (o > i) {
                        const uint64_t a = sh.sortKeys[i], b = sh.sortKeys[o];
                        if (((i & k) == 0) ? a < b : a > b) {
                            sh.sortKeys[i] = b;
                            sh.sortKeys[o] = a;
                        }
                    }
                }
                __syncthreads();
            }
        // Thread t walks sorted elements 2t, 2t + 1.
        uint64_t w[2];
        for (int e = 0; e < 2; ++e) {
            const uint64_t key = sh.sortKeys[2 * threadIdx.x + e];
            w[e] = key == 0 ? 0 : (mass ? weight(sm::logitOfKey(key)) : 1);
        }
        const uint64_t incl = blockInclusiveScanU64(w[0] + w[1], sh);
        if (threadIdx.x == 0) sh.outU64 = limit;
        __syncthreads();
        uint64_t before = incl - w[0] - w[1];
        for (int e = 0; e < 2; ++e) {
            if (w[e] && before < rem && before + w[e] >= rem) sh.outU64 = sh.sortKeys[2 * threadIdx.x + e];
            before += w[e];
        }
        __syncthreads();
        return sh.outU64;
    }

    // ---------------------------------------------------------------- the steps

    __device__ int32_t argmaxRow() {
        uint64_t best = 0;
#pragma unroll 4
        for (int i = threadIdx.x; i < n; i += kThreads) {
            const float v = at(i);
            if (v > -INFINITY) {  // false for NaN: as the host, neither NaN nor -inf is ever picked
                const uint64_t k = sm::orderKey(v, i);
                best = k > best ? k : best;
            }
        }
        best = blockMaxU64(best, sh);
        return best ? sm::idOfKey(best) : 0;
    }

    __device__ int32_t drawFiltered(int32_t best) {
        const float T = p.temperature;
        invT = sm::inverseTemperature(T);
        cut = sm::cutoffOf(mx, T);
        uint64_t limit = 0;
        if (p.topK > 0 && p.topK < n) {
            uint64_t c = 0;
            for (int i = threadIdx.x; i < n; i += kThreads) c += at(i) >= cut ? 1 : 0;
            if (uint64_t(p.topK) < blockSumU64(c, sh)) limit = select(false, uint64_t(p.topK), 0);
        }
        if (p.topP < 1.f) {
            uint64_t total = 0;
            for (int i = threadIdx.x; i < n; i += kThreads) {
                const float v = at(i);
                if (inSet(i, v, limit, 0)) total += weight(v);
            }
            total = blockSumU64(total, sh);
            limit = select(true, sm::nucleusTarget(p.topP, total), limit);
        }
        const float minP = p.minP;
        auto kept = [&](int i, float v) {
            return inSet(i, v, limit, 0) && (minP <= 0.f || sm::relativeProb(v, mx, invT) >= minP);
        };
        auto w = [&](int, float v) { return weight(v); };
        uint64_t mass = 0;
        for (int i = threadIdx.x; i < n; i += kThreads) {
            const float v = at(i);
            if (kept(i, v)) mass += weight(v);
        }
        mass = blockSumU64(mass, sh);
        const int id = scanFirst(kept, w, sm::drawPoint(p.uniform, mass));
        return id < 0 ? best : id;
    }

    __device__ void logprobs(int32_t token, SampleRowResult& out) {
        uint64_t mk = 0;
        for (int i = threadIdx.x; i < n; i += kThreads) {
            const float v = toF(raw[i]);
            if (!isNan(v)) {
                const uint64_t k = sm::orderKey(v, i);
                mk = k > mk ? k : mk;
            }
        }
        mk = blockMaxU64(mk, sh);
        const float m = mk ? sm::logitOfKey(mk) : -INFINITY;
        float lse = m;
        if (finiteF(m)) {
            float s = 0.f;
            for (int i = threadIdx.x; i < n; i += kThreads) {
                const float v = toF(raw[i]);
                if (!isNan(v)) s += __expf(v - m);
            }
            lse = m + __logf(blockSumF(s, sh));
        }
        if (threadIdx.x == 0) out.logprob = float(double(toF(raw[token])) - double(lse));
        const int top = min(min(p.topLogprobs, kMaxSampleTopLogprobs), n);
        uint64_t prev = ~uint64_t(0);
        for (int r = 0; r < top; ++r) {
            uint64_t k = 0;
            for (int i = threadIdx.x; i < n; i += kThreads) {
                float v = toF(raw[i]);
                if (isNan(v)) v = -INFINITY;
                const uint64_t key = sm::orderKey(v, i);
                if (key < prev && key > k) k = key;
            }
            k = blockMaxU64(k, sh);
            if (threadIdx.x == 0) {
                const int32_t id = sm::idOfKey(k);
                out.topIds[r] = id;
                out.topLogprobs[r] = float(double(toF(raw[id])) - double(lse));
            }
            prev = k;
        }
    }

    __device__ void run(SampleRowResult& out) {
        const int32_t best = argmaxRow();
        mx = at(best);
        int32_t token = best;
        if (p.temperature > 0.f && finiteF(mx)) token = drawFiltered(best);
        if (threadIdx.x == 0) out.token = token;
        if (p.topLogprobs >= 0) logprobs(token, out);
    }
};

// The mask, then bias, then repetition, then presence / frequency, into the row's f32 scratch (as the host does).
template <class R>
__device__ void penalize(const R* raw, float* s, uint32_t* counts, int n, const SampleRowParams& p, const SampleBatch& b) {
    if (p.maskOffset >= 0) {
        const uint32_t* mask = b.masks + p.maskOffset;
        for (int i = threadIdx.x; i < n; i += kThreads) s[i] = (mask[i >> 5] >> (i & 31) & 1u) ? toF(raw[i]) : -INFINITY;
    } else {
        for (int i = threadIdx.x; i < n; i += kThreads) s[i] = toF(raw[i]);
    }
    __syncthreads();
    // Bias entries are applied in order; the first entry of an id applies all of that id's entries.
    const int32_t* ids = b.biasIds + p.biasOffset;
    const float* vals = b.biasValues + p.biasOffset;
    for (int e = threadIdx.x; e < p.biasCount; e += kThreads) {
        const int32_t id = ids[e];
        if (id < 0 || id >= n) continue;
        bool first = true;
        for (int f = 0; f < e && first; ++f) first = ids[f] != id;
        if (!first) continue;
        float v = s[id];
        for (int f = e; f < p.biasCount; ++f)
            if (ids[f] == id) v = sm::applyBias(v, vals[f]);
        s[id] = v;
    }
    __syncthreads();
    const bool rep = p.repetitionPenalty != 1.f && p.historyLen > 0;
    const bool pf = (p.presencePenalty != 0.f || p.frequencyPenalty != 0.f) && p.historyLen > p.promptLen;
    if (!rep && !pf) return;
    const int32_t* h = b.history + p.historyOffset;
    const int from = rep ? 0 : p.promptLen;
    if (pf)
        for (int j = p.promptLen + threadIdx.x; j < p.historyLen; j += kThreads) {
            const int32_t id = h[j];
            if (id >= 0 && id < n) atomicAdd(&counts[id], 1u);
        }
    __syncthreads();
    // The first position to claim an id owns it: each distinct id is penalized once.
    for (int j = from + threadIdx.x; j < p.historyLen; j += kThreads) {
        const int32_t id = h[j];
        if (id < 0 || id >= n) continue;
        const uint32_t old = atomicOr(&counts[id], 0x80000000u);
        if (old & 0x80000000u) continue;
        float v = s[id];
        if (rep) v = sm::applyRepetition(v, p.repetitionPenalty);
        const int c = int(old & 0x7fffffffu);
        if (pf && c > 0) v = sm::applyPresenceFrequency(v, p.presencePenalty, p.frequencyPenalty, c);
        s[id] = v;
    }
    __syncthreads();
    for (int j = from + threadIdx.x; j < p.historyLen; j += kThreads) {
        const int32_t id = h[j];
        if (id >= 0 && id < n) counts[id] = 0;
    }
    __syncthreads();
}

template <class R>
__global__ void __launch_bounds__(kThreads) sampleRowsKernel(SampleBatch b) {
    __shared__ Shared sh;
    const SampleRowParams& p = b.params[blockIdx.x];
    const R* raw = static_cast<const R*>(b.logits) + int64_t(p.row) * b.stride;
    SampleRowResult& out = b.results[blockIdx.x];
    if (sampleRowNeedsWorkspace(p)) {
        float* s = b.scratch + int64_t(blockIdx.x) * b.vocab;
        penalize(raw, s, b.counts + int64_t(blockIdx.x) * b.vocab, b.vocab, p, b);
        RowCtx<float, R>{s, raw, b.vocab, p, sh}.run(out);
    } else {
        RowCtx<R, R>{raw, raw, b.vocab, p, sh}.run(out);
    }
}

}  // namespace

int sampleRows(const SampleBatch& b, void* stream) {
    if (b.rows <= 0) return 0;
    if (b.vocab <= 0 || b.vocab > sm::kMaxVocab || b.stride < b.vocab || !b.logits || !b.params || !b.results)
        return int(cudaErrorInvalidValue);
    const dim3 grid(unsigned(b.rows)), block(kThreads);
    cudaStream_t s = detail::asStream(stream);
    switch (b.type) {
        case SrcType::F32: sampleRowsKernel<float><<<grid, block, 0, s>>>(b); break;
        case SrcType::F16: sampleRowsKernel<__half><<<grid, block, 0, s>>>(b); break;
        case SrcType::BF16: sampleRowsKernel<__nv_bfloat16><<<grid, block, 0, s>>>(b); break;
        default: return int(cudaErrorInvalidValue);
    }
    return detail::launchStatus();
}

}  // namespace lmw::kernels
