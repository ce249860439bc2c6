// Every op of the CPU backend against a naive double-precision reference written here.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/thread_pool.h"
#include "lmw/dtype.h"
#include "lmw/error.h"

using namespace lmw;
using namespace lmw::engine;

namespace {

std::mt19937& rng() {
    static std::mt19937 g(12345);
    return g;
}

std::vector<float> randomFloats(size_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng());
    return v;
}

// A tensor in host memory, stored in `dtype` one byte past an aligned address (the mapping gives no
// alignment guarantee). `values` holds what the stored numbers are exactly, as f32.
struct HostTensor {
    std::vector<uint8_t> storage;
    std::vector<float> values;
    TensorRef ref;
};

std::unique_ptr<HostTensor> makeTensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                       const std::vector<float>& src) {
    auto t = std::make_unique<HostTensor>();
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    const size_t es = dtypeSize(dtype);
    t->storage.assign(n * es + 1, 0);
    t->values.resize(n);
    uint8_t* p = t->storage.data() + 1;
    for (size_t i = 0; i < n; ++i) {
        if (dtype == DType::F32) {
            std::memcpy(p + 4 * i, &src[i], 4);
            t->values[i] = src[i];
        } else if (dtype == DType::F16) {
            const uint16_t h = floatToHalf(src[i]);
            std::memcpy(p + 2 * i, &h, 2);
            t->values[i] = halfToFloat(h);
        } else {
            const uint16_t h = floatToBf16(src[i]);
            std::memcpy(p + 2 * i, &h, 2);
            t->values[i] = bf16ToFloat(h);
        }
    }
    t->ref.name = name;
    t->ref.dtype = dtype;
    t->ref.shape = std::move(shape);
    t->ref.data = p;
    t->ref.bytes = n * es;
    return t;
}

std::unique_ptr<HostTensor> makeI32(const std::string& name, std::vector<int64_t> shape, const std::vector<int32_t>& v) {
    auto t = std::make_unique<HostTensor>();
    t->storage.assign(v.size() * 4 + 1, 0);
    std::memcpy(t->storage.data() + 1, v.data(), v.size() * 4);
    t->ref.name = name;
    t->ref.dtype = DType::I32;
    t->ref.shape = std::move(shape);
    t->ref.data = t->storage.data() + 1;
    t->ref.bytes = v.size() * 4;
    return t;
}

StepBatch plainBatch(int T) {
    StepBatch b;
    b.tokens.assign(size_t(T), 0);
    for (int t = 0; t < T; ++t) b.positions.push_back(t);
    b.seqStart = {0, T};
    b.contextLen = {T};
    return b;
}

// Attention applies the step's rotary embedding first. Tests of the cache and the softmax give it
// angle 0 everywhere (cos 1, sin 0), which leaves q and k exactly as they are.
void withoutRotation(StepBatch& b, int headDim) { b.invFreq.assign(size_t(b.numSeqs()) * size_t(headDim / 2), 0.f); }

std::vector<float> download(Backend& be, Tensor t) {
    std::vector<float> v(size_t(t.rows * t.cols));
    be.readF32(t, v.data());
    return v;
}

// y = x W^T + b in double, W given per output row as f32 values.
std::vector<double> refLinear(const std::vector<float>& x, int64_t T, int64_t in, const std::vector<std::vector<double>>& w,
                              const std::vector<double>& bias) {
    const int64_t out = int64_t(w.size());
    std::vector<double> y(size_t(T * out));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < out; ++o) {
            double s = bias.empty() ? 0.0 : bias[size_t(o)];
            for (int64_t i = 0; i < in; ++i) s += double(x[size_t(t * in + i)]) * w[size_t(o)][size_t(i)];
            y[size_t(t * out + o)] = s;
        }
    return y;
}

// Every element within tol * (sum |w x| of its dot product) + 1e-6: f32 accumulation error bound.
QString compareLinear(const std::vector<float>& got, const std::vector<double>& want, const std::vector<float>& x, int64_t T,
                      int64_t in, const std::vector<std::vector<double>>& w, double tol) {
    const int64_t out = int64_t(w.size());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < out; ++o) {
            double mag = 0;
            for (int64_t i = 0; i < in; ++i) mag += std::abs(double(x[size_t(t * in + i)]) * w[size_t(o)][size_t(i)]);
            const double g = got[size_t(t * out + o)], r = want[size_t(t * out + o)];
            if (!(std::abs(g - r) <= tol * mag + 1e-6))
                return QString("t=%1 o=%2: got %3 want %4 (|wx| %5)").arg(t).arg(o).arg(g, 0, 'g', 9).arg(r, 0, 'g', 9).arg(mag);
        }
    return {};
}

// AutoAWQ packs output columns 0,2,4,6,1,3,5,7 at nibbles 0..7 of each int32.
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

int32_t packAwq(const int* eight) {
    uint32_t word = 0;
    for (int nibble = 0; nibble < 8; ++nibble) word |= uint32_t(eight[kAwqOrder[nibble]] & 15) << (4 * nibble);
    return int32_t(word);
}

