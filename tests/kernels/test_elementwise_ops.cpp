// Embedding, RMSNorm, add + RMSNorm, rotary, SiLU-mul, add, bias, gather and conversion kernels vs CPU
// references.
#include <QtTest>

#include "gpu_test_util.h"
#include "lmw/kernels/add.h"
#include "lmw/kernels/convert.h"
#include "lmw/kernels/embedding.h"
#include "lmw/kernels/gather_rows.h"
#include "lmw/kernels/rms_norm.h"
#include "lmw/kernels/rope.h"
#include "lmw/kernels/silu_mul.h"

using namespace lmw::test;
using lmw::floatToHalf;
using lmw::halfToFloat;
namespace k = lmw::kernels;

class TestElementwiseOps : public QObject {
    Q_OBJECT
    std::mt19937 m_rng{1234};

private slots:
    void initTestCase() {
        if (!gpuUsableForTests()) QSKIP("no CUDA device");
    }

    void embedding() {
        const int vocab = 97, hidden = 72, T = 9;
        auto table = randomHalfValues(size_t(vocab * hidden), m_rng);
        std::vector<int32_t> tokens = {0, 96, 5, 5, 40, 1, 95, 13, -1};  // -1: out of range -> zeros
        auto dTable = upload(toHalf(table));
        auto dTok = upload(tokens);
        DeviceMem out(size_t(T * hidden) * 2);
        out.poison();
        GPU_OK(k::embeddingGather(out.get(), dTable->get(), dTok->as<int32_t>(), T, hidden, vocab, nullptr));
        auto got = fromHalf(download<uint16_t>(out, size_t(T * hidden)));
        for (int t = 0; t < T; ++t)
            for (int i = 0; i < hidden; ++i) {
                const float want = tokens[size_t(t)] < 0 ? 0.f : table[size_t(tokens[size_t(t)] * hidden + i)];
                QCOMPARE(got[size_t(t * hidden + i)], want);
            }
    }

    void rmsNorm_data() {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::newRow("stories") << 7 << 64;
        QTest::newRow("odd") << 3 << 172;
        QTest::newRow("7b") << 5 << 4096;
    }
    void rmsNorm() {
        QFETCH(int, rows);
        QFETCH(int, cols);
        auto x = randomHalfValues(size_t(rows * cols), m_rng, -3.f, 3.f);
        std::vector<float> w(static_cast<size_t>(cols));
        std::uniform_real_distribution<float> d(0.5f, 1.5f);
        for (auto& v : w) v = d(m_rng);
        auto dx = upload(toHalf(x));
        auto dw = upload(w);
        DeviceMem out(size_t(rows * cols) * 2);
        out.poison();
        GPU_OK(k::rmsNorm(out.get(), cols, dx->get(), cols, dw->as<float>(), rows, cols, cols, 1e-5f, nullptr));
        std::vector<double> ref(size_t(rows * cols));
        for (int r = 0; r < rows; ++r) {
            double ss = 0;
            for (int i = 0; i < cols; ++i) ss += double(x[size_t(r * cols + i)]) * x[size_t(r * cols + i)];
            const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
            for (int i = 0; i < cols; ++i) ref[size_t(r * cols + i)] = x[size_t(r * cols + i)] * inv * w[size_t(i)];
        }
        const double err = relError(fromHalf(download<uint16_t>(out, ref.size())), ref);
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
        // In place (out aliases in) gives the same result.
        GPU_OK(k::rmsNorm(dx->get(), cols, dx->get(), cols, dw->as<float>(), rows, cols, cols, 1e-5f, nullptr));
        QVERIFY(relError(fromHalf(download<uint16_t>(*dx, ref.size())), ref) < 1e-3);
    }

