// BPE as the `tokenizers` library runs it (models/bpe: merge_word + Word::merge_all), on ids: a
// word's characters (or bytes) become vocabulary ids, then the pair of adjacent ids with the lowest
// merge rank is merged, leftmost first, until no pair has a merge. Short words use a linear scan
// over a small array; long ones the library's priority queue. Both give the same merges.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {
constexpr size_t kMaxCachedWord = 256;   // as the library: longer words are rare and not cached
constexpr size_t kCacheSlots = 1 << 17;  // cleared when half full or its arenas are large
constexpr size_t kCacheKeyBytes = 8 << 20;
constexpr size_t kLinearMergeMax = 64;   // longer words go through the priority queue
}  // namespace

// ---- WordCache ----

const int32_t* WordCache::find(std::string_view word, uint64_t hash, uint32_t& count) const {
    if (m_slots.empty()) return nullptr;
    size_t i = hash & (m_slots.size() - 1);
    while (m_slots[i].used) {
        const Slot& s = m_slots[i];
        if (s.hash == hash && s.keyLength == word.size() &&
            std::memcmp(m_keys.data() + s.keyOffset, word.data(), word.size()) == 0) {
            count = s.idCount;
            return m_ids.data() + s.idOffset;
        }
        i = (i + 1) & (m_slots.size() - 1);
    }
    return nullptr;
}

void WordCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, uint32_t count) {
    if (m_slots.empty()) m_slots.assign(kCacheSlots, Slot{});
    if ((m_count + 1) * 2 > m_slots.size() || m_keys.size() + word.size() > kCacheKeyBytes) clear();
    size_t i = hash & (m_slots.size() - 1);
    while (m_slots[i].used) i = (i + 1) & (m_slots.size() - 1);
    m_slots[i] = Slot{hash, static_cast<uint32_t>(m_keys.size()), static_cast<uint32_t>(m_ids.size()),
                      static_cast<uint16_t>(word.size()), static_cast<uint16_t>(count), true};
    m_keys.append(word);
    m_ids.insert(m_ids.end(), ids, ids + count);
    ++m_count;
}

void WordCache::clear() {
    std::fill(m_slots.begin(), m_slots.end(), Slot{});
    m_count = 0;
    m_keys.clear();
    m_ids.clear();
}

// ---- loading ----

BpeModel::BpeModel(const Json& model, const JsonAt& at) {
    const Json* dropout = optionalField(model, "dropout");
    if (dropout && !(dropout->is_number() && dropout->get<double>() == 0.0))
        (at / "dropout").unsupported("BPE dropout (random merges)");
    m_prefix = stringField(model, at, "continuing_subword_prefix", "");
    m_suffix = stringField(model, at, "end_of_word_suffix", "");
    m_fuseUnk = boolField(model, at, "fuse_unk", false);
    m_byteFallback = boolField(model, at, "byte_fallback", false);
    m_ignoreMerges = boolField(model, at, "ignore_merges", false);

    const Json& vocab = requireField(model, at, "vocab");
    if (!vocab.is_object()) (at / "vocab").fail("must be an object of token -> id");
    int32_t maxId = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= (1 << 26))
            (at / "vocab").fail("'" + it.key() + "' must map to an id from 0 to 2^26");
        maxId = std::max(maxId, it.value().get<int32_t>());
    }
    m_pieces.resize(maxId + 1);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const int32_t id = it.value().get<int32_t>();
        m_vocab.set(it.key(), id);
        if (m_pieces[id].empty()) m_pieces[id] = it.key();  // duplicate ids: the first spelling decodes
    }

    if (const Json* unk = optionalField(model, "unk_token")) {
        if (!unk->is_string()) (at / "unk_token").fail("must be a string");
        m_unkId = m_vocab.find(unk->get<std::string>());
        if (m_unkId < 0) (at / "unk_token").fail("'" + unk->get<std::string>() + "' is not in model.vocab");
    }
    for (int b = 0; b < 256; ++b) {
        static const char* hex = "0123456789ABCDEF";
        const char name[] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        m_byteFallbackId[b] = m_byteFallback ? m_vocab.find(std::string_view(name, 6)) : -1;
        m_byteCharId[b] = -1;
    }

    const Json& merges = requireField(model, at, "merges");
    if (!merges.is_array()) (at / "merges").fail("must be an array");
    size_t slots = 64;
    while (slots < merges.size() * 2) slots *= 2;
    m_merges.assign(slots, Merge{});
    m_mergeMask = slots - 1;
    std::string merged;
    for (size_t i = 0; i < merges.size(); ++i) {
        const Json& m = merges[i];
        std::string_view a, b;
        std::string line;
        if (m.is_string()) {  // "a b", the merges.txt form
            line = m.get<std::string>();
            const size_t sp = line.find(' ');
            if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
                (at / "merges")[i].fail("'" + line + "' is not two tokens separated by one space");
            a = std::string_view(line).substr(0, sp);
            b = std::string_view(line).substr(sp + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            a = m[0].get_ref<const std::string&>();
            b = m[1].get_ref<const std::string&>();
        } else {
            (at / "merges")[i].fail("must be \"a b\" or [\"a\", \"b\"]");
        }
        const int32_t ia = m_vocab.find(a), ib = m_vocab.find(b);
        if (ia < 0) (at / "merges")[i].fail("'" + std::string(a) + "' is not in model.vocab");
        if (ib < 0) (at / "merges")[i].fail("'" + std::string(b) + "' is not in model.vocab");
        if (b.size() < m_prefix.size() || b.substr(0, m_prefix.size()) != m_prefix)
            (at / "merges")[i].fail("'" + std::string(b) + "' does not start with continuing_subword_prefix");
        merged.assign(a);
        merged.append(b.substr(m_prefix.size()));
        const int32_t inew = m_vocab.find(merged);
        if (inew < 0) (at / "merges")[i].fail("merged token '" + merged + "' is not in model.vocab");
        addMerge(ia, ib, static_cast<uint32_t>(i), inew);
    }
}

