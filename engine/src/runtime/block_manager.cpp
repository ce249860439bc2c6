#include "runtime/block_manager.h"

#include <algorithm>

namespace lmw::engine {

BlockManager::BlockManager(int64_t numBlocks, int blockSize, bool prefixCaching)
    : m_numBlocks(numBlocks), m_blockSize(blockSize), m_prefix(prefixCaching), m_ref(size_t(numBlocks), 0) {
    m_free.reserve(size_t(numBlocks));
    for (int64_t i = numBlocks - 1; i >= 0; --i) m_free.push_back(int32_t(i));  // hand out 0, 1, 2, ... first
}

int32_t BlockManager::allocate() {
    int32_t b;
    if (!m_free.empty()) {
        b = m_free.back();
        m_free.pop_back();
    } else if (!m_lru.empty()) {
        b = m_lru.front();  // least recently used cached block
        m_lru.pop_front();
        m_lruPos.erase(b);
        evict(b);
    } else {
        return -1;
    }
    m_ref[size_t(b)] = 1;
    return b;
}

void BlockManager::retain(int32_t b) {
    if (m_ref[size_t(b)]++ == 0) {  // a cached block coming back into use
        auto it = m_lruPos.find(b);
        if (it != m_lruPos.end()) {
            m_lru.erase(it->second);
            m_lruPos.erase(it);
        }
    }
}

void BlockManager::release(int32_t b) {
    if (--m_ref[size_t(b)] > 0) return;
    if (m_cached.count(b)) {
        m_lruPos[b] = m_lru.insert(m_lru.end(), b);
    } else {
        m_free.push_back(b);
    }
}

void BlockManager::evict(int32_t b) {
    auto it = m_cached.find(b);
    if (it == m_cached.end()) return;
    auto h = m_byHash.find(it->second.hash);
    if (h != m_byHash.end() && h->second == b) m_byHash.erase(h);
    m_cached.erase(it);
}

uint64_t BlockManager::chainHash(uint64_t parent, const int32_t* tokens, int n) {
    uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;  // FNV-1a over the token bytes, seeded by the parent
    for (int i = 0; i < n; ++i) {
        uint32_t t = uint32_t(tokens[i]);
        for (int k = 0; k < 4; ++k) {
            h ^= (t >> (8 * k)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

int32_t BlockManager::lookup(uint64_t hash, uint64_t parent, const int32_t* tokens) {
    if (!m_prefix) return -1;
    auto it = m_byHash.find(hash);
    if (it == m_byHash.end()) return -1;
    const Cached& c = m_cached.at(it->second);
    // A hash match is only a hint: the block must hold these very tokens after this very parent.
    if (c.parent != parent || !std::equal(c.tokens.begin(), c.tokens.end(), tokens)) return -1;
    retain(it->second);
    ++m_hits;
    return it->second;
}

void BlockManager::publish(int32_t block, uint64_t hash, uint64_t parent, const int32_t* tokens) {
    if (!m_prefix || m_byHash.count(hash) || m_cached.count(block)) return;
    m_byHash[hash] = block;
    m_cached[block] = Cached{hash, parent, std::vector<int32_t>(tokens, tokens + m_blockSize)};
}

}  // namespace lmw::engine
