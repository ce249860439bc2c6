// The parts of W4A16 quantization that stand alone: AutoAWQ GEMM packing, round-to-nearest group
// quantization, the group-size / keep-16-bit rule, the AWQ scale search and the clipping search.
#include <QTest>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>

#include "lmw/dtype.h"
#include "lmw/error.h"
#include "model/weights.h"
#include "quant/awq_search.h"
#include "quant/int4.h"
#include "quant/layer_quant.h"
#include "quant/parallel.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using namespace lmw::engine::quant;

namespace {

// The layout written out independently of int4.cpp: nibble k of packed column j holds column 8j + order[k].
uint8_t unpackOne(const std::vector<int32_t>& packed, int64_t packsPerRow, int64_t row, int64_t col) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const uint32_t word = uint32_t(packed[size_t(row * packsPerRow + col / 8)]);
    for (int k = 0; k < 8; ++k)
        if (order[k] == col % 8) return uint8_t((word >> (4 * k)) & 15);
    return 255;
}

std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

}  // namespace

class TestQuantizeMath : public QObject {
    Q_OBJECT
private slots:
    void parallelLoopsCoverEveryIndexOnce() {
        const int64_t n = 3 * 65536 + 17;  // several chunks of parallelSum, the last one short
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallelFor(n, [&](int64_t i) { hits[size_t(i)]++; });
        for (int64_t i = 0; i < n; ++i) QCOMPARE(hits[size_t(i)].load(), 1);
        std::vector<int> seen(static_cast<size_t>(n), 0);
        const double sum = parallelSum(n, [&](int64_t b, int64_t e) {
            double s = 0;
            for (int64_t i = b; i < e; ++i) {
                ++seen[size_t(i)];
                s += double(i);
            }
            return s;
        });
        QCOMPARE(sum, double(n) * double(n - 1) / 2);
        QVERIFY(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; }));
        parallelFor(0, [](int64_t) { QFAIL("called for an empty range"); });
    }

    void parallelLoopsRethrowOnTheCaller() {
        // A throwing body must not terminate the process (std::thread would): the caller gets it.
        std::atomic<int64_t> ran{0};
        bool caught = false;
        try {
            parallelFor(1 << 20, [&](int64_t i) {
                ++ran;
                if (i == 1000) throw lmw::Error(lmw::ErrorCode::Internal, "boom at 1000");
            });
        } catch (const lmw::Error& e) {
            caught = std::string(e.what()).find("boom at 1000") != std::string::npos;
        }
        QVERIFY(caught);
        QVERIFY(ran.load() < (1 << 20));  // the others stopped taking work
        QVERIFY_THROWS_EXCEPTION(std::runtime_error,
                                 parallelRanges(1000, 10, [](int64_t b, int64_t) {
                                     if (b == 500) throw std::runtime_error("range 500");
                                 }));
    }

    void packKnownWord() {
        // Output channel o holds the value o everywhere: every packed word must read 0x75316420.
        GroupQuantized g;
        g.rows = 8;
        g.cols = 32;
        g.group = 32;
        g.q.resize(8 * 32);
        for (int o = 0; o < 8; ++o)
            for (int i = 0; i < 32; ++i) g.q[size_t(o * 32 + i)] = uint8_t(o);
        g.zeros = {8, 9, 10, 11, 12, 13, 14, 15};
        g.scales.assign(8, floatToHalf(0.5f));
        const AwqPacked p = packAwq(g, {0, 1, 2, 3, 4, 5, 6, 7});
        QCOMPARE(p.qweight.size(), size_t(32));
        for (int32_t w : p.qweight) QCOMPARE(uint32_t(w), 0x75316420u);
        QCOMPARE(p.qzeros.size(), size_t(1));
        QCOMPARE(uint32_t(p.qzeros[0]), 0xFDB9ECA8u);  // zeros 8..15 in nibble order 0,2,4,6,1,3,5,7
        QCOMPARE(p.scales.size(), size_t(8));
    }

    void packRoundTripWithRowOrder() {
        std::mt19937 rng(7);
        GroupQuantized g;
        g.rows = 24;
        g.cols = 64;
        g.group = 32;
        for (int i = 0; i < 24 * 64; ++i) g.q.push_back(uint8_t(rng() % 16));
        for (int i = 0; i < 24 * 2; ++i) {
            g.zeros.push_back(uint8_t(rng() % 16));
            g.scales.push_back(floatToHalf(0.01f * float(i + 1)));
        }
        // Source order differs from the canonical rows (as internlm2's grouped wqkv does).
        std::vector<int64_t> order(16);
        for (int j = 0; j < 16; ++j) order[size_t(j)] = (j * 5 + 3) % 24;
        const AwqPacked p = packAwq(g, order);
        QCOMPARE(p.qweight.size(), size_t(64 * 2));
        QCOMPARE(p.qzeros.size(), size_t(2 * 2));
        for (int64_t c = 0; c < 16; ++c) {
            const int64_t r = order[size_t(c)];
            for (int64_t i = 0; i < 64; ++i) QCOMPARE(unpackOne(p.qweight, 2, i, c), g.q[size_t(r * 64 + i)]);
            for (int64_t k = 0; k < 2; ++k) {
                QCOMPARE(unpackOne(p.qzeros, 2, k, c), g.zeros[size_t(r * 2 + k)]);
                QCOMPARE(p.scales[size_t(k * 16 + c)], g.scales[size_t(r * 2 + k)]);
            }
        }
        const std::vector<uint8_t> back = unpackAwqTransposed(p.qweight.data(), 64, 16);
        for (int64_t c = 0; c < 16; ++c)
            for (int64_t i = 0; i < 64; ++i) QCOMPARE(back[size_t(c * 64 + i)], g.q[size_t(order[size_t(c)] * 64 + i)]);
    }

    void roundToNearestError() {
        const int64_t rows = 16, cols = 256;
        std::vector<float> w = randn(size_t(rows * cols), 1, 0.05f);
        for (int i = 0; i < 32; ++i) w[size_t(i)] = 0.2f + 0.001f * float(i);  // an all-positive group
        const GroupQuantized g = quantizeGroups(w.data(), rows, cols, 128);
        QCOMPARE(g.groups(), int64_t(2));
        const std::vector<float> d = dequantize(g);
        int64_t withinHalf = 0;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < cols; ++i) {
                const float s = halfToFloat(g.scales[size_t(r * 2 + i / 128)]);
                QVERIFY(g.q[size_t(r * cols + i)] <= 15);
                const float err = std::fabs(w[size_t(r * cols + i)] - d[size_t(r * cols + i)]);
                QVERIFY2(err <= 1.0001f * s, qPrintable(QString("err %1 step %2").arg(err).arg(s)));
                if (err <= 0.5001f * s) ++withinHalf;
            }
        QVERIFY(withinHalf >= rows * cols * 99 / 100);
        // fakeQuantize is quantize + dequantize.
        std::vector<float> f(w.size());
        fakeQuantize(w.data(), rows, cols, 128, f.data());
        for (size_t i = 0; i < f.size(); ++i) QCOMPARE(f[i], d[i]);
        // A zero group stays exactly zero.
        std::vector<float> z(128, 0.0f);
        fakeQuantize(z.data(), 1, 128, 128, z.data());
        for (float v : z) QCOMPARE(v, 0.0f);
    }

    void groupSizeRule() {
        QCOMPARE(chooseGroupSize(4096, 128), 128);
        QCOMPARE(chooseGroupSize(11008, 128), 128);
        QCOMPARE(chooseGroupSize(64, 128), 64);
        QCOMPARE(chooseGroupSize(192, 128), 64);
        QCOMPARE(chooseGroupSize(96, 128), 32);
        QCOMPARE(chooseGroupSize(172, 128), 0);
        QCOMPARE(chooseGroupSize(256, 32), 32);
        QCOMPARE(chooseGroupSize(48, 64), 0);
    }

    void planKeepsOddShapes16Bit() {
        // stories260K shapes: q [64,64], k/v [32,64] quantize with group 64; gate/up [172,64] and down [64,172] cannot.
        auto ref = [](const std::string& name, int64_t r, int64_t c) {
            TensorRef t;
            t.name = name;
            t.shape = {r, c};
            return t;
        };
        TensorRef q = ref("m.q_proj.weight", 64, 64), k = ref("m.k_proj.weight", 32, 64), v = ref("m.v_proj.weight", 32, 64);
        LinearSource qkv;
        qkv.name = "layers.0.qkv";
        qkv.in = 64;
        qkv.out = 128;
        qkv.segments = {{&q, nullptr, nullptr, 0, 64, 0}, {&k, nullptr, nullptr, 0, 32, 64}, {&v, nullptr, nullptr, 0, 32, 96}};
        LinearPlan p = planLinear(qkv, 128);
        QVERIFY(p.quantize);
        QCOMPARE(p.group, 64);
        QCOMPARE(p.parts.size(), size_t(3));
        QCOMPARE(p.parts[1].prefix, std::string("m.k_proj"));
        QCOMPARE(p.parts[2].rows.front(), int64_t(96));

        TensorRef gate = ref("m.gate_proj.weight", 172, 64), up = ref("m.up_proj.weight", 172, 64);
        LinearSource gu;
        gu.name = "layers.0.gate_up";
        gu.in = 64;
        gu.out = 344;
        gu.segments = {{&gate, nullptr, nullptr, 0, 172, 0}, {&up, nullptr, nullptr, 0, 172, 172}};
        p = planLinear(gu, 128);
        QVERIFY(!p.quantize);
        QCOMPARE(p.keptReason, std::string("m.gate_proj has 172 outputs, not a multiple of 8 (int4 packing)"));

        TensorRef down = ref("m.down_proj.weight", 64, 172);
        LinearSource dn;
        dn.name = "layers.0.down";
        dn.in = 172;
        dn.out = 64;
        dn.segments = {{&down, nullptr, nullptr, 0, 64, 0}};
        p = planLinear(dn, 128);
        QVERIFY(!p.quantize);
        QCOMPARE(p.keptReason, std::string("input size 172 is not a multiple of 32"));

        // A fused grouped layout (one tensor, several segments) maps every source row back.
        TensorRef wqkv = ref("m.wqkv.weight", 16, 64);
        LinearSource f;
        f.name = "layers.0.qkv";
        f.in = 64;
        f.out = 16;
        f.segments = {{&wqkv, nullptr, nullptr, 0, 8, 8}, {&wqkv, nullptr, nullptr, 8, 8, 0}};
        p = planLinear(f, 128);
        QCOMPARE(p.parts.size(), size_t(1));
        QCOMPARE(p.parts[0].rows[0], int64_t(8));
        QCOMPARE(p.parts[0].rows[8], int64_t(0));
    }

    void scaleNormalisation() {
        const std::vector<float> s = awqScales({4.0, 1.0, 0.25}, 0.5);
        // 2, 1, 0.5 divided by sqrt(2 * 0.5) = 1
        QCOMPARE(s[0], 2.0f);
        QCOMPARE(s[1], 1.0f);
        QCOMPARE(s[2], 0.5f);
        const std::vector<float> one = awqScales({4.0, 1.0, 0.25}, 0.0);
        for (float v : one) QCOMPARE(v, 1.0f);
    }

    void awqSearchBeatsRoundToNearest() {
        // Activations with a few large channels (as LLMs have): protecting their weights pays.
        const int64_t n = 256, in = 128, out = 32;
        std::vector<float> x = randn(size_t(n * in), 2);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t c : {3, 40, 77, 100}) x[size_t(t * in + c)] *= 25.0f;
        const std::vector<float> w = randn(size_t(out * in), 3, 0.02f);
        std::vector<double> meanAbs(size_t(in), 0.0);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t c = 0; c < in; ++c) meanAbs[size_t(c)] += std::fabs(x[size_t(t * in + c)]) / double(n);
        std::vector<double> alphas;
        for (int i = 0; i < 20; ++i) alphas.push_back(i / 20.0);
        int calls = 0;
        const ScaleSearch s = searchScale(w.data(), out, in, 32, {}, meanAbs, alphas, [&](const std::vector<float>& d) {
            ++calls;
            return hostWeightError(x.data(), n, in, d, out);
        });
        QCOMPARE(calls, 20);
        QVERIFY(s.alpha > 0.0);
        QVERIFY2(s.errorBest < 0.7 * s.errorRtn, qPrintable(QString("awq %1 rtn %2").arg(s.errorBest).arg(s.errorRtn)));
        QCOMPARE(s.errorRtn, hostWeightError(x.data(), n, in, quantError(w.data(), out, in, 32, {}, {}), out));
        // Rows marked unquantized contribute no error.
        std::vector<uint8_t> mask(size_t(out), 0);
        const std::vector<float> none = quantError(w.data(), out, in, 32, mask, s.scales);
        for (float v : none) QCOMPARE(v, 0.0f);
    }

    void clipSearchNeverHurts() {
        const int64_t n = 128, in = 64, out = 16;
        const std::vector<float> x = randn(size_t(n * in), 4);
        std::vector<float> w = randn(size_t(out * in), 5, 0.02f);
        for (int64_t r = 0; r < out; ++r) w[size_t(r * in + (r % in))] = 0.3f;  // one outlier weight per row
        const double before = hostWeightError(x.data(), n, in, quantError(w.data(), out, in, 32, {}, {}), out);
        std::vector<float> clipped = w;
        const double shrink = searchClip(clipped.data(), out, in, 32, {}, x.data(), n);
        QVERIFY(shrink >= 0.0 && shrink < 0.5);
        // Error of the clipped-then-quantized weight, measured against the original weight.
        std::vector<float> q(clipped.size());
        fakeQuantize(clipped.data(), out, in, 32, q.data());
        std::vector<float> diff(w.size());
        for (size_t i = 0; i < w.size(); ++i) diff[i] = w[i] - q[i];
        const double after = hostWeightError(x.data(), n, in, diff, out);
        QVERIFY2(after <= before * (1 + 1e-9), qPrintable(QString("after %1 before %2").arg(after).arg(before)));
    }
};

QTEST_APPLESS_MAIN(TestQuantizeMath)
#include "test_quantize_math.moc"