void BpeModel::addMerge(int32_t a, int32_t b, uint32_t rank, int32_t newId) {
    const uint64_t key = pairKey(a, b);
    size_t i = mix64(key) & m_mergeMask;
    while (m_merges[i].rank != UINT32_MAX && m_merges[i].key != key) i = (i + 1) & m_mergeMask;
    m_merges[i] = Merge{key, rank, newId};  // a repeated pair: the later rank wins, as in the library
}

const BpeModel::Merge* BpeModel::findMerge(int32_t a, int32_t b) const {
    const uint64_t key = pairKey(a, b);
    size_t i = mix64(key) & m_mergeMask;
    while (m_merges[i].rank != UINT32_MAX) {
        if (m_merges[i].key == key) return &m_merges[i];
        i = (i + 1) & m_mergeMask;
    }
    return nullptr;
}

void BpeModel::setRawByteInput(bool on) {
    m_rawBytes = on && canTakeRawBytes();
    if (!m_rawBytes) return;
    for (int b = 0; b < 256; ++b) m_byteCharId[b] = m_vocab.find(utf8::encode(byte_level::byteToChar()[b]));
    // The raw-byte spelling of every token written in the alphabet, for ignore_merges.
    std::string raw;
    for (size_t id = 0; id < m_pieces.size(); ++id) {
        const std::string& p = m_pieces[id];
        if (p.empty() || !m_ignoreMerges) continue;
        raw.clear();
        bool ok = true;
        for (const char* q = p.data(); q < p.data() + p.size() && ok;) {
            const int byte = byte_level::charToByte(utf8::next(q));
            ok = byte >= 0;
            raw += static_cast<char>(byte);
        }
        if (ok) m_rawVocab.set(raw, static_cast<int32_t>(id));
    }
}

