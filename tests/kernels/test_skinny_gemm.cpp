// The 16-bit skinny GEMM (M <= 16) against an f64 reference, in f16 and bf16, with N and K tails; the
// SiLU-input variant bit for bit against siluMul + skinnyGemm; rows bitwise independent of the batch; the
// overlapped launch keeps stream order in a chain.
#include <QtTest>

#include "gpu_test_util.h"
#include "lmw/kernels/silu_mul.h"
#include "lmw/kernels/skinny_gemm.h"

using namespace lmw::test;
namespace k = lmw::kernels;
using k::DType16;

namespace {
// Host values already rounded to `type`, so the reference sees exactly what the device sees.
std::vector<float> randomValues(size_t n, std::mt19937& rng, DType16 type, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        const float f = d(rng);
        x = type == DType16::F16 ? lmw::halfToFloat(lmw::floatToHalf(f)) : lmw::bf16ToFloat(lmw::floatToBf16(f));
    }
    return v;
}
std::vector<uint16_t> toBits(const std::vector<float>& v, DType16 type) {
    std::vector<uint16_t> b(v.size());
    for (size_t i = 0; i < v.size(); ++i) b[i] = type == DType16::F16 ? lmw::floatToHalf(v[i]) : lmw::floatToBf16(v[i]);
    return b;
}
float fromBits(uint16_t b, DType16 type) { return type == DType16::F16 ? lmw::halfToFloat(b) : lmw::bf16ToFloat(b); }

const char* typeName(DType16 t) { return t == DType16::F16 ? "f16" : "bf16"; }

constexpr int kGuard = 64;  // poisoned elements after the output that nothing may write

struct Problem {
    DType16 type = DType16::F16;
    int m = 0;
    int64_t n = 0, kk = 0;
    std::vector<float> x, w;  // x [m][kk] (the GEMM input, act for the SiLU variant), w [n][kk]
};

Problem randomProblem(DType16 type, int m, int64_t n, int64_t kk, std::mt19937& rng) {
    Problem p;
    p.type = type;
    p.m = m;
    p.n = n;
    p.kk = kk;
    p.x = randomValues(size_t(m * kk), rng, type);
    p.w = randomValues(size_t(n * kk), rng, type);
    return p;
}

// Runs skinnyGemm on (xBits, w) and returns the m x n output bits; checks the guard stayed poisoned.
std::vector<uint16_t> runGemm(const std::vector<uint16_t>& xBits, const DeviceMem& dw, DType16 type, int m, int64_t n,
                              int64_t kk, bool silu, bool& ok, k::SkinnyGemmTuning tuning = k::kSkinnyDefaultTuning) {
    ok = false;
    auto dx = upload(xBits);
    DeviceMem out((size_t(m * n) + kGuard) * 2);
    out.poison();
    if (k::skinnyGemmTuned(out.get(), dx->get(), dw.get(), m, n, kk, type, silu, tuning, nullptr) != 0) return {};
    if (cudaDeviceSynchronize() != cudaSuccess) return {};
    auto all = download<uint16_t>(out, size_t(m * n) + kGuard);
    for (int i = 0; i < kGuard; ++i)
        if (all[size_t(m * n) + size_t(i)] != 0xffff) return {};
    all.resize(size_t(m * n));
    ok = true;
    return all;
}

// Every output within one 16-bit ulp of the f64 result plus the f32 accumulation error.
QString checkAgainstReference(const Problem& p, const std::vector<uint16_t>& got) {
    for (int r = 0; r < p.m; ++r)
        for (int64_t c = 0; c < p.n; ++c) {
            double ref = 0, mag = 0;
            const float* xr = &p.x[size_t(r * p.kk)];
            const float* wr = &p.w[size_t(c * p.kk)];
            for (int64_t i = 0; i < p.kk; ++i) {
                ref += double(xr[i]) * wr[i];
                mag += std::fabs(double(xr[i]) * wr[i]);
            }
            const float v = fromBits(got[size_t(r * p.n + c)], p.type);
            const double tol = ulp16(ref, p.type == DType16::BF16) + std::ldexp(mag, -20);
            if (!std::isfinite(v) || std::fabs(v - ref) > tol)
                return QString("%1 m %2 n %3 k %4: out[%5][%6] = %7, reference %8 (tol %9)")
                    .arg(typeName(p.type)).arg(p.m).arg(p.n).arg(p.kk).arg(r).arg(c).arg(v).arg(ref).arg(tol);
        }
    return {};
}
}  // namespace

