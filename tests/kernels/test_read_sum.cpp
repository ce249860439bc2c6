// The read-bandwidth probe's kernel (sumWords32) against a CPU sum: awkward lengths (one vector,
// a partial unrolled round, more than one grid stride), random words, a poisoned result slot.
#include <QtTest>

#include "gpu_test_util.h"
#include "lmw/kernels/read_sum.h"

using namespace lmw::test;
namespace k = lmw::kernels;

class TestReadSum : public QObject {
    Q_OBJECT
    std::mt19937 m_rng{77};

private slots:
    void initTestCase() {
        if (!gpuUsableForTests()) QSKIP("no CUDA device");
    }

    void sumMatchesCpu_data() {
        QTest::addColumn<qint64>("words");
        QTest::newRow("one vector") << qint64(4);
        QTest::newRow("odd vectors") << qint64(4 * 1237);
        QTest::newRow("below one unrolled round") << qint64(4 * 256 * 3 + 4);
        // More vectors than one wave of threads (132 SMs x 2048 on an H200), not a multiple of it.
        QTest::newRow("several strides") << qint64(4 * (132 * 2048 * 9 + 517));
    }
    void sumMatchesCpu() {
        QFETCH(qint64, words);
        std::uniform_int_distribution<uint32_t> d;
        std::vector<uint32_t> v(static_cast<size_t>(words));
        uint64_t want = 0;
        for (auto& w : v) {
            w = d(m_rng);
            want += w;
        }
        auto dv = upload(v);
        DeviceMem sum(sizeof(uint64_t));
        sum.poison();
        GPU_OK(k::sumWords32(dv->get(), int64_t(words) * 4, sum.as<uint64_t>(), nullptr));
        GPU_OK(cudaDeviceSynchronize());
        QCOMPARE(download<uint64_t>(sum, 1)[0], want);
    }

    void rejectsUnalignedAndPartialVectors() {
        DeviceMem buf(64), sum(sizeof(uint64_t));
        QCOMPARE(k::sumWords32(buf.get(), 40, sum.as<uint64_t>(), nullptr), int(cudaErrorInvalidValue));
        QCOMPARE(k::sumWords32(buf.as<uint8_t>() + 4, 32, sum.as<uint64_t>(), nullptr), int(cudaErrorInvalidValue));
        sum.poison();
        GPU_OK(k::sumWords32(buf.get(), 0, sum.as<uint64_t>(), nullptr));
        QCOMPARE(download<uint64_t>(sum, 1)[0], uint64_t(0));
    }
};

QTEST_APPLESS_MAIN(TestReadSum)
#include "test_read_sum.moc"
