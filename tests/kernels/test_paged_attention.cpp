// kv_store + paged_attention vs a CPU reference: f16 / int8 / int4 caches, GQA group sizes 1..16,
// head dims 8..256, decode (one query per sequence) and prefill (several causal queries per sequence),
// contexts that span several blocks and several partitions, shuffled physical blocks; every partition
// size, and a bucketed maxContext bit for bit against the exact one. The partition policy. The fused
// rope + kv store kernel against rope then kv_store, bit for bit.
#include <QtTest>
#include <algorithm>
#include <numeric>

#include "gpu_test_util.h"
#include "lmw/kernels/kv_cache.h"
#include "lmw/kernels/paged_attention.h"
#include "lmw/kernels/rope.h"
#include "lmw/kernels/rope_kv_store.h"

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

    // kvStore of every position of sequences with contexts `ctx`, then pagedAttention (partition 0 = its
    // own choice) against the CPU reference; then the same launch with maxContext at its context bucket
    // (what a graph replay records) and at twice that, with the partition fixed, bit for bit.
    void checkAttention(int heads, int kvHeads, int headDim, int quant, bool prefill, bool keyOffsets,
                        const std::vector<int>& ctx, int partition) {
        const int D = headDim, layers = 3, layer = 1, bs = 64;
        const std::vector<float> offsets =
            keyOffsets ? randomHalfValues(size_t(layers * kvHeads * D), m_rng, -1.5f, 1.5f) : std::vector<float>{};
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
        p.partition = partition;
        QVERIFY(k::pagedAttentionSupports(D, heads, kvHeads));
        auto run = [&](const k::PagedAttentionParams& q) {
            out.poison();
            DeviceMem ws(std::max<size_t>(1, k::pagedAttentionWorkspaceBytes(q)));
            // NaN: a partition the combine reads but nobody wrote would show.
            int e = int(cudaMemset(ws.get(), 0xff, ws.bytes()));
            k::PagedAttentionParams r = q;
            r.workspace = ws.get();
            if (!e) e = k::pagedAttention(r, nullptr);
            if (!e) e = int(cudaDeviceSynchronize());
            return std::make_pair(e, download<uint16_t>(out, size_t(T * heads * D)));
        };
        const auto [rc, bits] = run(p);
        GPU_OK(rc);
        auto got = fromHalf(bits);
        int unwritten = 0;
        for (uint16_t b : bits) unwritten += b == 0xffff;
        QCOMPARE(unwritten, 0);

        // maxContext only sizes the grid and the workspace: partitions past a token's context do nothing.
        const int resolved = partition ? partition : k::pagedAttentionPartition(T, heads, kvHeads, maxCtx);
        k::PagedAttentionParams bucketed = p;
        bucketed.maxContext = k::pagedAttentionContextBucket(maxCtx);
        QCOMPARE(k::pagedAttentionPartition(T, heads, kvHeads, bucketed.maxContext),
                 k::pagedAttentionPartition(T, heads, kvHeads, maxCtx));  // eager and replay agree
        k::PagedAttentionParams wider = p;
        wider.maxContext = 2 * bucketed.maxContext + 64;
        wider.partition = resolved;
        // The partitions combined by the last of them (counters) instead of a second kernel: the same
        // bits, twice in a row on the same counters, which the kernel leaves zero.
        const size_t nCounters = k::pagedAttentionCounters(p);
        QVERIFY(nCounters >= 1 && nCounters <= size_t(T) * size_t(heads));
        DeviceMem counters(nCounters * 4);
        GPU_OK(int(cudaMemset(counters.get(), 0, counters.bytes())));
        k::PagedAttentionParams counted = p;
        counted.counters = counters.as<int32_t>();
        for (int rep = 0; rep < 2; ++rep) {
            const auto [rc2, bits2] = run(counted);
            GPU_OK(rc2);
            for (size_t i = 0; i < bits.size(); ++i)
                if (bits2[i] != bits[i])
                    QFAIL(qPrintable(QString("counters, run %1: out[%2] = %3, combine kernel %4")
                                         .arg(rep).arg(i).arg(bits2[i], 0, 16).arg(bits[i], 0, 16)));
            const auto left = download<int32_t>(counters, nCounters);
            QCOMPARE(size_t(std::count(left.begin(), left.end(), 0)), nCounters);
        }
        for (const auto* q : {&bucketed, &wider}) {
            const auto [rc2, bits2] = run(*q);
            GPU_OK(rc2);
            for (size_t i = 0; i < bits.size(); ++i)
                if (bits2[i] != bits[i])
                    QFAIL(qPrintable(QString("maxContext %1 (exact %2, partition %3): out[%4] = %5, exact %6")
                                         .arg(q->maxContext).arg(maxCtx).arg(resolved).arg(i)
                                         .arg(bits2[i], 0, 16).arg(bits[i], 0, 16)));
        }

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
        checkAttention(heads, kvHeads, headDim, quant, prefill, keyOffsets, {1, 63, 64, 65, 300, 700}, 0);
    }

    // Every partition size, forced, on one small batch whose contexts sit at and around the block and
    // partition edges, up to 4096 (64 partitions of 64 to combine). llama-h8 takes llama7b's kernel
    // (group 1, D 128) with fewer heads, so that the 4096-token reference stays quick.
    void attentionPartitions_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("quant");
        QTest::addColumn<bool>("prefill");
        QTest::addColumn<int>("partition");
        struct Shape {
            int h, kv, d;
            const char* name;
        } shapes[] = {{8, 8, 128, "llama-h8"}, {28, 4, 128, "qwen-g7"}, {16, 1, 64, "g16"}, {4, 2, 256, "d256"},
                      {4, 1, 12, "d12"}};
        for (int part : {64, 128, 256}) {
            for (const auto& s : shapes)
                for (int q : {0, 8, 4})
                    QTest::newRow(qPrintable(QString("%1-q%2-decode-p%3").arg(s.name).arg(q).arg(part)))
                        << s.h << s.kv << s.d << q << false << part;
            QTest::newRow(qPrintable(QString("llama-h8-q0-prefill-p%1").arg(part))) << 8 << 8 << 128 << 0 << true << part;
            QTest::newRow(qPrintable(QString("qwen-g7-q4-prefill-p%1").arg(part))) << 28 << 4 << 128 << 4 << true << part;
        }
    }
    void attentionPartitions() {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, quant);
        QFETCH(bool, prefill);
        QFETCH(int, partition);
        checkAttention(heads, kvHeads, headDim, quant, prefill, false, {1, 63, 64, 65, 300, 512, 1000, 4096}, partition);
    }

    // The partition choice: small batches split the context finer (at least about two waves of CTAs on
    // 132 SMs), large batches and long contexts keep 256; through the context bucket only.
    void partitionPolicy() {
        QCOMPARE(k::pagedAttentionPartition(1, 32, 32, 512), 64);    // 32 x 8 = 256 CTAs (256: 64)
        QCOMPARE(k::pagedAttentionPartition(4, 32, 32, 512), 128);   // 4 x 32 x 4 = 512
        QCOMPARE(k::pagedAttentionPartition(16, 32, 32, 512), 256);  // 16 x 32 x 2 = 1024
        QCOMPARE(k::pagedAttentionPartition(1, 32, 32, 8192), 256);  // 32 x 32 = 1024
        QCOMPARE(k::pagedAttentionPartition(1, 32, 8, 8192), 128);   // llama3-8b: 8 kv heads x 64 = 512
        QCOMPARE(k::pagedAttentionPartition(1, 32, 8, 2048), 64);    // 8 x 32 = 256 at 64
        QCOMPARE(k::pagedAttentionPartition(1, 28, 4, 300), k::pagedAttentionPartition(1, 28, 4, 512));
        QCOMPARE(k::pagedAttentionPartition(1, 28, 4, 1), k::pagedAttentionPartition(1, 28, 4, 256));
        for (int ctx : {1, 255, 256, 257, 1000, 4096, 32768})
            for (int T = 1; T < 64; ++T) {
                const int a = k::pagedAttentionPartition(T, 32, 8, ctx), b = k::pagedAttentionPartition(T + 1, 32, 8, ctx);
                QVERIFY(a == 64 || a == 128 || a == 256);
                QVERIFY(b >= a);  // more tokens never split finer
                QCOMPARE(k::pagedAttentionPartition(T, 32, 8, k::pagedAttentionContextBucket(ctx)), a);
            }
        QCOMPARE(k::pagedAttentionContextBucket(1), k::kAttentionPartition);
        QCOMPARE(k::pagedAttentionContextBucket(257), 512);
        QCOMPARE(k::pagedAttentionContextBucket(4096), 4096);

        // The workspace follows the partition: [T, heads, parts] rows of D sums plus (max, sum).
        k::PagedAttentionParams p;
        p.numTokens = 1;
        p.heads = 32;
        p.layout.kvHeads = 32;
        p.layout.headDim = 128;
        p.maxContext = 512;
        QCOMPARE(k::pagedAttentionWorkspaceBytes(p), size_t(32 * 8 * 130 * 4));  // chosen: 64
        p.partition = 256;
        QCOMPARE(k::pagedAttentionWorkspaceBytes(p), size_t(32 * 2 * 130 * 4));
        p.maxContext = 256;
        QCOMPARE(k::pagedAttentionWorkspaceBytes(p), size_t(0));  // one partition: written straight out
    }

    // ropeKvStore (the backend's one kernel) against the two it replaces, ropeRotateHalf then kvStore:
    // the same bits in qkv (rotated q and k, v untouched, keys without their offsets) and in the whole
    // cache (written rows, scales and zeros; everything else as it was), for f16 / int8 / int4 caches.
    // Tokens of three sequences at positions across blocks and up to 4095, one token without a block.
    void ropeKvStoreMatchesRopeThenStore_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::addColumn<int>("quant");
        QTest::addColumn<bool>("keyOffsets");
        struct Shape {
            int h, kv, d;
            const char* name;
        } shapes[] = {{8, 4, 8, "stories"}, {32, 32, 128, "llama7b"}, {28, 4, 128, "qwen-g7"}, {4, 2, 256, "d256"},
                      {4, 1, 12, "d12"},     {6, 2, 44, "d44"},         {9, 3, 64, "h9"}};
        for (const auto& s : shapes)
            for (int q : {0, 8, 4})
                for (bool off : {false, true})
                    QTest::newRow(qPrintable(QString("%1-q%2%3").arg(s.name).arg(q).arg(off ? "-key-offsets" : "")))
                        << s.h << s.kv << s.d << q << off;
    }
    void ropeKvStoreMatchesRopeThenStore() {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        QFETCH(int, quant);
        QFETCH(bool, keyOffsets);
        const int D = headDim, half = D / 2, layers = 3, layer = 2, bs = 64, S = 3, maxBlocks = 70;
        k::KvLayout L;
        L.layers = layers;
        L.kvHeads = kvHeads;
        L.headDim = D;
        L.blockSize = bs;
        L.quant = quant;
        // (sequence, position); sequence 2's position 5 has no block (-1): rotated, not stored.
        const std::vector<std::pair<int, int>> tokens = {{0, 0}, {0, 1}, {0, 63}, {0, 64}, {1, 4095}, {1, 3000}, {2, 5},
                                                         {2, 200}};
        const int T = int(tokens.size());
        std::vector<int32_t> pos, seq;
        for (const auto& [s, p] : tokens) seq.push_back(s), pos.push_back(p);
        std::vector<int32_t> table(size_t(S * maxBlocks), -1);
        int next = 0;
        for (const auto& [s, p] : tokens)
            if (!(s == 2 && p == 5) && table[size_t(s * maxBlocks + p / bs)] < 0) table[size_t(s * maxBlocks + p / bs)] = next++;
        const int numBlocks = next + 1;
        std::vector<float> invFreq(size_t(S * half));
        for (int s = 0; s < S; ++s)
            for (int i = 0; i < half; ++i)
                invFreq[size_t(s * half + i)] = float(1.0 / std::pow(10000.0, 2.0 * i / D)) / float(1 + s);
        const std::vector<float> offsets =
            keyOffsets ? randomHalfValues(size_t(layers * kvHeads * D), m_rng, -1.5f, 1.5f) : std::vector<float>{};
        const int width = (heads + 2 * kvHeads) * D;
        const auto qkv = toHalf(randomHalfValues(size_t(T) * width, m_rng, -2.f, 2.f));

        auto dPos = upload(pos);
        auto dSeq = upload(seq);
        auto dTable = upload(table);
        auto dInv = upload(invFreq);
        std::unique_ptr<DeviceMem> dOff;
        if (keyOffsets) dOff = upload(offsets);
        const float* off = dOff ? dOff->as<float>() : nullptr;
        const size_t cacheBytes = size_t(numBlocks * L.blockBytes());
        DeviceMem cacheA(cacheBytes), cacheB(cacheBytes);
        GPU_OK(cudaMemset(cacheA.get(), 0x5a, cacheBytes));
        GPU_OK(cudaMemset(cacheB.get(), 0x5a, cacheBytes));
        auto qkvA = upload(qkv), qkvB = upload(qkv);
        GPU_OK(k::ropeRotateHalf(qkvA->get(), dPos->as<int32_t>(), dSeq->as<int32_t>(), dInv->as<float>(), T, heads,
                                 kvHeads, D, nullptr));
        GPU_OK(k::kvStore(cacheA.get(), L, layer, qkvA->get(), dPos->as<int32_t>(), dSeq->as<int32_t>(),
                          dTable->as<int32_t>(), maxBlocks, T, heads, off, nullptr));
        GPU_OK(k::ropeKvStore(cacheB.get(), L, layer, qkvB->get(), dPos->as<int32_t>(), dSeq->as<int32_t>(),
                              dInv->as<float>(), dTable->as<int32_t>(), maxBlocks, T, heads, off, nullptr));
        GPU_OK(cudaDeviceSynchronize());

        const auto gotA = download<uint16_t>(*qkvA, qkv.size()), gotB = download<uint16_t>(*qkvB, qkv.size());
        int rotated = 0;
        for (int t = 0; t < T; ++t)
            for (int c = 0; c < width; ++c) {
                const size_t e = size_t(t) * width + size_t(c);
                if (gotB[e] != gotA[e])
                    QFAIL(qPrintable(QString("qkv token %1 column %2: fused %3, rope %4").arg(t).arg(c)
                                         .arg(gotB[e], 0, 16).arg(gotA[e], 0, 16)));
                if (c >= (heads + kvHeads) * D) QCOMPARE(gotB[e], qkv[e]);  // v untouched
                else rotated += gotB[e] != qkv[e];
            }
        QVERIFY(rotated > 0);  // position 0 keeps its values; the others turn
        const auto a = download<uint8_t>(cacheA, cacheBytes), b = download<uint8_t>(cacheB, cacheBytes);
        size_t written = 0;
        for (size_t i = 0; i < cacheBytes; ++i) {
            if (a[i] != b[i]) {
                const int64_t blk = int64_t(i) / L.blockBytes(), inBlock = int64_t(i) % L.blockBytes();
                QFAIL(qPrintable(QString("cache byte %1 (block %2, section %3, offset %4): fused %5, rope + kvStore %6")
                                     .arg(i).arg(blk).arg(inBlock / L.sectionBytes()).arg(inBlock % L.sectionBytes())
                                     .arg(int(b[i])).arg(int(a[i]))));
            }
            written += b[i] != 0x5a;
        }
        // Every stored token wrote its K and V rows (a few code bytes may equal the fill by chance).
        const size_t rowBytes = quant == 0 ? size_t(D) * 2 : quant == 8 ? size_t(D) : size_t(D) / 2;
        QVERIFY2(written > size_t(T - 1) * 2 * kvHeads * rowBytes / 2,
                 qPrintable(QString("%1 cache bytes written").arg(written)));
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
