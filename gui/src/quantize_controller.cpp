#include "lmw/gui/quantize_controller.h"

#include <QFile>
#include <QMetaObject>
#include <QSaveFile>
#include <QTime>
#include <chrono>

#include "lmw/model_info.h"

namespace lmw::gui {

using namespace lmw::engine;

// Share of the whole job each phase takes on the overall progress bar.
static constexpr double kPplShare = 0.08;     // each of before / after
static constexpr double kSampleShare = 0.14;  // self-calibration sampling
static constexpr double kLayerShare = 0.66;   // layers
static constexpr double kFinishShare = 0.04;

QuantizeController::QuantizeController(QObject* parent) : QObject(parent) {
    qRegisterMetaType<QuantizeProgressInfo>();
    qRegisterMetaType<QuantizeOutcome>();
}

QuantizeController::~QuantizeController() {
    if (m_cancel) m_cancel->store(true);
    if (m_thread.joinable()) m_thread.join();
}

QString QuantizeController::builtinEvalText() {
    QFile f(QStringLiteral(":/eval/stories.txt"));
    return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
}

void QuantizeController::post(QuantizeProgressInfo info) {
    QMetaObject::invokeMethod(this, [this, info] { emit progress(info); }, Qt::QueuedConnection);
}

void QuantizeController::log(const QString& line) {
    const QString stamped = QTime::currentTime().toString(QStringLiteral("hh:mm:ss  ")) + line;
    QMetaObject::invokeMethod(this, [this, stamped] { emit logLine(stamped); }, Qt::QueuedConnection);
}

bool QuantizeController::start(const QuantizeOptions& options, const QString& evalText) {
    if (m_running) return false;
    if (m_thread.joinable()) m_thread.join();
    m_running = true;
    emit runningChanged(true);
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_cancel = cancel;
    const std::string text = evalText.toStdString();
    m_thread = std::thread([this, options, text, cancel] {
        const auto t0 = std::chrono::steady_clock::now();
        auto elapsed = [t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
        auto outcome = std::make_shared<QuantizeOutcome>();
        QString error;
        bool cancelled = false;
        try {
            auto measure = [&](const std::string& dir, double base, const QString& what) -> double {
                if (text.empty()) return 0;
                log(tr("Measuring perplexity of the %1 model").arg(what));
                PerplexityOptions po;
                po.modelDir = dir;
                po.text = text;
                po.backend = options.backend;
                po.threads = options.threads;
                po.progress = [&, base](int doneWindows, int total) {
                    QuantizeProgressInfo p;
                    p.stage = tr("Measuring perplexity (%1)").arg(what);
                    p.fraction = base + kPplShare * (total ? double(doneWindows) / total : 0);
                    p.elapsed = elapsed();
                    post(p);
                    return !cancel->load();
                };
                auto r = perplexity(po);
                if (!r.ok()) {
                    if (r.error().code() == ErrorCode::Cancelled) throw r.error();
                    log(tr("Perplexity failed: %1").arg(QString::fromStdString(r.error().what())));
                    return 0;
                }
                log(tr("Perplexity of the %1 model: %2 (%3 tokens)")
                        .arg(what)
                        .arg(r.value().ppl, 0, 'f', 3)
                        .arg(r.value().scoredTokens));
                return r.value().ppl;
            };
            outcome->pplBefore = measure(options.modelDir, 0, tr("original"));

            log(tr("Quantizing %1 to %2 (%3-bit, group %4, calibration %5)")
                    .arg(QString::fromStdString(options.modelDir), QString::fromStdString(options.workDir))
                    .arg(options.bits)
                    .arg(options.groupSize)
                    .arg(QString::fromStdString(options.calibDataset)));
            std::string lastMessage;
            int lastLayer = -1;
            auto onProgress = [&](const QuantizeProgress& q) {
                QuantizeProgressInfo p;
                p.layer = q.layer;
                p.numLayers = q.numLayers;
                p.elapsed = elapsed();
                p.eta = q.eta;
                p.message = QString::fromStdString(q.message);
                double f = kPplShare;
                switch (q.stage) {
                    case QuantizeStage::Preparing: p.stage = tr("Preparing"); break;
                    case QuantizeStage::Sampling:
                        p.stage = tr("Generating calibration samples");
                        f += kSampleShare * (q.numLayers ? double(q.layer) / q.numLayers : 0);
                        break;
                    case QuantizeStage::Layer:
                        p.stage = tr("Quantizing layer %1 of %2").arg(std::min(q.layer + 1, q.numLayers)).arg(q.numLayers);
                        f += kSampleShare + kLayerShare * (q.numLayers ? double(q.layer) / q.numLayers : 0);
                        break;
                    case QuantizeStage::Finishing:
                        p.stage = tr("Writing the output folder");
                        f += kSampleShare + kLayerShare;
                        break;
                    case QuantizeStage::Done:
                        p.stage = tr("Done");
                        f += kSampleShare + kLayerShare + kFinishShare;
                        break;
                }
                p.fraction = f;
                post(p);
                if (!q.message.empty() && q.message != lastMessage) {
                    lastMessage = q.message;
                    log(p.message);
                } else if (q.stage == QuantizeStage::Layer && q.layer != lastLayer) {
                    log(p.stage);
                }
                lastLayer = q.stage == QuantizeStage::Layer ? q.layer : lastLayer;
                return !cancel->load();
            };
            auto r = quantizeModel(options, onProgress);
            if (!r.ok()) throw r.error();
            outcome->report = r.value();
            outcome->summary = QString::fromStdString(formatQuantizeReport(outcome->report));
            for (const auto& n : outcome->report.notes) log(QString::fromStdString(n));
            log(tr("Quantized in %1 s").arg(outcome->report.seconds, 0, 'f', 1));
            outcome->pplAfter = measure(outcome->report.outDir, kPplShare + kSampleShare + kLayerShare + kFinishShare,
                                        tr("quantized"));
            // The report on disk says what the result page says: the perplexities measured here.
            if (outcome->pplBefore > 0 && outcome->pplAfter > 0) {
                outcome->report.pplBefore = outcome->pplBefore;
                outcome->report.pplAfter = outcome->pplAfter;
                QSaveFile f(QString::fromStdString(outcome->report.outDir) + QStringLiteral("/quantization_report.json"));
                if (!f.open(QIODevice::WriteOnly) || f.write(QByteArray::fromStdString(quantizeReportJson(outcome->report))) < 0 ||
                    !f.commit())
                    log(tr("Could not update quantization_report.json with the perplexities."));
            }
            // Sizes as the model card and the planner count them: tensor bytes and bytes on disk.
            if (auto src = readModelInfo(options.modelDir); src.ok()) outcome->weightsBefore = src.value().weightBytes;
            if (auto dst = readModelInfo(outcome->report.outDir); dst.ok()) {
                outcome->weightsAfter = dst.value().weightBytes;
                outcome->diskAfter = dst.value().diskBytes;
            }
            QuantizeProgressInfo p;
            p.stage = tr("Finished");
            p.fraction = 1;
            p.elapsed = elapsed();
            p.eta = 0;
            post(p);
        } catch (const Error& e) {
            cancelled = e.code() == ErrorCode::Cancelled || cancel->load();
            error = QString::fromStdString(e.what());
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        } catch (...) {
            error = QStringLiteral("unknown error");
        }
        QMetaObject::invokeMethod(
            this, [this, outcome, error, cancelled] { done(outcome, error, cancelled); }, Qt::QueuedConnection);
    });
    return true;
}

void QuantizeController::done(std::shared_ptr<QuantizeOutcome> outcome, QString error, bool cancelled) {
    if (m_thread.joinable()) m_thread.join();
    m_running = false;
    m_cancel.reset();
    emit runningChanged(false);
    if (cancelled) {
        emit logLine(tr("Cancelled; no output folder was left behind."));
        emit failed(tr("Quantization was cancelled."), true);
    } else if (!error.isEmpty()) {
        emit logLine(tr("Failed: %1").arg(error));
        emit failed(error, false);
        emit errorOccurred(tr("Quantization failed"), error);
    } else {
        emit finished(*outcome);
    }
}

void QuantizeController::cancel() {
    if (m_cancel) m_cancel->store(true);
}

}  // namespace lmw::gui
