// The CPU backend's kernels at every dispatch level (generic, AVX2, AVX-512; a level this CPU lacks
// is skipped) against plain double-precision references, on awkward shapes: dense rows of F32, F16
// and BF16, the int4 x int8 AWQ kernel, attention of one query head, the read-bandwidth sum. Each
// also checks that a (row, token) result is bitwise the same whatever the batch around it.
#include <QtTest>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_linear.h"
#include "lmw/dtype.h"

using namespace lmw;
using namespace lmw::engine;

namespace {

void addLevels() {
    QTest::addColumn<int>("isa");
    for (CpuIsa isa : {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512}) QTest::newRow(cpuIsaName(isa)) << int(isa);
}

#define LEVEL(k)                                                          \
    QFETCH(int, isa);                                                      \
    if (!cpuIsaSupported(CpuIsa(isa))) QSKIP("this CPU lacks the level"); \
    const CpuKernels& k = cpuKernels(CpuIsa(isa))

std::vector<uint8_t> randomRows(DType dt, int64_t n, int64_t in, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    const size_t es = dtypeSize(dt);
    std::vector<uint8_t> bytes(size_t(n * in) * es + 1);  // + 1: the rows start unaligned below
    for (int64_t i = 0; i < n * in; ++i) {
        const float v = u(rng);
        uint8_t* p = bytes.data() + 1 + size_t(i) * es;
        if (dt == DType::F32) std::memcpy(p, &v, 4);
        else {
            const uint16_t h = dt == DType::F16 ? floatToHalf(v) : floatToBf16(v);
            std::memcpy(p, &h, 2);
        }
    }
    return bytes;
}

}  // namespace

