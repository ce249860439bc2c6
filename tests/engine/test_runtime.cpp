// The engine thread under load: batching equals running alone, cancel, preemption, usage, seeds,
// stop strings, UTF-8 streaming, prefix caching and request errors.
#include <QtTest>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "lmw/engine.h"
#include "test_util.h"

using namespace lmw::engine;
using lmw::test::modelDir;

namespace {

struct Generated {
    std::vector<int32_t> ids;
    std::string text;
    std::vector<std::string> deltas;
    FinishReason finish = FinishReason::None;
    std::string error;
    lmw::ErrorCode code = lmw::ErrorCode::Internal;
    Usage usage;
};

// Collects a request's events; get() waits for the final one.
class Collector {
public:
    Sink sink() {
        return [this](const Event& ev) {
            m_g.ids.insert(m_g.ids.end(), ev.tokens.begin(), ev.tokens.end());
            m_g.text += ev.text;
            if (!ev.text.empty()) m_g.deltas.push_back(ev.text);
            if (ev.final) {
                m_g.finish = ev.finish;
                m_g.error = ev.error;
                m_g.code = ev.errorCode;
                m_g.usage = ev.usage;
                m_done.set_value(m_g);
            }
        };
    }
    Generated get() { return m_future.get(); }

private:
    Generated m_g;
    std::promise<Generated> m_done;
    std::shared_future<Generated> m_future = m_done.get_future().share();
};

Generated run(Engine& e, Request r) {
    Collector c;
    e.submit(std::move(r), c.sink());
    return c.get();
}

std::unique_ptr<Engine> load(EngineConfig c) {
    c.backend = "cpu";
    c.threads = 2;
    if (c.modelDir.empty()) c.modelDir = modelDir();
    auto r = Engine::load(c);
    if (!r) qFatal("load failed: %s", r.error().what());
    return std::move(r.value());
}

Request greedy(const std::string& prompt, int n) {
    Request r;
    r.prompt = prompt;
    r.sampling.temperature = 0;
    r.sampling.maxNewTokens = n;
    r.sampling.ignoreEos = true;
    return r;
}

bool validUtf8(const std::string& s) {
    const QByteArray b(s.data(), qsizetype(s.size()));
    return completeUtf8Prefix(s) == s.size() && QString::fromUtf8(b).toUtf8() == b;
}

const char* kPrompts[] = {"Once upon a time", "Lily and Ben went to the park.", "The cat sat on the mat. It was",
                          "Tom had a red ball", "One day, a little bird", "The sun was shining and",
                          "Sue wanted to bake a cake for her mom, so she", "A big dog", "The little boat",
                          "Max found a shiny stone near the river. He picked it up and", "Anna", "Zoo",
                          "Once there was a tiny frog who lived in a pond", "The king", "It was raining", "Bob"};

int64_t blocksUsed(Engine& e) {
    // Stats are refreshed by the engine thread after each step; give it a moment.
    for (int i = 0; i < 200; ++i) {
        auto s = e.stats();
        if (s.running == 0 && s.waiting == 0) return s.kvBlocksUsed;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return e.stats().kvBlocksUsed;
}

}  // namespace

class TestRuntime : public QObject {
    Q_OBJECT
private slots:
    void concurrentRequestsEqualRunningAlone() {
        auto e = load({});
        std::vector<Generated> alone;
        for (int i = 0; i < 16; ++i) alone.push_back(run(*e, greedy(kPrompts[i], 20 + 5 * i)));
        std::vector<Collector> together(16);
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (int i = t; i < 16; i += 4) e->submit(greedy(kPrompts[i], 20 + 5 * i), together[size_t(i)].sink());
            });
        for (auto& t : threads) t.join();
        for (int i = 0; i < 16; ++i) {
            const Generated g = together[size_t(i)].get();
            QCOMPARE(g.finish, FinishReason::Length);
            QCOMPARE(g.ids, alone[size_t(i)].ids);
            QCOMPARE(int(g.ids.size()), 20 + 5 * i);
            QCOMPARE(g.usage.completionTokens, 20 + 5 * i);
            QCOMPARE(g.usage.promptTokens, int(e->tokenizer().encode(kPrompts[i]).size()));
        }
        QCOMPARE(blocksUsed(*e), int64_t(0));
    }

    void cancelReturnsBlocks() {
        auto e = load({});
        Collector c;
        std::atomic<int> seen{0};
        std::promise<void> started;
        bool signalled = false;
        const RequestId id = e->submit(greedy("Once upon a time", 400), [&](const Event& ev) {
            c.sink()(ev);
            if (++seen == 5 && !signalled) {
                signalled = true;
                started.set_value();
            }
        });
        started.get_future().wait();
        e->cancel(id);
        const Generated g = c.get();
        QCOMPARE(g.finish, FinishReason::Cancelled);
        QVERIFY(g.ids.size() < 400);
        QCOMPARE(g.usage.completionTokens, int(g.ids.size()));
        QCOMPARE(blocksUsed(*e), int64_t(0));
    }

    void burstBeyondCapacityAllComplete() {
        // 8 blocks of 64 tokens = 512 tokens of KV; 12 requests of ~130 tokens need 3x that.
        EngineConfig c;
        c.cacheBlocks = 8;
        c.sessionLen = 512;
        auto e = load(c);
        QCOMPARE(e->stats().kvTokenCapacity, int64_t(8 * 64));
        std::vector<Generated> alone;
        for (int i = 0; i < 12; ++i) alone.push_back(run(*e, greedy(kPrompts[i], 120)));
        std::vector<Collector> burst(12);
        for (int i = 0; i < 12; ++i) e->submit(greedy(kPrompts[i], 120), burst[size_t(i)].sink());
        for (int i = 0; i < 12; ++i) {
            const Generated g = burst[size_t(i)].get();
            QVERIFY2(g.finish == FinishReason::Length, g.error.c_str());
            QCOMPARE(g.ids, alone[size_t(i)].ids);  // preemption by recompute changes nothing
            QCOMPARE(g.usage.completionTokens, 120);
        }
        QVERIFY(e->stats().preemptions > 0);
        QCOMPARE(blocksUsed(*e), int64_t(0));
    }

    void seededSamplingRepeats() {
        auto e = load({});
        Request r;
        r.prompt = "Once upon a time";
        r.sampling.temperature = 1.0f;
        r.sampling.topP = 0.95f;
        r.sampling.maxNewTokens = 48;
        r.sampling.seed = 1234;
        const Generated a = run(*e, r), b = run(*e, r);
        QCOMPARE(a.ids, b.ids);
        r.sampling.seed = 99;
        std::vector<Generated> others;
        bool differs = false;
        for (int i = 0; i < 3 && !differs; ++i) {
            r.sampling.seed = 99 + uint64_t(i);
            differs = run(*e, r).ids != a.ids;
        }
        QVERIFY(differs);
    }

    void multiByteTextStreamsWhole() {
        auto e = load({});
        Request r = greedy("日本語 émoji 🙂 Once upon a time", 40);
        r.sampling.temperature = 1.0f;
        r.sampling.seed = 7;
        // Byte-fallback tokens that form multi-byte characters are likely when sampling from a
        // prompt full of them; every delta must still be whole UTF-8.
        for (int i = 0; i < 8; ++i) {
            r.sampling.seed = uint64_t(i);
            const Generated g = run(*e, r);
            for (const auto& d : g.deltas) QVERIFY2(validUtf8(d), d.c_str());
            // The completion continues the prompt's text exactly (a leading space included).
            std::vector<int32_t> all = e->tokenizer().encode(r.prompt);
            const std::string prompt = e->tokenizer().decode(all);
            all.insert(all.end(), g.ids.begin(), g.ids.end());
            QCOMPARE(prompt + g.text, e->tokenizer().decode(all));
        }
        // And the same for a fixed sequence of byte tokens: "🙂" is 4 byte-fallback tokens.
        const auto ids = e->tokenizer().encode("日本語 🙂", false);
        StreamDecoder dec(e->tokenizer());
        std::string all;
        for (int32_t id : ids) {
            const std::string d = dec.push(id);
            QVERIFY(validUtf8(d));
            all += d;
        }
        all += dec.flush();
        QCOMPARE(all, std::string("日本語 🙂"));
    }

    void stopStringsEndGeneration() {
        auto e = load({});
        const Generated full = run(*e, greedy("Once upon a time", 64));
        // Stop at the first occurrence of a word that is in the greedy text.
        const std::string stop = "Lily";
        const size_t at = full.text.find(stop);
        QVERIFY(at != std::string::npos);
        Request r = greedy("Once upon a time", 64);
        r.sampling.stop = {stop};
        const Generated g = run(*e, r);
        QCOMPARE(g.finish, FinishReason::Stop);
        QCOMPARE(g.text, full.text.substr(0, at));
        // A stop id ends generation at that token.
        Request r2 = greedy("Once upon a time", 64);
        r2.sampling.stopIds = {full.ids[10]};
        const Generated g2 = run(*e, r2);
        QCOMPARE(g2.finish, FinishReason::Stop);
        QVERIFY(g2.ids.size() <= 11);
        QCOMPARE(g2.ids.back(), full.ids[10]);
    }

    // Text held back because it could begin a stop string is still sent when a stop id (or EOS)
    // ends generation before the stop string completes.
    void heldBackTextSurvivesStopId() {
        auto e = load({});
        const Generated full = run(*e, greedy("Once upon a time", 64));
        size_t k = 12;  // a token that does not occur before it, so the stop id ends the run there
        while (k < full.ids.size() && std::find(full.ids.begin(), full.ids.begin() + k, full.ids[k]) != full.ids.begin() + k) ++k;
        QVERIFY(k < full.ids.size());
        Request r = greedy("Once upon a time", 64);
        r.sampling.stopIds = {full.ids[k]};
        const Generated plain = run(*e, r);
        QCOMPARE(plain.finish, FinishReason::Stop);
        QVERIFY(plain.text.size() >= 3);
        // A stop string that starts with the reply's last characters and never completes.
        r.sampling.stop = {plain.text.substr(plain.text.size() - 3) + "\x01"};
        const Generated held = run(*e, r);
        QCOMPARE(held.finish, FinishReason::Stop);
        QCOMPARE(held.ids, plain.ids);
        QCOMPARE(held.text, plain.text);
    }

    void badRequestsEndWithClearErrors() {
        EngineConfig c;
        c.sessionLen = 64;
        auto e = load(c);
        Request empty;
        Generated g = run(*e, empty);
        QCOMPARE(g.finish, FinishReason::Error);
        QVERIFY2(g.error.find("empty") != std::string::npos, g.error.c_str());

        std::string longPrompt;
        for (int i = 0; i < 40; ++i) longPrompt += "Once upon a time ";
        g = run(*e, greedy(longPrompt, 8));
        QCOMPARE(g.finish, FinishReason::Error);
        QCOMPARE(g.code, lmw::ErrorCode::ContextLengthExceeded);

        Request bad = greedy("Hi", 8);
        bad.sampling.temperature = -1;
        g = run(*e, bad);
        QCOMPARE(g.finish, FinishReason::Error);
        QVERIFY2(g.error.find("temperature") != std::string::npos, g.error.c_str());

        // Generation that reaches the session length ends with "length", not an error.
        Request tooMany = greedy("Once upon a time", 1000);
        g = run(*e, tooMany);
        QCOMPARE(g.finish, FinishReason::Length);
        QCOMPARE(g.usage.promptTokens + g.usage.completionTokens, 64);

        // The engine keeps serving.
        QCOMPARE(run(*e, greedy("Once upon a time", 5)).ids.size(), size_t(5));
    }

    void everyRequestGetsItsFinalEventAtShutdown() {
        // Refused requests wait in their own inbox for the engine thread; destroying the engine
        // right after submitting them must still end each one (the HTTP side waits for it).
        std::atomic<int> finals{0};
        constexpr int kRefused = 500, kRunning = 8;
        {
            auto e = load({});
            for (int i = 0; i < kRunning; ++i)
                e->submit(greedy("Once upon a time", 200), [&](const Event& ev) { finals += ev.final ? 1 : 0; });
            Request bad = greedy("Hi", 8);
            bad.sampling.temperature = -1;
            for (int i = 0; i < kRefused; ++i) e->submit(bad, [&](const Event& ev) { finals += ev.final ? 1 : 0; });
        }
        QCOMPARE(finals.load(), kRefused + kRunning);
    }

    void logitBiasSteersSampling() {
        auto e = load({});
        const Generated plain = run(*e, greedy("Once upon a time", 6));
        Request banned = greedy("Once upon a time", 6);
        banned.sampling.logitBias = {{plain.ids[0], -100.0f}};
        QVERIFY(run(*e, banned).ids[0] != plain.ids[0]);
        Request forced = greedy("Once upon a time", 6);
        forced.sampling.temperature = 0.9f;
        forced.sampling.logitBias = {{plain.ids[2], 100.0f}};
        QCOMPARE(run(*e, forced).ids, std::vector<int32_t>(6, plain.ids[2]));
        Request bad = greedy("Hi", 2);
        bad.sampling.logitBias = {{5, 500.0f}};
        QCOMPARE(run(*e, bad).finish, FinishReason::Error);
    }

    // Structured output: a grammar request's reply is its document, whole, ending with the document
    // (eos allowed only then), whatever it is batched with; greedy, drawn, with logprobs (the host
    // path) and with a logit bias that pushes a token the grammar forbids.
    void grammarConstrainsTheReply() {
        auto e = load({});
        const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(
            R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                "age": {"type": "integer"}, "pets": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 2}},
                "required": ["name", "age", "pets"], "additionalProperties": false})");
        const auto grammar = Grammar::fromJsonSchema(schema);
        std::vector<Request> requests;
        for (int k = 0; k < 6; ++k) {
            Request r = greedy(kPrompts[k], 300);
            r.sampling.ignoreEos = false;
            r.grammar = grammar;
            if (k % 2) r.sampling.temperature = 0.9f, r.sampling.seed = 40 + k;
            if (k == 2) r.topLogprobs = 2;
            if (k == 3) r.sampling.logitBias = {{e->tokenizer().tokenId("▁the").value_or(0), 100.0f}};
            requests.push_back(std::move(r));
        }
        requests.push_back(greedy("Tom had a red ball", 40));  // free text in the same batches
        std::vector<std::unique_ptr<Collector>> cs;
        for (auto& r : requests) {
            cs.push_back(std::make_unique<Collector>());
            e->submit(r, cs.back()->sink());
        }
        for (size_t k = 0; k + 1 < cs.size(); ++k) {
            const Generated g = cs[k]->get();
            QVERIFY2(g.finish == FinishReason::Stop, qPrintable(QString::fromStdString(g.text + " / " + g.error)));
            const auto j = nlohmann::json::parse(g.text, nullptr, false);
            QVERIFY2(!j.is_discarded() && j.is_object(), g.text.c_str());
            QVERIFY2(j.size() == 3 && j["name"].is_string() && j["name"].get<std::string>().size() <= 8 &&
                         j["age"].is_number_integer() && j["pets"].is_array() && j["pets"].size() <= 2,
                     g.text.c_str());
            for (const auto& p : j["pets"]) QVERIFY(p == "cat" || p == "dog");
        }
        QCOMPARE(cs.back()->get().ids.size(), size_t(40));
        // The same seeded request alone gives the same document (the mask does not depend on the batch).
        Request again = requests[1];
        QCOMPARE(run(*e, again).text, cs[1]->get().text);
        // With ignore_eos no end token may follow the document: it ends when the grammar allows nothing.
        Request noEos = requests[0];
        noEos.sampling.ignoreEos = true;
        const Generated g = run(*e, noEos);
        QCOMPARE(g.finish, FinishReason::Stop);
        QCOMPARE(g.text, cs[0]->get().text);
    }

    void prefixCacheReusesBlocks() {
        EngineConfig c;
        c.enablePrefixCaching = true;
        auto e = load(c);
        auto plain = load({});
        std::string system;
        for (int i = 0; i < 12; ++i) system += "Lily and Ben went to the park. ";
        const Request r = greedy(system + "Then", 24);
        const Generated first = run(*e, r);
        QCOMPARE(e->stats().prefixCacheHitBlocks, int64_t(0));
        const Generated second = run(*e, r);
        QVERIFY(e->stats().prefixCacheHitBlocks > 0);
        QCOMPARE(second.ids, first.ids);
        QCOMPARE(run(*plain, r).ids, first.ids);
        const Generated other = run(*e, greedy(system + "One day", 24));
        QCOMPARE(other.ids, run(*plain, greedy(system + "One day", 24)).ids);
    }

    // The context overflow policies: Stop refuses a conversation that no longer fits; TruncateMiddle
    // keeps the system prompt, the first turn and the latest turns; RollingWindow the system prompt
    // and the latest turns. Both leave out the fewest whole turns that make prompt + reply budget fit.
    void contextOverflowPolicies() {
        EngineConfig c;
        c.sessionLen = 256;
        auto e = load(c);
        Request r;
        r.messages = {{"system", "Be brief."}};
        for (int t = 0; t < 8; ++t) {
            r.messages.push_back({"user", "Question " + std::to_string(t) + ": tell me about the little dog in the park."});
            r.messages.push_back({"assistant", "Answer " + std::to_string(t) + ": the little dog ran and played with a ball."});
        }
        r.messages.push_back({"user", "And what happened next?"});
        r.sampling.temperature = 0;
        r.sampling.maxNewTokens = 32;
        const int budget = 32;
        auto tokens = [&](const std::vector<ChatMessage>& m) { return int(e->encodeChat(e->renderChat(m)).size()); };
        QVERIFY(tokens(r.messages) >= c.sessionLen);  // does not fit at all

        Generated g = run(*e, r);  // Stop (the default)
        QCOMPARE(g.code, lmw::ErrorCode::ContextLengthExceeded);

        for (ContextOverflow p : {ContextOverflow::TruncateMiddle, ContextOverflow::RollingWindow}) {
            Request q = r;
            q.contextOverflow = p;
            const Engine::FittedChat f = e->fitChat(q);
            QVERIFY2(f.droppedMessages > 0 && f.droppedMessages % 2 == 0, contextOverflowName(p));
            QCOMPARE(f.messages.size() + size_t(f.droppedMessages), r.messages.size());
            QCOMPARE(int(f.ids.size()), tokens(f.messages));
            QVERIFY(int(f.ids.size()) + budget <= c.sessionLen);
            QCOMPARE(f.messages.front().content, r.messages.front().content);  // the system prompt
            QCOMPARE(f.messages.back().content, r.messages.back().content);    // the current turn
            // The first turn stays in the middle's truncation, goes first in the rolling window.
            const bool firstKept = f.messages[1].content == r.messages[1].content;
            QCOMPARE(firstKept, p == ContextOverflow::TruncateMiddle);
            // The latest turns stay: what is kept after the first turn is the conversation's end.
            const size_t tail = f.messages.size() - (firstKept ? 3 : 1);
            for (size_t i = 0; i < tail; ++i)
                QCOMPARE(f.messages[f.messages.size() - 1 - i].content, r.messages[r.messages.size() - 1 - i].content);
            // The fewest: one turn fewer left out would not fit.
            std::vector<ChatMessage> more = f.messages;
            const size_t at = firstKept ? 3 : 1, back = at + size_t(f.droppedMessages) - 2;
            more.insert(more.begin() + std::ptrdiff_t(at), r.messages.begin() + std::ptrdiff_t(back),
                        r.messages.begin() + std::ptrdiff_t(back + 2));
            QVERIFY(tokens(more) + budget > c.sessionLen);

            g = run(*e, q);
            QVERIFY2(g.finish == FinishReason::Length || g.finish == FinishReason::Stop, g.error.c_str());
            QCOMPARE(g.usage.droppedMessages, f.droppedMessages);
            QCOMPARE(g.usage.promptTokens, int(f.ids.size()));
        }

        // A current turn too long by itself is refused whatever the policy.
        Request huge = r;
        huge.contextOverflow = ContextOverflow::RollingWindow;
        for (int i = 0; i < 60; ++i) huge.messages.back().content += " Once upon a time";
        g = run(*e, huge);
        QCOMPARE(g.code, lmw::ErrorCode::ContextLengthExceeded);

        ContextOverflow parsed = ContextOverflow::Stop;
        for (ContextOverflow p : {ContextOverflow::Stop, ContextOverflow::TruncateMiddle, ContextOverflow::RollingWindow}) {
            QVERIFY(parseContextOverflow(contextOverflowName(p), parsed));
            QVERIFY(parsed == p);
        }
        QVERIFY(!parseContextOverflow("truncate", parsed));
    }

    void chatRequestsUseTheTemplate() {
        auto e = load({});
        Request r;
        r.messages = {{"system", "Be brief."}, {"user", "Tell me a story."}};
        r.sampling.temperature = 0;
        r.sampling.maxNewTokens = 16;
        const Generated chat = run(*e, r);
        const std::string rendered = e->renderChat(r.messages);
        QVERIFY(rendered.find("Tell me a story.") != std::string::npos);
        Request raw;
        raw.promptIds = e->encodeChat(rendered);
        QCOMPARE(raw.promptIds.front(), e->tokenizer().bosId());  // the llama2 template prints <s> itself
        QVERIFY(raw.promptIds[1] != e->tokenizer().bosId());     // and it is not added twice
        raw.sampling = r.sampling;
        QCOMPARE(chat.usage.promptTokens, int(raw.promptIds.size()));
        QCOMPARE(chat.ids, run(*e, raw).ids);
    }
};

QTEST_GUILESS_MAIN(TestRuntime)
#include "test_runtime.moc"
