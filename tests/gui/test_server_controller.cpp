// ServerController and the Server view on the real engine: the toggle starts a server that answers
// /v1/models and a chat completion (while a chat tab generates at the same time), the request table
// fills, a port in use is an error signal, and Stop closes the port.
#include <QPushButton>
#include <QSignalSpy>
#include <QTest>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <atomic>
#include <future>
#include <thread>
#include <unistd.h>

#include "gui/gui_test_env.h"
#include "lmw/gui/chat_controller.h"
#include "lmw/gui/request_log_model.h"
#include "lmw/gui/server_controller.h"
#include "lmw/gui/server_view.h"

using namespace lmw::gui;

namespace {

// A plain HTTP/1.1 request over a socket (no Qt Network / extra client library needed).
// Returns "" when the connection is refused.
std::string http(int port, const std::string& method, const std::string& path, const std::string& body = {}) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return {};
    }
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!body.empty()) req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    ::send(fd, req.data(), req.size(), 0);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, size_t(n));
    ::close(fd);
    return out;
}

std::string bodyOf(const std::string& response) {
    const auto p = response.find("\r\n\r\n");
    return p == std::string::npos ? std::string() : response.substr(p + 4);
}

// Holds a loopback port so the server cannot bind it.
struct PortBlocker {
    int fd = -1;
    int port = 0;
    PortBlocker() {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(fd, 1);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~PortBlocker() { ::close(fd); }
};

// A free port right now (bound and released).
int freePort() {
    PortBlocker b;
    return b.port;
}

}  // namespace

class TestServerController : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> m_env;
    std::unique_ptr<EngineController> m_engine;