// Dense causal attention over one sequence's whole history, in double.
// q: [H*D] of the token; keys/values: history [n][KVH*D].
std::vector<double> refAttention(const float* q, const std::vector<std::vector<float>>& keys,
                                 const std::vector<std::vector<float>>& values, int n, int H, int KVH, int D) {
    std::vector<double> out(size_t(H * D), 0.0);
    for (int h = 0; h < H; ++h) {
        const int kh = h / (H / KVH);
        std::vector<double> s(static_cast<size_t>(n));
        double mx = -1e300;
        for (int j = 0; j < n; ++j) {
            double d = 0;
            for (int e = 0; e < D; ++e) d += double(q[h * D + e]) * keys[size_t(j)][size_t(kh * D + e)];
            s[size_t(j)] = d / std::sqrt(double(D));
            mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (auto& v : s) sum += (v = std::exp(v - mx));
        for (int j = 0; j < n; ++j)
            for (int e = 0; e < D; ++e) out[size_t(h * D + e)] += s[size_t(j)] / sum * values[size_t(j)][size_t(kh * D + e)];
    }
    return out;
}

// Drives a paged cache through several steps of several sequences and checks every step's output
// against dense attention over each sequence's history.
struct AttentionRun {
    int layers = 2, H = 4, KVH = 2, D = 16, policy = 0, numBlocks = 10, layer = 1;
    std::vector<std::vector<int32_t>> tables;                 // per sequence, physical blocks
    std::vector<float> keyShift;                              // [D] added to every key (empty = none)
    std::vector<float> keyOffsets;                            // given to setKvKeyOffsets (empty = none)
    std::vector<std::vector<std::vector<float>>> keys, vals;  // per sequence history
    double maxErr = 0, maxRef = 0, sumSqErr = 0, sumSqRef = 0;
    QString failure;

    // steps: per step, for each sequence the number of new tokens (0 = not in this step)
    void run(Backend& be, const std::vector<std::vector<int>>& steps, double tol) {
        const int S = int(tables.size());
        be.allocKvCache({layers, KVH, D, 64, policy}, numBlocks);
        if (!keyOffsets.empty()) be.setKvKeyOffsets(keyOffsets);
        keys.assign(size_t(S), {});
        vals.assign(size_t(S), {});
        int maxBlocks = 0;
        for (auto& t : tables) maxBlocks = std::max(maxBlocks, int(t.size()));
        for (const auto& step : steps) {
            StepBatch b;
            std::vector<int> seqs;
            b.seqStart = {0};
            for (int s = 0; s < S; ++s) {
                if (step[size_t(s)] == 0) continue;
                seqs.push_back(s);
                const int past = int(keys[size_t(s)].size());
                for (int i = 0; i < step[size_t(s)]; ++i) {
                    b.tokens.push_back(1);
                    b.positions.push_back(past + i);
                }
                b.seqStart.push_back(int32_t(b.tokens.size()));
                b.contextLen.push_back(past + step[size_t(s)]);
                for (int k = 0; k < maxBlocks; ++k)
                    b.blockTable.push_back(k < int(tables[size_t(s)].size()) ? tables[size_t(s)][size_t(k)] : -1);
            }
            b.maxBlocks = maxBlocks;
            withoutRotation(b, D);
            const int T = b.numTokens();
            const int cols = (H + 2 * KVH) * D;
            be.beginStep(b);
            // The other layer gets different data, so a layer mix-up shows.
            for (int l = 0; l < layers; ++l) {
                std::vector<float> qkv = randomFloats(size_t(T * cols));
                if (!keyShift.empty())
                    for (int t = 0; t < T; ++t)
                        for (int h = 0; h < KVH; ++h)
                            for (int d = 0; d < D; ++d) qkv[size_t(t * cols + (H + h) * D + d)] += keyShift[size_t(d)];
                Tensor tq = be.upload(qkv.data(), T, cols);
                Tensor out = be.alloc(T, H * D);
                be.attention(out, tq, l, H, KVH, D);
                if (l != layer) continue;
                const std::vector<float> got = download(be, out);
                for (size_t si = 0; si < seqs.size(); ++si) {
                    const int s = seqs[si];
                    for (int t = b.seqStart[si]; t < b.seqStart[si + 1]; ++t) {
                        const float* row = qkv.data() + size_t(t * cols);
                        keys[size_t(s)].emplace_back(row + H * D, row + (H + KVH) * D);
                        vals[size_t(s)].emplace_back(row + (H + KVH) * D, row + (H + 2 * KVH) * D);
                    }
                    for (int t = b.seqStart[si]; t < b.seqStart[si + 1]; ++t) {
                        const int n = b.positions[size_t(t)] + 1;
                        const auto want = refAttention(qkv.data() + size_t(t * cols), keys[size_t(s)], vals[size_t(s)], n, H,
                                                       KVH, D);
                        for (int e = 0; e < H * D; ++e) {
                            const double err = std::abs(double(got[size_t(t * H * D + e)]) - want[size_t(e)]);
                            maxErr = std::max(maxErr, err);
                            maxRef = std::max(maxRef, std::abs(want[size_t(e)]));
                            sumSqErr += err * err;
                            sumSqRef += want[size_t(e)] * want[size_t(e)];
                            if (err > tol && failure.isEmpty())
                                failure = QString("seq %1 pos %2 elem %3: got %4 want %5")
                                              .arg(s).arg(b.positions[size_t(t)]).arg(e).arg(got[size_t(t * H * D + e)])
                                              .arg(want[size_t(e)]);
                        }
                    }
                }
            }
        }
    }
    double relErr() const { return std::sqrt(sumSqErr / sumSqRef); }
};

}  // namespace

class TestCpuBackend : public QObject {
    Q_OBJECT

private slots:
    void threadPoolRunsEveryIndexOnce() {
        ThreadPool pool(3);
        QCOMPARE(pool.size(), 3);
        for (int round = 0; round < 50; ++round) {
            std::vector<std::atomic<int>> hits(1000);
            pool.parallelFor(1000, [&](int64_t i) { hits[size_t(i)]++; });
            for (auto& h : hits) QCOMPARE(h.load(), 1);
        }
        bool threw = false;
        try {
            pool.parallelFor(100, [](int64_t i) {
                if (i == 37) throw Error(ErrorCode::Internal, "task 37 failed");
            });
        } catch (const Error& e) {
            threw = true;
            QCOMPARE(std::string(e.what()), std::string("task 37 failed"));
        }
        QVERIFY(threw);
        int after = 0;
        pool.parallelFor(1, [&](int64_t) { after = 5; });  // still usable
        QCOMPARE(after, 5);
    }

