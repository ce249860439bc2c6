#include "backend/cpu/cpu_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "lmw/dtype.h"
#include "lmw/error.h"

namespace lmw::engine {

namespace {
constexpr int kInt4FitRounds = 3;  // as the CUDA cache (kernels/src/kv_store.cu)

uint64_t rowBytesOf(const KvCacheShape& s) {
    switch (s.quantPolicy) {
        case 0: return uint64_t(s.headDim) * 4;
        case 8: return uint64_t(s.headDim);
        case 4: return (uint64_t(s.headDim) + 1) / 2;
    }
    throw Error(ErrorCode::InvalidArgument,
                "kv cache: quant_policy must be 0, 4 or 8, got " + std::to_string(s.quantPolicy));
}
uint64_t paramBytesOf(const KvCacheShape& s) { return s.quantPolicy == 0 ? 0 : 4; }  // f16 scale, zero
uint64_t regionBytesOf(const KvCacheShape& s) {
    // Rows are padded to 4 bytes so the f16 params that follow them stay aligned.
    const uint64_t values = (uint64_t(s.kvHeads) * uint64_t(s.blockSize) * rowBytesOf(s) + 3) / 4 * 4;
    return values + uint64_t(s.kvHeads) * uint64_t(s.blockSize) * paramBytesOf(s);
}
}  // namespace

uint64_t CpuKvCache::blockBytes(const KvCacheShape& s) {
    if (s.layers <= 0 || s.kvHeads <= 0 || s.headDim <= 0 || s.blockSize <= 0)
        throw Error(ErrorCode::InvalidArgument,
                    "kv cache: layers, kv heads, head dim and block size must be positive (got " +
                        std::to_string(s.layers) + ", " + std::to_string(s.kvHeads) + ", " +
                        std::to_string(s.headDim) + ", " + std::to_string(s.blockSize) + ")");
    return uint64_t(s.layers) * 2 * regionBytesOf(s);
}

void CpuKvCache::allocate(const KvCacheShape& shape, int64_t numBlocks) {
    if (numBlocks <= 0)
        throw Error(ErrorCode::InvalidArgument, "kv cache: number of blocks must be positive, got " +
                                                    std::to_string(numBlocks));
    const uint64_t bb = blockBytes(shape);
    m_data.reset();
    try {
        // Not value-initialised: pages are touched only when blocks are used.
        m_data.reset(new uint8_t[size_t(bb * uint64_t(numBlocks))]);
    } catch (const std::bad_alloc&) {
        throw Error(ErrorCode::OutOfMemory, "kv cache: cannot allocate " + std::to_string(numBlocks) +
                                                " blocks of " + std::to_string(bb) + " bytes");
    }
    m_shape = shape;
    m_keyOffsets.clear();
    m_numBlocks = numBlocks;
    m_blockBytes = bb;
    m_rowBytes = rowBytesOf(shape);
    m_regionBytes = regionBytesOf(shape);
}

void CpuKvCache::setKeyOffsets(const std::vector<float>& offsets) {
    if (!m_data) throw Error(ErrorCode::Internal, "kv cache: setKvKeyOffsets before allocKvCache");
    checkKvKeyOffsets(m_shape, offsets.size());
    m_keyOffsets = offsets;
}

void CpuKvCache::copyBlock(int32_t from, int32_t to) {
    if (!m_data) throw Error(ErrorCode::Internal, "kv cache: copyKvBlock before allocKvCache");
    if (from < 0 || from >= m_numBlocks || to < 0 || to >= m_numBlocks)
        throw Error(ErrorCode::InvalidArgument, "kv cache: copyKvBlock(" + std::to_string(from) + ", " +
                                                    std::to_string(to) + ") outside 0.." +
                                                    std::to_string(m_numBlocks - 1));
    if (from == to) return;
    std::memcpy(m_data.get() + uint64_t(to) * m_blockBytes, m_data.get() + uint64_t(from) * m_blockBytes,
                m_blockBytes);
}

uint8_t* CpuKvCache::region(int64_t block, int layer, int kind) const {
    return m_data.get() + uint64_t(block) * m_blockBytes + (uint64_t(layer) * 2 + uint64_t(kind)) * m_regionBytes;
}

void CpuKvCache::store(int64_t block, int slot, int layer, int kind, int kvHead, const float* src) {
    uint8_t* base = region(block, layer, kind);
    const uint64_t row = uint64_t(kvHead) * uint64_t(m_shape.blockSize) + uint64_t(slot);
    uint8_t* dst = base + row * m_rowBytes;
    const int d = m_shape.headDim;
    if (m_shape.quantPolicy == 0) {
        std::memcpy(dst, src, size_t(d) * 4);
        return;
    }
    thread_local std::vector<float> x;  // store() runs on the pool's threads
    x.assign(src, src + d);
    if (kind == 0 && !m_keyOffsets.empty()) {
        const float* off = m_keyOffsets.data() + (size_t(layer) * size_t(m_shape.kvHeads) + size_t(kvHead)) * size_t(d);
        for (int i = 0; i < d; ++i) x[size_t(i)] -= off[i];
    }
    float lo = x[0], hi = x[0];
    for (int i = 1; i < d; ++i) {
        lo = std::min(lo, x[size_t(i)]);
        hi = std::max(hi, x[size_t(i)]);
    }
    const int levels = m_shape.quantPolicy == 8 ? 255 : 15;
    float scale = (hi - lo) / float(levels);
    float inv = scale > 0.f ? 1.f / scale : 0.f;
    auto quant = [&](float v) {
        const float q = std::nearbyint((v - lo) * inv);
        return uint8_t(std::clamp(q, 0.f, float(levels)));
    };
    // int4: 16 levels over the min..max range round the middle values coarsely. A few rounds of
    // least squares (fit scale and zero to the codes, re-round) lower the row's error; each round can
    // only lower it, and min/max stay representable within half a step.
    for (int round = 0; round < kInt4FitRounds && levels == 15 && scale > 0.f; ++round) {
        double sc = 0, sx = 0, scc = 0, scx = 0;
        for (int i = 0; i < d; ++i) {
            const double c = quant(x[size_t(i)]), v = x[size_t(i)];
            sc += c;
            sx += v;
            scc += c * c;
            scx += c * v;
        }
        const double det = d * scc - sc * sc;
        const double s = det > 0 ? (d * scx - sc * sx) / det : 0.0;
        if (!(s > 0)) break;
        scale = float(s);
        lo = float((sx - s * sc) / d);
        inv = 1.f / scale;
    }
    // Stored as f16 (as the CUDA cache does); the codes are chosen against the rounded values, so
    // they match what load() decodes.
    const uint16_t params[2] = {floatToHalf(scale), floatToHalf(lo)};
    scale = halfToFloat(params[0]);
    lo = halfToFloat(params[1]);
    inv = scale > 0.f ? 1.f / scale : 0.f;
    if (m_shape.quantPolicy == 8) {
        for (int i = 0; i < d; ++i) dst[i] = quant(x[size_t(i)]);
    } else {
        for (int i = 0; i < d; i += 2) {
            const uint8_t a = quant(x[size_t(i)]);
            const uint8_t b = i + 1 < d ? quant(x[size_t(i + 1)]) : 0;
            dst[i / 2] = uint8_t(a | (b << 4));
        }
    }
    const uint64_t valuesBytes = (uint64_t(m_shape.kvHeads) * uint64_t(m_shape.blockSize) * m_rowBytes + 3) / 4 * 4;
    std::memcpy(base + valuesBytes + row * 4, params, 4);
}

const float* CpuKvCache::load(int64_t block, int slot, int layer, int kind, int kvHead, float* scratch) const {
    const uint8_t* base = region(block, layer, kind);
    const uint64_t row = uint64_t(kvHead) * uint64_t(m_shape.blockSize) + uint64_t(slot);
    const uint8_t* src = base + row * m_rowBytes;
    if (m_shape.quantPolicy == 0) return reinterpret_cast<const float*>(src);
    const uint64_t valuesBytes = (uint64_t(m_shape.kvHeads) * uint64_t(m_shape.blockSize) * m_rowBytes + 3) / 4 * 4;
    uint16_t params[2];
    std::memcpy(params, base + valuesBytes + row * 4, 4);
    const float scale = halfToFloat(params[0]), zero = halfToFloat(params[1]);
    const int d = m_shape.headDim;
    if (m_shape.quantPolicy == 8) {
        for (int i = 0; i < d; ++i) scratch[i] = float(src[i]) * scale + zero;
    } else {
        for (int i = 0; i < d; ++i) {
            const uint8_t b = src[i / 2];
            scratch[i] = float((i & 1) ? (b >> 4) : (b & 15)) * scale + zero;
        }
    }
    return scratch;
}

}  // namespace lmw::engine
