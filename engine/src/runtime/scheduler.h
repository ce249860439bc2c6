#pragma once
// Continuous batching: each step mixes one decode token of every running sequence with chunks of
// prefill under a token budget; admission by free KV blocks; preemption by recompute.
#include <deque>
#include <memory>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/sequence.h"

namespace lmw::engine {

struct ScheduledSeq {
    Sequence* seq;
    int numTokens;  // tokens of this sequence computed in this step, from seq->numComputed
};

class Scheduler {
public:
    Scheduler(BlockManager& blocks, int maxBatchSize, int maxPrefillTokens);

    void add(std::unique_ptr<Sequence> seq);   // to the waiting queue (arrival order)
    // Plans one step: allocates the blocks it needs, preempting the newest running sequences when
    // blocks run out. Sequences that can never fit are returned in `rejected` (removed from queues).
    std::vector<ScheduledSeq> schedule(std::vector<std::unique_ptr<Sequence>>& rejected);
    // Removes a finished/cancelled/failed sequence and returns its blocks.
    std::unique_ptr<Sequence> remove(Sequence* seq);
    // Full blocks of `seq` computed so far become findable by later requests (prefix caching).
    void publishFullBlocks(Sequence& seq);

    const std::vector<std::unique_ptr<Sequence>>& running() const { return m_running; }
    const std::deque<std::unique_ptr<Sequence>>& waiting() const { return m_waiting; }
    std::vector<Sequence*> all() const;
    int64_t preemptions() const { return m_preemptions; }

private:
    bool ensureBlocks(Sequence& seq, size_t tokens);  // blocks for the first `tokens` tokens
    void freeBlocks(Sequence& seq);
    void matchPrefix(Sequence& seq);
    bool preemptNewest(const Sequence* keep);

    BlockManager& m_blocks;
    int m_maxBatch;
    int m_budget;
    std::vector<std::unique_ptr<Sequence>> m_running;  // arrival order
    std::deque<std::unique_ptr<Sequence>> m_waiting;   // arrival order
    int64_t m_preemptions = 0;
};

}  // namespace lmw::engine
