#pragma once
// Flat open-addressing tables for the tokenizer's hot lookups: string -> id (vocabularies, looked
// up by string_view without building a std::string) and the 64-bit hash they share.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace lmw::engine {

inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

// A fast hash of short byte strings (words of a text): eight bytes per step, then a final mix.
inline uint64_t hashBytes(std::string_view s) {
    const char* p = s.data();
    size_t n = s.size();
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9E3779B97F4A7C15ull;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        std::memcpy(&w, p, n);
        h = (h ^ mix64(w ^ (uint64_t(n) << 56))) * 0x9E3779B97F4A7C15ull;
    }
    return mix64(h);
}

class StringIdMap {
public:
    // Inserts or overwrites.
    void set(std::string_view key, int32_t id) {
        if ((m_count + 1) * 2 > m_slots.size()) grow();
        const uint64_t h = hashBytes(key);
        size_t i = h & m_mask;
        while (m_slots[i].used) {
            Slot& s = m_slots[i];
            if (s.hash == h && keyOf(s) == key) {
                s.id = id;
                return;
            }
            i = (i + 1) & m_mask;
        }
        m_slots[i] = Slot{h, static_cast<uint32_t>(m_keys.size()), static_cast<uint32_t>(key.size()), id, true};
        m_keys.append(key);
        ++m_count;
    }

    // The id, or -1.
    int32_t find(std::string_view key) const {
        if (m_slots.empty()) return -1;
        const uint64_t h = hashBytes(key);
        size_t i = h & m_mask;
        while (m_slots[i].used) {
            const Slot& s = m_slots[i];
            if (s.hash == h && keyOf(s) == key) return s.id;
            i = (i + 1) & m_mask;
        }
        return -1;
    }

private:
    struct Slot {
        uint64_t hash = 0;
        uint32_t offset = 0, length = 0;
        int32_t id = -1;
        bool used = false;
    };
    std::string_view keyOf(const Slot& s) const { return std::string_view(m_keys).substr(s.offset, s.length); }
    void grow() {
        std::vector<Slot> old = std::move(m_slots);
        m_slots.assign(old.empty() ? 64 : old.size() * 2, Slot{});
        m_mask = m_slots.size() - 1;
        for (const Slot& s : old) {
            if (!s.used) continue;
            size_t i = s.hash & m_mask;
            while (m_slots[i].used) i = (i + 1) & m_mask;
            m_slots[i] = s;
        }
    }

    std::vector<Slot> m_slots;
    size_t m_mask = 0, m_count = 0;
    std::string m_keys;  // all keys, back to back
};

}  // namespace lmw::engine