    // Per-head norms on a column view (Qwen3's q/k norms inside qkv): every run of n columns of the view
    // normalized on its own, in place; the columns outside the view untouched.
    void rmsNormStridedGroups_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("headDim");
        QTest::newRow("qwen3-tiny k") << 2 << 32;
        QTest::newRow("qwen3-8b q") << 32 << 128;
        QTest::newRow("wide groups") << 2 << 512;  // above the one-warp-per-group width
    }
    void rmsNormStridedGroups() {
        QFETCH(int, heads);
        QFETCH(int, headDim);
        const int rows = 7, first = 3 * headDim, stride = first + heads * headDim + 2 * headDim;
        const int cols = heads * headDim;
        auto x = randomHalfValues(size_t(rows * stride), m_rng, -3.f, 3.f);
        std::vector<float> w(static_cast<size_t>(headDim));
        std::uniform_real_distribution<float> d(0.5f, 1.5f);
        for (auto& v : w) v = d(m_rng);
        auto dx = upload(toHalf(x));
        auto dw = upload(w);
        void* view = dx->as<uint16_t>() + first;
        GPU_OK(k::rmsNorm(view, stride, view, stride, dw->as<float>(), rows, cols, headDim, 1e-6f, nullptr));
        std::vector<double> ref(x.begin(), x.end());
        for (int r = 0; r < rows; ++r)
            for (int h = 0; h < heads; ++h) {
                const size_t base = size_t(r * stride + first + h * headDim);
                double ss = 0;
                for (int i = 0; i < headDim; ++i) ss += double(x[base + size_t(i)]) * x[base + size_t(i)];
                const double inv = 1.0 / std::sqrt(ss / headDim + 1e-6);
                for (int i = 0; i < headDim; ++i) ref[base + size_t(i)] = x[base + size_t(i)] * inv * w[size_t(i)];
            }
        const auto got = fromHalf(download<uint16_t>(*dx, ref.size()));
        QVERIFY2(relError(got, ref) < 1e-3, qPrintable(QString("rel err %1").arg(relError(got, ref))));
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < stride; ++c)
                if (c < first || c >= first + cols) QCOMPARE(got[size_t(r * stride + c)], x[size_t(r * stride + c)]);
        // A group width that does not divide the columns is refused.
        QVERIFY(k::rmsNorm(view, stride, view, stride, dw->as<float>(), rows, cols, headDim + 1, 1e-6f, nullptr) != 0);
    }

    // The residual add and the norm after it in one kernel: x and h bit-equal to addInPlace followed by
    // rmsNorm, and both near a CPU reference; rows of every awkward width (not multiples of the block).
    void addRmsNorm_data() {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        for (int rows : {1, 3, 16}) {
            QTest::newRow(qPrintable(QString("%1x4104").arg(rows))) << rows << 4096 + 8;
            QTest::newRow(qPrintable(QString("%1x12").arg(rows))) << rows << 12;
            QTest::newRow(qPrintable(QString("%1x130").arg(rows))) << rows << 130;
        }
        QTest::newRow("5x4096") << 5 << 4096;
        QTest::newRow("7x1000") << 7 << 1000;
    }
    void addRmsNorm() {
        QFETCH(int, rows);
        QFETCH(int, cols);
        const size_t n = size_t(rows) * size_t(cols);
        auto x = randomHalfValues(n, m_rng, -3.f, 3.f);
        auto y = randomHalfValues(n, m_rng, -3.f, 3.f);
        std::vector<float> w(static_cast<size_t>(cols));
        std::uniform_real_distribution<float> d(0.5f, 1.5f);
        for (auto& v : w) v = d(m_rng);
        auto dw = upload(w);
        auto dy = upload(toHalf(y));
        // Fused.
        auto dx = upload(toHalf(x));
        DeviceMem h(n * 2);
        h.poison();
        GPU_OK(k::addRmsNorm(dx->get(), dy->get(), h.get(), dw->as<float>(), rows, cols, 1e-5f, nullptr));
        GPU_OK(cudaDeviceSynchronize());
        const auto fusedX = download<uint16_t>(*dx, n), fusedH = download<uint16_t>(h, n);
        // The two ops it replaces.
        auto dx2 = upload(toHalf(x));
        DeviceMem h2(n * 2);
        h2.poison();
        GPU_OK(k::addInPlace(dx2->get(), dy->get(), int64_t(n), nullptr));
        GPU_OK(k::rmsNorm(h2.get(), cols, dx2->get(), cols, dw->as<float>(), rows, cols, cols, 1e-5f, nullptr));
        GPU_OK(cudaDeviceSynchronize());
        const auto plainX = download<uint16_t>(*dx2, n), plainH = download<uint16_t>(h2, n);
        for (size_t i = 0; i < n; ++i) {
            if (fusedX[i] != plainX[i] || fusedH[i] != plainH[i])
                QFAIL(qPrintable(QString("element %1 (row %2): fused x %3 h %4, add + rmsNorm x %5 h %6")
                                     .arg(i).arg(i / size_t(cols)).arg(fusedX[i], 0, 16).arg(fusedH[i], 0, 16)
                                     .arg(plainX[i], 0, 16).arg(plainH[i], 0, 16)));
        }
        // CPU reference: the sum rounded to f16 as the device stores it, the norm in double from it.
        std::vector<double> refX(n), refH(n);
        for (int r = 0; r < rows; ++r) {
            double ss = 0;
            for (int i = 0; i < cols; ++i) {
                const size_t e = size_t(r) * size_t(cols) + size_t(i);
                refX[e] = halfToFloat(floatToHalf(x[e] + y[e]));
                ss += refX[e] * refX[e];
            }
            const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
            for (int i = 0; i < cols; ++i) {
                const size_t e = size_t(r) * size_t(cols) + size_t(i);
                refH[e] = refX[e] * inv * w[size_t(i)];
            }
        }
        for (size_t i = 0; i < n; ++i) QCOMPARE(fusedX[i], floatToHalf(float(refX[i])));
        const double err = relError(fromHalf(fusedH), refH);
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
        // h may not alias x or y.
        QVERIFY(k::addRmsNorm(dx->get(), dy->get(), dx->get(), dw->as<float>(), rows, cols, 1e-5f, nullptr) != 0);
        QVERIFY(k::addRmsNorm(dx->get(), dy->get(), dy->get(), dw->as<float>(), rows, cols, 1e-5f, nullptr) != 0);
    }

    void rope_data() {
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("headDim");
        QTest::newRow("stories") << 8 << 4 << 8;
        QTest::newRow("llama7b") << 32 << 32 << 128;
        QTest::newRow("gqa") << 28 << 4 << 128;
    }
    void rope() {
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, headDim);
        // Two sequences with different inverse frequencies; large positions test the angle accuracy.
        std::vector<int32_t> positions = {0, 1, 2, 4095, 7, 3000};
        std::vector<int32_t> seqOf = {0, 0, 0, 0, 1, 1};
        const int T = int(positions.size()), half = headDim / 2, width = (heads + 2 * kvHeads) * headDim;
        std::vector<float> invFreq(size_t(2 * half));
        for (int i = 0; i < half; ++i) {
            invFreq[size_t(i)] = float(1.0 / std::pow(10000.0, 2.0 * i / headDim));
            invFreq[size_t(half + i)] = invFreq[size_t(i)] / 4.f;
        }
        auto x = randomHalfValues(size_t(T * width), m_rng);
        auto dx = upload(toHalf(x));
        auto dPos = upload(positions);
        auto dSeq = upload(seqOf);
        auto dInv = upload(invFreq);
        GPU_OK(k::ropeRotateHalf(dx->get(), dPos->as<int32_t>(), dSeq->as<int32_t>(), dInv->as<float>(), T, heads,
                                 kvHeads, headDim, nullptr));
        std::vector<double> ref(x.begin(), x.end());
        for (int t = 0; t < T; ++t)
            for (int h = 0; h < heads + kvHeads; ++h)
                for (int i = 0; i < half; ++i) {
                    const float angle = float(positions[size_t(t)]) * invFreq[size_t(seqOf[size_t(t)] * half + i)];
                    const size_t a = size_t(t * width + h * headDim + i), b = a + size_t(half);
                    ref[a] = x[a] * std::cos(double(angle)) - x[b] * std::sin(double(angle));
                    ref[b] = x[b] * std::cos(double(angle)) + x[a] * std::sin(double(angle));
                }
        const double err = relError(fromHalf(download<uint16_t>(*dx, ref.size())), ref);
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
    }

    void siluMulAddBiasGather() {
        const int rows = 6, ffn = 172;
        auto gu = randomHalfValues(size_t(rows * 2 * ffn), m_rng, -6.f, 6.f);
        auto dgu = upload(toHalf(gu));
        DeviceMem out(size_t(rows * ffn) * 2);
        out.poison();
        GPU_OK(k::siluMul(out.get(), dgu->get(), rows, ffn, nullptr));
        std::vector<double> ref(size_t(rows * ffn));
        for (int r = 0; r < rows; ++r)
            for (int f = 0; f < ffn; ++f) {
                const double g = gu[size_t(r * 2 * ffn + f)], u = gu[size_t(r * 2 * ffn + ffn + f)];
                ref[size_t(r * ffn + f)] = g / (1 + std::exp(-g)) * u;
            }
        auto got = fromHalf(download<uint16_t>(out, ref.size()));
        QVERIFY2(relError(got, ref) < 1e-3, "silu_mul");

        // add: out += y, then bias.
        auto y = randomHalfValues(ref.size(), m_rng);
        auto bias = randomHalfValues(size_t(ffn), m_rng);
        auto dy = upload(toHalf(y));
        auto db = upload(toHalf(bias));
        GPU_OK(k::addInPlace(out.get(), dy->get(), int64_t(ref.size()), nullptr));
        GPU_OK(k::addBias(out.get(), db->get(), rows, ffn, nullptr));
        std::vector<double> ref2(ref.size());
        for (size_t i = 0; i < ref.size(); ++i)
            ref2[i] = double(halfToFloat(floatToHalf(float(got[i] + y[i])))) + bias[i % size_t(ffn)];
        auto got2 = fromHalf(download<uint16_t>(out, ref.size()));
        QVERIFY2(relError(got2, ref2) < 1e-3, "add / addBias");

        // gather rows 5, 0, 5.
        std::vector<int32_t> idx = {5, 0, 5};
        auto dIdx = upload(idx);
        DeviceMem g(size_t(3 * ffn) * 2);
        g.poison();
        GPU_OK(k::gatherRows(g.get(), out.get(), dIdx->as<int32_t>(), 3, ffn, nullptr));
        auto gg = fromHalf(download<uint16_t>(g, size_t(3 * ffn)));
        for (int i = 0; i < 3; ++i)
            for (int f = 0; f < ffn; ++f) QCOMPARE(gg[size_t(i * ffn + f)], got2[size_t(idx[size_t(i)] * ffn + f)]);
    }

    void convert() {
        const int n = 1000;
        std::vector<float> f(n);
        std::uniform_real_distribution<float> d(-100.f, 100.f);
        for (auto& v : f) v = d(m_rng);
        std::vector<uint16_t> bf(n);
        for (int i = 0; i < n; ++i) bf[size_t(i)] = lmw::floatToBf16(f[size_t(i)]);
        auto df = upload(f);
        auto dbf = upload(bf);
        DeviceMem h(size_t(n) * 2), h2(size_t(n) * 2);
        DeviceMem back(size_t(n) * 4);
        GPU_OK(k::convertToHalf(h.get(), df->get(), k::SrcType::F32, n, nullptr));
        GPU_OK(k::convertToHalf(h2.get(), dbf->get(), k::SrcType::BF16, n, nullptr));
        GPU_OK(k::convertToFloat(back.as<float>(), h.get(), k::SrcType::F16, n, nullptr));
        auto gh = download<uint16_t>(h, size_t(n));
        auto gh2 = download<uint16_t>(h2, size_t(n));
        auto gb = download<float>(back, size_t(n));
        for (int i = 0; i < n; ++i) {
            QCOMPARE(gh[size_t(i)], lmw::floatToHalf(f[size_t(i)]));  // round to nearest even, like the host
            QCOMPARE(gh2[size_t(i)], lmw::floatToHalf(lmw::bf16ToFloat(bf[size_t(i)])));
            QCOMPARE(gb[size_t(i)], lmw::halfToFloat(gh[size_t(i)]));
        }
    }
};

QTEST_APPLESS_MAIN(TestElementwiseOps)
#include "test_elementwise_ops.moc"
