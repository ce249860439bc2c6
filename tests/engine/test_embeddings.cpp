// Embedding requests (RequestOutput::Embedding) on the CPU engine: the pooled vector against the
// model's final hidden states computed here through the forward pass (and those against Hugging Face
// transformers' logits), alone = inside a batch of 32 mixed with generation, chunked prefill, prefix
// caching, preemption, and what is refused.
#include <QtTest>

#include <cmath>
#include <cstring>
#include <future>
#include <thread>

#include "backend/backend.h"
#include "lmw/engine.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "test_util.h"

using namespace lmw::engine;
using lmw::test::modelDir;

namespace {

struct Embedded {
    std::vector<float> vec;
    FinishReason finish = FinishReason::None;
    lmw::ErrorCode code = lmw::ErrorCode::Internal;
    std::string error;
    Usage usage;
    std::vector<int32_t> tokens;  // any generated (none for an embedding)
};

class Collector {
public:
    Sink sink() {
        return [this](const Event& ev) {
            m_r.tokens.insert(m_r.tokens.end(), ev.tokens.begin(), ev.tokens.end());
            if (!ev.final) return;
            m_r.vec = ev.embedding;
            m_r.finish = ev.finish;
            m_r.code = ev.errorCode;
            m_r.error = ev.error;
            m_r.usage = ev.usage;
            m_done.set_value(m_r);
        };
    }
    Embedded get() { return m_future.get(); }

private:
    Embedded m_r;
    std::promise<Embedded> m_done;
    std::shared_future<Embedded> m_future = m_done.get_future().share();
};

std::unique_ptr<Engine> load(EngineConfig c) {
    c.backend = "cpu";
    c.threads = 2;
    c.modelDir = modelDir();
    auto r = Engine::load(c);
    if (!r) qFatal("load failed: %s", r.error().what());
    return std::move(r.value());
}

Request embedding(std::vector<int32_t> ids, Pooling pooling = Pooling::Mean) {
    Request r;
    r.promptIds = std::move(ids);
    r.output = RequestOutput::Embedding;
    r.pooling = pooling;
    return r;
}

Embedded run(Engine& e, Request r) {
    Collector c;
    e.submit(std::move(r), c.sink());
    return c.get();
}

// The final hidden states [T, hidden] of one prefill of `ids`, straight from the forward pass (the
// output of the final norm), with the head's logits of the last row.
struct Hidden {
    std::vector<float> states;
    std::vector<float> lastLogits;
};
Hidden finalHiddenStates(const std::vector<int32_t>& ids) {
    const ModelConfig cfg = parseModelConfig(modelDir());
    ModelSources src = loadModelSources(modelDir(), cfg);
    auto backend = createBackend("cpu", 2);
    Transformer model(*backend, src);
    const int T = int(ids.size());
    backend->allocKvCache({cfg.numLayers, cfg.numKvHeads, cfg.headDim, 64, 0}, (T + 63) / 64);
    StepBatch b = sequenceBatch(cfg, T, ids.data());
    b.logitRows = {T - 1};
    Tensor hidden;
    const Tensor logits = model.forwardLogits(b, &hidden);
    Hidden h;
    h.states.resize(size_t(T) * size_t(cfg.hiddenSize));
    backend->readF32(hidden, h.states.data());
    h.lastLogits.resize(size_t(cfg.vocabSize));
    backend->readF32(logits, h.lastLogits.data());
    return h;
}

std::vector<double> normalized(std::vector<double> v) {
    double n = 0;
    for (double x : v) n += x * x;
    for (double& x : v) x /= std::sqrt(n);
    return v;
}

double maxDiff(const std::vector<float>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return 1e9;
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
    return m;
}

double maxDiff(const std::vector<float>& a, const std::vector<float>& b) {
    return maxDiff(a, std::vector<double>(b.begin(), b.end()));
}

std::vector<int32_t> longIds(const Engine& e, size_t n) {
    std::vector<int32_t> ids = e.tokenizer().encode(lmw::test::readFile(lmw::test::testData("stories.txt")));
    if (ids.size() < n) qFatal("stories.txt is too short");
    ids.resize(n);
    return ids;
}

}  // namespace