    void createBackendByName() {
        auto be = createBackend("cpu", 2);
        const DeviceInfo info = be->deviceInfo();
        QCOMPARE(info.backend, std::string("cpu"));
        QVERIFY(!info.name.empty());
        QVERIFY(info.totalBytes > (uint64_t(64) << 20));
        QVERIFY(info.freeBytes > 0 && info.freeBytes <= info.totalBytes);
        QCOMPARE(static_cast<CpuBackend*>(be.get())->threads(), 2);
        try {
            createBackend("tpu", 1);
            QFAIL("no error for an unknown backend");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidArgument);
            QVERIFY(std::string(e.what()).find("tpu") != std::string::npos);
        }
#ifndef LMW_HAVE_CUDA
        QCOMPARE(cudaAvailable(), false);
        try {
            createBackend("cuda", 1);
            QFAIL("no error for cuda in a build without it");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::Unsupported);
            QCOMPARE(std::string(e.what()), std::string("this build has no CUDA backend"));
        }
        QCOMPARE(createBackend("auto", 1)->deviceInfo().backend, std::string("cpu"));
#endif
    }

    void arenaKeepsPointersWithinAStep() {
        CpuBackend be(1);
        be.beginStep(plainBatch(1));
        Tensor a = be.alloc(3, 5);
        for (int i = 0; i < 15; ++i) static_cast<float*>(a.data)[i] = float(i) + 0.5f;
        Tensor big = be.alloc(1, int64_t(20) << 20);  // more than one chunk: a new chunk
        static_cast<float*>(big.data)[(int64_t(20) << 20) - 1] = 1.f;
        Tensor c = be.alloc(2, 2);
        QVERIFY(c.data != a.data && big.data != a.data);
        QCOMPARE(reinterpret_cast<uintptr_t>(c.data) % 64, uintptr_t(0));
        for (int i = 0; i < 15; ++i) QCOMPARE(static_cast<float*>(a.data)[i], float(i) + 0.5f);
        be.beginStep(plainBatch(2));
        Tensor d = be.alloc(int64_t(20) << 20, 1);  // fits the merged chunk
        static_cast<float*>(d.data)[0] = 2.f;
        QCOMPARE(d.rows, int64_t(20) << 20);
    }

    void linearDense_data() {
        QTest::addColumn<int>("dtype");
        QTest::addColumn<int>("in");
        QTest::addColumn<int>("out");
        QTest::addColumn<int>("T");
        QTest::addColumn<int>("threads");
        const std::pair<DType, const char*> types[] = {{DType::F32, "f32"}, {DType::F16, "f16"}, {DType::BF16, "bf16"}};
        const int shapes[][2] = {{172, 64}, {64, 172}, {520, 300}, {7, 5}};
        for (auto [dt, dn] : types)
            for (auto& sh : shapes)
                for (int T : {1, 3, 8, 17})
                    QTest::newRow(QString("%1 %2x%3 T=%4").arg(dn).arg(sh[0]).arg(sh[1]).arg(T).toUtf8())
                        << int(dt) << sh[0] << sh[1] << T << 3;
        QTest::newRow("bf16 single thread T=17") << int(DType::BF16) << 172 << 64 << 17 << 1;
        // Long rows: prefill splits the tokens into several blocks.
        QTest::newRow("f16 1100x40 T=70") << int(DType::F16) << 1100 << 40 << 70 << 2;
        QTest::newRow("f32 1100x41 T=70") << int(DType::F32) << 1100 << 41 << 70 << 2;
    }

    void linearDense() {
        QFETCH(int, dtype);
        QFETCH(int, in);
        QFETCH(int, out);
        QFETCH(int, T);
        QFETCH(int, threads);
        CpuBackend be(threads);
        auto w = makeTensor("w", DType(dtype), {out, in}, randomFloats(size_t(out * in)));
        LinearSource src;
        src.name = "test.dense";
        src.in = in;
        src.out = out;
        src.dtype = DType(dtype);
        src.segments.push_back({&w->ref, nullptr, nullptr, 0, out, 0});
        auto lin = be.loadLinear(src);
        QCOMPARE(lin->bytes(), uint64_t(out) * uint64_t(in) * dtypeSize(DType(dtype)));
        std::vector<std::vector<double>> wd(static_cast<size_t>(out), std::vector<double>(static_cast<size_t>(in)));
        for (int o = 0; o < out; ++o)
            for (int i = 0; i < in; ++i) wd[size_t(o)][size_t(i)] = w->values[size_t(o * in + i)];
        const auto x = randomFloats(size_t(T * in));
        be.beginStep(plainBatch(T));
        Tensor tx = be.upload(x.data(), T, in);
        Tensor ty = be.alloc(T, out);
        be.linear(ty, tx, *lin);
        const QString err = compareLinear(download(be, ty), refLinear(x, T, in, wd, {}), x, T, in, wd, 2e-6 * std::sqrt(in));
        QVERIFY2(err.isEmpty(), qPrintable(err));
    }

    void linearSegmentsWithBias() {
        CpuBackend be(2);
        const int in = 172, T = 3;
        // Two source tensors; output rows are taken from both, out of order, like a fused q|k|v.
        auto a = makeTensor("a", DType::BF16, {100, in}, randomFloats(size_t(100 * in)));
        auto b = makeTensor("b", DType::BF16, {50, in}, randomFloats(size_t(50 * in)));
        auto ba = makeTensor("a.bias", DType::F32, {100}, randomFloats(100));
        auto bb = makeTensor("b.bias", DType::BF16, {50}, randomFloats(50));
        LinearSource src;
        src.name = "test.fused";
        src.in = in;
        src.out = 100;
        src.dtype = DType::BF16;
        src.segments = {{&b->ref, nullptr, nullptr, 10, 30, 0}, {&a->ref, nullptr, nullptr, 5, 60, 30},
                        {&b->ref, nullptr, nullptr, 0, 10, 90}};
        src.biasSegments = {{&bb->ref, nullptr, nullptr, 10, 30, 0}, {&ba->ref, nullptr, nullptr, 5, 60, 30},
                            {&bb->ref, nullptr, nullptr, 0, 10, 90}};
        auto lin = be.loadLinear(src);
        std::vector<std::vector<double>> wd(100, std::vector<double>(size_t(in)));
        std::vector<double> bias(100);
        for (const auto& seg : src.segments) {
            const HostTensor& h = seg.src == &a->ref ? *a : *b;
            const HostTensor& hb = seg.src == &a->ref ? *ba : *bb;
            for (int64_t r = 0; r < seg.count; ++r) {
                for (int i = 0; i < in; ++i) wd[size_t(seg.dstStart + r)][size_t(i)] = h.values[size_t((seg.srcStart + r) * in + i)];
                bias[size_t(seg.dstStart + r)] = hb.values[size_t(seg.srcStart + r)];
            }
        }
        const auto x = randomFloats(size_t(T * in));
        be.beginStep(plainBatch(T));
        Tensor tx = be.upload(x.data(), T, in);
        Tensor ty = be.alloc(T, 100);
        be.linear(ty, tx, *lin);
        const QString err = compareLinear(download(be, ty), refLinear(x, T, in, wd, bias), x, T, in, wd, 3e-5);
        QVERIFY2(err.isEmpty(), qPrintable(err));

        // A hole in the output rows is a clear error naming the layer.
        src.segments.pop_back();
        src.biasSegments.clear();
        try {
            be.loadLinear(src);
            QFAIL("no error for uncovered rows");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidModel);
            QVERIFY2(std::string(e.what()).find("test.fused") != std::string::npos, e.what());
            QVERIFY2(std::string(e.what()).find("row 90") != std::string::npos, e.what());
        }
    }

    void linearAwq_data() {
        QTest::addColumn<int>("in");
        QTest::addColumn<int>("srcOut");
        QTest::addColumn<int>("group");
        QTest::addColumn<int>("T");
        QTest::newRow("g128 T=1") << 256 << 24 << 128 << 1;
        QTest::newRow("g128 T=3") << 256 << 24 << 128 << 3;
        QTest::newRow("g64 T=17") << 192 << 40 << 64 << 17;
        QTest::newRow("g32 T=9") << 96 << 16 << 32 << 9;
        QTest::newRow("g16 (scalar) T=1") << 48 << 16 << 16 << 1;
        QTest::newRow("g43 (scalar) T=3") << 172 << 64 << 43 << 3;
        QTest::newRow("g128 T=70 (token blocks)") << 1152 << 16 << 128 << 70;
    }

    void linearAwq() {
        QFETCH(int, in);
        QFETCH(int, srcOut);
        QFETCH(int, group);
        QFETCH(int, T);
        CpuBackend be(3);
        const int groups = in / group, packs = srcOut / 8;
        std::uniform_int_distribution<int> nib(0, 15);
        std::vector<int> q(size_t(in * srcOut)), z(size_t(groups * srcOut));
        for (auto& v : q) v = nib(rng());
        for (auto& v : z) v = nib(rng());
        std::vector<int32_t> qw(size_t(in * packs)), qz(size_t(groups * packs));
        for (int i = 0; i < in; ++i)
            for (int p = 0; p < packs; ++p) qw[size_t(i * packs + p)] = packAwq(&q[size_t(i * srcOut + p * 8)]);
        for (int g = 0; g < groups; ++g)
            for (int p = 0; p < packs; ++p) qz[size_t(g * packs + p)] = packAwq(&z[size_t(g * srcOut + p * 8)]);
        auto qweight = makeI32("l.qweight", {in, packs}, qw);
        auto qzeros = makeI32("l.qzeros", {groups, packs}, qz);
        auto scales = makeTensor("l.scales", DType::F16, {groups, srcOut}, randomFloats(size_t(groups * srcOut), 0.001f, 0.05f));
        // Two segments, the second starting inside a pack: output rows = source columns 5.. then 0..4.
        LinearSource src;
        src.name = "test.awq";
        src.in = in;
        src.out = srcOut;
        src.awq = true;
        src.groupSize = group;
        src.dtype = DType::F16;
        src.segments = {{&qweight->ref, &qzeros->ref, &scales->ref, 5, srcOut - 5, 0},
                        {&qweight->ref, &qzeros->ref, &scales->ref, 0, 5, srcOut - 5}};
        auto lin = be.loadLinear(src);
        std::vector<std::vector<double>> wd(static_cast<size_t>(srcOut), std::vector<double>(static_cast<size_t>(in)));
        for (int o = 0; o < srcOut; ++o) {
            const int c = o < srcOut - 5 ? o + 5 : o - (srcOut - 5);
            for (int i = 0; i < in; ++i) {
                const int g = i / group;
                wd[size_t(o)][size_t(i)] = double(q[size_t(i * srcOut + c)] - z[size_t(g * srcOut + c)]) *
                                           double(scales->values[size_t(g * srcOut + c)]);
            }
        }
        const auto x = randomFloats(size_t(T * in));
        be.beginStep(plainBatch(T));
        Tensor tx = be.upload(x.data(), T, in);
        Tensor ty = be.alloc(T, srcOut);
        be.linear(ty, tx, *lin);
        // Group sizes that are a multiple of 128 run on activations quantized to int8 per 128 inputs
        // (d = max|x| / 127, codes rounded to nearest): the reference takes those activations.
        std::vector<float> xr = x;
        if (group % 128 == 0)
            for (size_t c = 0; c < xr.size(); c += 128) {
                float amax = 0.f;
                for (size_t j = c; j < c + 128; ++j) amax = std::max(amax, std::fabs(xr[j]));
                const float inv = amax > 0.f ? 127.f / amax : 0.f, d = amax / 127.f;
                for (size_t j = c; j < c + 128; ++j) xr[j] = float(std::lrintf(xr[j] * inv)) * d;
            }
        const QString err = compareLinear(download(be, ty), refLinear(xr, T, in, wd, {}), xr, T, in, wd, 3e-5);
        QVERIFY2(err.isEmpty(), qPrintable(err));
    }

    void rmsNorm() {
        CpuBackend be(2);
        for (int cols : {64, 172}) {
            const int T = 3;
            auto w = makeTensor("norm", DType::BF16, {cols}, randomFloats(size_t(cols), 0.5f, 1.5f));
            auto nw = be.loadNorm(w->ref);
            auto x = randomFloats(size_t(T * cols), -3.f, 3.f);
            be.beginStep(plainBatch(T));
            Tensor tx = be.upload(x.data(), T, cols), ty = be.alloc(T, cols);
            be.rmsNorm(ty, tx, *nw, 1e-5f);
            const auto got = download(be, ty);
            for (int t = 0; t < T; ++t) {
                double ss = 0;
                for (int i = 0; i < cols; ++i) ss += double(x[size_t(t * cols + i)]) * x[size_t(t * cols + i)];
                const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
                for (int i = 0; i < cols; ++i) {
                    const double want = double(x[size_t(t * cols + i)]) * inv * w->values[size_t(i)];
                    QVERIFY2(std::abs(got[size_t(t * cols + i)] - want) <= 1e-6 * (1 + std::abs(want)),
                             qPrintable(QString("t=%1 i=%2 got %3 want %4").arg(t).arg(i).arg(got[size_t(t * cols + i)]).arg(want)));
                }
            }
        }
    }

    // The residual add fused with the norm after it: the same bits as add then rmsNorm, in x and in h;
    // shapes that do not fit, and h on top of x or y, are refused.
    void addRmsNormIsAddThenNorm() {
        CpuBackend be(3);
        for (int cols : {12, 130, 4096 + 8}) {
            for (int T : {1, 3, 16}) {
                auto w = makeTensor("norm", DType::BF16, {cols}, randomFloats(size_t(cols), 0.5f, 1.5f));
                auto nw = be.loadNorm(w->ref);
                const auto x = randomFloats(size_t(T * cols), -3.f, 3.f), y = randomFloats(size_t(T * cols), -3.f, 3.f);
                be.beginStep(plainBatch(T));
                Tensor fx = be.upload(x.data(), T, cols), fy = be.upload(y.data(), T, cols), fh = be.alloc(T, cols);
                be.addRmsNorm(fx, fy, fh, *nw, 1e-5f);
                Tensor px = be.upload(x.data(), T, cols), py = be.upload(y.data(), T, cols), ph = be.alloc(T, cols);
                be.add(px, py);
                be.rmsNorm(ph, px, *nw, 1e-5f);
                QCOMPARE(download(be, fx), download(be, px));
                QCOMPARE(download(be, fh), download(be, ph));
                QCOMPARE(download(be, fy), y);
            }
        }
        auto w = makeTensor("norm", DType::F32, {8}, randomFloats(8, 0.5f, 1.5f));
        auto nw = be.loadNorm(w->ref);
        be.beginStep(plainBatch(2));
        const auto v = randomFloats(16);
        Tensor x = be.upload(v.data(), 2, 8), y = be.upload(v.data(), 2, 8), wide = be.alloc(2, 16), wideY = be.alloc(2, 16),
               wideH = be.alloc(2, 16);
        be.addRmsNorm(x, y, be.alloc(2, 8), *nw, 1e-5f);  // fits
        QVERIFY_THROWS_EXCEPTION(Error, be.addRmsNorm(x, y, wide, *nw, 1e-5f));
        QVERIFY_THROWS_EXCEPTION(Error, be.addRmsNorm(wide, wideY, wideH, *nw, 1e-5f));  // weight of 8 for 16 columns
        QVERIFY_THROWS_EXCEPTION(Error, be.addRmsNorm(x, y, x, *nw, 1e-5f));
        QVERIFY_THROWS_EXCEPTION(Error, be.addRmsNorm(x, y, y, *nw, 1e-5f));
        QVERIFY_THROWS_EXCEPTION(Error, be.addRmsNorm(x, y, colRange(wide, 0, 8), *nw, 1e-5f));  // a view
    }

    // Qwen3's q/k norms: a norm of length D over a column view of qkv normalizes every head of the view in
    // place; the columns outside the view and the other ops' density checks stay as they were.
    void rmsNormPerHeadOnAView() {
        CpuBackend be(2);
        const int T = 5, H = 4, KVH = 2, D = 32, cols = (H + 2 * KVH) * D;
        auto w = makeTensor("q_norm", DType::BF16, {D}, randomFloats(size_t(D), 0.5f, 1.5f));
        auto nw = be.loadNorm(w->ref);
        const auto x = randomFloats(size_t(T * cols), -3.f, 3.f);
        be.beginStep(plainBatch(T));
        Tensor qkv = be.upload(x.data(), T, cols);
        QVERIFY(qkv.dense());
        Tensor k = colRange(qkv, H * D, (H + KVH) * D);
        QCOMPARE(k.rows, int64_t(T));
        QCOMPARE(k.cols, int64_t(KVH * D));
        QCOMPARE(k.stride, int64_t(cols));
        QVERIFY(!k.dense());
        be.rmsNorm(k, k, *nw, 1e-6f);
        const auto got = download(be, qkv);
        for (int t = 0; t < T; ++t)
            for (int c = 0; c < cols; ++c) {
                const float in = x[size_t(t * cols + c)];
                double want = in;
                if (c >= H * D && c < (H + KVH) * D) {
                    const int head0 = c / D * D;
                    double ss = 0;
                    for (int i = 0; i < D; ++i) ss += double(x[size_t(t * cols + head0 + i)]) * x[size_t(t * cols + head0 + i)];
                    want = in / std::sqrt(ss / D + 1e-6) * w->values[size_t(c % D)];
                }
                QVERIFY2(std::abs(got[size_t(t * cols + c)] - want) <= 1e-6 * (1 + std::abs(want)),
                         qPrintable(QString("t=%1 c=%2 got %3 want %4").arg(t).arg(c).arg(got[size_t(t * cols + c)]).arg(want)));
            }
        // readF32 of a view gives its columns densely.
        std::vector<float> kOnly(size_t(T * KVH * D));
        be.readF32(k, kOnly.data());
        for (int t = 0; t < T; ++t)
            for (int c = 0; c < KVH * D; ++c) QCOMPARE(kOnly[size_t(t * KVH * D + c)], got[size_t(t * cols + H * D + c)]);
        // A norm whose length does not divide the columns, a range outside the tensor, and a view given to
        // an op that wants dense tensors are errors.
        auto bad = makeTensor("bad", DType::F32, {24}, randomFloats(24));
        auto badNorm = be.loadNorm(bad->ref);
        QVERIFY_THROWS_EXCEPTION(Error, be.rmsNorm(k, k, *badNorm, 1e-6f));
        QVERIFY_THROWS_EXCEPTION(Error, colRange(qkv, 0, cols + 1));
        QVERIFY_THROWS_EXCEPTION(Error, colRange(qkv, 10, 9));
        try {
            be.add(k, k);
            QFAIL("add took a view");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidArgument);
            QVERIFY2(std::string(e.what()).find("view [5, 64 of 256]") != std::string::npos, e.what());
        }
    }

    void embedRows() {
        CpuBackend be(1);
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            auto table = makeTensor("embed", dt, {50, 24}, randomFloats(50 * 24));
            auto e = be.loadEmbedding(table->ref);
            StepBatch b = plainBatch(3);
            b.tokens = {3, 0, 49};
            be.beginStep(b);
            Tensor out = be.alloc(3, 24);
            be.embed(out, *e);
            const auto got = download(be, out);
            for (int t = 0; t < 3; ++t)
                for (int i = 0; i < 24; ++i) QCOMPARE(got[size_t(t * 24 + i)], table->values[size_t(b.tokens[size_t(t)] * 24 + i)]);
            b.tokens = {3, 50, 1};
            be.beginStep(b);
            try {
                be.embed(be.alloc(3, 24), *e);
                QFAIL("no error for a token outside the vocabulary");
            } catch (const Error& err) {
                QCOMPARE(err.code(), ErrorCode::InvalidArgument);
                QVERIFY2(std::string(err.what()).find("token id 50") != std::string::npos, err.what());
            }
        }
    }

    // Attention rotates q and k of qkv in place before it stores k (the rope half of the op).
    void attentionAppliesRope() {
        CpuBackend be(2);
        const int H = 4, KVH = 2, D = 16, half = D / 2, cols = (H + 2 * KVH) * D;
        be.allocKvCache({1, KVH, D, 64, 0}, 9);
        // Two sequences with different rotary tables: positions 0..500 and 0..4, all in this step (so
        // attention reads only what the step stores).
        StepBatch b;
        for (int p = 0; p <= 500; ++p) b.positions.push_back(p);
        for (int p = 0; p < 5; ++p) b.positions.push_back(p);
        const int T = int(b.positions.size());
        b.tokens.assign(size_t(T), 1);
        b.seqStart = {0, 501, T};
        b.contextLen = {501, 5};
        b.maxBlocks = 8;
        for (int s = 0; s < 2; ++s)
            for (int k = 0; k < b.maxBlocks; ++k) b.blockTable.push_back(s == 0 ? k : k == 0 ? 8 : -1);
        for (int s = 0; s < 2; ++s)
            for (int i = 0; i < half; ++i)
                b.invFreq.push_back(float(1.0 / std::pow(s == 0 ? 10000.0 : 500000.0, 2.0 * i / D)) * (s == 0 ? 1.f : 0.25f));
        const auto x = randomFloats(size_t(T * cols));
        be.beginStep(b);
        Tensor t = be.upload(x.data(), T, cols);
        be.attention(be.alloc(T, H * D), t, 0, H, KVH, D);
        const auto got = download(be, t);
        for (int r = 0; r < T; ++r) {
            const int s = r < 501 ? 0 : 1;
            for (int h = 0; h < H + 2 * KVH; ++h)
                for (int i = 0; i < half; ++i) {
                    const float angle = float(b.positions[size_t(r)]) * b.invFreq[size_t(s * half + i)];
                    const double c = std::cos(double(angle)), sn = std::sin(double(angle));
                    const double a0 = x[size_t(r * cols + h * D + i)], a1 = x[size_t(r * cols + h * D + i + half)];
                    double w0 = a0 * c - a1 * sn, w1 = a1 * c + a0 * sn;
                    if (h >= H + KVH) w0 = a0, w1 = a1;  // v is left alone
                    QVERIFY2(std::abs(got[size_t(r * cols + h * D + i)] - w0) < 2e-6 &&
                                 std::abs(got[size_t(r * cols + h * D + i + half)] - w1) < 2e-6,
                             qPrintable(QString("row %1 head %2 pair %3: got %4,%5 want %6,%7").arg(r).arg(h).arg(i)
                                            .arg(got[size_t(r * cols + h * D + i)]).arg(got[size_t(r * cols + h * D + i + half)])
                                            .arg(w0).arg(w1)));
                }
        }
    }

    void elementwise() {
        CpuBackend be(2);
        const int T = 3, F = 172;
        StepBatch b = plainBatch(T);
        b.logitRows = {2, 0};
        be.beginStep(b);
        const auto gu = randomFloats(size_t(T * 2 * F), -4.f, 4.f);
        Tensor tgu = be.upload(gu.data(), T, 2 * F), out = be.alloc(T, F);
        be.siluMul(out, tgu);
        auto got = download(be, out);
        for (int t = 0; t < T; ++t)
            for (int i = 0; i < F; ++i) {
                const double g = gu[size_t(t * 2 * F + i)], u = gu[size_t(t * 2 * F + F + i)];
                const double want = g / (1 + std::exp(-g)) * u;
                QVERIFY(std::abs(got[size_t(t * F + i)] - want) <= 1e-6 * (1 + std::abs(want)));
            }
        const auto y = randomFloats(size_t(T * F));
        Tensor ty = be.upload(y.data(), T, F);
        be.add(out, ty);
        const auto sum = download(be, out);
        for (size_t i = 0; i < sum.size(); ++i) QCOMPARE(sum[i], got[i] + y[i]);
        Tensor picked = be.alloc(2, F);
        be.gatherRows(picked, out);
        const auto rows = download(be, picked);
        for (int i = 0; i < F; ++i) {
            QCOMPARE(rows[size_t(i)], sum[size_t(2 * F + i)]);
            QCOMPARE(rows[size_t(F + i)], sum[size_t(i)]);
        }
        std::vector<double> colAbs(size_t(F), 1.0);  // accumulates onto what is there
        be.addColumnAbsSums(out, colAbs.data());
        for (int i = 0; i < F; ++i) {
            double want = 1.0;
            for (int t = 0; t < T; ++t) want += std::abs(double(sum[size_t(t * F + i)]));
            QCOMPARE(colAbs[size_t(i)], want);
        }
    }

    void kvBlockBytes() {
        CpuBackend be(1);
        QCOMPARE(be.kvBlockBytes({2, 2, 16, 64, 0}), uint64_t(2 * 2 * 2 * 64 * 16 * 4));
        QCOMPARE(be.kvBlockBytes({2, 2, 16, 64, 8}), uint64_t(2 * 2 * 2 * 64 * (16 + 4)));  // + f16 scale, zero
        QCOMPARE(be.kvBlockBytes({2, 2, 16, 64, 4}), uint64_t(2 * 2 * 2 * 64 * (8 + 4)));
        try {
            be.kvBlockBytes({2, 2, 16, 64, 3});
            QFAIL("no error for quant_policy 3");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidArgument);
        }
    }

    void attentionPagedMatchesDense_data() {
        QTest::addColumn<int>("H");
        QTest::addColumn<int>("KVH");
        QTest::addColumn<int>("D");
        QTest::newRow("gqa 4/2 d16") << 4 << 2 << 16;
        QTest::newRow("stories 8/4 d8") << 8 << 4 << 8;
        QTest::newRow("mha 3/3 d12") << 3 << 3 << 12;
    }

    void attentionPagedMatchesDense() {
        QFETCH(int, H);
        QFETCH(int, KVH);
        QFETCH(int, D);
        CpuBackend be(3);
        AttentionRun run;
        run.H = H;
        run.KVH = KVH;
        run.D = D;
        run.tables = {{7, 2, 5}, {0, 9}};  // shuffled physical blocks
        // Prefill of two prompts of different lengths (70 crosses a block edge) in one batch, then a
        // chunked prefill of the second beside decode steps of the first, then decode of both.
        run.run(be, {{70, 5}, {1, 60}, {1, 1}, {1, 0}, {0, 1}, {60, 1}}, 1e-5);
        QVERIFY2(run.failure.isEmpty(), qPrintable(run.failure));
        QVERIFY(run.maxRef > 0.1);
    }

    void attentionLongPrefill() {
        // A prompt longer than 512 tokens over 15 shuffled blocks, then decode.
        CpuBackend be(2);
        AttentionRun run;
        run.layers = 1;
        run.layer = 0;
        run.H = 8;
        run.KVH = 4;
        run.D = 8;
        run.numBlocks = 20;
        run.tables = {{19, 3, 7, 0, 12, 5, 1, 18, 2, 9, 14, 6, 11, 4, 16}};
        run.run(be, {{931}, {1}, {1}}, 1e-5);
        QVERIFY2(run.failure.isEmpty(), qPrintable(run.failure));
    }

    void attentionQuantizedKv_data() {
        QTest::addColumn<int>("policy");
        QTest::addColumn<double>("maxRel");
        QTest::newRow("int8") << 8 << 6e-3;  // rounding gives ~4e-3, truncation twice that
        QTest::newRow("int4") << 4 << 1e-1;
    }

    void attentionQuantizedKv() {
        QFETCH(int, policy);
        QFETCH(double, maxRel);
        CpuBackend be(2);
        AttentionRun run;
        run.policy = policy;
        run.D = 64;
        run.H = 4;
        run.KVH = 2;
        run.tables = {{3, 1}, {4}};
        run.run(be, {{70, 20}, {1, 1}, {1, 1}}, 1e9);
        const double rel = run.relErr();
        qInfo("quant_policy %d: relative error %.4g (max abs %.4g)", policy, rel, run.maxErr);
        QVERIFY2(rel < maxRel, qPrintable(QString("relative error %1").arg(rel)));
        QVERIFY2(rel > 1e-5, "no quantization error at all: the cache is not quantized");
    }

    void keyOffsetsShrinkTheQuantizationError() {
        // Keys with large constant channels (as real models have): the offsets leave attention as it
        // is (the reference uses the real keys) and take most of the int4 error away.
        auto relErr = [](bool withOffsets) {
            CpuBackend be(2);
            AttentionRun run;
            run.policy = 4;
            run.keyShift.assign(size_t(run.D), 0.0f);
            run.keyShift[3] = 9.0f;
            run.keyShift[11] = -6.0f;
            if (withOffsets)
                for (int i = 0; i < run.layers * run.KVH; ++i)
                    run.keyOffsets.insert(run.keyOffsets.end(), run.keyShift.begin(), run.keyShift.end());
            run.tables = {{3, 1}, {4}};
            run.run(be, {{70, 20}, {1, 1}}, 1e9);
            return run.relErr();
        };
        const double without = relErr(false), with = relErr(true);
        qInfo("int4 KV, keys with constant channels: relative attention error %.4g without offsets, %.4g with", without,
              with);
        QVERIFY(with < 0.5 * without);
        QVERIFY(with < 0.1);

        CpuBackend be(1);
        be.allocKvCache({2, 2, 16, 64, 4}, 2);
        try {
            be.setKvKeyOffsets(std::vector<float>(7, 0.0f));
            QFAIL("no error for offsets of the wrong size");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidArgument);
        }
    }

    void copyKvBlockKeepsContext() {
        for (int policy : {0, 8, 4}) {
            CpuBackend be(2);
            const int H = 4, KVH = 2, D = 16, cols = (H + 2 * KVH) * D;
            be.allocKvCache({1, KVH, D, 64, policy}, 8);
            // Sequence A fills 10 positions of block 3.
            StepBatch a = plainBatch(10);
            a.blockTable = {3};
            a.maxBlocks = 1;
            withoutRotation(a, D);
            const auto qkv = randomFloats(size_t(10 * cols));
            be.beginStep(a);
            Tensor out = be.alloc(10, H * D);
            be.attention(out, be.upload(qkv.data(), 10, cols), 0, H, KVH, D);
            be.copyKvBlock(3, 6);
            // Sequence B shares that prefix through the copy: its 11th token sees A's 10.
            StepBatch b = plainBatch(1);
            b.positions = {10};
            b.contextLen = {11};
            b.blockTable = {6};
            b.maxBlocks = 1;
            withoutRotation(b, D);
            const auto q2 = randomFloats(size_t(cols));
            be.beginStep(b);
            Tensor o1 = be.alloc(1, H * D);
            be.attention(o1, be.upload(q2.data(), 1, cols), 0, H, KVH, D);
            const auto viaCopy = download(be, o1);
            // The same token over the original block gives the same numbers.
            b.blockTable = {3};
            be.beginStep(b);
            Tensor o2 = be.alloc(1, H * D);
            be.attention(o2, be.upload(q2.data(), 1, cols), 0, H, KVH, D);
            const auto viaOriginal = download(be, o2);
            QCOMPARE(viaCopy, viaOriginal);
            if (policy == 0) {
                std::vector<std::vector<float>> keys, vals;
                for (int t = 0; t < 11; ++t) {
                    const float* row = t < 10 ? qkv.data() + size_t(t * cols) : q2.data();
                    keys.emplace_back(row + H * D, row + (H + KVH) * D);
                    vals.emplace_back(row + (H + KVH) * D, row + (H + 2 * KVH) * D);
                }
                const auto want = refAttention(q2.data(), keys, vals, 11, H, KVH, D);
                for (int e = 0; e < H * D; ++e) QVERIFY(std::abs(viaCopy[size_t(e)] - want[size_t(e)]) < 1e-5);
            }
            try {
                be.copyKvBlock(3, 8);
                QFAIL("no error for a block past the end");
            } catch (const Error& e) {
                QCOMPARE(e.code(), ErrorCode::InvalidArgument);
            }
        }
    }

    void attentionRejectsMissingBlock() {
        CpuBackend be(1);
        be.allocKvCache({1, 2, 8, 64, 0}, 2);
        StepBatch b = plainBatch(1);
        b.positions = {64};  // needs a second block the table does not have
        b.blockTable = {0, -1};
        b.maxBlocks = 2;
        withoutRotation(b, 8);
        be.beginStep(b);
        try {
            be.attention(be.alloc(1, 32), be.alloc(1, 64), 0, 4, 2, 8);
            QFAIL("no error for a missing block");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidArgument);
            QVERIFY2(std::string(e.what()).find("position 64") != std::string::npos, e.what());
        }
    }
};

QTEST_APPLESS_MAIN(TestCpuBackend)
#include "test_cpu_backend.moc"