std::optional<int32_t> BpeModel::tokenId(std::string_view piece) const {
    const int32_t id = m_vocab.find(piece);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

const std::string& BpeModel::piece(int32_t id) const {
    static const std::string empty;
    return id >= 0 && id < static_cast<int32_t>(m_pieces.size()) ? m_pieces[id] : empty;
}

// ---- encoding ----

void BpeModel::tokenize(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (m_ignoreMerges) {  // a word that is a token is that token, whatever the merges would make
        const int32_t id = m_rawBytes ? m_rawVocab.find(word) : m_vocab.find(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const bool cacheable = word.size() < kMaxCachedWord;
    uint64_t hash = 0;
    if (cacheable) {
        hash = hashBytes(word);
        uint32_t n = 0;
        if (const int32_t* ids = cache.find(word, hash, n)) {
            out.insert(out.end(), ids, ids + n);
            return;
        }
    }
    initialSymbols(word, cache);
    std::vector<int32_t>& syms = cache.symbols;
    if (syms.size() > 1) {
        if (syms.size() <= kLinearMergeMax) mergeLinear(syms, cache);
        else mergeHeap(syms, cache);
    }
    out.insert(out.end(), syms.begin(), syms.end());
    if (cacheable) cache.insert(word, hash, syms.data(), static_cast<uint32_t>(syms.size()));
}

// One character (or, with raw-byte input, one byte's alphabet character) that is not in the
// vocabulary: its bytes as <0xAB> tokens when all exist, else the unknown token (fused with a
// preceding one when fuse_unk), else nothing. As in the library, a pending unknown token is only
// written out when a known character follows.
void BpeModel::addPieceSymbols(std::string_view s, WordCache& c, int32_t& pendingUnk) const {
    if (m_byteFallback) {
        bool all = true;
        for (unsigned char b : s) all = all && m_byteFallbackId[b] >= 0;
        if (all) {
            for (unsigned char b : s) c.symbols.push_back(m_byteFallbackId[b]);
            return;
        }
    }
    if (m_unkId < 0) return;
    if (pendingUnk >= 0 && !m_fuseUnk) c.symbols.push_back(pendingUnk);
    pendingUnk = m_unkId;
}

void BpeModel::initialSymbols(std::string_view word, WordCache& c) const {
    std::vector<int32_t>& syms = c.symbols;
    syms.clear();
    int32_t pendingUnk = -1;
    auto known = [&](int32_t id) {
        if (pendingUnk >= 0) {
            syms.push_back(pendingUnk);
            pendingUnk = -1;
        }
        syms.push_back(id);
    };
    if (m_rawBytes) {
        for (unsigned char b : word) {
            if (m_byteCharId[b] >= 0) known(m_byteCharId[b]);
            else addPieceSymbols(utf8::encode(byte_level::byteToChar()[b]), c, pendingUnk);
        }
    } else {
        const char* p = word.data();
        const char* end = p + word.size();
        const bool affixes = !m_prefix.empty() || !m_suffix.empty();
        while (p < end) {
            const size_t len = utf8::charLen(static_cast<unsigned char>(*p));
            std::string_view ch(p, len);
            const bool first = p == word.data();
            p += len;
            if (affixes) {
                c.piece.clear();
                if (!first) c.piece += m_prefix;
                c.piece += ch;
                if (p >= end) c.piece += m_suffix;
                ch = c.piece;
            }
            const int32_t id = m_vocab.find(ch);
            if (id >= 0) known(id);
            else addPieceSymbols(ch, c, pendingUnk);
        }
    }
    if (pendingUnk >= 0) syms.push_back(pendingUnk);
}

void BpeModel::mergeLinear(std::vector<int32_t>& syms, WordCache& c) const {
    std::vector<uint32_t>& ranks = c.ranks;
    std::vector<int32_t>& newIds = c.newIds;
    size_t n = syms.size();
    ranks.resize(n - 1);
    newIds.resize(n - 1);
    auto pair = [&](size_t i) {  // pair i = (syms[i], syms[i + 1])
        const Merge* m = findMerge(syms[i], syms[i + 1]);
        ranks[i] = m ? m->rank : UINT32_MAX;
        newIds[i] = m ? m->newId : -1;
    };
    for (size_t i = 0; i + 1 < n; ++i) pair(i);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; ++i)
            if (ranks[i] < ranks[best]) best = i;
        if (ranks[best] == UINT32_MAX) break;
        syms[best] = newIds[best];
        syms.erase(syms.begin() + best + 1);
        --n;
        if (best + 1 < ranks.size()) {
            ranks.erase(ranks.begin() + best + 1);
            newIds.erase(newIds.begin() + best + 1);
        } else {
            ranks.pop_back();
            newIds.pop_back();
        }
        if (best > 0) pair(best - 1);
        if (best + 1 < n) pair(best);
    }
}

void BpeModel::mergeHeap(std::vector<int32_t>& syms, WordCache& c) const {
    struct Cand {
        uint32_t rank;
        int32_t pos;
        int32_t newId;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    const int32_t n = static_cast<int32_t>(syms.size());
    std::vector<int32_t>& next = c.next;
    std::vector<int32_t>& prev = c.prev;
    next.resize(n);
    prev.resize(n);
    std::vector<char> alive(n, 1);
    for (int32_t i = 0; i < n; ++i) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
    for (int32_t i = 0; i + 1 < n; ++i)
        if (const Merge* m = findMerge(syms[i], syms[i + 1])) queue.push({m->rank, i, m->newId});
    while (!queue.empty()) {
        const Cand top = queue.top();
        queue.pop();
        if (!alive[top.pos] || next[top.pos] < 0) continue;
        const int32_t right = next[top.pos];
        const Merge* m = findMerge(syms[top.pos], syms[right]);
        if (!m || m->newId != top.newId) continue;  // stale: one side was merged since
        syms[top.pos] = top.newId;
        alive[right] = 0;
        next[top.pos] = next[right];
        if (next[right] >= 0) prev[next[right]] = top.pos;
        if (prev[top.pos] >= 0)
            if (const Merge* l = findMerge(syms[prev[top.pos]], syms[top.pos])) queue.push({l->rank, prev[top.pos], l->newId});
        if (next[top.pos] >= 0)
            if (const Merge* r = findMerge(syms[top.pos], syms[next[top.pos]])) queue.push({r->rank, top.pos, r->newId});
    }
    int32_t w = 0;
    for (int32_t i = 0; i < n; ++i)
        if (alive[i]) syms[w++] = syms[i];
    syms.resize(w);
}

}  // namespace lmw::engine
