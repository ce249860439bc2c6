#pragma once
// W4A16 quantization (AWQ, as `lmdeploy lite auto_awq` applies it, or plain round-to-nearest) of a
// Hugging Face model folder into an AutoAWQ "GEMM" folder, and perplexity of a model on a text.
//
// Output layout (what AutoAWQ / LMDeploy write and what our loader reads), per quantized linear
// with input size `in`, output size `out` and group size g:
//   <name>.qweight  int32 [in, out/8]   8 nibbles per int32; nibble k (bits 4k..4k+3) of column j
//                                         holds output column 8j + order[k], order = {0,2,4,6,1,3,5,7}
//   <name>.qzeros   int32 [in/g, out/8]  zero points (0..15), packed the same way
//   <name>.scales   f16   [in/g, out]
//   w[o][i] = (q[i][o] - zero[i/g][o]) * scale[i/g][o]
// config.json gets "quantization_config": {quant_method: awq, version: gemm, bits: 4, group_size,
// zero_point: true, modules_to_not_convert}. Embeddings, norms, biases and the head stay 16-bit (f16).
//
// Shapes that do not fit (the rule, reported in QuantizeReport::notes):
//   - group size: the requested one (128/64/32), else the largest of 128/64/32 below it that divides
//     the linear's input size; when none divides, the whole linear stays 16-bit.
//   - every output part of a linear (q, k, v of a fused qkv; gate and up) must be a multiple of 8
//     (int4 packing); otherwise the whole fused linear stays 16-bit (the loader needs one storage
//     type per fused linear).
//   - config.json's group_size is the one used by the quantized linears when they agree; our loader
//     (and AutoAWQ's) reads the real group of each linear from its scales' shape.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lmw/error.h"

