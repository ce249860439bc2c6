// `lmw serve --context-overflow` (ServerOptions::contextOverflow) on stories260K (CPU), session 256:
// with stop a chat that no longer fits is a 400 context_length_exceeded; with truncate-middle and
// rolling-window it is answered from the prompt the engine's policy leaves (usage counts that prompt).
#include <QtTest>

#include "http_client.h"
#include "lmw/engine.h"
#include "lmw/server.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using lmw::test::request;
using nlohmann::json;

class TestContextOverflow : public QObject {
    Q_OBJECT
    std::shared_ptr<engine::Engine> m_engine;
    server::Server m_servers[3];
    int m_ports[3] = {};
    const engine::ContextOverflow m_policies[3] = {engine::ContextOverflow::Stop, engine::ContextOverflow::TruncateMiddle,
                                                   engine::ContextOverflow::RollingWindow};

    static json conversation() {
        json m = json::array({{{"role", "system"}, {"content", "Be brief."}}});
        for (int t = 0; t < 8; ++t) {
            m.push_back({{"role", "user"}, {"content", "Question " + std::to_string(t) + ": tell me about the dog."}});
            m.push_back({{"role", "assistant"}, {"content", "Answer " + std::to_string(t) + ": the dog ran and played."}});
        }
        m.push_back({{"role", "user"}, {"content", "And what happened next?"}});
        return m;
    }

private slots:
    void initTestCase() {
        engine::EngineConfig c;
        c.modelDir = lmw::test::modelDir();
        c.backend = "cpu";
        c.threads = 2;
        c.sessionLen = 256;
        auto e = engine::Engine::load(c);
        QVERIFY2(e.ok(), e.ok() ? "" : e.error().what());
        m_engine = std::move(e.value());
        for (int i = 0; i < 3; ++i) {
            m_servers[i].setEngine(m_engine);
            server::ServerOptions o;
            o.contextOverflow = m_policies[i];
            auto a = m_servers[i].start("127.0.0.1", 0, o);
            QVERIFY2(a.ok(), a.ok() ? "" : a.error().what());
            m_ports[i] = a.value();
        }
    }

    void policies() {
        const json body = {{"messages", conversation()}, {"max_tokens", 32}, {"temperature", 0}};
        const auto stop = request(m_ports[0], "POST", "/v1/chat/completions", body.dump());
        QCOMPARE(stop.status, 400);
        QCOMPARE(json::parse(stop.body)["error"]["code"].get<std::string>(), std::string("context_length_exceeded"));
        for (int i = 1; i < 3; ++i) {
            const auto r = request(m_ports[i], "POST", "/v1/chat/completions", body.dump());
            QVERIFY2(r.status == 200, r.body.c_str());
            const json j = json::parse(r.body);
            // The prompt that ran is the one the engine's policy leaves for this reply budget.
            engine::Request q;
            for (const auto& m : conversation()) q.messages.push_back({m["role"], m["content"]});
            q.contextOverflow = m_policies[i];
            q.sampling.maxNewTokens = 32;
            const engine::Engine::FittedChat f = m_engine->fitChat(q);
            QVERIFY(f.droppedMessages > 0);
            QCOMPARE(j["usage"]["prompt_tokens"].get<int>(), int(f.ids.size()));
            QVERIFY(j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>() <= 256);
            QVERIFY(!j["choices"][0]["message"]["content"].get<std::string>().empty());
        }
    }

    void cleanupTestCase() {
        for (auto& s : m_servers) s.stop();
    }
};

QTEST_GUILESS_MAIN(TestContextOverflow)
#include "test_context_overflow.moc"
