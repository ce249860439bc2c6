#pragma once
// How a candidate quantized weight is scored, on the backend. As AutoAWQ inspects it: qkv by the
// output of the whole attention block (q/k errors are judged through q/k norms and softmax, v through
// o), gate_up by the output of the whole MLP, o and down by their own output. The blocks are the
// forward pass's own (attentionBlock, mlpBlock). Candidates come as diff = W - W_q.
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/weights.h"
#include "quant/backend_util.h"
#include "quant/calibration.h"

namespace lmw::engine::quant {

class ErrorModel {
public:
    virtual ~ErrorModel() = default;
    // The unquantized weights of linear k (canonical [out, in]); call before error()/norm().
    virtual void setOriginal(int k, const std::vector<float>& w) = 0;
    // Squared output error of W_q = W - diff against W.
    virtual double error(int k, const std::vector<float>& diff) = 0;
    // Squared norm of the reference output (relative errors = error / norm).
    virtual double norm(int k) = 0;
};

// The scoring above for one layer on `b` (which holds a 1-layer KV cache for the longest sequence).
class LayerErrorModel final : public ErrorModel {
public:
    LayerErrorModel(Backend& b, const ModelConfig& cfg, const LayerSources& src, const LinearStats stats[4], int chunkRows);
    ~LayerErrorModel() override;
    void setOriginal(int k, const std::vector<float>& w) override;
    double error(int k, const std::vector<float>& diff) override;
    double norm(int k) override;

private:
    // Runs linear k's block with weights w over its calibration rows: with `store`, appends the outputs
    // there; otherwise returns the squared difference to the reference (o/down: w is a diff, so the
    // squared output itself).
    double run(int k, const float* w, std::vector<float>* store);

    Backend& m_b;
    const ModelConfig& m_cfg;
    const LayerSources& m_src;
    const LinearStats* m_stats;
    int m_chunk;
    std::vector<float> m_orig[4];
    std::vector<float> m_ref[4];  // reference outputs, all rows back to back
    double m_norm[4] = {0, 0, 0, 0};
    std::vector<float> m_qkvBias;  // [out] or empty
    std::unique_ptr<Weight> m_o, m_qNorm, m_kNorm, m_down;  // the block's other weights, as in the model
    std::vector<float> m_buf;
    std::vector<float> m_cand;  // candidate weights W - diff, reused across candidates
};

}  // namespace lmw::engine::quant
