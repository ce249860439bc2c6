// The same op sequence (a small decoder layer: dense + AWQ + biased linears, per-head q/k norms on views
// of qkv, GQA attention over a paged cache, two steps: prefill then decode) on the CPU backend and on the
// CUDA backend, compared op by op; and real models' greedy ids on both.
#include <QtTest>
#include <array>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "gpu_test_util.h"
#include "greedy_run.h"
#include "lmw/error.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using namespace lmw::test;

namespace {
constexpr int kHidden = 128, kHeads = 4, kKvHeads = 2, kHeadDim = 32, kFfn = 192, kVocab = 80, kLayers = 2;

// Host tensors that the TensorRefs point into (they stand in for the mmap).
struct Store {
    std::vector<std::vector<uint8_t>> blobs;
    std::vector<std::unique_ptr<TensorRef>> refs;
    template <class T>
    const TensorRef* add(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<T>& data) {
        blobs.emplace_back(reinterpret_cast<const uint8_t*>(data.data()),
                           reinterpret_cast<const uint8_t*>(data.data()) + data.size() * sizeof(T));
        auto r = std::make_unique<TensorRef>();
        r->name = name;
        r->dtype = dt;
        r->shape = std::move(shape);
        r->data = blobs.back().data();
        r->bytes = blobs.back().size();
        r->file = "memory";
        refs.push_back(std::move(r));
        return refs.back().get();
    }
};

std::vector<float> randomF(size_t n, std::mt19937& rng, float scale) {
    std::uniform_real_distribution<float> d(-scale, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}
std::vector<uint16_t> asBf16(const std::vector<float>& v) {
    std::vector<uint16_t> o(v.size());
    for (size_t i = 0; i < v.size(); ++i) o[i] = floatToBf16(v[i]);
    return o;
}

struct Model {
    Store store;
    const TensorRef *embed = nullptr, *norm = nullptr, *headNorm = nullptr;
    LinearSource qkv, o, gateUp, down, head;
};

// What keyChannels adds to the keys (k bias, every kv head): large, near-constant channels, as real
// models have; they sit on the lowest-frequency rotary pair, which barely turns over 70 positions.
std::vector<float> keyChannelShift() {
    std::vector<float> shift(size_t(kHeadDim), 0.f);
    shift[size_t(kHeadDim / 2 - 1)] = 6.f;
    shift[size_t(kHeadDim - 1)] = -5.f;
    return shift;
}

Model buildModel(std::mt19937& rng, bool keyChannels = false) {
    Model m;
    Store& s = m.store;
    m.embed = s.add("embed", DType::F32, {kVocab, kHidden}, randomF(size_t(kVocab * kHidden), rng, 1.f));
    std::vector<float> nw = randomF(kHidden, rng, 0.5f);
    for (auto& v : nw) v += 1.f;
    m.norm = s.add("norm", DType::F32, {kHidden}, nw);
    std::vector<float> hw = randomF(kHeadDim, rng, 0.5f);
    for (auto& v : hw) v += 1.f;
    m.headNorm = s.add("head_norm", DType::BF16, {kHeadDim}, asBf16(hw));

    // qkv: dense F16 q from one tensor, k|v from another (F16), with a bias in two pieces.
    const int qRows = kHeads * kHeadDim, kvRows = 2 * kKvHeads * kHeadDim;
    m.qkv.name = "qkv";
    m.qkv.in = kHidden;
    m.qkv.out = qRows + kvRows;
    m.qkv.dtype = DType::F16;
    const auto* q = s.add("q", DType::F16, {qRows, kHidden}, toHalf(randomF(size_t(qRows * kHidden), rng, 0.1f)));
    const auto* kv = s.add("kv", DType::F16, {kvRows, kHidden}, toHalf(randomF(size_t(kvRows * kHidden), rng, 0.1f)));
    m.qkv.segments = {{q, nullptr, nullptr, 0, qRows, 0}, {kv, nullptr, nullptr, 0, kvRows, qRows}};
    const auto* qb = s.add("qb", DType::F32, {qRows}, randomF(qRows, rng, 0.2f));
    std::vector<float> kvBias = randomF(kvRows, rng, 0.2f);
    if (keyChannels)
        for (int h = 0; h < kKvHeads; ++h)
            for (int d = 0; d < kHeadDim; ++d) kvBias[size_t(h * kHeadDim + d)] += keyChannelShift()[size_t(d)];
    const auto* kvb = s.add("kvb", DType::F32, {kvRows}, kvBias);
    m.qkv.biasSegments = {{qb, nullptr, nullptr, 0, qRows, 0}, {kvb, nullptr, nullptr, 0, kvRows, qRows}};

    auto awq = [&](const std::string& name, int64_t in, int64_t out, int g) {
        AwqLayer l = randomAwq(in, out, g, rng);
        return std::array<const TensorRef*, 3>{s.add(name + ".qweight", DType::I32, {in, out / 8}, l.qweight),
                                               s.add(name + ".qzeros", DType::I32, {in / g, out / 8}, l.qzeros),
                                               s.add(name + ".scales", DType::F16, {in / g, out}, l.scales)};
    };
    // o: AWQ, packed kernel path.
    m.o.name = "o";
    m.o.in = kHeads * kHeadDim;
    m.o.out = kHidden;
    m.o.awq = true;
    m.o.groupSize = 64;
    m.o.dtype = DType::F16;
    auto ot = awq("o", m.o.in, m.o.out, 64);
    m.o.segments = {{ot[0], ot[1], ot[2], 0, kHidden, 0}};
    // gateUp: AWQ from two tensors (gate, up).
    m.gateUp.name = "gateUp";
    m.gateUp.in = kHidden;
    m.gateUp.out = 2 * kFfn;
    m.gateUp.awq = true;
    m.gateUp.groupSize = 64;
    m.gateUp.dtype = DType::F16;
    auto gt = awq("gate", kHidden, kFfn, 64), ut = awq("up", kHidden, kFfn, 64);
    m.gateUp.segments = {{gt[0], gt[1], gt[2], 0, kFfn, 0}, {ut[0], ut[1], ut[2], 0, kFfn, kFfn}};
    // down: dense BF16.
    m.down.name = "down";
    m.down.in = kFfn;
    m.down.out = kHidden;
    m.down.dtype = DType::BF16;
    const auto* dn = s.add("down", DType::BF16, {kHidden, kFfn}, asBf16(randomF(size_t(kHidden * kFfn), rng, 0.1f)));
    m.down.segments = {{dn, nullptr, nullptr, 0, kHidden, 0}};
    // head: AWQ with out = 80 (not a multiple of 16): the dequantized fallback.
    m.head.name = "head";
    m.head.in = kHidden;
    m.head.out = kVocab;
    m.head.awq = true;
    m.head.groupSize = 32;
    m.head.dtype = DType::F16;
    auto ht = awq("head", kHidden, kVocab, 32);
    m.head.segments = {{ht[0], ht[1], ht[2], 0, kVocab, 0}};
    return m;
}

StepBatch makeStep(const std::vector<std::vector<int32_t>>& tokensPerSeq, const std::vector<int>& startPos,
                   const std::vector<std::vector<int32_t>>& blocks) {
    StepBatch b;
    b.seqStart.push_back(0);
    b.maxBlocks = 4;
    for (size_t s = 0; s < tokensPerSeq.size(); ++s) {
        for (size_t i = 0; i < tokensPerSeq[s].size(); ++i) {
            b.tokens.push_back(tokensPerSeq[s][i]);
            b.positions.push_back(startPos[s] + int(i));
        }
        b.seqStart.push_back(int(b.tokens.size()));
        b.contextLen.push_back(startPos[s] + int(tokensPerSeq[s].size()));
        for (int j = 0; j < b.maxBlocks; ++j) b.blockTable.push_back(j < int(blocks[s].size()) ? blocks[s][size_t(j)] : -1);
        for (int i = 0; i < kHeadDim / 2; ++i)
            b.invFreq.push_back(float(1.0 / std::pow(10000.0, 2.0 * i / kHeadDim)) * (s == 1 ? 0.5f : 1.f));
        b.logitRows.push_back(b.seqStart.back() - 1);
    }
    return b;
}

// Runs the op sequence and returns every intermediate, read back as f32.
std::vector<std::vector<float>> runSequence(Backend& be, const Model& m, int quant, bool keyOffsets) {
    auto embed = be.loadEmbedding(*m.embed);
    auto norm = be.loadNorm(*m.norm), headNorm = be.loadNorm(*m.headNorm);
    auto qkv = be.loadLinear(m.qkv), o = be.loadLinear(m.o), gu = be.loadLinear(m.gateUp), down = be.loadLinear(m.down),
         head = be.loadLinear(m.head);
    KvCacheShape shape;
    shape.layers = kLayers;
    shape.kvHeads = kKvHeads;
    shape.headDim = kHeadDim;
    shape.quantPolicy = quant;
    be.allocKvCache(shape, 12);
    if (keyOffsets) {
        std::vector<float> offsets;
        for (int i = 0; i < kLayers * kKvHeads; ++i) {
            const auto shift = keyChannelShift();
            offsets.insert(offsets.end(), shift.begin(), shift.end());
        }
        be.setKvKeyOffsets(offsets);
    }

    std::vector<std::vector<float>> outs;
    auto read = [&](Tensor t) {
        std::vector<float> v(size_t(t.rows * t.cols));
        be.readF32(t, v.data());
        outs.push_back(std::move(v));
    };
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> tok(0, kVocab - 1);
    auto toks = [&](int n) {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (auto& t : v) t = tok(rng);
        return v;
    };
    const std::vector<std::vector<int32_t>> blocks = {{7, 2}, {0, 11, 5}};
    // Step 1: prefill 5 and 70 tokens (the second crosses a block); step 2: decode one token each.
    std::vector<StepBatch> steps = {makeStep({toks(5), toks(70)}, {0, 0}, blocks),
                                    makeStep({toks(1), toks(1)}, {5, 70}, blocks)};
    for (const auto& batch : steps) {
        be.beginStep(batch);
        const int T = batch.numTokens();
        Tensor x = be.alloc(T, kHidden);
        be.embed(x, *embed);
        read(x);
        for (int layer = 0; layer < kLayers; ++layer) {
            Tensor h = be.alloc(T, kHidden);
            be.rmsNorm(h, x, *norm, 1e-5f);
            Tensor q = be.alloc(T, (kHeads + 2 * kKvHeads) * kHeadDim);
            be.linear(q, h, *qkv);
            read(q);
            Tensor qh = colRange(q, 0, kHeads * kHeadDim), kh = colRange(q, kHeads * kHeadDim, (kHeads + kKvHeads) * kHeadDim);
            be.rmsNorm(qh, qh, *headNorm, 1e-6f);
            be.rmsNorm(kh, kh, *headNorm, 1e-6f);
            read(kh);  // a view, read back densely
            read(q);
            Tensor a = be.alloc(T, kHeads * kHeadDim);
            be.attention(a, q, layer, kHeads, kKvHeads, kHeadDim);
            read(q);  // q and k rotated in place by attention
            read(a);
            Tensor ao = be.alloc(T, kHidden);
            be.linear(ao, a, *o);
            read(ao);
            be.addRmsNorm(x, ao, h, *norm, 1e-5f);
            read(x);
            read(h);
            Tensor g = be.alloc(T, 2 * kFfn);
            be.linear(g, h, *gu);
            read(g);
            Tensor f = be.alloc(T, kFfn);
            be.siluMul(f, g);
            read(f);
            std::vector<double> sums(size_t(kFfn), 0.5);  // added to, not overwritten
            be.addColumnAbsSums(f, sums.data());
            outs.emplace_back(sums.begin(), sums.end());
            Tensor d = be.alloc(T, kHidden);
            be.linear(d, f, *down);
            read(d);
            Tensor d2 = be.alloc(T, kHidden);  // the same projection with the activation fused in
            be.siluMulLinear(d2, g, *down);
            read(d2);
            be.add(x, d);
            read(x);
        }
        Tensor last = be.alloc(int64_t(batch.logitRows.size()), kHidden);
        be.gatherRows(last, x);
        Tensor logits = be.alloc(last.rows, kVocab);
        be.linear(logits, last, *head);
        read(logits);
    }
    return outs;
}
}  // namespace


class TestCudaBackend : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        if (!cudaDeviceUsable()) QSKIP("no CUDA device");
    }

    void deviceInfo() {
        auto be = createBackend("cuda", 0);
        const DeviceInfo d = be->deviceInfo();
        QCOMPARE(QString::fromStdString(d.backend), QString("cuda"));
        QVERIFY(!d.name.empty());
        QVERIFY(d.totalBytes > (uint64_t(1) << 30));
        QVERIFY(d.freeBytes > 0 && d.freeBytes <= d.totalBytes);
        KvCacheShape s;
        s.layers = 32;
        s.kvHeads = 8;
        s.headDim = 128;
        QCOMPARE(be->kvBlockBytes(s), uint64_t(32) * 2 * 8 * 64 * 128 * 2);
        s.quantPolicy = 4;
        QCOMPARE(be->kvBlockBytes(s), uint64_t(32) * 2 * 8 * 64 * (64 + 4));
        s.quantPolicy = 3;
        QVERIFY_THROWS_EXCEPTION(lmw::Error, be->kvBlockBytes(s));
    }

    void matchesCpu_data() {
        QTest::addColumn<int>("quant");
        QTest::addColumn<double>("tol");
        QTest::addColumn<bool>("keyOffsets");
        QTest::newRow("f16-kv") << 0 << 1e-2 << false;
        QTest::newRow("int8-kv") << 8 << 1.5e-2 << false;
        // int4: a code that lands on the other side of a rounding boundary moves its value by a
        // whole step (1/15 of the row's range); f16 against f32 activations flip some, and since the
        // CPU cache too rounds scale and zero to f16 (as CUDA does) the sequence's worst op is at
        // 6.3% (under 5% with f32 params on the CPU).
        QTest::newRow("int4-kv") << 4 << 8e-2 << false;
        QTest::newRow("int8-kv-key-offsets") << 8 << 1.5e-2 << true;
        QTest::newRow("int4-kv-key-offsets") << 4 << 8e-2 << true;
    }

    void matchesCpu() {
        QFETCH(int, quant);
        QFETCH(double, tol);
        QFETCH(bool, keyOffsets);
        std::mt19937 rng(42);
        // With offsets the keys get the constant channels the offsets take out: a backend that did
        // not subtract them would quantize a 4x wider range and drift from the CPU.
        Model m = buildModel(rng, keyOffsets);
        auto cpu = createBackend("cpu", 2);
        auto gpu = createBackend("cuda", 0);
        const auto a = runSequence(*cpu, m, quant, keyOffsets);
        const auto b = runSequence(*gpu, m, quant, keyOffsets);
        QCOMPARE(a.size(), b.size());
        double worst = 0;
        size_t worstAt = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            QCOMPARE(a[i].size(), b[i].size());
            std::vector<double> ref(a[i].begin(), a[i].end());
            const double err = relError(b[i], ref);
            if (err > worst) worst = err, worstAt = i;
        }
        qInfo("worst of %zu intermediates: %zu, rel err %.4f (tol %.3f)", a.size(), worstAt, worst, tol);
        QVERIFY2(worst < tol, qPrintable(QString("intermediate %1: rel err %2 (tol %3)").arg(worstAt).arg(worst).arg(tol)));
    }

    // A real trained model (stories260K in three layouts) against the Hugging Face reference: f16
    // activations, so logits within 1e-2 relative and the greedy continuation the same.
    void storiesMatchesReference_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("reference");
        QTest::newRow("llama") << "stories260K" << "stories260K";
        QTest::newRow("qwen2") << "stories260K-qwen2" << "stories260K-qwen2";
        QTest::newRow("internlm2") << "stories260K-internlm2" << "stories260K";
    }
    void storiesMatchesReference() {
        QFETCH(QString, model);
        QFETCH(QString, reference);
        const std::string dir = modelPath(model.toStdString());
        const auto ref = lmw::test::readJson(modelPath(reference.toStdString()) + "/reference.json");
        QVERIFY2(ref.contains("cases"), qPrintable("no reference.json under " + QString::fromStdString(dir)));
        auto be = createBackend("cuda", 0);
        for (const auto& c : ref["cases"]) {
            const auto prompt = c["input_ids"].get<std::vector<int32_t>>();
            const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
            const auto wantLogits = c["last_logits_full"].get<std::vector<double>>();
            const GreedyRun run = greedyRun(*be, dir, prompt, int(want.size()));
            const std::vector<float>& logits = run.promptLogits;
            const std::vector<int32_t>& ids = run.ids;
            const double err = relError(logits, wantLogits);
            int same = 0;
            while (same < int(want.size()) && ids[size_t(same)] == want[size_t(same)]) ++same;
            qInfo("%s: prompt %zu tokens, logits rel err %.2e, greedy ids equal for %d of %zu", qPrintable(model),
                  prompt.size(), err, same, want.size());
            QVERIFY2(err < 1e-2, qPrintable(QString("logits rel err %1").arg(err)));
            QVERIFY2(same >= std::min<int>(16, int(want.size())), qPrintable(QString("greedy ids diverge at %1").arg(same)));
        }
    }

    // qwen3-tiny (per-head q/k norms: the strided rmsNorm) and llama3-tiny (head_dim 12: padded cache
    // rows) on CUDA give the CPU's greedy ids for the prompts whose first choice is clear (reference
    // top-1 minus top-2 logit above 0.05): all 24, or the same up to a step where the CPU's own choice
    // was that close (f16 activations move these logits by about 0.02).
    void hfTinyModelsGreedyMatchesCpu_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("qwen3-tiny") << "qwen3-tiny";
        QTest::newRow("llama3-tiny") << "llama3-tiny";
    }
    void hfTinyModelsGreedyMatchesCpu() {
        constexpr float kClearMargin = 0.05f;
        QFETCH(QString, model);
        const std::string dir = modelPath(model.toStdString());
        const auto ref = lmw::test::readJson(dir + "/reference.json");
        auto cpu = createBackend("cpu", 4);
        auto gpu = createBackend("cuda", 0);
        int cases = 0;
        for (const auto& c : ref["cases"]) {
            if (c["top1_margin"].get<double>() <= kClearMargin) continue;
            const auto prompt = c["input_ids"].get<std::vector<int32_t>>();
            const int n = int(c["greedy_ids"].size());
            const GreedyRun a = greedyRun(*cpu, dir, prompt, n);
            const GreedyRun b = greedyRun(*gpu, dir, prompt, n);
            const double err = relError(b.promptLogits, std::vector<double>(a.promptLogits.begin(), a.promptLogits.end()));
            size_t same = 0;
            while (same < a.ids.size() && a.ids[same] == b.ids[same]) ++same;
            qInfo("%s, prompt of %zu ids: logits rel err %.2e, greedy ids equal for %zu of %d", qPrintable(model),
                  prompt.size(), err, same, n);
            QVERIFY2(err < 1e-2, qPrintable(QString("logits rel err %1").arg(err)));
            QCOMPARE(b.ids.size(), a.ids.size());
            if (same < a.ids.size())
                QVERIFY2(a.margins[same] <= kClearMargin,
                         qPrintable(QString("CUDA left the CPU's greedy ids at step %1, where the CPU's top-1 margin is %2")
                                        .arg(same).arg(a.margins[same])));
            ++cases;
        }
        QVERIFY(cases >= 5);  // qwen3-tiny: all 6; llama3-tiny: 5 of 6
    }

    // Decode steps replayed from CUDA graphs give the same ids and the same logits (bitwise, through the
    // top-1 margins) as the same steps run op by op; and replays happen. stories260K's prompt runs 60
    // decode steps across the 256-token context bucket, so a second bucket is recorded on the way.
    void graphReplayEqualsEager() {
        const std::string dir = modelPath("stories260K");
        const auto ref = lmw::test::readJson(dir + "/reference.json");
        const auto prompt = ref["cases"][0]["input_ids"].get<std::vector<int32_t>>();
        const int steps = 260 - int(prompt.size());
        auto graphs = createBackend("cuda", 0);
        const GreedyRun a = greedyRun(*graphs, dir, prompt, steps);
        QVERIFY2(graphs->replayedSteps() >= uint64_t(steps - 4),
                 qPrintable(QString("%1 of %2 decode steps replayed").arg(graphs->replayedSteps()).arg(steps)));
        qputenv("LMW_CUDA_GRAPHS", "0");
        auto eager = createBackend("cuda", 0);
        qunsetenv("LMW_CUDA_GRAPHS");
        const GreedyRun b = greedyRun(*eager, dir, prompt, steps);
        QCOMPARE(eager->replayedSteps(), uint64_t(0));
        QCOMPARE(b.ids, a.ids);
        QCOMPARE(b.margins, a.margins);
    }

    // backend.h's promise on rows and batches, for dense linears and siluMulLinear: up to 16 rows (the
    // skinny GEMM) a row is bitwise the same whatever the batch, fused or not; above 16 (cuBLAS) it
    // agrees with that to one f16 ulp plus the difference of two f32 accumulation orders. The same for
    // AWQ weights (a shape the packed kernels take): awqGemv up to 16 rows, awqGemm above.
    void rowsAcrossBatchSizes_data() {
        QTest::addColumn<bool>("awq");
        QTest::newRow("dense") << false;
        QTest::newRow("awq") << true;
    }

    void rowsAcrossBatchSizes() {
        QFETCH(bool, awq);
        const int64_t N = awq ? 208 : 200, K = awq ? 192 : 136, kMaxRows = 40;
        std::mt19937 rng(11);
        Store store;
        LinearSource src;
        src.name = awq ? "awq" : "dense";
        src.in = K;
        src.out = N;
        src.dtype = DType::F16;
        std::vector<float> w;  // [N][K] as the kernels see it
        if (awq) {
            AwqLayer l = randomAwq(K, N, 64, rng);
            src.awq = true;
            src.groupSize = 64;
            src.segments = {{store.add("q", DType::I32, {K, N / 8}, l.qweight),
                             store.add("z", DType::I32, {K / 64, N / 8}, l.qzeros),
                             store.add("s", DType::F16, {K / 64, N}, l.scales), 0, N, 0}};
            w = l.w;
        } else {
            w = randomHalfValues(size_t(N * K), rng);
            src.segments = {{store.add("w", DType::F16, {N, K}, toHalf(w)), nullptr, nullptr, 0, N, 0}};
        }
        auto be = createBackend("cuda", 0);
        auto lin = be->loadLinear(src);
        StepBatch b = makeStep({{1}}, {0}, {{0}});
        be->beginStep(b);
        // x [kMaxRows, K] and gateUp [kMaxRows, 2K] (gates wide enough to reach silu's flat part).
        const std::vector<float> x = randomHalfValues(size_t(kMaxRows * K), rng);
        const std::vector<float> gu = randomHalfValues(size_t(kMaxRows * 2 * K), rng, -4.f, 4.f);
        auto run = [&](int64_t rows, bool fused) {
            Tensor in = fused ? be->upload(gu.data(), rows, 2 * K) : be->upload(x.data(), rows, K);
            Tensor out = be->alloc(rows, N);
            if (fused) be->siluMulLinear(out, in, *lin);
            else be->linear(out, in, *lin);
            std::vector<float> v(size_t(rows * N));
            be->readF32(out, v.data());
            return v;
        };
        for (bool fused : {false, true}) {
            const std::vector<float> one = [&] {  // every row on its own
                std::vector<float> all;
                for (int64_t r = 0; r < kMaxRows; ++r) {
                    Tensor in = fused ? be->upload(gu.data() + r * 2 * K, 1, 2 * K) : be->upload(x.data() + r * K, 1, K);
                    Tensor out = be->alloc(1, N);
                    if (fused) be->siluMulLinear(out, in, *lin);
                    else be->linear(out, in, *lin);
                    std::vector<float> v(static_cast<size_t>(N));
                    be->readF32(out, v.data());
                    all.insert(all.end(), v.begin(), v.end());
                }
                return all;
            }();
            for (int64_t rows : {int64_t(2), int64_t(3), int64_t(4), int64_t(5), int64_t(9), int64_t(16)}) {
                const auto got = run(rows, fused);
                for (size_t i = 0; i < got.size(); ++i)
                    if (got[i] != one[i])
                        QFAIL(qPrintable(QString("fused %1, %2 rows: out[%3][%4] = %5, alone %6")
                                             .arg(fused).arg(rows).arg(i / N).arg(i % N).arg(got[i]).arg(one[i])));
            }
            for (int64_t rows : {int64_t(17), kMaxRows}) {
                const auto got = run(rows, fused);
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t c = 0; c < N; ++c) {
                        double mag = 0;  // sum |w x| (x: the activation for the fused form, near enough)
                        for (int64_t i = 0; i < K; ++i) {
                            double xi = x[size_t(r * K + i)];
                            if (fused) {
                                const double g = gu[size_t(r * 2 * K + i)], u = gu[size_t(r * 2 * K + K + i)];
                                xi = g / (1 + std::exp(-g)) * u;
                            }
                            mag += std::fabs(w[size_t(c * K + i)] * xi);
                        }
                        const float a = got[size_t(r * N + c)], e = one[size_t(r * N + c)];
                        // AWQ: the T > 16 kernels round each dequantized weight to f16, the decode GEMV does not.
                        const double tol = ulp16(std::max(std::fabs(a), std::fabs(e))) + K * std::ldexp(mag, -24) +
                                           (awq ? std::ldexp(mag, -11) : 0.0);
                        QVERIFY2(std::fabs(a - e) <= tol, qPrintable(QString("fused %1, %2 rows: out[%3][%4] = %5, alone %6")
                                                                         .arg(fused).arg(rows).arg(r).arg(c).arg(a).arg(e)));
                    }
            }
        }
    }

    // Embedding requests on CUDA: the final hidden states pooled on the device (Backend::addColumnSums,
    // f32 sums of f16 rows) give the CPU engine's vectors to f16 precision, for both poolings, over
    // chunked prefill and inside 32 requests at once with generations; alone = batched within the same
    // bound (the kernels switch by the step's rows, see backend.h).
    void embeddingsMatchCpu() {
        auto load = [](const std::string& backend) {
            EngineConfig c;
            c.modelDir = modelPath("stories260K");
            c.backend = backend;
            c.threads = 2;
            c.cacheBlocks = 256;
            c.maxPrefillTokenNum = 48;
            auto e = Engine::load(c);
            if (!e) qFatal("load on %s: %s", backend.c_str(), e.error().what());
            return std::move(e.value());
        };
        auto cpu = load("cpu"), gpu = load("cuda");
        std::string text;  // the reference's prompts and greedy stories (the model folder travels, tests/data may not)
        const auto ref = lmw::test::readJson(modelPath("stories260K") + "/reference.json");
        for (const auto& c : ref["cases"])
            text += c["prompt"].get<std::string>() + " " + c["greedy_text"].get<std::string>() + " ";
        const std::vector<int32_t> story = cpu->tokenizer().encode(text);
        QVERIFY2(story.size() > 260, qPrintable(QString::number(story.size())));
        auto request = [&](int i) {
            Request r;
            r.promptIds.assign(story.begin() + 3 * i, story.begin() + 3 * i + 10 + 5 * i);
            if (i % 2 == 0) {
                r.output = RequestOutput::Embedding;
                r.pooling = i % 4 == 0 ? Pooling::Mean : Pooling::Last;
            } else {
                r.sampling.temperature = 0;
                r.sampling.maxNewTokens = 12;
                r.sampling.ignoreEos = true;
            }
            return r;
        };
        auto runAll = [&](Engine& e, int from, int to) {
            std::vector<std::promise<Event>> done(size_t(to - from));
            for (int i = from; i < to; ++i)
                e.submit(request(i), [&done, k = size_t(i - from)](const Event& ev) {
                    if (ev.final) done[k].set_value(ev);
                });
            std::vector<Event> out;
            for (auto& d : done) out.push_back(d.get_future().get());
            return out;
        };
        const std::vector<Event> a = runAll(*cpu, 0, 32), b = runAll(*gpu, 0, 32);
        const int hidden = cpu->info().config.hiddenSize;
        for (int i = 0; i < 32; i += 2) {
            QCOMPARE(b[size_t(i)].finish, FinishReason::Stop);
            QCOMPARE(int(b[size_t(i)].embedding.size()), hidden);
            const std::vector<double> ref(a[size_t(i)].embedding.begin(), a[size_t(i)].embedding.end());
            const double err = relError(b[size_t(i)].embedding, ref);
            QVERIFY2(err < 1e-2, qPrintable(QString("input %1: rel err %2").arg(i).arg(err)));
            const std::vector<double> batched(b[size_t(i)].embedding.begin(), b[size_t(i)].embedding.end());
            const std::vector<float> single = runAll(*gpu, i, i + 1)[0].embedding;
            QCOMPARE(int(single.size()), hidden);
            const double alone = relError(single, batched);
            QVERIFY2(alone < 1e-2, qPrintable(QString("input %1 alone: rel err %2").arg(i).arg(alone)));
            if (i == 30) qInfo("CUDA vs CPU rel err %.2e, alone vs batched %.2e", err, alone);
        }
    }

    void errorsAreErrors() {
        auto be = createBackend("cuda", 0);
        // A huge KV cache is an OutOfMemory lmw::Error, not an abort, and the backend keeps working.
        KvCacheShape s;
        s.layers = 80;
        s.kvHeads = 64;
        s.headDim = 128;
        bool oom = false;
        try {
            be->allocKvCache(s, int64_t(1) << 20);
        } catch (const lmw::Error& e) {
            oom = e.code() == ErrorCode::OutOfMemory;
        }
        QVERIFY(oom);
        s.layers = 1;
        s.kvHeads = 1;
        be->allocKvCache(s, 4);
        StepBatch b;
        b.tokens = {1, 2};
        b.positions = {0, 1};
        b.seqStart = {0, 2};
        b.contextLen = {2};
        b.maxBlocks = 1;
        b.blockTable = {0};
        b.invFreq.assign(64, 1.f);
        b.logitRows = {1};
        be->beginStep(b);
        Tensor t = be->alloc(2, 8);
        Tensor bad = be->alloc(3, 8);
        QVERIFY_THROWS_EXCEPTION(lmw::Error, be->add(t, bad));
        std::vector<float> ones(8, 1.f);
        TensorRef nw;
        nw.name = "n";
        nw.dtype = DType::F32;
        nw.shape = {8};
        nw.data = reinterpret_cast<const uint8_t*>(ones.data());
        nw.bytes = ones.size() * 4;
        auto norm = be->loadNorm(nw);
        Tensor h = be->alloc(2, 8);
        QVERIFY_THROWS_EXCEPTION(lmw::Error, be->addRmsNorm(t, bad, h, *norm, 1e-5f));
        QVERIFY_THROWS_EXCEPTION(lmw::Error, be->addRmsNorm(t, h, t, *norm, 1e-5f));  // h aliases x
    }
};

QTEST_APPLESS_MAIN(TestCudaBackend)
#include "test_cuda_backend.moc"