private slots:
    void initTestCase() {
        m_env = std::make_unique<lmw::test::GuiTestEnv>();
        QVERIFY(ServerController::available());
        m_engine = std::make_unique<EngineController>();
        QSignalSpy loaded(m_engine.get(), &EngineController::loaded);
        m_engine->load(lmw::test::smallConfig());
        QVERIFY(loaded.wait(30000));
    }
    void cleanupTestCase() { m_engine.reset(); }

    void toggleServesAndStops() {
        ServerController server(m_engine.get());
        ServerView view(&server);
        ServerSettings s;
        s.port = freePort();
        view.setSettings(s);
        QSignalSpy logged(&server, &ServerController::requestLogged);
        QSignalSpy errors(&server, &ServerController::errorOccurred);
        QCOMPARE(view.toggleButton()->text(), QStringLiteral("Start server"));
        view.toggleButton()->click();
        QVERIFY(server.isRunning());
        QCOMPARE(errors.count(), 0);
        QCOMPARE(server.port(), s.port);
        QCOMPARE(server.url(), QStringLiteral("http://127.0.0.1:%1").arg(s.port));
        QCOMPARE(view.toggleButton()->text(), QStringLiteral("Stop server"));

        const std::string models = http(s.port, "GET", "/v1/models");
        QVERIFY2(models.rfind("HTTP/1.1 200", 0) == 0, models.c_str());
        const auto j = nlohmann::json::parse(bodyOf(models));
        QCOMPARE(QString::fromStdString(j["data"][0]["id"].get<std::string>()), QStringLiteral("stories260K"));
        QTRY_COMPARE_WITH_TIMEOUT(view.log()->rowCount(), 1, 10000);
        QCOMPARE(view.log()->record(0).endpoint, QStringLiteral("/v1/models"));
        QCOMPARE(view.log()->record(0).status, 200);
        QCOMPARE(view.log()->data(view.log()->index(0, RequestLogModel::Status), Qt::DisplayRole).toString(),
                 QStringLiteral("200"));

        // A chat tab and an API request on the one engine at the same time.
        ChatController chat(m_engine.get(), ConversationStore(m_env->path(QStringLiteral("conv"))));
        chat.restore();
        SamplingSettings ss;
        ss.maxTokens = 200;
        ss.seed = 1;
        chat.setSampling(chat.ids().first(), ss);
        QSignalSpy chatDone(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(chat.ids().first(), QStringLiteral("Once upon a time")));
        QVERIFY(chat.isGenerating(chat.ids().first()));
        std::string api;
        std::atomic<bool> apiDone{false};
        std::thread client([&] {
            api = http(s.port, "POST", "/v1/chat/completions",
                       R"({"model":"stories260K","messages":[{"role":"user","content":"Tom had a red ball"}],"max_tokens":24,"temperature":0})");
            apiDone = true;
        });
        QTRY_VERIFY_WITH_TIMEOUT(apiDone.load(), 30000);  // the GUI thread keeps running meanwhile
        client.join();
        QTRY_COMPARE_WITH_TIMEOUT(chatDone.count(), 1, 30000);
        QVERIFY2(api.rfind("HTTP/1.1 200", 0) == 0, api.c_str());
        const auto cj = nlohmann::json::parse(bodyOf(api));
        QVERIFY(cj["usage"]["completion_tokens"].get<int>() > 0);
        QVERIFY(cj["usage"]["completion_tokens"].get<int>() <= 24);
        QTRY_COMPARE_WITH_TIMEOUT(view.log()->rowCount(), 2, 10000);
        const auto& rec = view.log()->record(0);  // newest first
        QCOMPARE(rec.endpoint, QStringLiteral("/v1/chat/completions"));
        QCOMPARE(rec.status, 200);
        QCOMPARE(rec.completionTokens, cj["usage"]["completion_tokens"].get<int>());
        QCOMPARE(rec.promptTokens, cj["usage"]["prompt_tokens"].get<int>());
        QVERIFY(rec.client.startsWith(QStringLiteral("127.0.0.1")));
        QCOMPARE(view.log()->data(view.log()->index(0, RequestLogModel::Endpoint), Qt::DisplayRole).toString(),
                 QStringLiteral("POST /v1/chat/completions"));
        // Issue 14: the table marks requests with constrained (JSON) output.
        const std::string json = http(s.port, "POST", "/v1/chat/completions",
                                      R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":64,"stream":true,)"
                                      R"("response_format":{"type":"json_object"}})");
        QVERIFY2(json.rfind("HTTP/1.1 200", 0) == 0, json.c_str());
        QTRY_COMPARE_WITH_TIMEOUT(view.log()->rowCount(), 3, 10000);
        QVERIFY(view.log()->record(0).structured && !view.log()->record(0).tools);
        QCOMPARE(view.log()->data(view.log()->index(0, RequestLogModel::Endpoint), Qt::DisplayRole).toString(),
                 QStringLiteral("POST /v1/chat/completions (stream, JSON)"));

        QSignalSpy state(&server, &ServerController::stateChanged);
        view.toggleButton()->click();
        QTRY_COMPARE_WITH_TIMEOUT(server.state(), ServerController::State::Stopped, 15000);
        QCOMPARE(http(s.port, "GET", "/v1/models"), std::string());  // the port is closed
        QCOMPARE(view.toggleButton()->text(), QStringLiteral("Start server"));
    }

    void portInUseIsAnError() {
        PortBlocker blocker;
        ServerController server(m_engine.get());
        QSignalSpy errors(&server, &ServerController::errorOccurred);
        ServerSettings s;
        s.port = blocker.port;
        QVERIFY(!server.start(s));
        QCOMPARE(server.state(), ServerController::State::Stopped);
        QCOMPARE(errors.count(), 1);
        QCOMPARE(errors.at(0).at(0).toString(), QStringLiteral("Could not start the server"));
        QVERIFY2(errors.at(0).at(1).toString().contains(QString::number(blocker.port)), qPrintable(errors.at(0).at(1).toString()));
    }

    void followsReloads() {
        ServerController server(m_engine.get());
        ServerSettings s;
        s.port = freePort();
        QVERIFY(server.start(s));
        QSignalSpy unloaded(m_engine.get(), &EngineController::unloaded);
        m_engine->unload();
        QVERIFY(unloaded.wait(30000));
        const std::string busy = http(s.port, "POST", "/v1/completions", R"({"prompt":"Hi","max_tokens":4})");
        QVERIFY2(busy.rfind("HTTP/1.1 503", 0) == 0, busy.c_str());  // no engine: "loading", not a crash
        QSignalSpy loaded(m_engine.get(), &EngineController::loaded);
        m_engine->load(lmw::test::smallConfig());
        QVERIFY(loaded.wait(30000));
        const std::string ok = http(s.port, "POST", "/v1/completions", R"({"prompt":"Hi","max_tokens":4})");
        QVERIFY2(ok.rfind("HTTP/1.1 200", 0) == 0, ok.c_str());
        server.stop();
        QTRY_COMPARE_WITH_TIMEOUT(server.state(), ServerController::State::Stopped, 15000);
    }

    // The Embeddings setting is the server's --embedding-pooling: "last" answers the engine's last-token
    // vector, not the mean; it is kept with the other settings.
    void embeddingPoolingSetting() {
        ServerController server(m_engine.get());
        ServerView view(&server);
        ServerSettings s;
        s.port = freePort();
        s.embeddingPooling = QStringLiteral("last");
        view.setSettings(s);
        QCOMPARE(view.settings().embeddingPooling, QStringLiteral("last"));
        view.toggleButton()->click();
        QVERIFY(server.isRunning());
        QCOMPARE(ServerSettings::load().embeddingPooling, QStringLiteral("last"));  // the toggle saved it
        auto e = m_engine->engine();
        const std::vector<int32_t> ids = e->tokenizer().encode("Once upon a time");
        auto direct = [&](lmw::engine::Pooling p) {
            lmw::engine::Request r;
            r.promptIds = ids;
            r.output = lmw::engine::RequestOutput::Embedding;
            r.pooling = p;
            std::promise<std::vector<float>> done;
            e->submit(std::move(r), [&](const lmw::engine::Event& ev) {
                if (ev.final) done.set_value(ev.embedding);
            });
            return done.get_future().get();
        };
        const std::string reply = http(s.port, "POST", "/v1/embeddings", nlohmann::json{{"input", ids}}.dump());
        QVERIFY2(reply.rfind("HTTP/1.1 200", 0) == 0, reply.c_str());
        const auto got = nlohmann::json::parse(bodyOf(reply))["data"][0]["embedding"].get<std::vector<float>>();
        QCOMPARE(got, direct(lmw::engine::Pooling::Last));
        QVERIFY(got != direct(lmw::engine::Pooling::Mean));
        server.stop();
        QTRY_COMPARE_WITH_TIMEOUT(server.state(), ServerController::State::Stopped, 15000);
    }

    void networkWarning() {
        ServerSettings s;
        QVERIFY(!s.exposesNetwork());
        s.host = QStringLiteral("0.0.0.0");
        QVERIFY(s.exposesNetwork());
        s.host = QStringLiteral("localhost");
        QVERIFY(!s.exposesNetwork());
    }
};

QTEST_MAIN(TestServerController)
#include "test_server_controller.moc"
