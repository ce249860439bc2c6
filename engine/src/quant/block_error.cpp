#include "quant/block_error.h"

#include <algorithm>

#include "lmw/error.h"
#include "model/transformer.h"
#include "quant/layer_quant.h"
#include "quant/parallel.h"
#include "quant/tensor_io.h"

namespace lmw::engine::quant {

LayerErrorModel::LayerErrorModel(Backend& b, const ModelConfig& cfg, const LayerSources& src, const LinearStats stats[4],
                                 int chunkRows)
    : m_b(b), m_cfg(cfg), m_src(src), m_stats(stats), m_chunk(chunkRows) {
    if (!src.qkv.biasSegments.empty()) {
        m_qkvBias.assign(size_t(src.qkv.out), 0.0f);
        for (const WeightSegment& seg : src.qkv.biasSegments) {
            const std::vector<float> v = readF32(*seg.src);
            std::copy(v.begin() + seg.srcStart, v.begin() + seg.srcStart + seg.count, m_qkvBias.begin() + seg.dstStart);
        }
    }
}

LayerErrorModel::~LayerErrorModel() = default;

void LayerErrorModel::setOriginal(int k, const std::vector<float>& w) {
    m_orig[k] = w;
    m_ref[k].clear();
    m_norm[k] = 0;
    run(k, m_orig[k].data(), &m_ref[k]);
    for (float v : m_ref[k]) m_norm[k] += double(v) * double(v);
}

double LayerErrorModel::norm(int k) { return m_norm[k]; }

double LayerErrorModel::error(int k, const std::vector<float>& diff) {
    if (k == kO || k == kDown) return run(k, diff.data(), nullptr);  // a single linear: score X diff^T directly
    m_cand.resize(m_orig[k].size());
    parallelRanges(int64_t(m_cand.size()), 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) m_cand[size_t(i)] = m_orig[k][size_t(i)] - diff[size_t(i)];
    });
    return run(k, m_cand.data(), nullptr);
}

double LayerErrorModel::run(int k, const float* w, std::vector<float>* store) {
    const LinearStats& st = m_stats[k];
    const int64_t in = st.in;
    const LinearSource& lin = m_src.linear(k);
    const int64_t out = lin.out;
    const bool attention = k == kQkv && st.seqRowsCount() > 0;
    HostLinear weight(m_b, w, out, in, lin.name + " (candidate)", attention ? m_qkvBias : std::vector<float>{});
    if (k == kQkv && !m_o) {
        m_o = m_b.loadLinear(m_src.o);
        if (m_src.qNorm) m_qNorm = m_b.loadNorm(*m_src.qNorm);
        if (m_src.kNorm) m_kNorm = m_b.loadNorm(*m_src.kNorm);
    }
    if (k == kGateUp && !m_down) m_down = m_b.loadLinear(m_src.down);

    // Row pieces: whole sequences for the attention block, chunks of the sampled rows otherwise.
    std::vector<std::pair<const float*, int>> pieces;
    if (attention) {
        int64_t off = 0;
        for (int len : st.seqLens) {
            pieces.push_back({st.seqRows.data() + off * in, len});
            off += len;
        }
    } else {
        for (int64_t s = 0; s < st.nRows; s += m_chunk)
            pieces.push_back({st.rows.data() + s * in, int(std::min<int64_t>(m_chunk, st.nRows - s))});
    }
    double total = 0;
    size_t refPos = 0;
    for (const auto& [rows, len] : pieces) {
        m_b.beginStep(sequenceBatch(m_cfg, len));
        Tensor x = m_b.upload(rows, len, in);
        Tensor result;
        if (attention) {
            result = attentionBlock(m_b, m_cfg, {weight.weight.get(), m_o.get(), m_qNorm.get(), m_kNorm.get()}, 0, 0, x);
        } else if (k == kGateUp) {
            result = mlpBlock(m_b, m_cfg, {weight.weight.get(), m_down.get()}, 0, x);
        } else {
            result = m_b.alloc(len, out);
            m_b.linear(result, x, *weight.weight);
        }
        m_buf.resize(size_t(result.rows * result.cols));
        m_b.readF32(result, m_buf.data());
        if (store) {
            store->insert(store->end(), m_buf.begin(), m_buf.end());
        } else if (k == kO || k == kDown) {
            // The output of diff is the error itself.
            total += parallelSum(int64_t(m_buf.size()), [&](int64_t b, int64_t e) {
                double s = 0;
                for (int64_t i = b; i < e; ++i) s += double(m_buf[size_t(i)]) * double(m_buf[size_t(i)]);
                return s;
            });
        } else {
            const float* ref = m_ref[k].data() + refPos;
            total += parallelSum(int64_t(m_buf.size()), [&](int64_t b, int64_t e) {
                double s = 0;
                for (int64_t i = b; i < e; ++i) {
                    const double d = double(m_buf[size_t(i)]) - double(ref[i]);
                    s += d * d;
                }
                return s;
            });
        }
        refPos += m_buf.size();
    }
    return total;
}

}  // namespace lmw::engine::quant
