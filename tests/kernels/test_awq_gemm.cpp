// W4A16: AutoAWQ tensors -> unpack (segments at arbitrary offsets) -> pack -> GEMM, and both dequantizers,
// against a CPU reference computed from the AutoAWQ definition.
#include <QtTest>

#include "gpu_test_util.h"
#include "lmw/kernels/awq_gemm.h"

using namespace lmw::test;
namespace k = lmw::kernels;

class TestAwqGemm : public QObject {
    Q_OBJECT
    std::mt19937 m_rng{7};

private slots:
    void initTestCase() {
        if (!gpuUsableForTests()) QSKIP("no CUDA device");
    }

    void gemm_data() {
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("kk");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("group");
        for (int m : {1, 3, 4, 8, 9, 16, 17, 40})
            QTest::newRow(qPrintable(QString("m%1-1024x768-g128").arg(m))) << m << 1024 << 768 << 128;
        QTest::newRow("m5-4096x4096-g128") << 5 << 4096 << 4096 << 128;
        QTest::newRow("m2-11008x512-g128") << 2 << 11008 << 512 << 128;
        QTest::newRow("m6-256x96-g64") << 6 << 256 << 96 << 64;
        QTest::newRow("m12-512x64-g64") << 12 << 512 << 64 << 64;
        QTest::newRow("m33-512x128-g128") << 33 << 512 << 128 << 128;
        QTest::newRow("m64-1024x256-g128") << 64 << 1024 << 256 << 128;
        QTest::newRow("m100-1024x256-g128") << 100 << 1024 << 256 << 128;
    }

    void gemm() {
        QFETCH(int, m);
        QFETCH(int, kk);
        QFETCH(int, n);
        QFETCH(int, group);
        const int64_t K = kk, N = n, G = K / group;
        // Two sources placed in swapped order with a source offset that is not a multiple of 8:
        // out rows [0, n1) <- source B columns [3, 3+n1); out rows [n1, N) <- source A columns [0, N-n1).
        const int64_t n1 = N / 2 + 8;
        AwqLayer a = randomAwq(K, N - n1, group, m_rng);
        AwqLayer b = randomAwq(K, n1 + 8, group, m_rng);
        QVERIFY(k::awqGemmSupports(N, K, group));

        DeviceMem codes(size_t(N * K)), zeros(size_t(N * G)), scales(size_t(N * G) * 2);
        auto aq = upload(a.qweight), az = upload(a.qzeros), as = upload(a.scales);
        auto bq = upload(b.qweight), bz = upload(b.qzeros), bsc = upload(b.scales);
        GPU_OK(k::awqUnpackSegment(codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), bq->as<int32_t>(),
                                   bz->as<int32_t>(), bsc->get(), K, b.n, group, 3, n1, 0, N, nullptr));
        GPU_OK(k::awqUnpackSegment(codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), aq->as<int32_t>(),
                                   az->as<int32_t>(), as->get(), K, a.n, group, 0, N - n1, n1, N, nullptr));
        std::vector<float> W(size_t(N * K));
        for (int64_t r = 0; r < N; ++r)
            for (int64_t c = 0; c < K; ++c)
                W[size_t(r * K + c)] = r < n1 ? b.w[size_t((r + 3) * K + c)] : a.w[size_t((r - n1) * K + c)];

        DeviceMem qw(size_t(N * K / 2)), sz(size_t(N * G) * 4);
        GPU_OK(k::awqPack(qw.as<uint32_t>(), sz.get(), codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), N, K,
                          group, nullptr));

        // Both dequantizers reproduce W exactly (same f16 operations).
        DeviceMem wd(size_t(N * K) * 2), wp(size_t(N * K) * 2);
        wd.poison();
        wp.poison();
        GPU_OK(k::awqDequantIntermediate(wd.get(), codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), N, K, group, nullptr));
        GPU_OK(k::awqDequantPacked(wp.get(), qw.as<uint32_t>(), sz.get(), N, K, group, nullptr));
        auto gd = fromHalf(download<uint16_t>(wd, W.size()));
        auto gp = fromHalf(download<uint16_t>(wp, W.size()));
        int bad = 0;
        for (size_t i = 0; i < W.size(); ++i) bad += (gd[i] != W[i]) + (gp[i] != W[i]);
        QCOMPARE(bad, 0);

        auto x = randomHalfValues(size_t(m * K), m_rng);
        auto dx = upload(toHalf(x));
        DeviceMem out(size_t(m * N) * 2);
        out.poison();
        GPU_OK(k::awqGemm(out.get(), dx->get(), qw.as<uint32_t>(), sz.get(), m, N, K, group, nullptr));
        GPU_OK(cudaDeviceSynchronize());
        std::vector<double> ref(size_t(m * N));
        for (int i = 0; i < m; ++i)
            for (int64_t r = 0; r < N; ++r) {
                double s = 0;
                for (int64_t c = 0; c < K; ++c) s += double(x[size_t(i * K + c)]) * W[size_t(r * K + c)];
                ref[size_t(i * N + r)] = s;
            }
        const double err = relError(fromHalf(download<uint16_t>(out, ref.size())), ref);
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
    }

    void rejectsUnsupportedShapes() {
        QVERIFY(!k::awqGemmSupports(40, 128, 128));   // n % 16
        QVERIFY(!k::awqGemmSupports(64, 96, 32));     // k % 64
        QVERIFY(!k::awqGemmSupports(64, 128, 32));    // group % 64
        QVERIFY(k::awqGemmSupports(4096, 11008, 128));
        QVERIFY(k::awqGemm(nullptr, nullptr, nullptr, nullptr, 1, 40, 128, 128, nullptr) != 0);
    }
};

QTEST_APPLESS_MAIN(TestAwqGemm)
#include "test_awq_gemm.moc"
