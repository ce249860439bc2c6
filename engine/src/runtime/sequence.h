#pragma once
// One request's state inside the engine thread.
#include <chrono>
#include <memory>
#include <vector>

#include "lmw/engine.h"
#include "runtime/output_stream.h"

namespace lmw::engine {

using Clock = std::chrono::steady_clock;

struct Sequence {
    RequestId id = 0;
    Sink sink;
    SamplingParams sampling;
    int topLogprobs = -1;
    std::vector<int32_t> tokens;      // prompt + generated
    size_t promptLen = 0;
    int droppedMessages = 0;          // left out of a chat prompt by the context overflow policy
    int maxNewTokens = 0;             // already clipped to the session length
    size_t numComputed = 0;           // tokens whose K/V are in the cache
    std::vector<int32_t> blocks;      // block table
    std::vector<uint64_t> blockHashes;  // prefix-cache chain hash of each full block published so far
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<OutputStream> output;
    std::vector<int32_t> stopIds;
    std::unique_ptr<GrammarMatcher> grammar;  // structured output: where the reply is in its grammar
    std::vector<uint32_t> allowed;            // the grammar's token mask for this step
    bool documentDone = false;                // the grammar allows nothing more: the reply ends
    // RequestOutput::Embedding: the sum of the final hidden states pooled so far (Mean: every prompt
    // token's, chunk by chunk; Last: the last token's), [hidden]; restarts with the prefill.
    bool embedding = false;
    Pooling pooling = Pooling::Mean;
    std::vector<double> pooled;
    Clock::time_point submitted;
    Clock::time_point firstToken;
    bool hasFirstToken = false;

    int generated() const { return int(tokens.size() - promptLen); }
    size_t pending() const { return tokens.size() - numComputed; }
};

}  // namespace lmw::engine
