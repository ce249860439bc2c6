#pragma once
// The GUI's only door to the engine. Loading and unloading run on a worker thread; the engine's
// sinks (called on the engine thread) become queued signals, so every signal here arrives on the
// GUI thread and no engine call ever blocks it.
#include <QObject>
#include <QString>
#include <QTimer>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "lmw/engine.h"

namespace lmw::gui {

// The end of one generation, as the final engine event reported it.
struct GenerationResult {
    // "stop", "length", "cancelled", "error"; the chat also records "context" (a reply cut off by
    // the session length) and "unloaded" (the model went away mid-reply).
    QString finishReason;
    QString error;                  // with "error"
    bool contextExceeded = false;   // with "error": the prompt alone fills the session
    int promptTokens = 0;
    int completionTokens = 0;
    int droppedMessages = 0;        // left out of the prompt by the conversation's context policy
    double firstTokenSeconds = 0;
    double totalSeconds = 0;
    // Decode speed: tokens after the first over the time after the first token.
    double tokensPerSecond() const;
};

class EngineController : public QObject {
    Q_OBJECT
public:
    enum class State { Unloaded, Loading, Ready, Unloading };
    Q_ENUM(State)

    explicit EngineController(QObject* parent = nullptr);
    ~EngineController() override;  // cancels a load, stops the engine (joins its thread)

    State state() const { return m_state; }
    bool isReady() const { return m_state == State::Ready; }
    QString stateText() const;

    // Starts loading on a worker thread (unloads first if a model is loaded).
    void load(const lmw::engine::EngineConfig& config);
    void cancelLoad();
    void unload();

    // Null unless Ready. Shared so the embedded server can hold it while it runs.
    std::shared_ptr<lmw::engine::Engine> engine() const { return m_engine; }
    QString modelDir() const;
    const lmw::engine::ModelInfo* modelInfo() const;

    // Submits a request; its events come back as generationDelta / generationFinished.
    // Returns 0 (and emits errorOccurred) when no model is loaded.
    lmw::engine::RequestId submit(lmw::engine::Request request);
    void cancel(lmw::engine::RequestId id);
    int activeRequests() const { return m_active; }
    int sessionLength() const;  // tokens of one sequence (prompt + reply); 0 unless Ready
    // The loaded chat template reads enable_thinking (Qwen3): thinking can be switched off per chat.
    bool templateSupportsThinking() const;

    lmw::engine::EngineStats stats() const { return m_lastStats; }

signals:
    void stateChanged(lmw::gui::EngineController::State state);
    void loadProgress(double fraction, const QString& what);
    void loaded(const QString& modelDir);
    void loadFailed(const QString& message, bool cancelled);
    void aboutToUnload();  // listeners (the server) stop using the engine now
    void unloaded();
    void generationDelta(quint64 id, const QString& text, int tokens);
    void generationFinished(quint64 id, const lmw::gui::GenerationResult& result);
    void statsUpdated(const lmw::engine::EngineStats& stats);
    void errorOccurred(const QString& title, const QString& message);

private:
    void setState(State s);
    void joinWorker();
    void onLoadDone(std::shared_ptr<lmw::engine::Engine> engine, QString error, bool cancelled);
    void pollStats();

    // Sinks post through this, not through `this`: the engine can outlive the controller (the
    // server may still hold it), so the destructor cuts the link under the relay's lock.
    struct Relay {
        std::mutex mutex;
        EngineController* target = nullptr;
    };
    std::shared_ptr<Relay> m_relay;

    State m_state = State::Unloaded;
    std::shared_ptr<lmw::engine::Engine> m_engine;
    std::thread m_worker;  // load or unload in flight
    std::shared_ptr<std::atomic<bool>> m_cancelLoad;
    lmw::engine::EngineStats m_lastStats;
    QTimer m_statsTimer;
    int m_active = 0;
    bool m_pendingLoad = false;
    lmw::engine::EngineConfig m_pendingConfig;
};

}  // namespace lmw::gui

Q_DECLARE_METATYPE(lmw::gui::GenerationResult)
Q_DECLARE_METATYPE(lmw::engine::EngineStats)
