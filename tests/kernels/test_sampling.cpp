// The device sampler (kernels/src/sampling.cu) against the host Sampler, its reference, on Qwen's and
// Llama 3's vocabularies: greedy, the draw from fixed uniforms under top-k / top-p / min-p, penalties
// and logit bias (the penalized logits themselves), logprobs against f64; then the CUDA backend's
// sampleOnDevice on a real model's logits, and the engine on CUDA (device sampling) against greedy
// decoding through the Transformer on CUDA and on the CPU.
#include <QtTest>
#include <cmath>

#include <algorithm>
#include <future>
#include <numeric>
#include <set>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "gpu_test_util.h"
#include "greedy_run.h"
#include "lmw/kernels/sampling.h"
#include "lmw/kernels/sampling_math.h"
#include "lmw/sampling.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using namespace lmw::test;
namespace k = lmw::kernels;

namespace {

enum class Shape { Normal, Peaked, Flat, Ties };

float roundTo(float v, k::SrcType t) {
    if (t == k::SrcType::F16) return halfToFloat(floatToHalf(v));
    if (t == k::SrcType::BF16) return bf16ToFloat(floatToBf16(v));
    return v;
}

// [rows, vocab] logits already rounded to `t`, so the host sees exactly what the device sees. Normal:
// N(0, 3) with a tie for the max at a higher id, NaN and -inf sprinkled; Peaked: a few tokens far above
// the rest; Flat: nearly uniform (a nucleus of most of the vocabulary); Ties: small integers only.
std::vector<float> makeLogits(int rows, int vocab, Shape shape, k::SrcType t, std::mt19937& rng) {
    std::vector<float> l(size_t(rows) * size_t(vocab));
    std::normal_distribution<float> normal(0.f, shape == Shape::Flat ? 0.05f : 3.f);
    std::uniform_int_distribution<int> small(-5, 5), id(0, vocab - 1);
    for (int r = 0; r < rows; ++r) {
        float* row = l.data() + size_t(r) * size_t(vocab);
        for (int i = 0; i < vocab; ++i) row[i] = shape == Shape::Ties ? float(small(rng)) : roundTo(normal(rng), t);
        if (shape == Shape::Peaked)
            for (int j = 0; j < 4; ++j) row[id(rng)] = roundTo(14.f + float(j), t);
        if (shape == Shape::Normal) {
            const int top = int(std::max_element(row, row + vocab) - row);
            row[std::min(vocab - 1, top + 1 + id(rng) % 1000)] = row[top];  // ties -> lowest id
            for (int j = 0; j < 8; ++j) row[id(rng)] = NAN;
            for (int j = 0; j < 8; ++j) row[id(rng)] = -INFINITY;
        }
    }
    return l;
}

std::vector<uint16_t> encode16(const std::vector<float>& v, k::SrcType t) {
    std::vector<uint16_t> o(v.size());
    for (size_t i = 0; i < v.size(); ++i) o[i] = t == k::SrcType::F16 ? floatToHalf(v[i]) : floatToBf16(v[i]);
    return o;
}

struct DeviceRun {
    int status = -1;
    std::vector<k::SampleRowResult> results;
    std::vector<float> scratch;  // [params, vocab]: the penalized logits of rows that needed the workspace
    bool countsZero = false;
};

// Runs sampleRows on host logits [rows, vocab], stored with a row stride of vocab + pad.
DeviceRun runDevice(const std::vector<float>& logits, int rows, int vocab, k::SrcType t,
                    const std::vector<k::SampleRowParams>& params, const std::vector<int32_t>& history = {},
                    const std::vector<int32_t>& biasIds = {}, const std::vector<float>& biasValues = {}, int pad = 0,
                    const std::vector<uint32_t>& masks = {}) {
    const int64_t stride = vocab + pad;
    std::vector<float> strided(size_t(rows) * size_t(stride), 0.f);
    for (int r = 0; r < rows; ++r)
        std::copy_n(logits.begin() + int64_t(r) * vocab, vocab, strided.begin() + r * stride);
    std::unique_ptr<DeviceMem> dLogits = t == k::SrcType::F32 ? upload(strided) : upload(encode16(strided, t));
    auto dParams = upload(params);
    auto dHistory = upload(history.empty() ? std::vector<int32_t>{0} : history);
    auto dBiasIds = upload(biasIds.empty() ? std::vector<int32_t>{0} : biasIds);
    auto dBiasValues = upload(biasValues.empty() ? std::vector<float>{0.f} : biasValues);
    auto dMasks = upload(masks.empty() ? std::vector<uint32_t>{0} : masks);
    const size_t ws = params.size() * size_t(vocab);
    DeviceMem scratch(ws * 4), counts(ws * 4), results(params.size() * sizeof(k::SampleRowResult));
    scratch.poison();
    results.poison();
    cudaMemset(counts.get(), 0, counts.bytes());
    k::SampleBatch b;
    b.logits = dLogits->get();
    b.type = t;
    b.stride = stride;
    b.vocab = vocab;
    b.rows = int(params.size());
    b.params = dParams->as<k::SampleRowParams>();
    b.history = dHistory->as<int32_t>();
    b.biasIds = dBiasIds->as<int32_t>();
    b.biasValues = dBiasValues->as<float>();
    b.masks = dMasks->as<uint32_t>();
    b.scratch = scratch.as<float>();
    b.counts = counts.as<uint32_t>();
    b.results = results.as<k::SampleRowResult>();
    DeviceRun run;
    run.status = k::sampleRows(b, nullptr);
    if (run.status == 0) run.status = int(cudaDeviceSynchronize());
    run.results = download<k::SampleRowResult>(results, params.size());
    run.scratch = download<float>(scratch, ws);
    const auto c = download<uint32_t>(counts, ws);
    run.countsZero = std::all_of(c.begin(), c.end(), [](uint32_t v) { return v == 0; });
    return run;
}

k::SampleRowParams rowParams(int row, const SamplingParams& sp, uint64_t uniform) {
    k::SampleRowParams p;
    p.row = row;
    p.temperature = sp.temperature;
    p.topK = sp.topK;
    p.topP = sp.topP;
    p.minP = sp.minP;
    p.repetitionPenalty = sp.repetitionPenalty;
    p.presencePenalty = sp.presencePenalty;
    p.frequencyPenalty = sp.frequencyPenalty;
    p.uniform = uniform;
    return p;
}

// The host Sampler on a copy of row `r`; `penalized` gets the row as the sampler left it.
int32_t hostSample(const std::vector<float>& logits, int r, int vocab, const SamplingParams& sp, uint64_t uniform,
                   const std::vector<int32_t>& history = {}, size_t promptLen = 0, std::vector<float>* penalized = nullptr) {
    std::vector<float> row(logits.begin() + int64_t(r) * vocab, logits.begin() + int64_t(r + 1) * vocab);
    Sampler s(sp, vocab);
    const int32_t tok = s.sample(row.data(), history, promptLen, uniform);
    if (penalized) *penalized = std::move(row);
    return tok;
}

// The row's logit bias entries, appended to the batch's bias arrays.
void appendBias(k::SampleRowParams& p, const SamplingParams& sp, std::vector<int32_t>& ids, std::vector<float>& values) {
    p.biasOffset = int32_t(ids.size());
    p.biasCount = int32_t(sp.logitBias.size());
    for (const auto& [id, bias] : sp.logitBias) {
        ids.push_back(id);
        values.push_back(bias);
    }
}

SamplingParams params(float t, int topK, float topP, float minP) {
    SamplingParams p;
    p.temperature = t;
    p.topK = topK;
    p.topP = topP;
    p.minP = minP;
    return p;
}

const char* shapeName(Shape s) {
    switch (s) {
        case Shape::Normal: return "normal";
        case Shape::Peaked: return "peaked";
        case Shape::Flat: return "flat";
        case Shape::Ties: return "ties";
    }
    return "";
}

// f64 log-softmax of a row, NaN left out (as the host's logSumExp).
double lse64(const float* row, int vocab) {
    double m = -INFINITY;
    for (int i = 0; i < vocab; ++i)
        if (!std::isnan(row[i])) m = std::max(m, double(row[i]));
    double s = 0;
    for (int i = 0; i < vocab; ++i)
        if (!std::isnan(row[i])) s += std::exp(double(row[i]) - m);
    return m + std::log(s);
}

}  // namespace