namespace lmw::engine {

struct QuantizeOptions {
    std::string modelDir;           // Hugging Face folder (f32/f16/bf16 weights)
    std::string workDir;            // output folder; must not exist or be empty unless `overwrite`
    std::string method = "awq";     // "awq" (activation-aware scales) or "rtn" (plain round-to-nearest)
    int bits = 4;                   // only 4
    int groupSize = 128;            // 128, 64 or 32
    // Calibration (awq only): "self" = sequences sampled from the model itself (offline, no dataset),
    // or a .txt file (used as one text) or .jsonl file (the "text" field of each line).
    std::string calibDataset = "self";
    int calibSamples = 128;         // sequences
    int calibSeqLen = 2048;         // tokens per sequence, clamped to the model's context
    // Grid search of alpha in s = mean|x|^alpha over {0, 1/grid, ..., (grid-1)/grid}; false = alpha 0.5
    // (lmdeploy's behaviour without --search-scale).
    bool searchScale = true;
    int scaleGrid = 20;
    bool searchClip = false;        // AutoAWQ's weight clipping search (not for q/k rows)
    int searchTokens = 4096;        // calibration rows (evenly spread) kept per linear for the searches
    std::string backend = "auto";   // "auto", "cuda", "cpu": runs calibration and the searches
    int threads = 0;                // CPU backend threads; 0 = all cores
    uint64_t seed = 1234;           // self-calibration sampling
    bool overwrite = false;         // replace an existing non-empty workDir (only after success)
    // When set: perplexity (see perplexity() below) of the source and of the result on this text
    // file, with windows of pplSeqLen tokens (0 = default), reported as pplBefore / pplAfter.
    std::string pplTextFile;
    int pplSeqLen = 0;
};

enum class QuantizeStage { Preparing, Sampling, Layer, Finishing, Done };
const char* quantizeStageName(QuantizeStage s);  // "preparing", "sampling", "layer", "finishing", "done"

struct QuantizeProgress {
    QuantizeStage stage = QuantizeStage::Preparing;
    int layer = 0;           // Layer: layers done so far (0..numLayers); Sampling: sequences done
    int numLayers = 0;       // Sampling: sequences to sample
    double elapsed = 0;      // seconds since start
    double eta = -1;         // seconds left, -1 = unknown yet
    uint64_t bytesWritten = 0;
    std::string message;
};
// Called on the quantizing thread; return false to cancel (the result is then ErrorCode::Cancelled
// and no output folder is left behind).
using QuantizeProgressFn = std::function<bool(const QuantizeProgress&)>;

struct LinearQuantReport {
    std::string name;        // "layers.3.qkv", "layers.3.o", "layers.3.gate_up", "layers.3.down"
    std::vector<std::string> tensors;  // checkpoint prefixes, e.g. "model.layers.3.self_attn.q_proj"
    bool quantized = false;
    int groupSize = 0;       // used group size (0 when kept 16-bit)
    std::string keptReason;  // why it stayed 16-bit
    // Relative squared output error ||y_q - y||^2 / ||y||^2 on calibration tokens (awq; -1 for rtn),
    // with plain round-to-nearest (alpha 0) and with the chosen scales (+ clipping). As AutoAWQ judges
    // them: y of qkv = the attention block's output (through rope, softmax and the original o), of
    // gate_up = the MLP's output, of o and down = their own output.
    double errorRtn = -1;
    double errorFinal = -1;
    double alpha = 0;        // chosen alpha (0 = no scaling)
    float scaleMin = 1, scaleMax = 1;  // range of the chosen per-channel scales
};

struct LayerQuantReport {
    int layer = 0;
    std::vector<LinearQuantReport> linears;
    double seconds = 0;             // the whole layer
    double calibrationSeconds = 0;  // of which running it over the calibration tokens (awq)
};

struct QuantizeReport {
    std::string outDir;
    std::string method;      // "awq" / "rtn"
    int bits = 4;
    int groupSize = 128;     // requested
    std::string calibration; // e.g. "self: 128 x 512 tokens"
    uint64_t sizeBefore = 0; // weight bytes of the source folder
    uint64_t sizeAfter = 0;  // weight bytes of the output folder
    int64_t quantizedParams = 0;
    int64_t keptParams = 0;  // linear weights left 16-bit
    std::vector<LayerQuantReport> layers;
    std::vector<std::string> notes;  // group size changes, linears kept 16-bit, ...
    double seconds = 0;
    std::string backend;     // "cpu" / "cuda"
    double pplBefore = -1;   // with QuantizeOptions::pplTextFile; -1 = not measured
    double pplAfter = -1;
};

// Quantizes opts.modelDir into opts.workDir. Writes into a hidden temp sibling folder and renames it at
// the end, so a cancel or an error leaves no (half-written) output folder. The report is also saved
// as <workDir>/quantization_report.json.
Result<QuantizeReport> quantizeModel(const QuantizeOptions& opts, const QuantizeProgressFn& progress = {});

// Human-readable summary (sizes, time, per-layer errors, scales, notes).
std::string formatQuantizeReport(const QuantizeReport& report);
std::string quantizeReportJson(const QuantizeReport& report);

// Perplexity. Definition: the text is tokenized once (BOS first when the tokenizer adds one) and cut
// into consecutive non-overlapping windows of seqLen tokens (the last one may be shorter; one of a
// single token is dropped). Each window is run as its own sequence from position 0; every token of
// a window except its first is scored by -ln p(token | the window's earlier tokens).
// ppl = exp(sum of those NLLs / number of scored tokens).
struct PerplexityOptions {
    std::string modelDir;
    std::string text;
    int seqLen = 0;               // 0 = min(2048, model context); clamped to the model context
    std::string backend = "auto";
    int threads = 0;
    int quantPolicy = 0;          // KV cache precision while scoring: 0 = 16-bit, 8 = int8, 4 = int4
    std::function<bool(int done, int total)> progress;  // windows; return false to cancel
};

struct PerplexityResult {
    double ppl = 0;
    double meanNll = 0;           // natural log
    int64_t scoredTokens = 0;
    int64_t textTokens = 0;
    int windows = 0;
    int seqLen = 0;
    double seconds = 0;
};

Result<PerplexityResult> perplexity(const PerplexityOptions& opts);

}  // namespace lmw::engine
