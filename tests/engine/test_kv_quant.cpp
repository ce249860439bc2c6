// KV cache quantization (quant_policy 8 / 4): same greedy text, near-same perplexity, more tokens.
#include <QtTest>

#include <future>

#include "lmw/engine.h"
#include "lmw/quantize.h"
#include "test_util.h"

using namespace lmw::engine;
using lmw::test::modelDir;

namespace {

std::vector<int32_t> greedyIds(Engine& e, const std::vector<int32_t>& prompt, int n) {
    Request r;
    r.promptIds = prompt;
    r.sampling.temperature = 0;
    r.sampling.maxNewTokens = n;
    r.sampling.ignoreEos = true;
    std::promise<std::vector<int32_t>> done;
    std::vector<int32_t> ids;
    e.submit(r, [&](const Event& ev) {
        ids.insert(ids.end(), ev.tokens.begin(), ev.tokens.end());
        if (ev.final) done.set_value(ids);
    });
    return done.get_future().get();
}

std::unique_ptr<Engine> load(int policy) {
    EngineConfig c;
    c.modelDir = modelDir();
    c.backend = "cpu";
    c.threads = 2;
    c.quantPolicy = policy;
    auto r = Engine::load(c);
    if (!r) qFatal("load failed: %s", r.error().what());
    return std::move(r.value());
}

double ppl(int policy) {
    PerplexityOptions o;
    o.modelDir = modelDir();
    o.text = lmw::test::readFile(lmw::test::testData("stories.txt"));
    o.seqLen = 256;
    o.backend = "cpu";
    o.threads = 2;
    o.quantPolicy = policy;
    auto r = perplexity(o);
    if (!r) qFatal("perplexity failed: %s", r.error().what());
    return r->ppl;
}

}  // namespace

class TestKvQuant : public QObject {
    Q_OBJECT
private slots:
    void int8GreedyMatches16Bit() {
        auto base = load(0), q8 = load(8);
        const auto ref = lmw::test::reference();  // a temporary's ["cases"] would dangle in the loop
        for (const auto& c : ref["cases"]) {
            const auto prompt = c["input_ids"].get<std::vector<int32_t>>();
            const auto a = greedyIds(*base, prompt, 32), b = greedyIds(*q8, prompt, 32);
            QCOMPARE(b, a);
        }
    }

    void perplexityStaysClose() {
        const double p0 = ppl(0), p8 = ppl(8), p4 = ppl(4);
        qInfo("perplexity on stories.txt (seqlen 256): KV 16-bit %.4f, int8 %.4f (%+.3f%%), int4 %.4f (%+.3f%%)", p0, p8,
              100 * (p8 / p0 - 1), p4, 100 * (p4 / p0 - 1));
        QVERIFY(p0 > 1 && p0 < 100);  // a trained model on simple stories
        QVERIFY2(std::abs(p8 / p0 - 1) < 0.01, "int8 KV must stay within 1% of 16-bit");
        // stories260K has head_dim 8: 16 levels over 8 values per token. Min/max alone cost it +41%;
        // the key offsets and the least-squares refit of scale and zero bring it to about +3.4%.
        QVERIFY2(std::abs(p4 / p0 - 1) < 0.05, "int4 KV must stay within 5% of 16-bit");
        QVERIFY(p4 != p0);  // the int4 cache really is in use
    }

    void moreTokensFitInTheSameMemory() {
        // A 7B-class shape (head_dim 128): 16-bit = 256 B per head-token; int8 = 128 + 4 B of f16
        // scale/zero; int4 = 64 + 4 B. So the same bytes hold 1.94x and 3.76x the tokens.
        ModelInfo info;
        info.config.numLayers = 32;
        info.config.numKvHeads = 8;
        info.config.headDim = 128;
        const double b0 = double(info.kvBytesPerToken(0)), b8 = double(info.kvBytesPerToken(8)),
                     b4 = double(info.kvBytesPerToken(4));
        QCOMPARE(b0, 32.0 * 8 * 2 * 256);
        QCOMPARE(b0 / b8, 256.0 / 132.0);
        QCOMPARE(b0 / b4, 256.0 / 68.0);

        // The engine sizes the cache from a byte budget: the quantized policies hold more tokens in
        // it, by the ratio of the backend's bytes per block (the CPU reference keeps f32 at policy 0).
        auto capacity = [](int policy) {
            EngineConfig c;
            c.modelDir = modelDir();
            c.backend = "cpu";
            c.quantPolicy = policy;
            c.cacheBytes = 4u << 20;
            auto e = Engine::load(c);
            if (!e) qFatal("%s", e.error().what());
            return e.value()->stats().kvTokenCapacity;
        };
        const int64_t t0 = capacity(0), t8 = capacity(8), t4 = capacity(4);
        qInfo("tokens in 4 MiB of KV cache (stories260K, head_dim 8): f32 %lld, int8 %lld, int4 %lld", (long long)t0,
              (long long)t8, (long long)t4);
        // head_dim 8: f32 32 B per head-token, int8 8 + 4 B (f16 scale/zero), int4 4 + 4 B.
        QVERIFY(std::abs(double(t8) / double(t0) - 32.0 / 12.0) < 0.05);
        QVERIFY(std::abs(double(t4) / double(t0) - 32.0 / 8.0) < 0.05);
    }
};

QTEST_GUILESS_MAIN(TestKvQuant)
#include "test_kv_quant.moc"
