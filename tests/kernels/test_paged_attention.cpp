// kv_store + paged_attention vs a CPU reference: f16 / int8 / int4 caches, GQA group sizes 1..16,
// head dims 8..256, decode (one query per sequence) and prefill (several causal queries per sequence),
// contexts that span several blocks and several partitions, shuffled physical blocks.
#include <QtTest>
#include <algorithm>
#include <numeric>

#include "gpu_test_util.h"
#include "lmw/kernels/kv_cache.h"
#include "lmw/kernels/paged_attention.h"

using namespace lmw::test;
namespace k = lmw::kernels;

namespace {
// The stored value after quantization, computed like the kernel (f16-rounded scale and zero).
void quantizeRow(float* x, int d, int quant) {
    if (quant == 0) return;
    float lo = x[0], hi = x[0];
    for (int i = 1; i < d; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    const float qmax = quant == 8 ? 255.f : 15.f;
    auto code = [&](float v, float z, float inv) { return std::min(std::max(std::rint((v - z) * inv), 0.f), qmax); };
    float fs = (hi - lo) / qmax, fz = lo;
    for (int round = 0; round < (quant == 4 ? 3 : 0) && fs > 0.f; ++round) {  // int4's least-squares refit
        float sc = 0, sx = 0, scc = 0, scx = 0;
        for (int i = 0; i < d; ++i) {
            const float c = code(x[i], fz, 1.f / fs);
            sc += c, sx += x[i], scc += c * c, scx += c * x[i];
        }
        const float det = float(d) * scc - sc * sc;
        const float ns = det > 0 ? (float(d) * scx - sc * sx) / det : 0.f;
        if (!(ns > 0.f)) break;
        fs = ns;
        fz = (sx - ns * sc) / float(d);
    }
    const float s = lmw::halfToFloat(lmw::floatToHalf(fs)), z = lmw::halfToFloat(lmw::floatToHalf(fz));
    const float inv = s > 0 ? 1.f / s : 0.f;
    for (int i = 0; i < d; ++i) {
        x[i] = code(x[i], z, inv) * s + z;
    }
}
}  // namespace

class TestPagedAttention : public QObject {
    Q_OBJECT
    std::mt19937 m_rng{99};

private slots:
    void initTestCase() {
        if (!gpuUsableForTests()) QSKIP("no CUDA device");
    }

    void attention_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("quant");
        QTest::addColumn<bool>("prefill");
        QTest::addColumn<bool>("keyOffsets");
        struct Shape {
            int h, kv, d;
            const char* name;
        } shapes[] = {{8, 4, 8, "stories"}, {32, 32, 128, "llama7b"}, {28, 4, 128, "qwen-g7"},
                      {16, 1, 64, "g16"},    {8, 2, 80, "d80"},         {4, 2, 256, "d256"},
                      {4, 1, 12, "d12"},     {6, 2, 44, "d44"}};  // rows padded to 16 / 48 in the cache
        for (const auto& s : shapes)
            for (int q : {0, 8, 4})
                for (bool pf : {false, true})
                    QTest::newRow(qPrintable(QString("%1-q%2-%3").arg(s.name).arg(q).arg(pf ? "prefill" : "decode")))
                        << s.h << s.kv << s.d << q << pf << false;
        // Keys stored minus per-(layer, kv head) offsets: the reference quantizes k - offset too.
        for (int q : {8, 4}) {
            QTest::newRow(qPrintable(QString("llama7b-q%1-key-offsets").arg(q))) << 32 << 32 << 128 << q << true << true;
            QTest::newRow(qPrintable(QString("stories-q%1-key-offsets").arg(q))) << 8 << 4 << 8 << q << false << true;
        }
    }

