#pragma once
// The BPE model of tokenizer.json: vocabulary, merge ranks, and the merge loop the `tokenizers`
// library runs on each pre-tokenized word (lowest-rank pair first, leftmost on ties).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hf_json.h"
#include "tokenizer/string_map.h"

namespace lmw::engine {

// Recently seen words -> their ids, plus the buffers one merge needs. Not thread-safe: each encode
// call borrows one from a pool. Bounded: cleared when full.
class WordCache {
public:
    const int32_t* find(std::string_view word, uint64_t hash, uint32_t& count) const;
    void insert(std::string_view word, uint64_t hash, const int32_t* ids, uint32_t count);

    // Scratch for BpeModel::tokenize.
    std::vector<int32_t> symbols, newIds, next, prev;
    std::vector<uint32_t> ranks;
    std::string piece;

private:
    struct Slot {
        uint64_t hash = 0;
        uint32_t keyOffset = 0, idOffset = 0;
        uint16_t keyLength = 0, idCount = 0;
        bool used = false;
    };
    void clear();

    std::vector<Slot> m_slots;
    size_t m_count = 0;
    std::string m_keys;
    std::vector<int32_t> m_ids;
};

class BpeModel {
public:
    BpeModel(const Json& model, const JsonAt& at);

    // The words come as raw bytes, each standing for its character of the byte-level alphabet (the
    // pre-tokenizer then skips spelling them out). Possible without subword prefix/suffix only.
    bool canTakeRawBytes() const { return m_prefix.empty() && m_suffix.empty(); }
    void setRawByteInput(bool on);

    // Appends the ids of one pre-tokenized word.
    void tokenize(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const;

    std::optional<int32_t> tokenId(std::string_view piece) const;
    const std::string& piece(int32_t id) const;  // empty when the id is not in the vocabulary
    int32_t maxId() const { return static_cast<int32_t>(m_pieces.size()) - 1; }
    bool byteFallback() const { return m_byteFallback; }

private:
    struct Merge {
        uint64_t key = 0;
        uint32_t rank = UINT32_MAX;  // UINT32_MAX: empty slot
        int32_t newId = -1;
    };
    static uint64_t pairKey(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
    const Merge* findMerge(int32_t a, int32_t b) const;
    void addMerge(int32_t a, int32_t b, uint32_t rank, int32_t newId);
    void initialSymbols(std::string_view word, WordCache& c) const;
    void addPieceSymbols(std::string_view s, WordCache& c, int32_t& pendingUnk) const;
    void mergeLinear(std::vector<int32_t>& syms, WordCache& c) const;
    void mergeHeap(std::vector<int32_t>& syms, WordCache& c) const;

    StringIdMap m_vocab;
    StringIdMap m_rawVocab;  // raw-byte spelling of byte-level tokens, for ignore_merges
    std::vector<std::string> m_pieces;
    std::vector<Merge> m_merges;
    size_t m_mergeMask = 0;
    std::string m_prefix, m_suffix;  // continuing_subword_prefix, end_of_word_suffix
    int32_t m_unkId = -1;
    bool m_fuseUnk = false, m_byteFallback = false, m_ignoreMerges = false, m_rawBytes = false;
    int32_t m_byteFallbackId[256];  // id of "<0xAB>" or -1
    int32_t m_byteCharId[256];      // raw-byte input: id of the byte's alphabet character or -1
};

}  // namespace lmw::engine
