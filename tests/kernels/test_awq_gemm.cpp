// W4A16: AutoAWQ tensors -> unpack (segments at arbitrary offsets) -> pack -> GEMM, and both dequantizers,
// against a CPU reference computed from the AutoAWQ definition.
#include <QtTest>

#include <algorithm>
#include <memory>

#include "gpu_test_util.h"
#include "lmw/kernels/awq_gemm.h"
#include "lmw/kernels/silu_mul.h"

using namespace lmw::test;
namespace k = lmw::kernels;

namespace {
// out[i][r] = sum_c x[i][c] * W[r][c] in double: the definition every W4A16 kernel is checked against.
std::vector<double> referenceGemm(const std::vector<float>& x, const std::vector<float>& W, int64_t m, int64_t N,
                                  int64_t K) {
    std::vector<double> ref(size_t(m * N));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < N; ++r) {
            double s = 0;
            for (int64_t c = 0; c < K; ++c) s += double(x[size_t(i * K + c)]) * W[size_t(r * K + c)];
            ref[size_t(i * N + r)] = s;
        }
    return ref;
}

// One random AWQ layer unpacked and packed on the device, with its dequantized weight on the host.
struct PackedLayer {
    int64_t n = 0, k = 0;
    int g = 0;
    std::unique_ptr<DeviceMem> qw, sz;
    std::vector<float> w;  // [n][k]
};
PackedLayer packedLayer(int64_t K, int64_t N, int g, std::mt19937& rng) {
    AwqLayer a = randomAwq(K, N, g, rng);
    PackedLayer p;
    p.n = N;
    p.k = K;
    p.g = g;
    const int64_t G = K / g;
    DeviceMem codes(size_t(N * K)), zeros(size_t(N * G)), scales(size_t(N * G) * 2);
    auto aq = upload(a.qweight), az = upload(a.qzeros), as = upload(a.scales);
    p.qw = std::make_unique<DeviceMem>(size_t(N * K / 2));
    p.sz = std::make_unique<DeviceMem>(size_t(N * G) * 4);
    if (k::awqUnpackSegment(codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), aq->as<int32_t>(),
                            az->as<int32_t>(), as->get(), K, N, g, 0, N, 0, N, nullptr) ||
        k::awqPack(p.qw->as<uint32_t>(), p.sz->get(), codes.as<uint8_t>(), zeros.as<uint8_t>(), scales.get(), N, K, g,
                   nullptr) ||
        cudaDeviceSynchronize())
        p.qw.reset();  // the caller checks
    p.w = std::move(a.w);
    return p;
}

}  // namespace

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
        const auto ref = referenceGemm(x, W, m, N, K);
        const double err = relError(fromHalf(download<uint16_t>(out, ref.size())), ref);
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
    }

    // The decode GEMV (M <= 16) against the double reference, for the default configuration and both
    // tile groupings; the shapes stress the tails: K not a multiple of the 16 warps' 64-wide chunks
    // (11008 = 172 chunks, 192, 64), an odd tile count (half-full groups of two), fewer tiles than SMs,
    // and more tile groups than SMs (every CTA walks several: 22016 / 16 = 1376 tiles).
    void gemv_data() {
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("kk");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("group");
        QTest::addColumn<int>("tiles");  // 0 = default config
        for (int m : {1, 3, 8, 9, 16}) {
            QTest::newRow(qPrintable(QString("m%1-4096x4096").arg(m))) << m << 4096 << 4096 << 128 << 0;
            QTest::newRow(qPrintable(QString("m%1-11008x528").arg(m))) << m << 11008 << 528 << 128 << 0;
            QTest::newRow(qPrintable(QString("m%1-192x80-g64-t1").arg(m))) << m << 192 << 80 << 64 << 1;
            QTest::newRow(qPrintable(QString("m%1-192x80-g64-t2").arg(m))) << m << 192 << 80 << 64 << 2;
        }
        QTest::newRow("m1-1024x22016") << 1 << 1024 << 22016 << 128 << 0;
        QTest::newRow("m16-1024x22016-t1") << 16 << 1024 << 22016 << 128 << 1;
        QTest::newRow("m1-11008x528-t2") << 1 << 11008 << 528 << 128 << 2;
        QTest::newRow("m16-11008x528-t1") << 16 << 11008 << 528 << 128 << 1;
        QTest::newRow("m5-4096x48-t2") << 5 << 4096 << 48 << 128 << 2;
        QTest::newRow("m2-64x16-g64") << 2 << 64 << 16 << 64 << 0;
        QTest::newRow("m12-1024x16-g256-t2") << 12 << 1024 << 16 << 256 << 2;
        // Groups that do not divide 16 chunks (1024 values): the scale cursor recomputes the group per
        // step, by division (192 = 3 chunks) and by shift (2048 = 32 chunks), over many tile groups.
        QTest::newRow("m1-3456x8448-g192") << 1 << 3456 << 8448 << 192 << 0;
        QTest::newRow("m9-3456x8448-g192-t1") << 9 << 3456 << 8448 << 192 << 1;
        QTest::newRow("m3-4096x8448-g2048") << 3 << 4096 << 8448 << 2048 << 0;
    }

    void gemv() {
        QFETCH(int, m);
        QFETCH(int, kk);
        QFETCH(int, n);
        QFETCH(int, group);
        QFETCH(int, tiles);
        const int64_t K = kk, N = n;
        QVERIFY(k::awqGemvSupports(m, N, K, group));
        const k::AwqGemvConfig cfg{tiles};
        PackedLayer L = packedLayer(K, N, group, m_rng);
        QVERIFY(L.qw);
        auto x = randomHalfValues(size_t(m * K), m_rng);
        auto dx = upload(toHalf(x));
        DeviceMem out(size_t(m * N) * 2);
        out.poison();
        GPU_OK(k::awqGemv(out.get(), dx->get(), L.qw->as<uint32_t>(), L.sz->get(), m, N, K, group, nullptr, &cfg));
        GPU_OK(cudaDeviceSynchronize());
        const auto first = download<uint16_t>(out, size_t(m * N));
        const double err = relError(fromHalf(first), referenceGemm(x, L.w, m, N, K));
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
        // Again into a poisoned output: the sums are deterministic.
        out.poison();
        GPU_OK(k::awqGemv(out.get(), dx->get(), L.qw->as<uint32_t>(), L.sz->get(), m, N, K, group, nullptr, &cfg));
        GPU_OK(cudaDeviceSynchronize());
        QVERIFY(download<uint16_t>(out, size_t(m * N)) == first);
        // x staged in shared memory or read from L1/L2 per step: the same values, the same sums.
        for (int stage : {0, 1}) {
            const k::AwqGemvConfig sc{tiles, stage};
            out.poison();
            GPU_OK(k::awqGemv(out.get(), dx->get(), L.qw->as<uint32_t>(), L.sz->get(), m, N, K, group, nullptr, &sc));
            GPU_OK(cudaDeviceSynchronize());
            QVERIFY2(download<uint16_t>(out, size_t(m * N)) == first, qPrintable(QString("stageX %1").arg(stage)));
        }
    }

    // Row r of a batch of 16 (and of 9) is bit for bit the result of that row alone, whatever the tile
    // grouping: the promise of backend.h for the decode path.
    void gemvRowIndependence_data() {
        QTest::addColumn<int>("kk");
        QTest::addColumn<int>("n");
        QTest::newRow("11008x528") << 11008 << 528;
        QTest::newRow("4096x4096") << 4096 << 4096;
        QTest::newRow("1024x80") << 1024 << 80;
    }

    void gemvRowIndependence() {
        QFETCH(int, kk);
        QFETCH(int, n);
        const int64_t K = kk, N = n;
        const int g = 128;
        PackedLayer L = packedLayer(K, N, g, m_rng);
        QVERIFY(L.qw);
        auto x = randomHalfValues(size_t(16 * K), m_rng);
        auto dx = upload(toHalf(x));
        DeviceMem out16(size_t(16 * N) * 2), out9(size_t(9 * N) * 2), out1(size_t(N) * 2);
        out16.poison();
        out9.poison();
        GPU_OK(k::awqGemv(out16.get(), dx->get(), L.qw->as<uint32_t>(), L.sz->get(), 16, N, K, g, nullptr));
        GPU_OK(k::awqGemv(out9.get(), dx->get(), L.qw->as<uint32_t>(), L.sz->get(), 9, N, K, g, nullptr));
        const auto all = download<uint16_t>(out16, size_t(16 * N)), nine = download<uint16_t>(out9, size_t(9 * N));
        QVERIFY(std::equal(nine.begin(), nine.end(), all.begin()));
        for (int tiles : {1, 2}) {
            const k::AwqGemvConfig cfg{tiles};
            out16.poison();
            GPU_OK(k::awqGemv(out16.get(), dx->get(), L.qw->as<uint32_t>(), L.sz->get(), 16, N, K, g, nullptr, &cfg));
            QVERIFY2(download<uint16_t>(out16, size_t(16 * N)) == all, qPrintable(QString("tiles %1").arg(tiles)));
        }
        for (int r = 0; r < 16; ++r) {
            for (int tiles : {1, 2}) {
                const k::AwqGemvConfig cfg{tiles};
                out1.poison();
                const auto* xr = static_cast<const uint16_t*>(dx->get()) + r * K;
                GPU_OK(k::awqGemv(out1.get(), xr, L.qw->as<uint32_t>(), L.sz->get(), 1, N, K, g, nullptr, &cfg));
                const auto one = download<uint16_t>(out1, size_t(N));
                QVERIFY2(std::equal(one.begin(), one.end(), all.begin() + r * N),
                         qPrintable(QString("row %1 tiles %2").arg(r).arg(tiles)));
            }
        }
    }

    // The fused down-projection input: bit for bit siluMul followed by awqGemv, and near the reference.
    void gemvSiluMul_data() {
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("kk");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("group");
        for (int m : {1, 3, 8, 9, 16}) QTest::newRow(qPrintable(QString("m%1-11008x528").arg(m))) << m << 11008 << 528 << 128;
        QTest::newRow("m4-4096x4096") << 4 << 4096 << 4096 << 128;
        QTest::newRow("m7-256x80-g64") << 7 << 256 << 80 << 64;
    }

    void gemvSiluMul() {
        QFETCH(int, m);
        QFETCH(int, kk);
        QFETCH(int, n);
        QFETCH(int, group);
        const int64_t K = kk, N = n;
        PackedLayer L = packedLayer(K, N, group, m_rng);
        QVERIFY(L.qw);
        // Gates over a wide range, with some far negative (silu -> 0) ones.
        auto gu = randomHalfValues(size_t(m * 2 * K), m_rng, -6.f, 6.f);
        for (size_t i = 0; i < gu.size(); i += 97) gu[i] = -30.f;
        auto dgu = upload(toHalf(gu));
        DeviceMem act(size_t(m * K) * 2), fused(size_t(m * N) * 2), plain(size_t(m * N) * 2);
        act.poison();
        fused.poison();
        plain.poison();
        GPU_OK(k::siluMul(act.get(), dgu->get(), m, int(K), nullptr));
        // No synchronization between siluMul and awqGemv: the overlapped launch must still wait for act.
        GPU_OK(k::awqGemv(plain.get(), act.get(), L.qw->as<uint32_t>(), L.sz->get(), m, N, K, group, nullptr));
        GPU_OK(k::awqGemvSiluMul(fused.get(), dgu->get(), L.qw->as<uint32_t>(), L.sz->get(), m, N, K, group, nullptr));
        GPU_OK(cudaDeviceSynchronize());
        const auto f = download<uint16_t>(fused, size_t(m * N)), pl = download<uint16_t>(plain, size_t(m * N));
        QVERIFY(f == pl);
        const auto a = fromHalf(download<uint16_t>(act, size_t(m * K)));
        const double err = relError(fromHalf(f), referenceGemm(a, L.w, m, N, K));
        QVERIFY2(err < 1e-3, qPrintable(QString("rel err %1").arg(err)));
    }

    // The overlapped (PDL) launches keep stream order: y = W x, then z = W y written over x, back to back
    // on a stream with nothing between them (z reads y only after the first kernel is complete; it
    // overwrites x only after the first kernel stopped reading it), and the same pair captured in a CUDA
    // graph and replayed. Both equal the two products computed one at a time, bit for bit.
    void gemvOverlappedChain() {
        const int64_t K = 2048, N = 2048;
        const int g = 128, m = 3;
        PackedLayer L = packedLayer(K, N, g, m_rng);
        QVERIFY(L.qw);
        const auto x = toHalf(randomHalfValues(size_t(m * K), m_rng));
        DeviceMem y(size_t(m * N) * 2), yAlone(size_t(m * N) * 2), zAlone(size_t(m * N) * 2);
        auto run = [&](void* out, const void* in, cudaStream_t s) {
            return k::awqGemv(out, in, L.qw->as<uint32_t>(), L.sz->get(), m, N, K, g, s);
        };
        auto dx = upload(x);
        GPU_OK(run(yAlone.get(), dx->get(), nullptr));
        GPU_OK(cudaDeviceSynchronize());
        GPU_OK(run(zAlone.get(), yAlone.get(), nullptr));
        GPU_OK(cudaDeviceSynchronize());
        const auto yRef = download<uint16_t>(yAlone, size_t(m * N)), zRef = download<uint16_t>(zAlone, size_t(m * N));
        // The chained result must not be a fixed point of the test (z == x would hide a missed wait).
        QVERIFY(zRef != x);

        cudaStream_t s = nullptr;
        GPU_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        y.poison();
        GPU_OK(run(y.get(), dx->get(), s));
        GPU_OK(run(dx->get(), y.get(), s));
        GPU_OK(cudaStreamSynchronize(s));
        QVERIFY(download<uint16_t>(y, size_t(m * N)) == yRef);
        QVERIFY(download<uint16_t>(*dx, size_t(m * N)) == zRef);

        GPU_OK(cudaMemcpy(dx->get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
        y.poison();
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        GPU_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        GPU_OK(run(y.get(), dx->get(), s));
        GPU_OK(run(dx->get(), y.get(), s));
        GPU_OK(cudaStreamEndCapture(s, &graph));
        GPU_OK(cudaGraphInstantiate(&exec, graph, 0));
        GPU_OK(cudaGraphLaunch(exec, s));
        GPU_OK(cudaStreamSynchronize(s));
        QVERIFY(download<uint16_t>(y, size_t(m * N)) == yRef);
        QVERIFY(download<uint16_t>(*dx, size_t(m * N)) == zRef);
        GPU_OK(cudaGraphExecDestroy(exec));
        GPU_OK(cudaGraphDestroy(graph));
        GPU_OK(cudaStreamDestroy(s));
    }

    void gemvRejects() {
        QVERIFY(!k::awqGemvSupports(0, 64, 128, 128));
        QVERIFY(!k::awqGemvSupports(17, 64, 128, 128));
        QVERIFY(!k::awqGemvSupports(1, 40, 128, 128));  // n % 16
        QVERIFY(!k::awqGemvSupports(1, 64, 96, 64));    // k % 64
        QVERIFY(!k::awqGemvSupports(1, 64, 128, 32));   // group % 64
        QVERIFY(k::awqGemvSupports(16, 22016, 4096, 128));
        QVERIFY(k::awqGemvSupports(1, 4096, 11008, 128));
        const int64_t N = 64, K = 4096;
        PackedLayer L = packedLayer(K, N, 128, m_rng);
        QVERIFY(L.qw);
        DeviceMem x(size_t(2 * K) * 2 + 16), out(size_t(2 * N) * 2);
        const auto* xMis = static_cast<const char*>(x.get()) + 2;
        const k::AwqGemvConfig bad{3};
        const k::AwqGemvConfig badStage{0, 2};
        cudaMemset(x.get(), 0, x.bytes());
        GPU_OK(k::awqGemv(out.get(), x.get(), L.qw->as<uint32_t>(), L.sz->get(), 2, N, K, 128, nullptr));
        GPU_OK(cudaDeviceSynchronize());
        QVERIFY(k::awqGemv(out.get(), xMis, L.qw->as<uint32_t>(), L.sz->get(), 1, N, K, 128, nullptr) != 0);
        QVERIFY(k::awqGemv(out.get(), x.get(), L.qw->as<uint32_t>(), L.sz->get(), 1, N, K, 128, nullptr, &bad) != 0);
        QVERIFY(k::awqGemv(out.get(), x.get(), L.qw->as<uint32_t>(), L.sz->get(), 1, N, K, 128, nullptr, &badStage) != 0);
        QVERIFY(k::awqGemvSiluMul(out.get(), x.get(), L.qw->as<uint32_t>(), L.sz->get(), 17, N, K, 128, nullptr) != 0);
        cudaGetLastError();
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