class TestCpuKernels : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { qInfo("chosen: %s", cpuKernelSummary().c_str()); }

    void dense_data() { addLevels(); }
    void dense() {
        LEVEL(k);
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        for (DType dt : {DType::F32, DType::F16, DType::BF16})
            for (int64_t in : {1, 7, 16, 31, 32, 33, 100, 256, 773})
                for (int64_t n : {1, 3, 4, 9, 16, 37}) {
                    const int64_t T = 19, ld = cpuXStride(in);
                    const size_t es = dtypeSize(dt);
                    const auto bytes = randomRows(dt, n, in, rng);
                    std::vector<const uint8_t*> rows(static_cast<size_t>(n));
                    for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = bytes.data() + 1 + size_t(i * in) * es;
                    std::vector<float> x(size_t(T * in));
                    for (auto& v : x) v = u(rng);
                    std::vector<float> xp(size_t(T * ld), NAN), y(size_t(T * n), NAN);
                    k.prepareX(dt, x.data(), T, in, xp.data());
                    k.dense(dt, rows.data(), n, in, xp.data(), T, y.data(), n);
                    for (int64_t t = 0; t < T; ++t)
                        for (int64_t i = 0; i < n; ++i) {
                            double ref = 0, mag = 0;
                            for (int64_t c = 0; c < in; ++c) {
                                const double p = double(readElem(rows[size_t(i)], dt, c)) * x[size_t(t * in + c)];
                                ref += p;
                                mag += std::fabs(p);
                            }
                            const double got = y[size_t(t * n + i)];
                            if (std::fabs(got - ref) > 1e-6 * mag + 1e-30)
                                QFAIL(qPrintable(QString("%1 in %2 n %3: row %4 token %5 got %6 want %7")
                                                     .arg(dtypeName(dt)).arg(in).arg(n).arg(i).arg(t).arg(got).arg(ref)));
                        }
                    // Alone (one token, one row) is bitwise what the batch gave.
                    for (int64_t t : {int64_t(0), T - 1})
                        for (int64_t i = 0; i < n; ++i) {
                            float one = NAN;
                            k.dense(dt, rows.data() + i, 1, in, xp.data() + t * ld, 1, &one, 1);
                            QCOMPARE(one, y[size_t(t * n + i)]);
                        }
                }
    }

    void awq_data() { addLevels(); }
    void awq() {
        LEVEL(k);
        std::mt19937 rng(11);
        std::uniform_int_distribution<int> nib(0, 15), code(-127, 127);
        std::uniform_real_distribution<float> u(0.001f, 0.02f), du(0.f, 0.05f);
        for (int groupSize : {128, 256})
            for (int64_t in : {int64_t(groupSize), int64_t(3 * groupSize)})
                for (int64_t n : {1, 5, 8, 16, 37}) {
                    const int64_t T = 19, chunks = in / kAwqChunk, groups = in / groupSize;
                    AwqRows w;
                    std::vector<uint8_t> q(size_t(n * in / 2));
                    std::vector<float> scale(size_t(n * groups)), zero(size_t(n * groups));
                    for (auto& b : q) b = uint8_t(nib(rng) | nib(rng) << 4);
                    for (auto& s : scale) s = u(rng);
                    for (auto& z : zero) z = float(nib(rng));
                    w = {q.data(), in / 2, scale.data(), zero.data(), groups, groupSize, in};
                    std::vector<int8_t> xq(size_t(T * in));
                    std::vector<float> d(size_t(chunks * T)), sum(size_t(T * groups), 0.f);
                    for (auto& v : xq) v = int8_t(code(rng));
                    for (auto& v : d) v = du(rng);
                    for (int64_t t = 0; t < T; ++t)
                        for (int64_t c = 0; c < chunks; ++c) {
                            int total = 0;
                            for (int j = 0; j < 128; ++j) total += xq[size_t(t * in + c * 128 + j)];
                            sum[size_t(t * groups + c * 128 / groupSize)] += d[size_t(c * T + t)] * float(total);
                        }
                    const QuantizedX x{xq.data(), in, d.data(), T, sum.data(), groups};
                    std::vector<float> y(size_t(T * n), NAN);
                    k.awq(w, 0, n, x, T, y.data(), n);
                    for (int64_t r = 0; r < n; ++r)
                        for (int64_t t = 0; t < T; ++t) {
                            double ref = 0, mag = 0;
                            for (int64_t i = 0; i < in; ++i) {
                                const uint8_t b = q[size_t(r * in / 2 + i / 128 * 64 + i % 64)];
                                const int code4 = i % 128 >= 64 ? b >> 4 : b & 15;
                                const int64_t g = i / groupSize;
                                const double wv = (code4 - double(zero[size_t(r * groups + g)])) * scale[size_t(r * groups + g)];
                                const double p = wv * xq[size_t(t * in + i)] * d[size_t(i / 128 * T + t)];
                                ref += p;
                                mag += std::fabs(p);
                            }
                            const double got = y[size_t(t * n + r)];
                            if (std::fabs(got - ref) > 1e-5 * mag + 1e-30)
                                QFAIL(qPrintable(QString("g%1 in %2 n %3: row %4 token %5 got %6 want %7")
                                                     .arg(groupSize).arg(in).arg(n).arg(r).arg(t).arg(got).arg(ref)));
                        }
                    // Row r alone and token t alone (the kernel reads token t0 + t of x): the same bits.
                    for (int64_t r = 0; r < n; ++r) {
                        float one = NAN;
                        k.awq(w, r, r + 1, x, 1, &one, 1);
                        QCOMPARE(one, y[size_t(r)]);
                    }
                }
    }

    void attend_data() { addLevels(); }
    void attend() {
        LEVEL(k);
        std::mt19937 rng(3);
        std::normal_distribution<float> g(0.f, 1.f);
        for (int64_t D : {8, 64, 80, 128})
            for (int64_t n : {1, 5, 17, 300}) {
                std::vector<float> q(static_cast<size_t>(D)), kv(size_t(2 * n * D)), p(static_cast<size_t>(n)), out(static_cast<size_t>(D), NAN);
                for (auto& v : q) v = g(rng);
                for (auto& v : kv) v = g(rng);
                std::vector<const float*> keys(static_cast<size_t>(n)), values(static_cast<size_t>(n));
                for (int64_t j = 0; j < n; ++j) keys[size_t(j)] = kv.data() + j * D, values[size_t(j)] = kv.data() + (n + j) * D;
                const float scale = 1.f / std::sqrt(float(D));
                k.attend(q.data(), keys.data(), values.data(), n, D, scale, p.data(), out.data());
                std::vector<double> s(static_cast<size_t>(n));
                double mx = -INFINITY, total = 0;
                for (int64_t j = 0; j < n; ++j) {
                    double dot = 0;
                    for (int64_t c = 0; c < D; ++c) dot += double(q[size_t(c)]) * keys[size_t(j)][c];
                    s[size_t(j)] = dot * scale;
                    mx = std::max(mx, s[size_t(j)]);
                }
                for (auto& v : s) total += (v = std::exp(v - mx));
                for (int64_t c = 0; c < D; ++c) {
                    double ref = 0;
                    for (int64_t j = 0; j < n; ++j) ref += s[size_t(j)] / total * values[size_t(j)][c];
                    QVERIFY2(std::fabs(out[size_t(c)] - ref) < 2e-5,
                             qPrintable(QString("D %1 n %2 col %3: %4 vs %5").arg(D).arg(n).arg(c).arg(out[size_t(c)]).arg(ref)));
                }
            }
    }

    void readSum_data() { addLevels(); }
    void readSum() {
        LEVEL(k);
        std::vector<uint64_t> words(4096 + 8);
        std::mt19937_64 rng(5);
        for (auto& v : words) v = rng();
        for (int64_t bytes : {64, 256, 320, 32768}) {
            uint64_t want = 0;
            for (int64_t i = 0; i < bytes / 8; ++i) want += words[size_t(i)];
            QCOMPARE(k.readSum(reinterpret_cast<const uint8_t*>(words.data()), bytes), want);
        }
    }

    // Through cpuLinear (the chosen level): AWQ g128 runs on activations quantized to int8 per 128
    // inputs; the result stays within the int8 rounding of x of the exact f32 product.
    void linearAwqInt8Error() {
        std::mt19937 rng(21);
        std::normal_distribution<float> g(0.f, 1.f);
        const int64_t in = 512, out = 24, groups = in / 128, packs = out / 8, T = 3;
        std::vector<int32_t> qw(size_t(in * packs)), qz(size_t(groups * packs));
        std::vector<uint16_t> sc(size_t(groups * out));
        for (auto& v : qw) v = int32_t(rng());
        for (auto& v : qz) v = int32_t(rng());
        for (auto& v : sc) v = floatToHalf(0.01f + 0.01f * std::fabs(g(rng)));
        auto ref = [](const std::string& name, DType dt, std::vector<int64_t> shape, const void* data, size_t bytes) {
            TensorRef r;
            r.name = name, r.dtype = dt, r.shape = std::move(shape), r.data = static_cast<const uint8_t*>(data), r.bytes = bytes;
            return r;
        };
        const TensorRef tq = ref("qweight", DType::I32, {in, packs}, qw.data(), qw.size() * 4);
        const TensorRef tz = ref("qzeros", DType::I32, {groups, packs}, qz.data(), qz.size() * 4);
        const TensorRef ts = ref("scales", DType::F16, {groups, out}, sc.data(), sc.size() * 2);
        LinearSource src;
        src.name = "awq", src.in = in, src.out = out, src.awq = true, src.groupSize = 128;
        src.segments.push_back({&tq, &tz, &ts, 0, out, 0});
        ThreadPool pool(2);
        const auto w = loadCpuLinear(src, pool);
        QVERIFY(w->awqInt8());
        std::vector<float> x(size_t(T * in)), y(size_t(T * out));
        for (auto& v : x) v = g(rng);
        x[5] = 40.f;  // an outlier widens its chunk's int8 step
        cpuLinear(pool, *w, x.data(), T, y.data());
        static constexpr int kOrderInv[8] = {0, 4, 1, 5, 2, 6, 3, 7};
        for (int64_t t = 0; t < T; ++t)
            for (int64_t o = 0; o < out; ++o) {
                double exact = 0, bound = 0;
                for (int64_t i = 0; i < in; ++i) {
                    const int shift = 4 * kOrderInv[o % 8];
                    const int q = (qw[size_t(i * packs + o / 8)] >> shift) & 15;
                    const int z = (qz[size_t(i / 128 * packs + o / 8)] >> shift) & 15;
                    const double wv = (q - z) * double(halfToFloat(sc[size_t(i / 128 * out + o)]));
                    exact += wv * x[size_t(t * in + i)];
                    double amax = 0;
                    for (int64_t j = i / 128 * 128; j < i / 128 * 128 + 128; ++j) amax = std::max(amax, double(std::fabs(x[size_t(t * in + j)])));
                    bound += std::fabs(wv) * amax / 127 * 0.5;  // half an int8 step per activation
                }
                QVERIFY2(std::fabs(y[size_t(t * out + o)] - exact) <= bound * 1.01 + 1e-4,
                         qPrintable(QString("token %1 row %2: %3 vs %4 (bound %5)").arg(t).arg(o).arg(y[size_t(t * out + o)]).arg(exact).arg(bound)));
            }
    }
};

QTEST_APPLESS_MAIN(TestCpuKernels)
#include "test_cpu_kernels.moc"
