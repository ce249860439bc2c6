#pragma once
// Runs a quantization job on a worker thread: perplexity of the source on a small text, AWQ
// quantization, perplexity of the result. Progress, log lines and the outcome arrive as queued signals.
#include <QObject>
#include <QString>
#include <atomic>
#include <memory>
#include <thread>

#include "lmw/quantize.h"

namespace lmw::gui {

struct QuantizeProgressInfo {
    QString stage;       // "Measuring perplexity", "Calibrating", "Quantizing", ...
    int layer = 0;       // layers done
    int numLayers = 0;
    double fraction = 0; // of the whole job
    double elapsed = 0;  // seconds
    double eta = -1;     // seconds, -1 unknown
    QString message;
};

struct QuantizeOutcome {
    lmw::engine::QuantizeReport report;
    double pplBefore = 0;  // 0 when not measured
    double pplAfter = 0;
    uint64_t weightsBefore = 0;  // ModelInfo::weightBytes of source and output (what the planner shows)
    uint64_t weightsAfter = 0;
    uint64_t diskAfter = 0;      // ModelInfo::diskBytes of the output (the card's "Size on disk")
    QString summary;       // formatQuantizeReport
};

class QuantizeController : public QObject {
    Q_OBJECT
public:
    explicit QuantizeController(QObject* parent = nullptr);
    ~QuantizeController() override;  // cancels and waits

    bool isRunning() const { return m_running; }
    // evalText: perplexity before/after is measured on it (skipped when empty).
    bool start(const lmw::engine::QuantizeOptions& options, const QString& evalText);
    void cancel();

    // The small text that ships with the app for perplexity (resources/eval/stories.txt).
    static QString builtinEvalText();

signals:
    void runningChanged(bool running);
    void progress(const lmw::gui::QuantizeProgressInfo& info);
    void logLine(const QString& line);
    void finished(const lmw::gui::QuantizeOutcome& outcome);
    void failed(const QString& message, bool cancelled);
    void errorOccurred(const QString& title, const QString& message);

private:
    void post(QuantizeProgressInfo info);
    void log(const QString& line);
    void done(std::shared_ptr<QuantizeOutcome> outcome, QString error, bool cancelled);

    std::thread m_thread;
    std::shared_ptr<std::atomic<bool>> m_cancel;
    bool m_running = false;
};

}  // namespace lmw::gui

Q_DECLARE_METATYPE(lmw::gui::QuantizeProgressInfo)
Q_DECLARE_METATYPE(lmw::gui::QuantizeOutcome)
