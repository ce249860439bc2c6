// Pictures of every main view of the real MainWindow driving the real stories260K model (for
// docs/APP.md and for a look at the layout). Saved to $LMW_SCREENSHOT_DIR, else
// <build>/screenshots. Each picture must be a real rendering (many colours), not a blank window.
#include <QDir>
#include <QImage>
#include <QSet>
#include <QSignalSpy>
#include <QTest>
#include <atomic>
#include <thread>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gui/gui_test_env.h"
#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/chat_view.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/engine_settings.h"
#include "lmw/gui/memory_planner.h"
#include "lmw/gui/model_view.h"
#include "lmw/gui/quantize_controller.h"
#include "lmw/gui/quantize_wizard.h"
#include "lmw/gui/request_log_model.h"
#include "lmw/gui/server_controller.h"
#include "lmw/gui/server_view.h"

using namespace lmw::gui;

namespace {
void post(int port, const std::string& path, const std::string& body) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        std::string req = (body.empty() ? "GET " : "POST ") + path +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        ::send(fd, req.data(), req.size(), 0);
        char buf[4096];
        while (::recv(fd, buf, sizeof buf, 0) > 0) {
        }
    }
    ::close(fd);
}
}  // namespace

class TestScreenshots : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> m_env;

private slots:
    void initTestCase() {
        m_env = std::make_unique<lmw::test::GuiTestEnv>();
        applyAppStyle();
    }

    void allViews() {
        MainWindow w(m_env->conversations());
        QVERIFY(lmw::test::showLoaded(w, lmw::test::model()));

        // Chat: two tabs, a conversation of two turns in the current one.
        ChatController* chat = w.chat();
        const QString first = w.chatView()->currentTab()->id();
        chat->rename(first, QStringLiteral("Bedtime story"));
        const QString id = chat->newConversation(QStringLiteral("Lily and the ball"));
        chat->setSystemPrompt(id, QStringLiteral("You are a storyteller for small children."));
        SamplingSettings s;
        s.seed = 42;
        s.maxTokens = 120;
        s.temperature = 0.7;
        chat->setSampling(id, s);
        QSignalSpy finished(chat, &ChatController::generationFinished);
        QVERIFY(chat->send(id, QStringLiteral("Once upon a time, Lily found a red ball.")));
        QVERIFY(finished.wait(30000));
        QVERIFY(chat->send(id, QStringLiteral("What did she do with it?")));
        QVERIFY(finished.wait(30000));
        s.seed = 43;  // a second version of the last reply: its ‹ 2/2 › arrows show
        chat->setSampling(id, s);
        QVERIFY(chat->regenerate(id));
        QVERIFY(finished.wait(30000));
        w.showView(MainWindow::ChatPage);
        lmw::test::saveScreenshot(&w, QStringLiteral("chat"));

        w.showView(MainWindow::ModelsPage);
        lmw::test::saveScreenshot(&w, QStringLiteral("models"));
        // The planner's warning, against a (simulated) small GPU.
        QList<DeviceMemory> devices{{QStringLiteral("cuda"), QStringLiteral("Small GPU (simulated)"), 8u << 20, 2u << 20},
                                    {QStringLiteral("cpu"), QStringLiteral("CPU"), 64ull << 30, 32ull << 30}};
        w.modelView()->setDevices(devices);
        EngineSettings gpu = w.modelView()->settings();
        gpu.backend = QStringLiteral("auto");
        w.modelView()->setSettings(gpu);
        w.modelView()->setDevices(devices);
        QVERIFY(!w.modelView()->warningText().isEmpty());
        lmw::test::saveScreenshot(&w, QStringLiteral("models-warning"));

        // Server: running, with a few requests in the table.
        ServerSettings ss;  // the default port when it is free (nicer picture), else any
        w.serverView()->setSettings(ss);
        if (!w.server()->start(ss)) {
            ss.port = 0;
            QVERIFY(w.server()->start(ss));
        }
        const int port = w.server()->port();
        std::atomic<bool> done{false};
        std::thread client([port, &done] {
            post(port, "/v1/models", "");
            post(port, "/v1/chat/completions",
                 R"({"messages":[{"role":"user","content":"Tom had a red ball"}],"max_tokens":48,"temperature":0})");
            post(port, "/v1/completions", R"({"prompt":"The cat sat on the mat.","max_tokens":32,"stream":true})");
            post(port, "/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":0})");
            done = true;
        });
        QTRY_VERIFY_WITH_TIMEOUT(done.load(), 60000);
        client.join();
        QTRY_VERIFY_WITH_TIMEOUT(w.serverView()->log()->rowCount() >= 4, 10000);
        w.showView(MainWindow::ServerPage);
        lmw::test::saveScreenshot(&w, QStringLiteral("server"));
        w.server()->stop();
        QTRY_COMPARE_WITH_TIMEOUT(w.server()->state(), ServerController::State::Stopped, 15000);

        // Quantize: every page of the wizard.
        QuantizeWizard* wiz = w.wizard();
        w.showView(MainWindow::QuantizePage);
        wiz->restart();
        wiz->setSourceModel(lmw::test::model());
        QTRY_VERIFY_WITH_TIMEOUT(wiz->currentPage()->isComplete(), 10000);
        lmw::test::saveScreenshot(&w, QStringLiteral("quantize-1-source"));
        wiz->next();
        wiz->setField(QStringLiteral("output"), m_env->path(QStringLiteral("stories260K-awq-int4")));
        lmw::test::saveScreenshot(&w, QStringLiteral("quantize-2-output"));
        wiz->next();
        wiz->setField(QStringLiteral("samples"), 16);
        wiz->setField(QStringLiteral("seqLen"), 128);
        lmw::test::saveScreenshot(&w, QStringLiteral("quantize-3-settings"));
        QSignalSpy qdone(w.quantizer(), &QuantizeController::finished);
        bool shotRunning = false;
        connect(w.quantizer(), &QuantizeController::progress, this, [&](const QuantizeProgressInfo& p) {
            if (!shotRunning && p.fraction > 0.45) {
                shotRunning = true;
                lmw::test::saveScreenshot(&w, QStringLiteral("quantize-4-run"));
            }
        });
        wiz->next();
        QVERIFY(qdone.wait(600000) || qdone.count() == 1);
        QTRY_COMPARE_WITH_TIMEOUT(wiz->currentId(), int(QuantizeWizard::Result), 5000);
        lmw::test::saveScreenshot(&w, QStringLiteral("quantize-5-result"));
        QVERIFY(shotRunning);
    }
};

QTEST_MAIN(TestScreenshots)
#include "test_screenshots.moc"
