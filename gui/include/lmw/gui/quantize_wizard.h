#pragma once
// The Quantize view: a QWizard (embedded, not a dialog) — source model, output folder, settings,
// a run page with progress, ETA, live log and Cancel, and a result page with sizes, perplexity
// before/after and a chart of the per-layer quantization error.
#include <QPointer>
#include <QWizard>
#include <QWizardPage>
#include <optional>

#include "lmw/gui/quantize_controller.h"
#include "lmw/model_info.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QChartView;

namespace lmw::gui {

class QuantizeWizard;

class SourcePage : public QWizardPage {
    Q_OBJECT
public:
    explicit SourcePage(QWidget* parent = nullptr);
    bool isComplete() const override;
    void setSource(const QString& dir);
    const std::optional<lmw::engine::ModelInfo>& info() const { return m_info; }

private:
    void read();
    QLineEdit* m_dir;
    QLabel* m_card;
    std::optional<lmw::engine::ModelInfo> m_info;
};

class OutputPage : public QWizardPage {
    Q_OBJECT
public:
    explicit OutputPage(QWidget* parent = nullptr);
    void initializePage() override;
    bool isComplete() const override;

private:
    void check();
    QLineEdit* m_dir;
    QCheckBox* m_overwrite;
    QLabel* m_note;
};

class SettingsPage : public QWizardPage {
    Q_OBJECT
public:
    explicit SettingsPage(QWidget* parent = nullptr);
    bool isComplete() const override;
    lmw::engine::QuantizeOptions options() const;  // from the fields of all pages

private:
    QComboBox* m_method;
    QComboBox* m_group;
    QRadioButton* m_self;
    QRadioButton* m_file;
    QLineEdit* m_calibFile;
    QSpinBox* m_samples;
    QSpinBox* m_seqLen;
    QCheckBox* m_searchScale;
};

class RunPage : public QWizardPage {
    Q_OBJECT
public:
    RunPage(QuantizeController* controller, QWidget* parent = nullptr);
    void initializePage() override;
    void cleanupPage() override;
    bool isComplete() const override;
    bool succeeded() const { return m_ok; }
    QProgressBar* progressBar() const { return m_bar; }

private:
    QuantizeController* m_controller;
    QProgressBar* m_bar;
    QLabel* m_stage;
    QLabel* m_time;
    QPlainTextEdit* m_log;
    QPushButton* m_cancel;
    bool m_ok = false;
};

class ResultPage : public QWizardPage {
    Q_OBJECT
public:
    explicit ResultPage(QWidget* parent = nullptr);
    void showOutcome(const QuantizeOutcome& outcome);
    QString outputDir() const { return m_outDir; }
    QString summaryText() const;

signals:
    void openModelRequested(const QString& dir);

private:
    QLabel* m_sizes;
    QLabel* m_ppl;
    QLabel* m_notes;
    QChartView* m_chart;
    QPushButton* m_open;
    QString m_outDir;
};

class QuantizeWizard : public QWizard {
    Q_OBJECT
public:
    enum PageId { Source, Output, Settings, Run, Result };
    explicit QuantizeWizard(QuantizeController* controller, QWidget* parent = nullptr);

    void setSourceModel(const QString& dir);  // pre-fills the source page
    lmw::engine::QuantizeOptions options() const;
    QString evalText() const { return m_evalText; }
    void setEvalText(const QString& text) { m_evalText = text; }  // tests use a shorter text
    ResultPage* resultPage() const { return m_result; }
    RunPage* runPage() const { return m_run; }
    SourcePage* sourcePage() const { return m_source; }

signals:
    void openModelRequested(const QString& dir);

protected:
    void done(int result) override;  // embedded: start over instead of closing
    bool focusNextPrevChild(bool next) override;

private:
    QuantizeController* m_controller;
    SourcePage* m_source;
    SettingsPage* m_settings;
    RunPage* m_run;
    ResultPage* m_result;
    QString m_evalText;
    QPointer<QWidget> m_keepFocus;
};

}  // namespace lmw::gui
