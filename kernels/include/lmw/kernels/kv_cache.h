#pragma once
// Paged KV cache layout shared by kv_store and paged_attention (plain C++).
//
// The cache is an array of blocks; a block holds `blockSize` tokens of every layer's K and V.
// Inside a block, for each layer and each of K, V (in that order) there is one section:
//   data   [kvHeads][blockSize][dataBytes]   storedDim() f16 values, or uint8 codes (int8), or packed
//                                            nibbles (int4: element 2i in the low nibble of byte i)
//   params [kvHeads][blockSize] half2        (scale, zero) per head and token, quantized caches only
// Dequantization is x = code * scale + zero (asymmetric, codes 0..255 or 0..15).
#include <cstdint>

namespace lmw::kernels {

struct KvLayout {
    int layers = 0;
    int kvHeads = 0;
    int headDim = 0;
    int blockSize = 64;
    int quant = 0;  // 0 = f16, 8 = int8, 4 = int4

    // constexpr so device code can call these too (--expt-relaxed-constexpr).
    // Elements kept per head and token: headDim rounded up to 8, so every cached row is whole vectors of 8
    // for the attention kernel (head_dim 12 in small models). The padding is never written by kvStore;
    // attention multiplies it by zero query elements and does not output it.
    constexpr int storedDim() const { return (headDim + 7) / 8 * 8; }
    constexpr int64_t dataBytesPerToken() const {
        return quant == 8 ? storedDim() : quant == 4 ? storedDim() / 2 : int64_t(storedDim()) * 2;
    }
    constexpr int64_t paramBytesPerToken() const { return quant == 0 ? 0 : 4; }
    constexpr int64_t sectionBytes() const { return int64_t(kvHeads) * blockSize * (dataBytesPerToken() + paramBytesPerToken()); }
    constexpr int64_t blockBytes() const { return int64_t(layers) * 2 * sectionBytes(); }
};

// Writes the K and V rows of this step (heads [H, H+KVH) and [H+KVH, H+2KVH) of qkv
// [T, (H+2*KVH)*D], f16) into the cache of `layer` at each token's position. Tokens whose block id
// is negative are skipped. Requires headDim even. Quantized caches: keys minus keyOffsets
// [layers][kvHeads][headDim] f32 (device, or null = none); int4 scale and zero are refined by
// least squares after min/max.
int kvStore(void* cache, const KvLayout& layout, int layer, const void* qkv, const int32_t* positions,
            const int32_t* tokenSeq, const int32_t* blockTable, int maxBlocks, int numTokens, int heads,
            const float* keyOffsets, void* stream);

// Copies block `from` to block `to` (all layers).
int kvCopyBlock(void* cache, const KvLayout& layout, int32_t from, int32_t to, void* stream);

}  // namespace lmw::kernels