Q_DECLARE_METATYPE(Shape)
Q_DECLARE_METATYPE(k::SrcType)

class TestSampling : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        if (!gpuUsableForTests()) QSKIP("no CUDA device");
    }

    void greedyMatchesHost_data() {
        QTest::addColumn<int>("vocab");
        QTest::addColumn<int>("rows");
        QTest::addColumn<k::SrcType>("type");
        for (int vocab : {151936, 128256})
            for (int rows : {1, 3, 16})
                for (auto [t, name] : {std::pair{k::SrcType::F16, "f16"}, {k::SrcType::BF16, "bf16"}, {k::SrcType::F32, "f32"}})
                    QTest::addRow("v%d-r%d-%s", vocab, rows, name) << vocab << rows << t;
    }
    void greedyMatchesHost() {
        QFETCH(int, vocab);
        QFETCH(int, rows);
        QFETCH(k::SrcType, type);
        std::mt19937 rng(uint32_t(vocab + rows));
        std::vector<float> logits = makeLogits(rows, vocab, Shape::Normal, type, rng);
        if (rows >= 3) {  // a row of -inf and NaN only: the host's answer is id 0
            float* r1 = logits.data() + vocab;
            for (int i = 0; i < vocab; ++i) r1[i] = i % 7 ? -INFINITY : NAN;
        }
        std::vector<k::SampleRowParams> ps;
        for (int r = 0; r < rows; ++r) ps.push_back(rowParams(r, params(0.f, 0, 1.f, 0.f), 0));
        const DeviceRun d = runDevice(logits, rows, vocab, type, ps, {}, {}, {}, rows == 3 ? 40 : 0);
        QCOMPARE(d.status, 0);
        for (int r = 0; r < rows; ++r) {
            const int32_t want = hostSample(logits, r, vocab, params(0.f, 0, 1.f, 0.f), 0);
            QCOMPARE(d.results[size_t(r)].token, want);
        }
        if (rows >= 3) QCOMPARE(d.results[1].token, 0);
    }

    // Every filter combination on every logit shape: for the same uniform, the same token as the host.
    void drawsMatchHost_data() {
        QTest::addColumn<int>("vocab");
        QTest::addColumn<Shape>("shape");
        QTest::addColumn<k::SrcType>("type");
        for (int vocab : {151936, 128256})
            for (Shape s : {Shape::Normal, Shape::Peaked, Shape::Flat, Shape::Ties})
                QTest::addRow("v%d-%s", vocab, shapeName(s)) << vocab << s << (vocab == 128256 ? k::SrcType::BF16 : k::SrcType::F16);
        QTest::addRow("v151936-normal-f32") << 151936 << Shape::Normal << k::SrcType::F32;
    }
    void drawsMatchHost() {
        QFETCH(int, vocab);
        QFETCH(Shape, shape);
        QFETCH(k::SrcType, type);
        const std::vector<SamplingParams> configs = {
            params(1.0f, 0, 1.0f, 0.0f),    params(0.7f, 40, 1.0f, 0.0f),  params(1.0f, 0, 0.9f, 0.0f),
            params(0.6f, 0, 0.95f, 0.0f),   params(1.0f, 50, 0.9f, 0.0f),  params(1.0f, 0, 1.0f, 0.05f),
            params(1.3f, 20, 0.8f, 0.02f),  params(1.0f, 1, 1.0f, 0.0f),   params(1.0f, 5000, 0.99f, 0.0f),
            params(2.0f, 0, 0.5f, 0.0f),    params(0.05f, 0, 0.9f, 0.0f),  params(1.0f, vocab - 1, 1.0f, 0.0f),
            params(1.0f, 0, 1e-6f, 0.0f),   params(1.0f, 3000, 1.0f, 0.3f), params(0.9f, 2100, 0.999f, 0.0f)};
        const int rows = 16;
        std::mt19937 rng(uint32_t(vocab) ^ uint32_t(shape) * 77u);
        std::mt19937_64 urng(5);
        const std::vector<float> logits = makeLogits(rows, vocab, shape, type, rng);
        std::vector<k::SampleRowParams> ps;
        std::vector<std::pair<size_t, uint64_t>> what;  // (config, uniform) of each launched row
        for (size_t c = 0; c < configs.size(); ++c)
            for (int r = 0; r < rows; ++r) {
                const uint64_t u = r == 0 ? 0 : r == 1 ? ~uint64_t(0) : urng();
                ps.push_back(rowParams(r, configs[c], u));
                what.emplace_back(c, u);
            }
        const DeviceRun d = runDevice(logits, rows, vocab, type, ps);
        QCOMPARE(d.status, 0);
        std::set<int32_t> distinct;
        for (size_t i = 0; i < ps.size(); ++i) {
            const int r = ps[i].row;
            const SamplingParams& sp = configs[what[i].first];
            const int32_t want = hostSample(logits, r, vocab, sp, what[i].second);
            QVERIFY2(d.results[i].token == want,
                     qPrintable(QString("row %1, T %2 top_k %3 top_p %4 min_p %5, uniform %6: device %7, host %8")
                                    .arg(r).arg(sp.temperature).arg(sp.topK).arg(sp.topP).arg(sp.minP)
                                    .arg(what[i].second).arg(d.results[i].token).arg(want)));
            if (what[i].first == 0) distinct.insert(want);
        }
        QVERIFY(distinct.size() > 4);  // plain T = 1 sampling does sample
    }

    // The set a filter keeps, seen through 1024 evenly spaced uniforms on one row: the device draws the
    // host's tokens, top-k stays inside the k largest logits, and each support is more than one token.
    void supportsEqualHost() {
        const int vocab = 151936;
        std::mt19937 rng(11);
        const std::vector<float> logits = makeLogits(1, vocab, Shape::Normal, k::SrcType::F16, rng);
        std::vector<int32_t> byLogit(static_cast<size_t>(vocab));
        std::iota(byLogit.begin(), byLogit.end(), 0);
        auto val = [&](int32_t i) { return std::isnan(logits[size_t(i)]) ? -INFINITY : logits[size_t(i)]; };
        std::stable_sort(byLogit.begin(), byLogit.end(), [&](int32_t a, int32_t b) { return val(a) > val(b); });
        const std::set<int32_t> top50(byLogit.begin(), byLogit.begin() + 50);
        for (const SamplingParams& sp : {params(1.0f, 50, 1.0f, 0.0f), params(1.5f, 0, 0.9f, 0.0f), params(1.5f, 0, 1.0f, 0.1f),
                                          params(1.2f, 50, 0.7f, 0.05f)}) {
            const int n = 1024;
            std::vector<k::SampleRowParams> ps;
            for (int i = 0; i < n; ++i) ps.push_back(rowParams(0, sp, uint64_t(i) * (~uint64_t(0) / uint64_t(n)) + 12345));
            const DeviceRun d = runDevice(logits, 1, vocab, k::SrcType::F16, ps);
            QCOMPARE(d.status, 0);
            std::set<int32_t> dev, host;
            for (int i = 0; i < n; ++i) {
                dev.insert(d.results[size_t(i)].token);
                host.insert(hostSample(logits, 0, vocab, sp, ps[size_t(i)].uniform));
            }
            QCOMPARE(dev, host);
            QVERIFY(dev.size() > 1);
            if (sp.topK == 50)
                for (int32_t t : dev) QVERIFY(top50.count(t));
        }
    }

    // Bias (duplicates, out-of-range ids, +-100) and penalties over histories with repeats: the device's
    // penalized logits equal the host's bit for bit, the tokens agree, and the counters end at zero.
    void penaltiesMatchHost() {
        const int vocab = 151936, rows = 16;
        std::mt19937 rng(21);
        const std::vector<float> logits = makeLogits(rows, vocab, Shape::Normal, k::SrcType::F16, rng);
        std::uniform_int_distribution<int> id(0, vocab - 1), len(1, 3000), few(0, 60);
        std::vector<int32_t> history, biasIds;
        std::vector<float> biasValues;
        std::vector<k::SampleRowParams> ps;
        std::vector<SamplingParams> sps;
        std::vector<std::vector<int32_t>> histories;
        std::vector<size_t> promptLens;
        const float reps[] = {1.0f, 1.3f, 0.8f}, pres[] = {0.0f, 0.5f, -1.0f}, freqs[] = {0.0f, 0.3f, -0.2f};
        for (int r = 0; r < rows; ++r) {
            SamplingParams sp = r % 2 ? params(0.8f, 40, 0.9f, 0.0f) : params(0.0f, 0, 1.0f, 0.0f);
            sp.repetitionPenalty = reps[r % 3];
            sp.presencePenalty = pres[(r / 3) % 3];
            sp.frequencyPenalty = freqs[(r / 2) % 3];
            // A history drawn from a small pool repeats ids; the row's argmax is in it.
            std::vector<int32_t> pool;
            for (int j = 0; j < 200; ++j) pool.push_back(id(rng));
            pool.push_back(int32_t(std::max_element(logits.begin() + int64_t(r) * vocab, logits.begin() + int64_t(r + 1) * vocab) -
                                   (logits.begin() + int64_t(r) * vocab)));
            std::vector<int32_t> h(size_t(len(rng)));
            for (auto& t : h) t = pool[size_t(std::uniform_int_distribution<int>(0, int(pool.size()) - 1)(rng))];
            h.push_back(h.front());
            const size_t promptLen = size_t(std::uniform_int_distribution<int>(0, int(h.size()))(rng));
            if (r % 4 == 1) {  // bias entries, some twice, some outside the vocabulary
                for (int j = few(rng); j > 0; --j) sp.logitBias.emplace_back(pool[size_t(j) % pool.size()], float(j % 7) - 3.25f);
                sp.logitBias.emplace_back(pool.back(), -100.0f);
                sp.logitBias.emplace_back(pool.back(), 0.5f);
                sp.logitBias.emplace_back(vocab + 3, 100.0f);
                sp.logitBias.emplace_back(id(rng), 100.0f);
            }
            k::SampleRowParams p = rowParams(r, sp, (uint64_t(rng()) << 32) | rng());
            p.historyOffset = int32_t(history.size());
            p.historyLen = int32_t(h.size());
            p.promptLen = int32_t(promptLen);
            history.insert(history.end(), h.begin(), h.end());
            appendBias(p, sp, biasIds, biasValues);
            ps.push_back(p);
            sps.push_back(sp);
            histories.push_back(h);
            promptLens.push_back(promptLen);
        }
        const DeviceRun d = runDevice(logits, rows, vocab, k::SrcType::F16, ps, history, biasIds, biasValues);
        QCOMPARE(d.status, 0);
        QVERIFY(d.countsZero);
        int changed = 0;
        for (int r = 0; r < rows; ++r) {
            std::vector<float> pen;
            const int32_t want = hostSample(logits, r, vocab, sps[size_t(r)], ps[size_t(r)].uniform, histories[size_t(r)],
                                            promptLens[size_t(r)], &pen);
            QCOMPARE(d.results[size_t(r)].token, want);
            if (!k::sampleRowNeedsWorkspace(ps[size_t(r)])) continue;
            const float* dev = d.scratch.data() + size_t(r) * size_t(vocab);
            for (int i = 0; i < vocab; ++i) {
                // NaN logits stay NaN (their payload bits may differ between the two).
                const bool same = std::memcmp(&dev[i], &pen[size_t(i)], 4) == 0 ||
                                  (std::isnan(dev[i]) && std::isnan(pen[size_t(i)]));
                if (!same) QFAIL(qPrintable(QString("row %1 id %2: device %3, host %4").arg(r).arg(i).arg(dev[i]).arg(pen[size_t(i)])));
            }
            const float* raw = logits.data() + size_t(r) * size_t(vocab);
            for (int i = 0; i < vocab; ++i) changed += std::memcmp(&raw[i], &pen[size_t(i)], 4) != 0;
        }
        QVERIFY(changed > 1000);  // the penalties did change the logits
    }

    // A grammar's allowed-token mask: the device picks what the host picks from the row with the
    // other tokens at -inf (the engine's host path), with biases on top; sparse and dense masks,
    // greedy and drawn, and the raw row's argmax masked out.
    void masksMatchHost() {
        const int vocab = 151936, rows = 12, words = (vocab + 31) / 32;
        std::mt19937 rng(33);
        const std::vector<float> logits = makeLogits(rows, vocab, Shape::Normal, k::SrcType::F16, rng);
        std::vector<float> masked = logits;
        std::vector<uint32_t> masks;
        std::vector<int32_t> biasIds;
        std::vector<float> biasValues;
        std::vector<k::SampleRowParams> ps;
        std::vector<SamplingParams> sps;
        std::uniform_int_distribution<int> id(0, vocab - 1);
        for (int r = 0; r < rows; ++r) {
            std::vector<uint32_t> m(size_t(words), 0);
            const int allowed = r % 3 == 0 ? 1 : r % 3 == 1 ? 40 : vocab / 2;
            for (int j = 0; j < allowed; ++j) {
                const int t = id(rng);
                m[size_t(t) >> 5] |= 1u << (t & 31);
            }
            const float* raw = logits.data() + int64_t(r) * vocab;
            const int best = int(std::max_element(raw, raw + vocab) - raw);
            m[size_t(best) >> 5] &= ~(1u << (best & 31));  // the unconstrained choice is not allowed
            if (std::all_of(m.begin(), m.end(), [](uint32_t w) { return w == 0; })) m[0] = 1;
            for (int t = 0; t < vocab; ++t)
                if (!(m[size_t(t) >> 5] >> (t & 31) & 1u)) masked[size_t(r) * vocab + size_t(t)] = -INFINITY;
            SamplingParams sp = r % 2 ? params(0.9f, 50, 0.95f, 0.0f) : params(0.0f, 0, 1.0f, 0.0f);
            if (r % 4 == 3) sp.logitBias = {{id(rng), 5.0f}, {best, 100.0f}};  // a bias cannot lift a masked token
            k::SampleRowParams p = rowParams(r, sp, (uint64_t(rng()) << 32) | rng());
            p.maskOffset = int32_t(masks.size());
            masks.insert(masks.end(), m.begin(), m.end());
            appendBias(p, sp, biasIds, biasValues);
            ps.push_back(p);
            sps.push_back(sp);
        }
        const DeviceRun d = runDevice(logits, rows, vocab, k::SrcType::F16, ps, {}, biasIds, biasValues, 0, masks);
        QCOMPARE(d.status, 0);
        QVERIFY(d.countsZero);
        for (int r = 0; r < rows; ++r) {
            const int32_t got = d.results[size_t(r)].token;
            QVERIFY2(masks[size_t(ps[size_t(r)].maskOffset) + (size_t(got) >> 5)] >> (got & 31) & 1u, qPrintable(QString::number(r)));
            QCOMPARE(got, hostSample(masked, r, vocab, sps[size_t(r)], ps[size_t(r)].uniform, {}, 0, nullptr));
        }
    }

    // Logprobs of the raw row (bias and penalties do not enter) against an f64 log-softmax; the top
    // alternatives are the host's ids.
    void logprobsMatchDouble() {
        const int vocab = 128256, rows = 3;
        std::mt19937 rng(31);
        std::vector<float> logits = makeLogits(rows, vocab, Shape::Normal, k::SrcType::F16, rng);
        logits[size_t(2 * vocab + 7)] = 0.5f;
        std::vector<k::SampleRowParams> ps;
        const int tops[] = {0, 5, 20};
        for (int r = 0; r < rows; ++r) {
            k::SampleRowParams p =
                rowParams(r, r == 1 ? params(1.0f, 0, 0.95f, 0.0f) : params(0.0f, 0, 1.0f, 0.0f), (uint64_t(rng()) << 32) | rng());
            p.topLogprobs = tops[r];
            ps.push_back(p);
        }
        ps[2].biasCount = 1;  // a bias that picks id 7: its logprob is still the raw one
        const DeviceRun d = runDevice(logits, rows, vocab, k::SrcType::F16, ps, {}, {7}, {100.0f});
        QCOMPARE(d.status, 0);
        QCOMPARE(d.results[2].token, 7);
        for (int r = 0; r < rows; ++r) {
            const float* row = logits.data() + size_t(r) * size_t(vocab);
            const double lse = lse64(row, vocab);
            const k::SampleRowResult& res = d.results[size_t(r)];
            QVERIFY2(std::abs(double(res.logprob) - (double(row[res.token]) - lse)) < 1e-3,
                     qPrintable(QString("row %1: logprob %2, f64 %3").arg(r).arg(res.logprob).arg(double(row[res.token]) - lse)));
            const auto host = Sampler::topLogprobs(row, vocab, tops[r]);
            QCOMPARE(int(host.size()), tops[r]);
            for (int i = 0; i < tops[r]; ++i) {
                QCOMPARE(res.topIds[i], host[size_t(i)].id);
                QVERIFY(std::abs(double(res.topLogprobs[i]) - (double(row[host[size_t(i)].id]) - lse)) < 1e-3);
            }
        }
    }

    void rejectsBadBatches() {
        k::SampleBatch b;
        b.rows = 1;
        b.vocab = k::sampling::kMaxVocab + 1;
        QVERIFY(k::sampleRows(b, nullptr) != 0);
        b.rows = 0;
        QCOMPARE(k::sampleRows(b, nullptr), 0);
    }

    // The CUDA backend on a real model's logits (stories260K, one prefill step): sampleOnDevice gives
    // the host Sampler's tokens for the same uniforms, penalties, bias and logprobs included.
    void backendMatchesHostOnModel() {
        const std::string dir = modelPath("stories260K");
        const ModelConfig cfg = parseModelConfig(dir);
        ModelSources src = loadModelSources(dir, cfg);
        auto be = createBackend("cuda", 0);
        Transformer model(*be, src);
        KvCacheShape shape;
        shape.layers = cfg.numLayers;
        shape.kvHeads = cfg.numKvHeads;
        shape.headDim = cfg.headDim;
        be->allocKvCache(shape, 4);
        std::vector<int32_t> prompt;  // the longest reference prompt
        const auto ref = readJson(dir + "/reference.json");
        for (const auto& c : ref["cases"])
            if (c["input_ids"].size() > prompt.size()) prompt = c["input_ids"].get<std::vector<int32_t>>();
        QVERIFY(prompt.size() >= 4);
        StepBatch b = sequenceBatch(cfg, int(prompt.size()), prompt.data());
        b.logitRows = {int(prompt.size()) - 1, 3};
        const Tensor out = model.forwardLogits(b);
        std::vector<float> logits(size_t(2 * cfg.vocabSize));
        be->readF32(out, logits.data());

        std::vector<SamplingParams> sps = {params(0.f, 0, 1.f, 0.f), params(1.f, 0, 1.f, 0.f), params(0.8f, 40, 0.9f, 0.f),
                                           params(1.5f, 0, 0.95f, 0.05f)};
        sps[2].repetitionPenalty = 1.3f;
        sps[2].frequencyPenalty = 0.4f;
        sps[3].presencePenalty = 0.7f;
        sps[3].logitBias = {{5, 2.0f}, {9, -100.0f}, {5, 1.0f}};
        std::mt19937_64 urng(3);
        std::vector<DeviceSampleRow> rows;
        for (int i = 0; i < 64; ++i) {
            const int c = i % int(sps.size());
            rows.push_back({i % 2, &sps[size_t(c)], &prompt, size_t(4 + i % 5), urng(), i % 3 == 0 ? 5 : -1});
        }
        std::vector<DeviceSampleResult> res;
        QVERIFY(be->sampleOnDevice(out, rows, res));
        QCOMPARE(res.size(), rows.size());
        std::set<int32_t> distinct;
        for (size_t i = 0; i < rows.size(); ++i) {
            const DeviceSampleRow& r = rows[i];
            const int32_t want = hostSample(logits, r.row, cfg.vocabSize, *r.params, r.uniform, *r.history, r.promptLen);
            QCOMPARE(res[i].token, want);
            distinct.insert(want);
            if (r.topLogprobs >= 0) {
                const float* row = logits.data() + size_t(r.row) * size_t(cfg.vocabSize);
                QVERIFY(std::abs(res[i].logprob - Sampler::logprobOf(row, cfg.vocabSize, want)) < 1e-3f);
                const auto top = Sampler::topLogprobs(row, cfg.vocabSize, r.topLogprobs);
                QCOMPARE(res[i].top.size(), top.size());
                for (size_t j = 0; j < top.size(); ++j) QCOMPARE(res[i].top[j].id, top[j].id);
            }
        }
        QVERIFY(distinct.size() > 3);
        // The CPU backend has no device sampler: it says so and leaves the host to sample.
        auto cpu = createBackend("cpu", 1);
        std::vector<DeviceSampleResult> none;
        QVERIFY(!cpu->sampleOnDevice(out, rows, none));
    }

    // The engine on CUDA samples greedy rows on the device: the same ids as the same engine sampling on
    // the host (a request for more top logprobs than the device reports goes there), and as the CPU
    // engine up to a step where the CPU's own choice was close (f16 activations move logits by ~0.02).
    void engineGreedyMatches() {
        const std::string dir = modelPath("stories260K");
        const auto ref = readJson(dir + "/reference.json");
        auto cpu = createBackend("cpu", 2);
        int cases = 0;
        for (const auto& c : ref["cases"]) {
            const auto prompt = c["input_ids"].get<std::vector<int32_t>>();
            const int n = 40;
            const EngineRun device = engineGreedy(dir, prompt, n, true, "cuda");
            QVERIFY2(device.error.empty(), device.error.c_str());
            Request r;
            r.promptIds = prompt;
            r.topLogprobs = kMaxDeviceTopLogprobs + 1;
            const EngineRun host = engineGreedy(dir, std::move(r), n, true, "cuda");
            QVERIFY2(host.error.empty(), host.error.c_str());
            QCOMPARE(int(device.ids.size()), n);
            QCOMPARE(device.ids, host.ids);
            QCOMPARE(device.text, host.text);
            const GreedyRun h = greedyRun(*cpu, dir, prompt, n);
            size_t same = 0;
            while (same < h.ids.size() && h.ids[same] == device.ids[same]) ++same;
            if (same < h.ids.size())
                QVERIFY2(h.margins[same] <= 0.05f, qPrintable(QString("CUDA engine left the CPU's ids at step %1 (CPU margin %2)")
                                                                  .arg(same).arg(h.margins[same])));
            ++cases;
        }
        QVERIFY(cases > 0);
    }

    // Sampling with penalties and logprobs through the engine on CUDA: a seed repeats, another differs.
    void engineSeededSamplingRepeats() {
        EngineConfig c;
        c.modelDir = modelPath("stories260K");
        c.backend = "cuda";
        auto e = Engine::load(c);
        QVERIFY2(bool(e), e ? "" : e.error().what());
        auto run = [&](uint64_t seed) {
            Request r;
            r.prompt = "Once upon a time";
            r.sampling.temperature = 0.9f;
            r.sampling.topK = 40;
            r.sampling.topP = 0.9f;
            r.sampling.repetitionPenalty = 1.2f;
            r.sampling.frequencyPenalty = 0.3f;
            r.sampling.maxNewTokens = 48;
            r.sampling.ignoreEos = true;
            r.sampling.seed = seed;
            r.topLogprobs = 3;
            std::promise<std::vector<TokenLogprob>> done;
            std::vector<TokenLogprob> lps;
            e.value()->submit(std::move(r), [&](const Event& ev) {
                lps.insert(lps.end(), ev.logprobs.begin(), ev.logprobs.end());
                if (ev.final) done.set_value(lps);
            });
            return done.get_future().get();
        };
        const auto a = run(1234), b = run(1234), other = run(99);
        QCOMPARE(int(a.size()), 48);
        std::vector<int32_t> ia, ib, io;
        for (const auto& l : a) {
            ia.push_back(l.id);
            QVERIFY(l.logprob <= 0.f && std::isfinite(l.logprob));
            QCOMPARE(int(l.top.size()), 3);
            QVERIFY(l.top[0].logprob >= l.top[1].logprob && l.top[1].logprob >= l.top[2].logprob);
            QVERIFY(l.logprob <= l.top[0].logprob + 1e-6f);
        }
        for (const auto& l : b) ib.push_back(l.id);
        for (const auto& l : other) io.push_back(l.id);
        QCOMPARE(ia, ib);
        QVERIFY(ia != io);
    }
};

QTEST_APPLESS_MAIN(TestSampling)
#include "test_sampling.moc"