class TestEmbeddings : public QObject {
    Q_OBJECT
private slots:
    // Mean pooling over chunked prefill (7-token chunks) = the mean of the forward pass's final
    // hidden states of every token, normalized; and those states are what the head turns into
    // Hugging Face's logits (so "final hidden state" is the final norm's output).
    void meanPoolingEqualsTheForwardPassesHiddenStates() {
        EngineConfig c;
        c.maxPrefillTokenNum = 7;
        auto e = load(c);
        const auto ref = lmw::test::reference()["cases"][3];  // 14 tokens: two chunks and a bit
        const std::vector<int32_t> ids = ref["input_ids"].get<std::vector<int32_t>>();
        QVERIFY(ids.size() > 7);
        const int H = e->info().config.hiddenSize;

        const Hidden h = finalHiddenStates(ids);
        double logitErr = 0;
        for (size_t v = 0; v < h.lastLogits.size(); ++v)
            logitErr = std::max(logitErr, std::abs(double(h.lastLogits[v]) - ref["last_logits_full"][v].get<double>()));
        QVERIFY2(logitErr < 1e-4, qPrintable(QString::number(logitErr)));

        std::vector<double> mean(size_t(H), 0.0);
        for (size_t t = 0; t < ids.size(); ++t)
            for (int j = 0; j < H; ++j) mean[size_t(j)] += double(h.states[t * size_t(H) + size_t(j)]) / double(ids.size());

        const Embedded got = run(*e, embedding(ids));
        QCOMPARE(got.finish, FinishReason::Stop);
        QVERIFY(got.tokens.empty());
        QCOMPARE(got.usage.promptTokens, int(ids.size()));
        QCOMPARE(got.usage.completionTokens, 0);
        QCOMPARE(int(got.vec.size()), H);
        const double err = maxDiff(got.vec, normalized(mean));
        QVERIFY2(err < 1e-5, qPrintable(QString::number(err)));
        double norm = 0;
        for (float x : got.vec) norm += double(x) * x;
        QVERIFY(std::abs(norm - 1) < 1e-5);
    }

    // Last pooling = the last token's final hidden state, normalized.
    void lastPoolingIsTheLastTokensHiddenState() {
        EngineConfig c;
        c.maxPrefillTokenNum = 5;
        auto e = load(c);
        const std::vector<int32_t> ids = e->tokenizer().encode("The cat sat on the mat. It was happy.");
        const int H = e->info().config.hiddenSize;
        const Hidden h = finalHiddenStates(ids);
        std::vector<double> last(h.states.end() - H, h.states.end());
        const Embedded got = run(*e, embedding(ids, Pooling::Last));
        QCOMPARE(got.finish, FinishReason::Stop);
        const double err = maxDiff(got.vec, normalized(last));
        QVERIFY2(err < 1e-5, qPrintable(QString::number(err)));
        // Not the mean: the two poolings differ on a real prompt.
        QVERIFY(maxDiff(got.vec, run(*e, embedding(ids)).vec) > 1e-3);
    }

    // One input alone and inside 32 requests at once (embeddings of both poolings and greedy
    // generations), with prefill chunks cut elsewhere by the token budget: the same vector.
    void aloneEqualsInsideABatchOf32() {
        EngineConfig c;
        c.maxPrefillTokenNum = 48;
        auto e = load(c);
        const std::vector<int32_t> story = longIds(*e, 300);
        auto idsOf = [&](int i) {
            return std::vector<int32_t>(story.begin() + 3 * i, story.begin() + 3 * i + 20 + 9 * i);
        };
        std::vector<Embedded> alone;
        for (int i = 0; i < 32; i += 3) alone.push_back(run(*e, embedding(idsOf(i), i % 2 ? Pooling::Last : Pooling::Mean)));

        std::vector<Collector> together(32);
        for (int i = 0; i < 32; ++i) {
            if (i % 3 == 0) {
                e->submit(embedding(idsOf(i), i % 2 ? Pooling::Last : Pooling::Mean), together[size_t(i)].sink());
            } else {
                Request g;
                g.promptIds = idsOf(i);
                g.sampling.temperature = 0;
                g.sampling.maxNewTokens = 8 + i;
                g.sampling.ignoreEos = true;
                e->submit(std::move(g), together[size_t(i)].sink());
            }
        }
        for (int i = 0; i < 32; ++i) {
            const Embedded r = together[size_t(i)].get();
            QCOMPARE(r.finish, i % 3 == 0 ? FinishReason::Stop : FinishReason::Length);
            if (i % 3 != 0) {
                QCOMPARE(int(r.tokens.size()), 8 + i);
                QVERIFY(r.vec.empty());
                continue;
            }
            const double err = maxDiff(r.vec, alone[size_t(i / 3)].vec);
            QVERIFY2(err < 1e-5, qPrintable(QString("input %1: %2").arg(i).arg(err)));
        }
        for (int i = 0; i < 200 && e->stats().kvBlocksUsed > 0; ++i)  // stats follow each step
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        QCOMPARE(e->stats().kvBlocksUsed, int64_t(0));
    }

