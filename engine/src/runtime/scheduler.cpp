#include "runtime/scheduler.h"

#include <algorithm>

namespace lmw::engine {

Scheduler::Scheduler(BlockManager& blocks, int maxBatchSize, int maxPrefillTokens)
    : m_blocks(blocks), m_maxBatch(std::max(1, maxBatchSize)), m_budget(std::max(1, maxPrefillTokens)) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
    // Keep arrival order (ids grow with arrival), also when a preempted sequence comes back.
    auto pos = std::find_if(m_waiting.begin(), m_waiting.end(), [&](const auto& s) { return s->id > seq->id; });
    m_waiting.insert(pos, std::move(seq));
}

std::vector<Sequence*> Scheduler::all() const {
    std::vector<Sequence*> v;
    for (const auto& s : m_running) v.push_back(s.get());
    for (const auto& s : m_waiting) v.push_back(s.get());
    return v;
}

bool Scheduler::ensureBlocks(Sequence& seq, size_t tokens) {
    const size_t need = (tokens + size_t(m_blocks.blockSize()) - 1) / size_t(m_blocks.blockSize());
    while (seq.blocks.size() < need) {
        const int32_t b = m_blocks.allocate();
        if (b < 0) return false;
        seq.blocks.push_back(b);
    }
    return true;
}

void Scheduler::freeBlocks(Sequence& seq) {
    // Release in reverse so the deepest (least shareable) blocks are evicted first.
    for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) m_blocks.release(*it);
    seq.blocks.clear();
    seq.blockHashes.clear();
    seq.numComputed = 0;
}

void Scheduler::matchPrefix(Sequence& seq) {
    // Reuse cached full blocks of the prompt; at least one token is always left to compute so
    // the step produces logits.
    const int bs = m_blocks.blockSize();
    uint64_t parent = 0;
    while ((seq.blocks.size() + 1) * size_t(bs) < seq.tokens.size()) {
        const int32_t* t = seq.tokens.data() + seq.blocks.size() * size_t(bs);
        const uint64_t h = BlockManager::chainHash(parent, t, bs);
        const int32_t b = m_blocks.lookup(h, parent, t);
        if (b < 0) break;
        seq.blocks.push_back(b);
        seq.blockHashes.push_back(h);
        parent = h;
    }
    seq.numComputed = seq.blocks.size() * size_t(bs);
}

void Scheduler::publishFullBlocks(Sequence& seq) {
    const int bs = m_blocks.blockSize();
    while ((seq.blockHashes.size() + 1) * size_t(bs) <= seq.numComputed) {
        const size_t i = seq.blockHashes.size();
        const uint64_t parent = i ? seq.blockHashes.back() : 0;
        const int32_t* t = seq.tokens.data() + i * size_t(bs);
        const uint64_t h = BlockManager::chainHash(parent, t, bs);
        m_blocks.publish(seq.blocks[i], h, parent, t);
        seq.blockHashes.push_back(h);
    }
}

bool Scheduler::preemptNewest(const Sequence* keep) {
    // Only sequences that arrived after `keep`: older ones keep their place.
    for (auto it = m_running.rbegin(); it != m_running.rend(); ++it) {
        if (it->get() == keep) return false;
        std::unique_ptr<Sequence> victim = std::move(*it);
        m_running.erase(std::next(it).base());
        freeBlocks(*victim);  // recomputed from its tokens (prompt + generated so far) when readmitted
        ++m_preemptions;
        add(std::move(victim));
        return true;
    }
    return false;
}

std::vector<ScheduledSeq> Scheduler::schedule(std::vector<std::unique_ptr<Sequence>>& rejected) {
    std::vector<ScheduledSeq> plan;
    int budget = m_budget;

    // Running sequences first, oldest first: decodes (1 token) and unfinished prefill chunks.
    for (size_t i = 0; i < m_running.size(); ++i) {
        Sequence* s = m_running[i].get();
        const bool decoding = s->pending() == 1;
        if (!decoding && budget <= 0) continue;
        const int n = decoding ? 1 : int(std::min<size_t>(s->pending(), size_t(budget)));
        bool ok = ensureBlocks(*s, s->numComputed + size_t(n));
        while (!ok && preemptNewest(s)) ok = ensureBlocks(*s, s->numComputed + size_t(n));
        if (!ok) {
            // Alone and still out of blocks: it goes back to wait until others finish (or is
            // rejected below when even an empty cache cannot hold it).
            std::unique_ptr<Sequence> self = std::move(m_running[i]);
            m_running.erase(m_running.begin() + long(i));
            freeBlocks(*self);
            ++m_preemptions;
            add(std::move(self));
            break;
        }
        plan.push_back({s, n});
        budget -= n;
    }

    // Admit waiting sequences while there is room, budget and blocks for their whole prompt.
    const size_t bs = size_t(m_blocks.blockSize());
    while (!m_waiting.empty() && int(m_running.size()) < m_maxBatch && budget > 0) {
        Sequence* s = m_waiting.front().get();
        // The prompt and one new token (an embedding request generates none).
        const size_t needAll = (s->tokens.size() + (s->embedding ? 0 : 1) + bs - 1) / bs;
        if (needAll > size_t(m_blocks.numBlocks())) {
            rejected.push_back(std::move(m_waiting.front()));
            m_waiting.pop_front();
            continue;
        }
        // Mean pooling needs the hidden state of every prompt token: nothing of it may be skipped.
        if (!(s->embedding && s->pooling == Pooling::Mean)) matchPrefix(*s);
        if (size_t(m_blocks.available()) + s->blocks.size() < needAll) {
            freeBlocks(*s);  // give the matched blocks back; wait for running sequences to finish
            break;
        }
        const int n = int(std::min<size_t>(s->pending(), size_t(budget)));
        ensureBlocks(*s, s->numComputed + size_t(n));
        plan.push_back({s, n});
        budget -= n;
        m_running.push_back(std::move(m_waiting.front()));
        m_waiting.pop_front();
    }
    return plan;
}

std::unique_ptr<Sequence> Scheduler::remove(Sequence* seq) {
    std::unique_ptr<Sequence> out;
    auto r = std::find_if(m_running.begin(), m_running.end(), [&](const auto& s) { return s.get() == seq; });
    if (r != m_running.end()) {
        out = std::move(*r);
        m_running.erase(r);
    } else {
        auto w = std::find_if(m_waiting.begin(), m_waiting.end(), [&](const auto& s) { return s.get() == seq; });
        if (w == m_waiting.end()) return nullptr;
        out = std::move(*w);
        m_waiting.erase(w);
    }
    freeBlocks(*out);
    return out;
}

}  // namespace lmw::engine