class TestSkinnyGemm : public QObject {
    Q_OBJECT
    std::mt19937 m_rng{20261201};

private slots:
    void initTestCase() {
        if (!gpuUsableForTests()) QSKIP("no CUDA device");
    }

    void supports() {
        QVERIFY(k::skinnyGemmSupports(1, 1, 8));
        QVERIFY(k::skinnyGemmSupports(16, 128256, 4096));
        QVERIFY(!k::skinnyGemmSupports(0, 16, 64));
        QVERIFY(!k::skinnyGemmSupports(17, 16, 64));
        QVERIFY(!k::skinnyGemmSupports(4, 0, 64));
        QVERIFY(!k::skinnyGemmSupports(4, 16, 0));
        QVERIFY(!k::skinnyGemmSupports(4, 16, 12));
        // Rejected calls launch nothing: the output stays poisoned.
        DeviceMem x(64 * 2 + 16), w(16 * 64 * 2), out(16 * 2);
        out.poison();
        QVERIFY(k::skinnyGemm(out.get(), x.get(), w.get(), 17, 16, 64, DType16::F16, false, nullptr) != 0);
        QVERIFY(k::skinnyGemm(out.get(), static_cast<char*>(x.get()) + 8, w.get(), 1, 16, 64, DType16::F16, false,
                              nullptr) != 0);
        QVERIFY(k::skinnyGemmTuned(out.get(), x.get(), w.get(), 1, 16, 64, DType16::F16, false, {3, 3}, nullptr) != 0);
        GPU_OK(cudaDeviceSynchronize());
        for (uint16_t b : download<uint16_t>(out, 16)) QCOMPARE(b, uint16_t(0xffff));
    }

