#include "lmw/gui/server_controller.h"

#include <QMetaObject>
#include <QSettings>

#include "lmw/gui/engine_controller.h"
#ifdef LMW_HAVE_SERVER
#include "lmw/server.h"
#endif

namespace lmw::gui {

ServerSettings ServerSettings::load() {
    QSettings s;
    ServerSettings o;
    o.host = s.value(QStringLiteral("server/host"), o.host).toString();
    o.port = s.value(QStringLiteral("server/port"), o.port).toInt();
    o.apiKey = s.value(QStringLiteral("server/apiKey")).toString();
    o.embeddingPooling = s.value(QStringLiteral("server/embeddingPooling"), o.embeddingPooling).toString();
    return o;
}

void ServerSettings::save() const {
    QSettings s;
    s.setValue(QStringLiteral("server/host"), host);
    s.setValue(QStringLiteral("server/port"), port);
    s.setValue(QStringLiteral("server/apiKey"), apiKey);
    s.setValue(QStringLiteral("server/embeddingPooling"), embeddingPooling);
}

bool ServerSettings::exposesNetwork() const {
    const QString h = host.trimmed();
    return !(h == QLatin1String("localhost") || h == QLatin1String("::1") || h.startsWith(QLatin1String("127.")));
}

bool ServerController::available() {
#ifdef LMW_HAVE_SERVER
    return true;
#else
    return false;
#endif
}

ServerController::ServerController(EngineController* engine, QObject* parent) : QObject(parent), m_engine(engine) {
    qRegisterMetaType<ServerRequestRecord>();
#ifdef LMW_HAVE_SERVER
    // Follow the engine: a reload swaps it under the running server, an unload answers 503.
    connect(m_engine, &EngineController::loaded, this, [this] { attachEngine(); });
    connect(m_engine, &EngineController::aboutToUnload, this, [this] {
        if (m_server) {
            m_server->setEngine(nullptr);
            m_server->setLoadingStatus("no model loaded");
        }
    });
    connect(m_engine, &EngineController::loadProgress, this, [this](double f, const QString& what) {
        if (m_server) m_server->setLoadingStatus(QStringLiteral("loading %1%").arg(int(f * 100)).toStdString());
    });
#endif
}

ServerController::~ServerController() {
    if (m_stopper.joinable()) m_stopper.join();
    m_server.reset();  // stops and joins
}

void ServerController::setState(State s) {
    if (m_state == s) return;
    m_state = s;
    emit stateChanged(s);
}

void ServerController::attachEngine() {
#ifdef LMW_HAVE_SERVER
    if (!m_server) return;
    m_server->setEngine(m_engine->engine());
    if (!m_engine->engine()) m_server->setLoadingStatus("no model loaded");
#endif
}

bool ServerController::start(const ServerSettings& settings) {
#ifdef LMW_HAVE_SERVER
    if (m_state != State::Stopped) return m_state == State::Running;
    if (m_stopper.joinable()) m_stopper.join();
    auto server = std::make_unique<lmw::server::Server>();
    lmw::server::ServerOptions options;
    if (!settings.apiKey.isEmpty()) options.apiKeys.push_back(settings.apiKey.toStdString());
    lmw::engine::parsePooling(settings.embeddingPooling.toStdString(), options.embeddingPooling);  // else mean
    options.requestLog = [this](const lmw::server::RequestLogEntry& e) {
        try {
            ServerRequestRecord r;
            r.time = QDateTime::fromMSecsSinceEpoch(
                std::chrono::duration_cast<std::chrono::milliseconds>(e.time.time_since_epoch()).count());
            r.method = QString::fromStdString(e.method);
            r.endpoint = QString::fromStdString(e.endpoint);
            r.client = QString::fromStdString(e.client);
            r.status = e.status;
            r.stream = e.stream;
            r.tools = e.tools;
            r.structured = e.structured;
            r.promptTokens = e.promptTokens;
            r.completionTokens = e.completionTokens;
            r.ttftSeconds = e.ttftSeconds;
            r.totalSeconds = e.totalSeconds;
            r.tokensPerSecond = e.tokensPerSecond;
            r.finishReason = QString::fromStdString(e.finishReason);
            r.error = QString::fromStdString(e.error);
            QMetaObject::invokeMethod(this, [this, r] { emit requestLogged(r); }, Qt::QueuedConnection);
        } catch (...) {
        }
    };
    server->setEngine(m_engine->engine());
    if (!m_engine->engine()) server->setLoadingStatus("no model loaded");
    auto result = server->start(settings.host.toStdString(), settings.port, options);
    if (!result.ok()) {
        QString msg = QString::fromStdString(result.error().what());
        emit errorOccurred(tr("Could not start the server"),
                           tr("Listening on %1:%2 failed: %3\n\nIs another program (or another LM Workbench) using "
                              "this port? Pick another port and try again.")
                               .arg(settings.host)
                               .arg(settings.port)
                               .arg(msg));
        return false;
    }
    m_server = std::move(server);
    m_port = result.value();
    m_url = QString::fromStdString(m_server->url());
    setState(State::Running);
    return true;
#else
    emit errorOccurred(tr("Server not available"), tr("This build of LM Workbench has no HTTP server."));
    return false;
#endif
}

void ServerController::stop() {
    if (m_state != State::Running) return;
    setState(State::Stopping);
    if (m_stopper.joinable()) m_stopper.join();
    // stop() cancels requests in flight and waits for the handler threads; a client that stopped
    // reading can hold it for the write timeout, so it never runs on the GUI thread.
    m_stopper = std::thread([this, server = std::move(m_server)]() mutable {
        server.reset();
        QMetaObject::invokeMethod(
            this,
            [this] {
                if (m_stopper.joinable()) m_stopper.join();
                m_port = 0;
                m_url.clear();
                setState(State::Stopped);
            },
            Qt::QueuedConnection);
    });
}

}  // namespace lmw::gui