    // With prefix caching on, a cached prefix is still pooled (mean) or attended (last): the same
    // vectors as without it; and a preempted embedding starts its sum over.
    void prefixCachingAndPreemptionKeepTheVector() {
        auto plain = load({});
        const std::vector<int32_t> ids = longIds(*plain, 200);
        const Embedded mean = run(*plain, embedding(ids)), last = run(*plain, embedding(ids, Pooling::Last));

        EngineConfig cached;
        cached.enablePrefixCaching = true;
        auto e = load(cached);
        for (int round = 0; round < 2; ++round) {  // the second round finds the first's blocks
            QVERIFY(maxDiff(run(*e, embedding(ids)).vec, mean.vec) < 1e-5);
            QVERIFY(maxDiff(run(*e, embedding(ids, Pooling::Last)).vec, last.vec) < 1e-5);
        }
        QVERIFY(e->stats().prefixCacheHitBlocks > 0);  // Last reused the blocks

        // 8 blocks: an older generation grows into the blocks of an embedding that is still
        // prefilling (one token a step, the budget being 2), which is preempted and starts over.
        const std::vector<int32_t> longer = longIds(*plain, 250);
        const Embedded whole = run(*plain, embedding(longer));
        EngineConfig tight;
        tight.cacheBlocks = 8;
        tight.maxPrefillTokenNum = 2;
        auto t = load(tight);
        Request g;
        g.promptIds = longIds(*t, 60);
        g.sampling.temperature = 0;
        g.sampling.maxNewTokens = 300;
        g.sampling.ignoreEos = true;
        Collector gc, ec;
        t->submit(std::move(g), gc.sink());
        t->submit(embedding(longer), ec.sink());
        QCOMPARE(gc.get().finish, FinishReason::Length);
        const Embedded r = ec.get();
        QCOMPARE(r.finish, FinishReason::Stop);
        QVERIFY2(maxDiff(r.vec, whole.vec) < 1e-5, qPrintable(QString::number(maxDiff(r.vec, whole.vec))));
        QVERIFY(t->stats().preemptions > 0);
    }

    // An input may fill the whole session (no token follows it); one more is refused, as are
    // grammars and logprobs and an empty input.
    void limitsAndRefusals() {
        EngineConfig c;
        c.sessionLen = 64;
        auto e = load(c);
        const std::vector<int32_t> story = longIds(*e, 65);
        const Embedded full = run(*e, embedding({story.begin(), story.begin() + 64}));
        QCOMPARE(full.finish, FinishReason::Stop);
        QCOMPARE(full.usage.promptTokens, 64);
        const Embedded over = run(*e, embedding(story));
        QCOMPARE(over.finish, FinishReason::Error);
        QCOMPARE(over.code, lmw::ErrorCode::ContextLengthExceeded);
        QVERIFY(over.vec.empty());
        Request lp = embedding({1, 2, 3});
        lp.topLogprobs = 2;
        QCOMPARE(run(*e, lp).code, lmw::ErrorCode::InvalidArgument);
        QCOMPARE(run(*e, embedding({})).code, lmw::ErrorCode::InvalidArgument);
        Request text;
        text.prompt = "Once upon a time";
        text.output = RequestOutput::Embedding;
        const Embedded t = run(*e, text);
        QCOMPARE(t.finish, FinishReason::Stop);
        QVERIFY(maxDiff(t.vec, run(*e, embedding(e->tokenizer().encode("Once upon a time"))).vec) == 0);
        Pooling p = Pooling::Mean;
        QVERIFY(parsePooling("last", p) && p == Pooling::Last);
        QVERIFY(!parsePooling("max", p));
        QCOMPARE(std::string(poolingName(Pooling::Mean)), std::string("mean"));
    }
};

QTEST_GUILESS_MAIN(TestEmbeddings)
#include "test_embeddings.moc"