    void matchesReference_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("kk");
        for (DType16 t : {DType16::F16, DType16::BF16}) {
            for (int m : {1, 2, 3, 8, 9, 16})
                for (int n : {1, 17, 130})
                    for (int kk : {8, 136, 4096, 11008})
                        QTest::addRow("%s m%d n%d k%d", typeName(t), m, n, kk) << int(t) << m << n << kk;
            // 4096 + 16 rows: many CTAs and an N that is not a multiple of 128.
            for (int m : {1, 3, 16})
                for (int kk : {8, 136, 4096})
                    QTest::addRow("%s m%d n4112 k%d", typeName(t), m, kk) << int(t) << m << 4112 << kk;
            for (int m : {1, 9})
                QTest::addRow("%s m%d n4112 k11008", typeName(t), m) << int(t) << m << 4112 << 11008;
        }
    }
    void matchesReference() {
        QFETCH(int, type);
        QFETCH(int, m);
        QFETCH(int, n);
        QFETCH(int, kk);
        const auto t = DType16(type);
        const Problem p = randomProblem(t, m, n, kk, m_rng);
        auto dw = upload(toBits(p.w, t));
        bool ok = false;
        const auto got = runGemm(toBits(p.x, t), *dw, t, m, n, kk, false, ok);
        QVERIFY2(ok, "launch failed or wrote past the output");
        const QString err = checkAgainstReference(p, got);
        QVERIFY2(err.isEmpty(), qPrintable(err));
    }

    // gateUp [M][2K] through the fused kernel equals siluMul then the plain kernel, bit for bit (f16, the
    // type siluMul takes); gates span large negative values where a careless silu would give NaN.
    void siluInputBitEqual_data() {
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("kk");
        for (int m : {1, 3, 9, 16})
            for (int n : {17, 130})
                for (int kk : {136, 4096}) QTest::addRow("m%d n%d k%d", m, n, kk) << m << n << kk;
        QTest::newRow("m2 n4112 k11008") << 2 << 4112 << 11008;
    }
    void siluInputBitEqual() {
        QFETCH(int, m);
        QFETCH(int, n);
        QFETCH(int, kk);
        const DType16 t = DType16::F16;
        std::vector<float> gu = randomValues(size_t(m) * 2 * kk, m_rng, t, -3.f, 3.f);
        for (size_t i = 0; i < gu.size(); i += 97) gu[i] = lmw::halfToFloat(lmw::floatToHalf(-90.f));
        const std::vector<float> w = randomValues(size_t(n) * kk, m_rng, t);
        auto dgu = upload(toBits(gu, t));
        auto dw = upload(toBits(w, t));
        DeviceMem act(size_t(m * kk) * 2);
        act.poison();
        GPU_OK(k::siluMul(act.get(), dgu->get(), m, kk, nullptr));
        const auto actBits = download<uint16_t>(act, size_t(m * kk));
        GPU_OK(cudaDeviceSynchronize());
        bool ok1 = false, ok2 = false;
        const auto unfused = runGemm(actBits, *dw, t, m, n, kk, false, ok1);
        const auto fused = runGemm(toBits(gu, t), *dw, t, m, n, kk, true, ok2);
        QVERIFY(ok1 && ok2);
        for (size_t i = 0; i < fused.size(); ++i)
            if (fused[i] != unfused[i])
                QFAIL(qPrintable(QString("out[%1]: fused %2, siluMul + gemm %3").arg(i).arg(fused[i]).arg(unfused[i])));
        // And both are the GEMM of the activations siluMul wrote.
        Problem p;
        p.type = t;
        p.m = m;
        p.n = n;
        p.kk = kk;
        p.w = w;
        p.x.resize(actBits.size());
        for (size_t i = 0; i < actBits.size(); ++i) p.x[i] = lmw::halfToFloat(actBits[i]);
        const QString err = checkAgainstReference(p, fused);
        QVERIFY2(err.isEmpty(), qPrintable(err));
    }

    // bf16 has no siluMul kernel to compare with: the fused result against silu(g) * u computed here
    // (f32, rounded to bf16) and the f64 GEMM of that.
    void siluInputBf16() {
        const DType16 t = DType16::BF16;
        for (int m : {1, 3, 16}) {
            const int n = 130, kk = 4096;
            const std::vector<float> gu = randomValues(size_t(m) * 2 * kk, m_rng, t, -4.f, 4.f);
            Problem p = randomProblem(t, m, n, kk, m_rng);
            for (int r = 0; r < m; ++r)
                for (int i = 0; i < kk; ++i) {
                    const float g = gu[size_t(r) * 2 * kk + i], u = gu[size_t(r) * 2 * kk + kk + i];
                    p.x[size_t(r * kk + i)] = lmw::bf16ToFloat(lmw::floatToBf16(g / (1.f + std::exp(-g)) * u));
                }
            auto dw = upload(toBits(p.w, t));
            bool ok = false;
            const auto got = runGemm(toBits(gu, t), *dw, t, m, n, kk, true, ok);
            QVERIFY(ok);
            const QString err = checkAgainstReference(p, got);
            QVERIFY2(err.isEmpty(), qPrintable(err));
        }
    }

    // Row r of an M-row call is bitwise the M = 1 call on x[r], for both token tiles and both variants.
    void rowsIndependentOfBatch_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<bool>("silu");
        QTest::newRow("f16") << int(DType16::F16) << false;
        QTest::newRow("bf16") << int(DType16::BF16) << false;
        QTest::newRow("f16 silu") << int(DType16::F16) << true;
        QTest::newRow("bf16 silu") << int(DType16::BF16) << true;
    }
    void rowsIndependentOfBatch() {
        QFETCH(int, type);
        QFETCH(bool, silu);
        const auto t = DType16(type);
        const int64_t n = 130, kk = 4104;  // k not a multiple of the 32-wide chunk
        const int64_t xCols = silu ? 2 * kk : kk;
        const std::vector<uint16_t> x = toBits(randomValues(size_t(16 * xCols), m_rng, t), t);
        auto dw = upload(toBits(randomValues(size_t(n * kk), m_rng, t), t));
        bool ok = false;
        std::vector<std::vector<uint16_t>> single;
        for (int r = 0; r < 16; ++r) {
            std::vector<uint16_t> row(x.begin() + r * xCols, x.begin() + (r + 1) * xCols);
            single.push_back(runGemm(row, *dw, t, 1, n, kk, silu, ok));
            QVERIFY(ok);
        }
        for (int m : {2, 3, 8, 9, 16}) {
            std::vector<uint16_t> xs(x.begin(), x.begin() + m * xCols);
            const auto got = runGemm(xs, *dw, t, m, n, kk, silu, ok);
            QVERIFY(ok);
            for (int r = 0; r < m; ++r)
                for (int64_t c = 0; c < n; ++c)
                    if (got[size_t(r * n + c)] != single[size_t(r)][size_t(c)])
                        QFAIL(qPrintable(QString("m %1: out[%2][%3] differs from the m = 1 call").arg(m).arg(r).arg(c)));
        }
    }

    // The overlapped (programmatic dependent) launch keeps stream order: a ping-pong chain where every GEMM
    // reads the previous one's output and overwrites the buffer the previous one read gives, on a stream
    // and replayed from a CUDA graph, bit for bit what ordinary launches give. A GEMM that read x before
    // its predecessor finished would see poison or the value two steps back; one that wrote early would
    // change its predecessor's input.
    void overlappedChainKeepsOrder_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("m");
        for (DType16 t : {DType16::F16, DType16::BF16})
            for (int m : {1, 3, 16}) QTest::addRow("%s m%d", typeName(t), m) << int(t) << m;
    }
    void overlappedChainKeepsOrder() {
        QFETCH(int, type);
        QFETCH(int, m);
        const auto t = DType16(type);
        const int64_t kk = 4104;  // square, so each output is the next input; 257 CTAs, not a chunk multiple
        const int steps = 9;
        const float a = float(std::sqrt(3.0 / double(kk)));  // keeps the values' spread over the chain
        auto w0 = upload(toBits(randomValues(size_t(kk * kk), m_rng, t, -a, a), t));
        auto w1 = upload(toBits(randomValues(size_t(kk * kk), m_rng, t, -a, a), t));
        const std::vector<uint16_t> x = toBits(randomValues(size_t(m * kk), m_rng, t), t);
        DeviceMem bufA(size_t(m * kk) * 2), bufB(size_t(m * kk) * 2);
        cudaStream_t st = nullptr;
        GPU_OK(cudaStreamCreate(&st));
        // Runs the chain from x with `tu`; the result of the last step (step i writes A for odd i, B for even).
        auto chain = [&](const k::SkinnyGemmTuning& tu, bool graph, bool& ok) {
            ok = false;
            std::vector<uint16_t> none;
            if (cudaMemcpy(bufA.get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice) != cudaSuccess) return none;
            if (cudaMemset(bufB.get(), 0xff, bufB.bytes()) != cudaSuccess) return none;
            auto enqueue = [&]() {
                for (int i = 0; i < steps; ++i) {
                    void* in = i % 2 ? bufB.get() : bufA.get();
                    void* out = i % 2 ? bufA.get() : bufB.get();
                    const void* w = i % 2 ? w1->get() : w0->get();
                    if (k::skinnyGemmTuned(out, in, w, m, kk, kk, t, false, tu, st) != 0) return false;
                }
                return true;
            };
            if (graph) {
                cudaGraph_t g = nullptr;
                cudaGraphExec_t ge = nullptr;
                if (cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return none;
                const bool queued = enqueue();
                if (cudaStreamEndCapture(st, &g) != cudaSuccess || !queued) return none;
                const bool launched = cudaGraphInstantiate(&ge, g, 0) == cudaSuccess && cudaGraphLaunch(ge, st) == cudaSuccess &&
                                      cudaStreamSynchronize(st) == cudaSuccess;
                if (ge) cudaGraphExecDestroy(ge);
                cudaGraphDestroy(g);
                if (!launched) return none;
            } else if (!enqueue() || cudaStreamSynchronize(st) != cudaSuccess) {
                return none;
            }
            ok = true;
            return download<uint16_t>(steps % 2 ? bufB : bufA, size_t(m * kk));
        };
        bool ok = false;
        const auto plain = chain({8, 4, false, 0}, false, ok);
        QVERIFY2(ok, "plain chain failed");
        for (uint16_t b : plain) QVERIFY2(std::isfinite(fromBits(b, t)), "the chain's values are not finite");
        const k::SkinnyGemmTuning overlapped[] = {{8, 4, true, 0}, {8, 4, true, 4}, {16, 2, true, 2}, {8, 2, true, 1, 2}};
        for (const auto& tu : overlapped)
            for (bool graph : {false, true}) {
                const auto got = chain(tu, graph, ok);
                const QString what = QString("tiles %1 %2x%3 +L2 %4 %5")
                                         .arg(tu.tiles).arg(tu.warps).arg(tu.unroll).arg(tu.l2Blocks).arg(graph ? "graph" : "stream");
                QVERIFY2(ok, qPrintable(what + ": launch failed"));
                if (tu.warps == 8 && tu.unroll == 4) {  // the same k split sums in the same order: bit for bit
                    for (size_t i = 0; i < got.size(); ++i)
                        if (got[i] != plain[i])
                            QFAIL(qPrintable(what + QString(": out[%1] %2, plain launches %3").arg(i).arg(got[i]).arg(plain[i])));
                }
                // Other k splits sum in another order: against plain the 16-bit rounding may differ, not more.
                for (size_t i = 0; i < got.size(); ++i) {
                    const double p = fromBits(plain[i], t), g = fromBits(got[i], t);
                    if (!(std::fabs(p - g) <= 0.05 + 0.05 * std::fabs(p)))
                        QFAIL(qPrintable(what + QString(": out[%1] %2, plain launches %3").arg(i).arg(g).arg(p)));
                }
            }
        GPU_OK(cudaStreamDestroy(st));
    }

    // The launch shapes the benchmark sweeps are correct too (the sweep must time right kernels).
    void tunings() {
        const k::SkinnyGemmTuning all[] = {{8, 4},          {8, 8},          {4, 8},          {16, 2},
                                           {16, 4},         {8, 2, true, 0, 2}, {16, 2, true, 0, 2}, {4, 4, true, 0, 2},
                                           {8, 4, false, 0}, {8, 4, true, 3}, {16, 2, false, 5, 2}};
        for (DType16 t : {DType16::F16, DType16::BF16})
            for (int m : {3, 16})
                for (int64_t n : {130, 4112}) {  // 130: the last 32-row tile pair is half empty
                    const Problem p = randomProblem(t, m, n, 4104, m_rng);
                    auto dw = upload(toBits(p.w, t));
                    for (const auto& tu : all) {
                        const QString what = QString("tuning tiles %1 %2x%3 overlap %4 +L2 %5 n %6")
                                                 .arg(tu.tiles).arg(tu.warps).arg(tu.unroll).arg(tu.overlap).arg(tu.l2Blocks).arg(n);
                        bool ok = false;
                        const auto got = runGemm(toBits(p.x, t), *dw, t, m, p.n, p.kk, false, ok, tu);
                        QVERIFY2(ok, qPrintable(what));
                        const QString err = checkAgainstReference(p, got);
                        QVERIFY2(err.isEmpty(), qPrintable(what + ": " + err));
                    }
                    // The k order is warps x unroll only: two tiles per CTA or one, overlapped or not, same bits.
                    bool ok1 = false, ok2 = false;
                    const auto one = runGemm(toBits(p.x, t), *dw, t, m, p.n, p.kk, false, ok1, {16, 2, false, 0, 1});
                    const auto two = runGemm(toBits(p.x, t), *dw, t, m, p.n, p.kk, false, ok2, {16, 2, true, 2, 2});
                    QVERIFY(ok1 && ok2);
                    QVERIFY2(one == two, "16x2 with two tiles per CTA differs from one tile");
                }
        // Tunings that are not built launch nothing.
        DeviceMem x(64 * 2), w(16 * 64 * 2), out(16 * 2);
        for (const k::SkinnyGemmTuning bad : {k::SkinnyGemmTuning{8, 4, true, 0, 3}, k::SkinnyGemmTuning{8, 4, true, -1},
                                              k::SkinnyGemmTuning{8, 4, true, 17}, k::SkinnyGemmTuning{7, 104}})
            QVERIFY(k::skinnyGemmTuned(out.get(), x.get(), w.get(), 1, 16, 64, DType16::F16, false, bad, nullptr) != 0);
    }
};

QTEST_APPLESS_MAIN(TestSkinnyGemm)
#include "test_skinny_gemm.moc"
