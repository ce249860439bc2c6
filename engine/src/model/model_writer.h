#pragma once
// Writes model folders: used by tests (broken/converted folders) and benchmarks (random models of
// a chosen size). Not on any inference path.
#include <cstdint>
#include <string>

#include "lmw/dtype.h"
#include "lmw/model_info.h"

namespace lmw::engine {

// Files of a model folder besides weights and config.json that a rewritten copy keeps: generation
// settings, every tokenizer file (tokenizer.json, tokenizer.model, tokenizer_config.json, vocab/merges,
// special/added tokens), chat templates, remote code and licences.
bool isSideFile(const std::string& name);

// Copies config/tokenizer/generation files of srcDir to dstDir and rewrites every float tensor as
// `dtype` (F16, BF16 or F32, round to nearest even) into one dstDir/model.safetensors; integer
// tensors are copied as they are. config.json's torch_dtype is updated. Streams one tensor at a
// time (the source stays memory-mapped).
void convertModel(const std::string& srcDir, const std::string& dstDir, DType dtype);

// A Llama-shaped model with N(0, 0.02) weights (deterministic for a seed), norms = 1, config.json
// and generation_config.json from `cfg`, and tokenizer files copied from `tokenizerFrom`.
// Tensors are generated and written one at a time, so a 400 MB model never sits in memory twice.
void writeRandomLlama(const std::string& dir, const ModelConfig& cfg, DType dtype, uint64_t seed,
                      const std::string& tokenizerFrom);

// The same model as AutoAWQ GEMM would publish it (quantization_config awq/gemm, 4 bits, group
// `groupSize`, or the largest of its halves that divides a linear's inputs): every layer's linears
// as qweight/qzeros/scales with random int4 codes, zero points 7..9 and f16 scales that give the
// weights about the N(0, 0.02) spread; embedding, norms and lm_head F16, as AutoAWQ leaves them.
// Nothing is quantized, so a 7B-shaped model takes seconds; for benchmarks and loading tests.
void writeRandomLlamaAwq(const std::string& dir, const ModelConfig& cfg, uint64_t seed, const std::string& tokenizerFrom,
                         int groupSize = 128);

}  // namespace lmw::engine
