#pragma once
// The embedded OpenAI-compatible server, toggled from the Server view. It serves the engine the
// EngineController has loaded (and follows it across reloads); its request log arrives as a queued
// signal. Stopping runs off the GUI thread (it waits for requests in flight).
#include <QDateTime>
#include <QObject>
#include <QString>
#include <memory>
#include <thread>

namespace lmw::server {
class Server;
}

namespace lmw::gui {

class EngineController;

struct ServerRequestRecord {
    QDateTime time;
    QString method;
    QString endpoint;
    QString client;
    int status = 0;
    bool stream = false;
    bool tools = false;       // the request gave the model tools
    bool structured = false;  // constrained output (response_format JSON, a forced tool call)
    int promptTokens = 0;
    int completionTokens = 0;
    double ttftSeconds = 0;
    double totalSeconds = 0;
    double tokensPerSecond = 0;
    QString finishReason;
    QString error;
};

struct ServerSettings {
    QString host = QStringLiteral("127.0.0.1");
    int port = 23333;
    QString apiKey;
    // POST /v1/embeddings: lmw::engine::poolingName's names ("mean", "last"), as `lmw serve --embedding-pooling`.
    QString embeddingPooling = QStringLiteral("mean");
    static ServerSettings load();
    void save() const;
    bool exposesNetwork() const;  // bound to something other than loopback
};

class ServerController : public QObject {
    Q_OBJECT
public:
    enum class State { Stopped, Running, Stopping };
    Q_ENUM(State)

    explicit ServerController(EngineController* engine, QObject* parent = nullptr);
    ~ServerController() override;  // stops the server (joins its threads)

    static bool available();  // built with the server library
    State state() const { return m_state; }
    bool isRunning() const { return m_state == State::Running; }
    int port() const { return m_port; }
    QString url() const { return m_url; }

    // Binds and starts; false (and errorOccurred) when the port is taken or the address is bad.
    bool start(const ServerSettings& settings);
    void stop();

signals:
    void stateChanged(lmw::gui::ServerController::State state);
    void requestLogged(const lmw::gui::ServerRequestRecord& record);
    void errorOccurred(const QString& title, const QString& message);

private:
    void setState(State s);
    void attachEngine();

    EngineController* m_engine;
    std::unique_ptr<lmw::server::Server> m_server;
    std::thread m_stopper;
    State m_state = State::Stopped;
    int m_port = 0;
    QString m_url;
};

}  // namespace lmw::gui

Q_DECLARE_METATYPE(lmw::gui::ServerRequestRecord)
