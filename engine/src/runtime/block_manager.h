#pragma once
// Physical KV blocks: a free list, reference counts, and (optionally) a prefix cache that keeps
// full blocks findable by the hash of their tokens and of everything before them.
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace lmw::engine {

class BlockManager {
public:
    BlockManager(int64_t numBlocks, int blockSize, bool prefixCaching);

    int64_t numBlocks() const { return m_numBlocks; }
    int blockSize() const { return m_blockSize; }
    // Blocks that allocate() can hand out now (free + evictable cached ones).
    int64_t available() const { return int64_t(m_free.size() + m_lru.size()); }
    int64_t used() const { return m_numBlocks - available(); }

    // A block with refcount 1, or -1 when none is left.
    int32_t allocate();
    void release(int32_t block);
    void retain(int32_t block);

    // Prefix cache. Chain hash of a full block given its parent's hash.
    static uint64_t chainHash(uint64_t parent, const int32_t* tokens, int n);
    // Cached block holding exactly these tokens after `parent`, retained for the caller; -1 if none.
    int32_t lookup(uint64_t hash, uint64_t parent, const int32_t* tokens);
    // Makes a full block findable (no-op when disabled or already present).
    void publish(int32_t block, uint64_t hash, uint64_t parent, const int32_t* tokens);
    int64_t hitBlocks() const { return m_hits; }

private:
    struct Cached {
        uint64_t hash, parent;
        std::vector<int32_t> tokens;
    };
    void evict(int32_t block);

    int64_t m_numBlocks;
    int m_blockSize;
    bool m_prefix;
    std::vector<int32_t> m_free;
    std::vector<int32_t> m_ref;
    std::unordered_map<uint64_t, int32_t> m_byHash;        // hash -> block
    std::unordered_map<int32_t, Cached> m_cached;          // block -> what it holds
    std::list<int32_t> m_lru;                              // cached blocks with refcount 0, oldest first
    std::unordered_map<int32_t, std::list<int32_t>::iterator> m_lruPos;
    int64_t m_hits = 0;
};

}  // namespace lmw::engine
