// The quantization wizard itself, its run page and its result page.
#include "lmw/gui/quantize_wizard.h"

#include <QApplication>
#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QChartView>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QValueAxis>
#include <QVBoxLayout>

namespace lmw::gui {

static QString duration(double s) {
    if (s < 0) return QObject::tr("estimating…");
    const int t = int(s + 0.5);
    return t >= 3600 ? QStringLiteral("%1:%2:%3").arg(t / 3600).arg(t / 60 % 60, 2, 10, QLatin1Char('0')).arg(t % 60, 2, 10, QLatin1Char('0'))
                     : QStringLiteral("%1:%2").arg(t / 60).arg(t % 60, 2, 10, QLatin1Char('0'));
}

// ---- run

RunPage::RunPage(QuantizeController* controller, QWidget* parent) : QWizardPage(parent), m_controller(controller) {
    setTitle(tr("Quantizing"));
    setSubTitle(tr("The model is quantized layer by layer on a background thread; the app stays usable."));
    auto* v = new QVBoxLayout(this);
    m_bar = new QProgressBar;
    m_bar->setRange(0, 1000);
    m_bar->setFormat(QStringLiteral("%p%"));
    m_stage = new QLabel;
    m_stage->setObjectName(QStringLiteral("sectionTitle"));
    m_time = new QLabel;
    m_time->setObjectName(QStringLiteral("muted"));
    m_log = new QPlainTextEdit;
    m_log->setReadOnly(true);
    m_log->setMaximumBlockCount(5000);
    m_log->setFont(QFont(QStringLiteral("monospace")));
    m_cancel = new QPushButton(tr("Cancel"));
    auto* row = new QHBoxLayout;
    row->addWidget(m_bar, 1);
    row->addWidget(m_cancel);
    v->addWidget(m_stage);
    v->addLayout(row);
    v->addWidget(m_time);
    v->addWidget(m_log, 1);
    connect(m_cancel, &QPushButton::clicked, m_controller, &QuantizeController::cancel);
    connect(m_controller, &QuantizeController::progress, this, [this](const QuantizeProgressInfo& p) {
        m_bar->setValue(int(p.fraction * 1000));
        m_stage->setText(p.stage);
        m_time->setText(tr("Elapsed %1 · remaining %2").arg(duration(p.elapsed), duration(p.eta)));
    });
    connect(m_controller, &QuantizeController::logLine, m_log, &QPlainTextEdit::appendPlainText);
    connect(m_controller, &QuantizeController::runningChanged, this, [this](bool on) {
        m_cancel->setEnabled(on);
        if (auto* w = wizard()) w->button(QWizard::BackButton)->setEnabled(!on);
        emit completeChanged();
    });
    connect(m_controller, &QuantizeController::finished, this, [this] {
        m_ok = true;
        m_time->setText(m_time->text().section(QStringLiteral(" ·"), 0, 0));
        emit completeChanged();
        if (wizard() && wizard()->currentPage() == this) wizard()->next();
    });
    connect(m_controller, &QuantizeController::failed, this, [this](const QString& message, bool cancelled) {
        m_stage->setText(cancelled ? tr("Cancelled") : tr("Failed"));
        m_bar->setValue(0);
    });
}

void RunPage::initializePage() {
    m_ok = false;
    m_log->clear();
    m_bar->setValue(0);
    m_stage->setText(tr("Starting"));
    m_time->clear();
    auto* w = static_cast<QuantizeWizard*>(wizard());
    m_controller->start(w->options(), w->evalText());
}

void RunPage::cleanupPage() { m_controller->cancel(); }

bool RunPage::isComplete() const { return m_ok && !m_controller->isRunning(); }

// ---- result

ResultPage::ResultPage(QWidget* parent) : QWizardPage(parent) {
    setTitle(tr("Result"));
    auto* v = new QVBoxLayout(this);
    m_sizes = new QLabel;
    m_ppl = new QLabel;
    m_notes = new QLabel;
    m_notes->setWordWrap(true);
    m_notes->setObjectName(QStringLiteral("muted"));
    auto* chart = new QChart;
    chart->setTitle(tr("Per-layer quantization error (relative output error, lower is better)"));
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->setMargins(QMargins(4, 4, 4, 4));
    m_chart = new QChartView(chart);
    m_chart->setRenderHint(QPainter::Antialiasing);
    m_chart->setMinimumHeight(200);
    m_open = new QPushButton(tr("Open the quantized model"));
    m_open->setObjectName(QStringLiteral("primary"));
    connect(m_open, &QPushButton::clicked, this, [this] { emit openModelRequested(m_outDir); });
    v->addWidget(m_sizes);
    v->addWidget(m_ppl);
    v->addWidget(m_chart, 1);
    // Notes can run long: they scroll rather than squeeze the chart and push Open off the page.
    auto* notesScroll = new QScrollArea;
    notesScroll->setWidget(m_notes);
    notesScroll->setWidgetResizable(true);
    notesScroll->setFrameShape(QFrame::NoFrame);
    notesScroll->setMaximumHeight(72);
    notesScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    v->addWidget(notesScroll);
    auto* row = new QHBoxLayout;
    row->addWidget(m_open);
    row->addStretch(1);
    v->addLayout(row);
}

QString ResultPage::summaryText() const { return m_sizes->text() + QLatin1Char('\n') + m_ppl->text(); }

void ResultPage::showOutcome(const QuantizeOutcome& o) {
    const auto& r = o.report;
    m_outDir = QString::fromStdString(r.outDir);
    setSubTitle(tr("Saved to %1").arg(m_outDir));
    // The same figures as the model card ("Size on disk") and the memory planner ("Weights").
    const uint64_t before = o.weightsBefore ? o.weightsBefore : r.sizeBefore;
    const uint64_t after = o.weightsAfter ? o.weightsAfter : r.sizeAfter;
    const double ratio = after ? double(before) / double(after) : 0;
    auto fmt = [](uint64_t n) { return QString::fromStdString(lmw::engine::formatBytes(n)); };
    QString sizes = tr("Weights: %1 → %2 (%3× smaller)").arg(fmt(before), fmt(after)).arg(ratio, 0, 'f', 2);
    if (o.diskAfter) sizes += tr(" · %1 on disk").arg(fmt(o.diskAfter));
    m_sizes->setText(sizes + tr(" · %1 s on %2").arg(r.seconds, 0, 'f', 1).arg(QString::fromStdString(r.backend)));
    if (o.pplBefore > 0 && o.pplAfter > 0)
        m_ppl->setText(tr("Perplexity on the bundled stories text: %1 → %2 (%3%4%)")
                           .arg(o.pplBefore, 0, 'f', 3)
                           .arg(o.pplAfter, 0, 'f', 3)
                           .arg(o.pplAfter >= o.pplBefore ? QStringLiteral("+") : QString())
                           .arg(100.0 * (o.pplAfter - o.pplBefore) / o.pplBefore, 0, 'f', 1));
    else
        m_ppl->setText(tr("Perplexity was not measured."));
    QStringList notes;
    for (const auto& n : r.notes) notes << QString::fromStdString(n);
    m_notes->setText(notes.join(QLatin1Char('\n')));

    // One bar per layer: the mean error over its quantized linears, plain rounding vs. the result.
    QChart* chart = m_chart->chart();
    chart->removeAllSeries();
    for (QAbstractAxis* a : chart->axes()) chart->removeAxis(a);
    auto* rtn = new QBarSet(tr("round to nearest"));
    auto* fin = new QBarSet(r.method == "awq" ? tr("AWQ") : tr("result"));
    rtn->setColor(QColor(0xad, 0xb5, 0xbd));
    fin->setColor(QColor(0x3b, 0x5b, 0xdb));
    QStringList cats;
    double maxErr = 0;
    bool any = false;
    for (const auto& layer : r.layers) {
        double sr = 0, sf = 0;
        int n = 0;
        for (const auto& l : layer.linears) {
            if (!l.quantized || l.errorFinal < 0) continue;
            sr += std::max(0.0, l.errorRtn);
            sf += l.errorFinal;
            ++n;
        }
        cats << QString::number(layer.layer);
        rtn->append(n ? sr / n : 0);
        fin->append(n ? sf / n : 0);
        maxErr = std::max({maxErr, n ? sr / n : 0, n ? sf / n : 0});
        any = any || n > 0;
    }
    auto* series = new QBarSeries;
    series->append(rtn);
    series->append(fin);
    chart->addSeries(series);
    auto* x = new QBarCategoryAxis;
    x->append(cats);
    x->setTitleText(tr("layer"));
    auto* y = new QValueAxis;
    y->setRange(0, maxErr > 0 ? maxErr * 1.15 : 1);
    y->setLabelFormat(QStringLiteral("%.2g"));
    chart->addAxis(x, Qt::AlignBottom);
    chart->addAxis(y, Qt::AlignLeft);
    series->attachAxis(x);
    series->attachAxis(y);
    if (!any) chart->setTitle(tr("No per-layer error was measured (round-to-nearest or nothing quantized)"));
}

// ---- wizard

QuantizeWizard::QuantizeWizard(QuantizeController* controller, QWidget* parent)
    : QWizard(parent), m_controller(controller) {
    setWindowFlags(Qt::Widget);  // lives inside the main window's Quantize view
    setWizardStyle(QWizard::ModernStyle);
    setOption(QWizard::NoCancelButton);
    setOption(QWizard::NoBackButtonOnLastPage);
    setButtonText(QWizard::FinishButton, tr("Quantize another"));
    m_source = new SourcePage;
    m_settings = new SettingsPage;
    m_run = new RunPage(controller);
    m_result = new ResultPage;
    setPage(Source, m_source);
    setPage(Output, new OutputPage);
    setPage(Settings, m_settings);
    setPage(Run, m_run);
    setPage(Result, m_result);
    m_evalText = QuantizeController::builtinEvalText();
    // After QWizard's own button update (connected in setPage), give back the focus it moved.
    for (int id : pageIds())
        connect(page(id), &QWizardPage::completeChanged, this, [this] {
            if (QWidget* w = m_keepFocus.data(); w && w->isVisible() && QApplication::focusWidget() != w)
                w->setFocus(Qt::OtherFocusReason);
            m_keepFocus.clear();
        });
    connect(controller, &QuantizeController::finished, m_result, &ResultPage::showOutcome);
    connect(m_result, &ResultPage::openModelRequested, this, &QuantizeWizard::openModelRequested);
}

void QuantizeWizard::setSourceModel(const QString& dir) {
    if (currentId() == Source || currentId() == -1) m_source->setSource(dir);
}

lmw::engine::QuantizeOptions QuantizeWizard::options() const { return m_settings->options(); }

// QWizard hides its page area for a moment on every button-state update (an anti-flicker trick,
// with updates disabled); hiding the focused field moves the focus to the next widget, which in
// the main window is outside the wizard (the sidebar). Keep it in the field instead.
bool QuantizeWizard::focusNextPrevChild(bool next) {
    if (!updatesEnabled()) {
        m_keepFocus = QApplication::focusWidget();
        return true;
    }
    return QWizard::focusNextPrevChild(next);
}

void QuantizeWizard::done(int) {
    if (m_controller->isRunning()) return;
    restart();
}

}  // namespace lmw::gui