    void attention() {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, quant);
        QFETCH(bool, prefill);
        QFETCH(bool, keyOffsets);
        const int D = headDim, layers = 3, layer = 1, bs = 64;
        const std::vector<float> offsets =
            keyOffsets ? randomHalfValues(size_t(layers * kvHeads * D), m_rng, -1.5f, 1.5f) : std::vector<float>{};
        const std::vector<int> ctx = {1, 63, 64, 65, 300, 700};
        const int S = int(ctx.size());
        const int maxCtx = *std::max_element(ctx.begin(), ctx.end());
        const int maxBlocks = (maxCtx + bs - 1) / bs + 1;
        k::KvLayout L;
        L.layers = layers;
        L.kvHeads = kvHeads;
        L.headDim = D;
        L.blockSize = bs;
        L.quant = quant;

        // Physical blocks in shuffled order, -1 padded table.
        int totalBlocks = 0;
        for (int c : ctx) totalBlocks += (c + bs - 1) / bs;
        std::vector<int32_t> perm(size_t(totalBlocks) + 3);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), m_rng);
        std::vector<int32_t> table(size_t(S * maxBlocks), -1);
        int used = 0;
        for (int s = 0; s < S; ++s)
            for (int b = 0; b < (ctx[size_t(s)] + bs - 1) / bs; ++b) table[size_t(s * maxBlocks + b)] = perm[size_t(used++)];
        const int64_t numBlocks = int64_t(perm.size());
        DeviceMem cache(size_t(numBlocks * L.blockBytes()));
        cudaMemset(cache.get(), 0, cache.bytes());
        auto dTable = upload(table);

        // Store every position's k, v through kvStore (q part unused there).
        const int width = (heads + 2 * kvHeads) * D;
        std::vector<int32_t> allPos, allSeq;
        for (int s = 0; s < S; ++s)
            for (int p = 0; p < ctx[size_t(s)]; ++p) allPos.push_back(p), allSeq.push_back(s);
        const int TA = int(allPos.size());
        auto qkvAll = randomHalfValues(size_t(TA) * width, m_rng, -2.f, 2.f);
        {
            auto dq = upload(toHalf(qkvAll));
            auto dp = upload(allPos);
            auto ds = upload(allSeq);
            std::unique_ptr<DeviceMem> dOff;
            if (keyOffsets) dOff = upload(offsets);
            GPU_OK(k::kvStore(cache.get(), L, layer, dq->get(), dp->as<int32_t>(), ds->as<int32_t>(), dTable->as<int32_t>(),
                              maxBlocks, TA, heads, dOff ? dOff->as<float>() : nullptr, nullptr));
            GPU_OK(cudaDeviceSynchronize());
        }
        // Reference K/V per (seq, pos, kv head) as stored.
        auto kvRef = [&](int t, int which, int h) {
            std::vector<float> v(qkvAll.begin() + int64_t(t) * width + (heads + which * kvHeads + h) * D,
                                 qkvAll.begin() + int64_t(t) * width + (heads + which * kvHeads + h + 1) * D);
            const float* off = which == 0 && keyOffsets ? offsets.data() + (layer * kvHeads + h) * D : nullptr;
            if (off)
                for (int d = 0; d < D; ++d) v[size_t(d)] -= off[d];
            quantizeRow(v.data(), D, quant);
            if (off)  // attention cannot tell: every score of a query moves by q . offset
                for (int d = 0; d < D; ++d) v[size_t(d)] += off[d];
            return v;
        };
        std::vector<std::vector<float>> kq(size_t(TA * kvHeads)), vq(size_t(TA * kvHeads));
        for (int t = 0; t < TA; ++t)
            for (int h = 0; h < kvHeads; ++h) kq[size_t(t * kvHeads + h)] = kvRef(t, 0, h), vq[size_t(t * kvHeads + h)] = kvRef(t, 1, h);
        std::vector<int> seqBase(size_t(S), 0);
        for (int s = 1; s < S; ++s) seqBase[size_t(s)] = seqBase[size_t(s - 1)] + ctx[size_t(s - 1)];

        // Queries: decode = last position of each sequence; prefill = the last up-to-5 positions.
        std::vector<int32_t> qPos, qSeq;
        for (int s = 0; s < S; ++s) {
            const int n = prefill ? std::min(5, ctx[size_t(s)]) : 1;
            for (int p = ctx[size_t(s)] - n; p < ctx[size_t(s)]; ++p) qPos.push_back(p), qSeq.push_back(s);
        }
        const int T = int(qPos.size());
        auto qkv = randomHalfValues(size_t(T) * width, m_rng, -2.f, 2.f);
        auto dq = upload(toHalf(qkv));
        auto dPos = upload(qPos);
        auto dSeq = upload(qSeq);
        DeviceMem out(size_t(T * heads * D) * 2);
        out.poison();
        DeviceMem ws(std::max<size_t>(1, k::pagedAttentionWorkspaceBytes(T, heads, D, maxCtx)));
        k::PagedAttentionParams p;
        p.out = out.get();
        p.qkv = dq->get();
        p.cache = cache.get();
        p.layout = L;
        p.layer = layer;
        p.blockTable = dTable->as<int32_t>();
        p.maxBlocks = maxBlocks;
        p.tokenSeq = dSeq->as<int32_t>();
        p.positions = dPos->as<int32_t>();
        p.numTokens = T;
        p.heads = heads;
        p.maxContext = maxCtx;
        p.scale = 1.f / std::sqrt(float(D));
        p.workspace = ws.get();
        QVERIFY(k::pagedAttentionSupports(D, heads, kvHeads));
        GPU_OK(k::pagedAttention(p, nullptr));
        GPU_OK(cudaDeviceSynchronize());
        auto got = fromHalf(download<uint16_t>(out, size_t(T * heads * D)));

        std::vector<double> ref(size_t(T * heads * D));
        const int G = heads / kvHeads;
        for (int t = 0; t < T; ++t) {
            const int s = qSeq[size_t(t)], n = qPos[size_t(t)] + 1;
            for (int h = 0; h < heads; ++h) {
                const int kvh = h / G;
                std::vector<double> sc(static_cast<size_t>(n));
                double m = -1e300;
                for (int j = 0; j < n; ++j) {
                    const auto& kk = kq[size_t((seqBase[size_t(s)] + j) * kvHeads + kvh)];
                    double d = 0;
                    for (int e = 0; e < D; ++e) d += double(qkv[size_t(t * width + h * D + e)]) * kk[size_t(e)];
                    sc[size_t(j)] = d / std::sqrt(double(D));
                    m = std::max(m, sc[size_t(j)]);
                }
                double l = 0;
                for (auto& v : sc) l += (v = std::exp(v - m));
                for (int e = 0; e < D; ++e) {
                    double acc = 0;
                    for (int j = 0; j < n; ++j) acc += sc[size_t(j)] * vq[size_t((seqBase[size_t(s)] + j) * kvHeads + kvh)][size_t(e)];
                    ref[size_t((t * heads + h) * D + e)] = acc / l;
                }
            }
        }
        const double err = relError(got, ref);
        // f16 output and f32 arithmetic; quantized caches may round a tie the other way now and then.
        const double tol = quant == 0 ? 2e-3 : 5e-3;
        QVERIFY2(err < tol, qPrintable(QString("rel err %1 (tol %2)").arg(err).arg(tol)));
    }

    void layoutBytes() {
        k::KvLayout L;
        L.layers = 32;
        L.kvHeads = 32;
        L.headDim = 128;
        L.quant = 0;
        QCOMPARE(L.blockBytes(), int64_t(32) * 2 * 32 * 64 * 256);  // 32 MiB per 64-token block
        L.quant = 8;
        QCOMPARE(L.blockBytes(), int64_t(32) * 2 * 32 * 64 * (128 + 4));
        L.quant = 4;
        QCOMPARE(L.blockBytes(), int64_t(32) * 2 * 32 * 64 * (64 + 4));
    }
};

QTEST_APPLESS_MAIN(TestPagedAttention)
#include "test_paged_attention.moc"
