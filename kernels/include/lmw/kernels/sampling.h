#pragma once
// Launcher (plain C++). Pointers are device memory, `stream` is a cudaStream_t passed as void*.
// Returns the launch status (0 = cudaSuccess) so the caller reports errors with its own file and line.
//
// Sampling on the device: one block per row of a [rows, vocab] logits tensor (f16, bf16 or f32, row
// stride given) does what the host Sampler does (engine/src/runtime/sampler.cpp, the reference), in its
// order: a grammar's allowed-token mask (others become -inf), logit bias, repetition penalty over the row's history, presence / frequency penalties over its
// generated part, then greedy argmax (ties -> lowest id, NaN never picked) or, for temperature > 0, a
// draw from the top-k / top-p / min-p restricted distribution with the row's 64-bit uniform.
//
// What is exact: everything, for every top_k (no candidate cap). The filters are selections over
// the order (logit desc, id asc), found by value-bucket histograms narrowed until the bucket holding
// the cut is small enough to sort in shared memory, or is all one value (then ranked by id); weights are
// the fixed-point integers of lmw/kernels/sampling_math.h, so masses are exact sums in any order and
// the host and the device pick the same token from the same f32 logits and uniform, bit for bit.
// Logprobs (raw logits, before bias and penalties, as OpenAI reports) are float log-softmax over the
// full vocabulary: within ~1e-5 of the host's double ones, not equal to them.
// Bounded: vocab <= kMaxVocab (2^18), topLogprobs <= kMaxSampleTopLogprobs.
#include <cstdint>

#include "lmw/kernels/convert.h"

namespace lmw::kernels {

constexpr int kMaxSampleTopLogprobs = 20;

struct SampleRowParams {
    int32_t row = 0;                   // row of the logits tensor
    float temperature = 0.f;           // <= 0: greedy
    int32_t topK = 0;                  // 0 = off
    float topP = 1.f;                  // 1 = off
    float minP = 0.f;                  // 0 = off
    float repetitionPenalty = 1.f;     // 1 = off
    float presencePenalty = 0.f;
    float frequencyPenalty = 0.f;
    int32_t historyOffset = 0;         // the row's history (prompt + generated) is history[offset, offset + len)
    int32_t historyLen = 0;            // 0 when no penalty needs it
    int32_t promptLen = 0;             // history[offset + promptLen ..] were generated
    int32_t biasOffset = 0;            // logit bias entries biasIds/biasValues[offset, offset + count), in order
    int32_t biasCount = 0;
    int32_t maskOffset = -1;           // the row's allowed-token bitmask is masks[offset, offset + (vocab + 31) / 32); -1: none
    int32_t topLogprobs = -1;          // -1: no logprobs; n >= 0: the choice's logprob and the top n
    uint64_t uniform = 0;              // the draw (unused when greedy)
};

struct SampleRowResult {
    int32_t token;
    float logprob;
    int32_t topIds[kMaxSampleTopLogprobs];
    float topLogprobs[kMaxSampleTopLogprobs];
};

struct SampleBatch {
    const void* logits = nullptr;  // [>= max row + 1, stride]
    SrcType type = SrcType::F16;
    int64_t stride = 0;            // elements from one row to the next
    int vocab = 0;
    int rows = 0;                  // entries of params / results
    const SampleRowParams* params = nullptr;
    const int32_t* history = nullptr;
    const int32_t* biasIds = nullptr;
    const float* biasValues = nullptr;
    const uint32_t* masks = nullptr;  // bit i of a row's mask: token i allowed
    // [rows, vocab] workspaces, needed (non-null) when a row has a mask, a bias or a penalty: the penalized
    // f32 logits, and counters that must be zero at the launch (the kernel leaves them zero).
    float* scratch = nullptr;
    uint32_t* counts = nullptr;
    SampleRowResult* results = nullptr;
};

// True when the row needs the workspaces (a mask, a bias or a penalty is active). constexpr: the kernel uses it too.
constexpr bool sampleRowNeedsWorkspace(const SampleRowParams& p) {
    return p.maskOffset >= 0 || p.biasCount > 0 || (p.historyLen > 0 && (p.repetitionPenalty != 1.f || p.presencePenalty != 0.f ||
                                                    p.frequencyPenalty != 0.f));
}

int sampleRows(const SampleBatch& b, void* stream);

}  // namespace lmw::kernels
