// The input pages of the quantization wizard: source, output folder, settings.
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include "lmw/gui/background.h"
#include "lmw/gui/quantize_wizard.h"

namespace lmw::gui {

using lmw::engine::formatBytes;

enum class PathKind { ExistingFolder, NewFolder, TextFile };

static QWidget* pathRow(QLineEdit* edit, QWidget* page, PathKind kind, const QString& caption) {
    auto* row = new QWidget;
    auto* h = new QHBoxLayout(row);
    h->setContentsMargins(0, 0, 0, 0);
    h->addWidget(edit, 1);
    auto* browse = new QPushButton(QObject::tr("Browse…"));
    QObject::connect(browse, &QPushButton::clicked, page, [edit, page, kind, caption] {
        const QString start = edit->text().isEmpty() ? QDir::homePath() : edit->text();
        QString p;
        switch (kind) {
            case PathKind::ExistingFolder: p = QFileDialog::getExistingDirectory(page, caption, start); break;
            // The output folder usually does not exist yet: a save dialog lets the user name it.
            case PathKind::NewFolder:
                p = QFileDialog::getSaveFileName(page, caption, start, QString(), nullptr,
                                                 QFileDialog::ShowDirsOnly | QFileDialog::DontConfirmOverwrite);
                break;
            case PathKind::TextFile:
                p = QFileDialog::getOpenFileName(page, caption, start, QObject::tr("Text (*.txt *.jsonl)"));
                break;
        }
        if (!p.isEmpty()) edit->setText(p);
    });
    h->addWidget(browse);
    return row;
}

// ---- source

SourcePage::SourcePage(QWidget* parent) : QWizardPage(parent) {
    setTitle(tr("Source model"));
    setSubTitle(tr("A Hugging Face model folder with 16- or 32-bit weights (llama, internlm2 or qwen2)."));
    m_dir = new QLineEdit;
    m_card = new QLabel;
    m_card->setWordWrap(true);
    m_card->setObjectName(QStringLiteral("muted"));
    auto* v = new QVBoxLayout(this);
    v->addWidget(new QLabel(tr("Model folder")));
    v->addWidget(pathRow(m_dir, this, PathKind::ExistingFolder, tr("Source model folder")));
    v->addWidget(m_card);
    v->addStretch(1);
    registerField(QStringLiteral("source*"), m_dir);
    connect(m_dir, &QLineEdit::textChanged, this, &SourcePage::read);
}

void SourcePage::setSource(const QString& dir) { m_dir->setText(QDir::cleanPath(dir)); }

void SourcePage::read() {
    m_info.reset();
    emit completeChanged();
    const QString dir = m_dir->text().trimmed();
    if (dir.isEmpty()) {
        m_card->clear();
        return;
    }
    m_card->setText(tr("Reading…"));
    runInBackground(this, [dir] { return lmw::engine::readModelInfo(dir.toStdString()); },
                    [this, dir](lmw::Result<lmw::engine::ModelInfo> r) {
                        if (dir != m_dir->text().trimmed()) return;  // an older read
                        if (!r.ok()) {
                            m_card->setText(tr("<span style='color:#c92a2a'>%1</span>")
                                                .arg(QString::fromStdString(r.error().what()).toHtmlEscaped()));
                            return;
                        }
                        m_info = r.value();
                        const auto& i = *m_info;
                        m_card->setText(tr("<b>%1</b> — %2, %3 parameters, %4 weights, %5 on disk, quantization: %6")
                                            .arg(QString::fromStdString(i.name), QString::fromStdString(i.config.architecture),
                                                 QString::fromStdString(lmw::engine::formatParameters(i.parameters)),
                                                 QString::fromStdString(i.dtype), QString::fromStdString(formatBytes(i.diskBytes)),
                                                 QString::fromStdString(i.quantization)));
                        emit completeChanged();
                    });
}

bool SourcePage::isComplete() const { return m_info.has_value() && m_info->quantization == "none"; }

// ---- output

OutputPage::OutputPage(QWidget* parent) : QWizardPage(parent) {
    setTitle(tr("Output folder"));
    setSubTitle(tr("Where the quantized model goes. It is written to a temporary folder first, so a "
                   "cancelled run leaves nothing behind."));
    m_dir = new QLineEdit;
    m_overwrite = new QCheckBox(tr("Replace the folder if it already exists"));
    m_note = new QLabel;
    m_note->setObjectName(QStringLiteral("warning"));
    m_note->setWordWrap(true);
    auto* v = new QVBoxLayout(this);
    v->addWidget(new QLabel(tr("Output folder")));
    v->addWidget(pathRow(m_dir, this, PathKind::NewFolder, tr("Output folder")));
    v->addWidget(m_overwrite);
    v->addWidget(m_note);
    v->addStretch(1);
    registerField(QStringLiteral("output*"), m_dir);
    registerField(QStringLiteral("overwrite"), m_overwrite);
    connect(m_dir, &QLineEdit::textChanged, this, &OutputPage::check);
    connect(m_overwrite, &QCheckBox::toggled, this, &OutputPage::check);
}

void OutputPage::initializePage() {
    const QString src = QDir::cleanPath(field(QStringLiteral("source")).toString());
    if (m_dir->text().isEmpty() || !m_dir->isModified()) {
        // Beside the source when that folder is writable (models often sit in read-only places).
        const QFileInfo fi(src);
        const QString name = fi.fileName() + QStringLiteral("-awq-int4");
        const QString parent = fi.absolutePath();
        m_dir->setText(QFileInfo(parent).isWritable() ? parent + QLatin1Char('/') + name
                                                      : QDir::homePath() + QLatin1Char('/') + name);
    }
    check();
}

void OutputPage::check() {
    const QString dir = m_dir->text().trimmed();
    const QFileInfo fi(dir);
    QString note;
    if (fi.exists() && !fi.isDir()) note = tr("%1 is a file, not a folder.").arg(dir);
    else if (fi.isDir() && !QDir(dir).isEmpty() && !m_overwrite->isChecked())
        note = tr("This folder exists and is not empty: tick the box to replace it.");
    else if (QDir::cleanPath(dir) == QDir::cleanPath(field(QStringLiteral("source")).toString()))
        note = tr("The output must not be the source folder.");
    m_note->setText(note);
    m_note->setVisible(!note.isEmpty());
    setProperty("valid", note.isEmpty() && !dir.isEmpty());
    emit completeChanged();
}

bool OutputPage::isComplete() const { return property("valid").toBool(); }

// ---- settings

SettingsPage::SettingsPage(QWidget* parent) : QWizardPage(parent) {
    setTitle(tr("Settings"));
    setSubTitle(tr("W4A16: 4-bit weights in groups, 16-bit activations. AWQ picks per-channel scales from "
                   "calibration activations before rounding."));
    auto* f = new QFormLayout(this);
    auto* bits = new QComboBox;
    bits->addItem(tr("4 bits"), 4);
    bits->setEnabled(false);  // the engine's int4 kernels are the only target
    f->addRow(tr("Bits"), bits);
    m_method = new QComboBox;
    m_method->addItem(tr("AWQ (activation-aware)"), QStringLiteral("awq"));
    m_method->addItem(tr("Round to nearest (no calibration)"), QStringLiteral("rtn"));
    f->addRow(tr("Method"), m_method);
    m_group = new QComboBox;
    for (int g : {128, 64, 32}) m_group->addItem(QString::number(g), g);
    f->addRow(tr("Group size"), m_group);
    m_self = new QRadioButton(tr("Self-generated (the model writes its own samples; no dataset needed)"));
    m_file = new QRadioButton(tr("From a text file (.txt or .jsonl)"));
    m_self->setChecked(true);
    m_calibFile = new QLineEdit;
    m_calibFile->setEnabled(false);
    f->addRow(tr("Calibration"), m_self);
    f->addRow(QString(), m_file);
    f->addRow(QString(), pathRow(m_calibFile, this, PathKind::TextFile, tr("Calibration text")));
    m_samples = new QSpinBox;
    m_samples->setRange(1, 4096);
    m_samples->setValue(128);
    m_seqLen = new QSpinBox;
    m_seqLen->setRange(16, 32768);
    m_seqLen->setValue(512);
    m_seqLen->setSuffix(tr(" tokens"));
    m_searchScale = new QCheckBox(tr("Search the best scale exponent per layer (slower, better)"));
    m_searchScale->setChecked(true);
    f->addRow(tr("Samples"), m_samples);
    f->addRow(tr("Sequence length"), m_seqLen);
    f->addRow(QString(), m_searchScale);
    registerField(QStringLiteral("method"), m_method, "currentData");
    registerField(QStringLiteral("groupSize"), m_group, "currentData");
    registerField(QStringLiteral("calibFromFile"), m_file);
    registerField(QStringLiteral("calibFile"), m_calibFile);
    registerField(QStringLiteral("samples"), m_samples);
    registerField(QStringLiteral("seqLen"), m_seqLen);
    registerField(QStringLiteral("searchScale"), m_searchScale);
    auto sync = [this] {
        const bool awq = m_method->currentData().toString() == QLatin1String("awq");
        m_self->setEnabled(awq);
        m_file->setEnabled(awq);
        m_calibFile->setEnabled(awq && m_file->isChecked());
        m_samples->setEnabled(awq);
        m_seqLen->setEnabled(awq);
        m_searchScale->setEnabled(awq);
        emit completeChanged();
    };
    connect(m_method, &QComboBox::currentIndexChanged, this, sync);
    connect(m_file, &QRadioButton::toggled, this, sync);
    connect(m_calibFile, &QLineEdit::textChanged, this, sync);
}

bool SettingsPage::isComplete() const {
    return !m_file->isChecked() || QFileInfo(m_calibFile->text()).isFile();
}

lmw::engine::QuantizeOptions SettingsPage::options() const {
    lmw::engine::QuantizeOptions o;
    o.modelDir = field(QStringLiteral("source")).toString().toStdString();
    o.workDir = field(QStringLiteral("output")).toString().toStdString();
    o.overwrite = field(QStringLiteral("overwrite")).toBool();
    o.method = m_method->currentData().toString().toStdString();
    o.bits = 4;
    o.groupSize = m_group->currentData().toInt();
    o.calibDataset = m_file->isChecked() ? m_calibFile->text().toStdString() : std::string("self");
    o.calibSamples = m_samples->value();
    o.calibSeqLen = m_seqLen->value();
    o.searchScale = m_searchScale->isChecked();
    return o;
}

}  // namespace lmw::gui
