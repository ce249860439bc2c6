#include "lmw/gui/engine_controller.h"

#include <QMetaObject>

namespace lmw::gui {

using lmw::engine::Engine;
using lmw::engine::EngineConfig;
using lmw::engine::Event;
using lmw::engine::LoadStage;

double GenerationResult::tokensPerSecond() const {
    double decode = totalSeconds - firstTokenSeconds;
    if (completionTokens <= 1 || decode <= 0) return 0;
    return (completionTokens - 1) / decode;
}

static QString stageName(LoadStage s) {
    switch (s) {
        case LoadStage::Reading: return QStringLiteral("Reading the model folder");
        case LoadStage::Weights: return QStringLiteral("Loading weights");
        case LoadStage::Cache: return QStringLiteral("Allocating the KV cache");
        case LoadStage::Ready: return QStringLiteral("Ready");
    }
    return {};
}

EngineController::EngineController(QObject* parent)
    : QObject(parent), m_relay(std::make_shared<Relay>()) {
    m_relay->target = this;
    qRegisterMetaType<GenerationResult>();
    qRegisterMetaType<lmw::engine::EngineStats>();
    m_statsTimer.setInterval(1000);
    connect(&m_statsTimer, &QTimer::timeout, this, &EngineController::pollStats);
}

EngineController::~EngineController() {
    {
        std::lock_guard lock(m_relay->mutex);
        m_relay->target = nullptr;
    }
    if (m_cancelLoad) m_cancelLoad->store(true);
    joinWorker();
    m_engine.reset();  // joins the engine thread: no sink runs after this
}

void EngineController::joinWorker() {
    if (m_worker.joinable()) m_worker.join();
}

QString EngineController::stateText() const {
    switch (m_state) {
        case State::Unloaded: return tr("no model");
        case State::Loading: return tr("loading");
        case State::Unloading: return tr("unloading");
        case State::Ready: break;
    }
    if (m_active > 0) return tr("generating %n request(s)", nullptr, m_active);
    return tr("idle");
}

QString EngineController::modelDir() const {
    return m_engine ? QString::fromStdString(m_engine->config().modelDir) : QString();
}

const lmw::engine::ModelInfo* EngineController::modelInfo() const { return m_engine ? &m_engine->info() : nullptr; }

void EngineController::setState(State s) {
    if (m_state == s) return;
    m_state = s;
    emit stateChanged(s);
}

void EngineController::load(const EngineConfig& config) {
    if (m_state == State::Loading) return;
    if (m_state == State::Ready || m_state == State::Unloading) {
        m_pendingLoad = true;
        m_pendingConfig = config;
        if (m_state == State::Ready) unload();
        return;
    }
    joinWorker();
    setState(State::Loading);
    emit loadProgress(0, tr("Starting"));
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_cancelLoad = cancel;
    m_worker = std::thread([this, config, cancel] {
        auto progress = [this, cancel](LoadStage stage, double fraction, const std::string& what) {
            QString text = stageName(stage);
            if (!what.empty()) text += QStringLiteral(": ") + QString::fromStdString(what);
            QMetaObject::invokeMethod(this, [this, fraction, text] { emit loadProgress(fraction, text); },
                                      Qt::QueuedConnection);
            return !cancel->load();
        };
        std::shared_ptr<Engine> engine;
        QString error;
        bool cancelled = false;
        try {
            auto result = Engine::load(config, progress);
            if (result.ok()) {
                engine = std::move(result.value());
                if (cancel->load()) {  // cancelled after the last progress call: drop it here, off the GUI thread
                    engine.reset();
                    cancelled = true;
                }
            } else {
                cancelled = result.error().code() == lmw::ErrorCode::Cancelled;
                error = QString::fromStdString(result.error().what());
            }
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        } catch (...) {
            error = QStringLiteral("unknown error while loading");
        }
        QMetaObject::invokeMethod(
            this, [this, engine, error, cancelled] { onLoadDone(engine, error, cancelled); }, Qt::QueuedConnection);
    });
}

void EngineController::onLoadDone(std::shared_ptr<Engine> engine, QString error, bool cancelled) {
    joinWorker();
    m_cancelLoad.reset();
    if (!engine) {
        setState(State::Unloaded);
        if (cancelled) {
            emit loadFailed(tr("Loading was cancelled."), true);
        } else {
            emit loadFailed(error, false);
            emit errorOccurred(tr("Could not load the model"), error);
        }
        return;
    }
    m_engine = std::move(engine);
    m_active = 0;
    m_lastStats = m_engine->stats();
    setState(State::Ready);
    m_statsTimer.start();
    emit statsUpdated(m_lastStats);
    emit loaded(modelDir());
}

void EngineController::cancelLoad() {
    if (m_state == State::Loading && m_cancelLoad) m_cancelLoad->store(true);
    m_pendingLoad = false;
}

void EngineController::unload() {
    if (m_state == State::Loading) {
        cancelLoad();
        return;
    }
    if (m_state != State::Ready) return;
    emit aboutToUnload();
    m_statsTimer.stop();
    setState(State::Unloading);
    joinWorker();
    // Destroying the engine joins its thread and frees the weights: do it off the GUI thread.
    std::shared_ptr<Engine> engine = std::move(m_engine);
    m_worker = std::thread([this, engine = std::move(engine)]() mutable {
        try {
            engine.reset();
        } catch (...) {
        }
        QMetaObject::invokeMethod(
            this,
            [this] {
                joinWorker();
                // Requests the engine dropped without a final event still get one.
                m_active = 0;
                m_lastStats = {};
                setState(State::Unloaded);
                emit unloaded();
                if (m_pendingLoad) {
                    m_pendingLoad = false;
                    load(m_pendingConfig);
                }
            },
            Qt::QueuedConnection);
    });
}

lmw::engine::RequestId EngineController::submit(lmw::engine::Request request) {
    if (!isReady()) {
        emit errorOccurred(tr("No model loaded"), tr("Open a model folder and load it before sending a message."));
        return 0;
    }
    auto sink = [relay = m_relay](const Event& e) {
        try {
            QString text = QString::fromStdString(e.text);
            int tokens = int(e.tokens.size());
            quint64 id = e.id;
            std::lock_guard lock(relay->mutex);
            EngineController* self = relay->target;
            if (!self) return;
            if (!e.final) {
                QMetaObject::invokeMethod(
                    self, [self, id, text, tokens] { emit self->generationDelta(id, text, tokens); }, Qt::QueuedConnection);
                return;
            }
            GenerationResult r;
            r.finishReason = QString::fromLatin1(lmw::engine::finishReasonName(e.finish));
            r.error = QString::fromStdString(e.error);
            r.contextExceeded = e.finish == lmw::engine::FinishReason::Error &&
                                e.errorCode == lmw::ErrorCode::ContextLengthExceeded;
            r.promptTokens = e.usage.promptTokens;
            r.completionTokens = e.usage.completionTokens;
            r.droppedMessages = e.usage.droppedMessages;
            r.firstTokenSeconds = e.firstTokenSeconds;
            r.totalSeconds = e.totalSeconds;
            QMetaObject::invokeMethod(
                self,
                [self, id, text, tokens, r] {
                    if (!text.isEmpty() || tokens > 0) emit self->generationDelta(id, text, tokens);
                    if (self->m_active > 0) --self->m_active;
                    emit self->generationFinished(id, r);
                },
                Qt::QueuedConnection);
        } catch (...) {
            // A sink must not throw into the engine thread; a lost event is the lesser harm.
        }
    };
    ++m_active;
    return m_engine->submit(std::move(request), sink);
}

int EngineController::sessionLength() const { return isReady() && m_engine ? m_engine->sessionLen() : 0; }

bool EngineController::templateSupportsThinking() const {
    return isReady() && m_engine && m_engine->chatTemplate().source().find("enable_thinking") != std::string::npos;
}

void EngineController::cancel(lmw::engine::RequestId id) {
    if (m_engine && id) m_engine->cancel(id);
}

void EngineController::pollStats() {
    if (!m_engine) return;
    m_lastStats = m_engine->stats();
    emit statsUpdated(m_lastStats);
}

}  // namespace lmw::gui
