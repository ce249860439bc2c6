#include "lmw/gui/model_view.h"

#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QResizeEvent>
#include <QScrollArea>
#include <QScrollBar>
#include <QSpinBox>
#include <QVBoxLayout>

#include "lmw/gui/background.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/memory_bar.h"

namespace lmw::gui {

using lmw::engine::formatBytes;
using lmw::engine::ModelInfo;

static QString bytes(uint64_t n) { return QString::fromStdString(formatBytes(n)); }

ModelView::ModelView(EngineController* engine, QWidget* parent) : QWidget(parent), m_engine(engine) {
    buildUi();
    setSettings(EngineSettings::load());
    refreshRecent();
    connect(m_engine, &EngineController::stateChanged, this, [this] { updateButtons(); });
    connect(m_engine, &EngineController::loadProgress, this, [this](double f, const QString& what) {
        m_progress->setValue(int(f * 1000));
        m_loadStatus->setText(what);
    });
    connect(m_engine, &EngineController::loaded, this, [this](const QString& dir) {
        m_progress->setValue(1000);
        m_loadStatus->setText(tr("Loaded %1").arg(QFileInfo(dir).fileName()));
        RecentModels::add(dir);
        refreshRecent();
    });
    connect(m_engine, &EngineController::loadFailed, this, [this](const QString& message, bool cancelled) {
        m_progress->setValue(0);
        m_loadStatus->setText(cancelled ? tr("Cancelled") : tr("Failed: %1").arg(message));
    });
    connect(m_engine, &EngineController::unloaded, this, [this] {
        m_progress->setValue(0);
        m_loadStatus->setText(tr("Unloaded"));
    });
    // Device memory changes as other programs run; probing takes a moment, so off the GUI thread.
    runInBackground(this, [] { return probeDevices(); }, [this](QList<DeviceMemory> devices) {
        if (m_devices.isEmpty()) setDevices(devices);
    });
    updateButtons();
}

void ModelView::buildUi() {
    auto* root = new QHBoxLayout(this);
    root->setContentsMargins(16, 16, 16, 16);
    root->setSpacing(16);

    auto* left = new QVBoxLayout;
    auto* open = new QPushButton(tr("Open model folder…"));
    open->setObjectName(QStringLiteral("primary"));
    connect(open, &QPushButton::clicked, this, &ModelView::chooseFolder);
    left->addWidget(open);
    auto* recentLabel = new QLabel(tr("Recent models"));
    recentLabel->setObjectName(QStringLiteral("sectionTitle"));
    left->addWidget(recentLabel);
    m_recent = new QListWidget;
    m_recent->setObjectName(QStringLiteral("recentModels"));
    connect(m_recent, &QListWidget::itemActivated, this,
            [this](QListWidgetItem* item) { openModel(item->data(Qt::UserRole).toString()); });
    left->addWidget(m_recent, 1);
    auto* leftBox = new QWidget;
    leftBox->setLayout(left);
    leftBox->setFixedWidth(260);
    root->addWidget(leftBox);

    auto* scroll = m_scroll = new QScrollArea;
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    auto* page = new QWidget;
    auto* main = new QVBoxLayout(page);
    main->setContentsMargins(0, 0, 0, 0);
    m_title = new QLabel(tr("No model opened"));
    m_title->setObjectName(QStringLiteral("pageTitle"));
    m_path = new QLabel(tr("Open a Hugging Face model folder (config.json, *.safetensors, tokenizer.json or tokenizer.model)."));
    m_path->setObjectName(QStringLiteral("muted"));
    m_path->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_path->setWordWrap(true);
    main->addWidget(m_title);
    main->addWidget(m_path);

    auto* row = m_cardRow = new QHBoxLayout;
    auto* cardBox = new QGroupBox(tr("Model card"));
    m_card = new QFormLayout(cardBox);
    row->addWidget(cardBox, 1);

    auto* settingsBox = new QGroupBox(tr("Engine settings (applied on load)"));
    auto* form = new QFormLayout(settingsBox);
    m_backend = new QComboBox;
    m_backend->addItem(tr("Auto (CUDA when available)"), QStringLiteral("auto"));
    m_backend->addItem(QStringLiteral("CUDA"), QStringLiteral("cuda"));
    m_backend->addItem(QStringLiteral("CPU"), QStringLiteral("cpu"));
    m_kv = new QComboBox;
    m_kv->addItem(tr("Unquantized: 16-bit GPU, 32-bit CPU (quant policy 0)"), 0);
    m_kv->addItem(tr("int8 (quant policy 8)"), 8);
    m_kv->addItem(tr("int4 (quant policy 4)"), 4);
    m_cacheFraction = new QDoubleSpinBox;
    m_cacheFraction->setRange(0.05, 0.95);
    m_cacheFraction->setSingleStep(0.05);
    m_cacheFraction->setToolTip(tr("Fraction of the memory left after the weights that the KV cache may take"));
    m_sessionLen = new QSpinBox;
    m_sessionLen->setRange(64, 1 << 20);
    m_sessionLen->setSingleStep(256);
    m_sessionLen->setSuffix(tr(" tokens"));
    m_maxBatch = new QSpinBox;
    m_maxBatch->setRange(1, 1024);
    // Long item texts (the KV precision's) would set the page's minimum width: the boxes shrink
    // instead, and their lists still show the whole texts.
    for (QComboBox* c : {m_backend, m_kv}) {
        c->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
        c->setMinimumContentsLength(14);
    }
    form->addRow(tr("Backend"), m_backend);
    form->addRow(tr("KV cache precision"), m_kv);
    form->addRow(tr("Cache fraction"), m_cacheFraction);
    form->addRow(tr("Session length"), m_sessionLen);
    form->addRow(tr("Max batch size"), m_maxBatch);
    row->addWidget(settingsBox, 1);
    main->addLayout(row);
    for (QWidget* w : {static_cast<QWidget*>(m_backend), static_cast<QWidget*>(m_kv)})
        connect(static_cast<QComboBox*>(w), &QComboBox::currentIndexChanged, this, &ModelView::settingsChanged);
    connect(m_cacheFraction, &QDoubleSpinBox::valueChanged, this, &ModelView::settingsChanged);
    connect(m_sessionLen, &QSpinBox::valueChanged, this, &ModelView::settingsChanged);
    connect(m_maxBatch, &QSpinBox::valueChanged, this, &ModelView::settingsChanged);

    auto* planBox = new QGroupBox(tr("Memory planner"));
    auto* plan = new QVBoxLayout(planBox);
    auto* devRow = new QHBoxLayout;
    devRow->addWidget(new QLabel(tr("Device")));
    m_device = new QComboBox;
    m_device->addItem(tr("Checking devices…"));
    m_device->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_device->setMinimumContentsLength(14);
    connect(m_device, &QComboBox::currentIndexChanged, this, [this] { updatePlan(); });
    devRow->addWidget(m_device, 1);
    plan->addLayout(devRow);
    m_bar = new MemoryBar;
    plan->addWidget(m_bar);
    auto* legend = new QLabel(tr("<span style='color:#3b5bdb'>■</span> weights &nbsp; <span style='color:#748ffc'>■</span> KV cache "
                                 "&nbsp; <span style='color:#bac8ff'>■</span> activations &amp; workspace &nbsp; "
                                 "<span style='color:#2b8a3e'>┃</span> free memory"));
    legend->setObjectName(QStringLiteral("muted"));
    legend->setWordWrap(true);
    plan->addWidget(legend);
    m_planText = new QLabel;
    m_planText->setWordWrap(true);
    plan->addWidget(m_planText);
    m_warning = new QLabel;
    m_warning->setObjectName(QStringLiteral("warning"));
    m_warning->setWordWrap(true);
    m_warning->hide();
    plan->addWidget(m_warning);
    main->addWidget(planBox);

    auto* loadRow = new QHBoxLayout;
    m_load = new QPushButton(tr("Load"));
    m_load->setObjectName(QStringLiteral("primary"));
    m_cancel = new QPushButton(tr("Cancel"));
    m_unload = new QPushButton(tr("Unload"));
    connect(m_load, &QPushButton::clicked, this, &ModelView::loadCurrent);
    connect(m_cancel, &QPushButton::clicked, m_engine, &EngineController::cancelLoad);
    connect(m_unload, &QPushButton::clicked, m_engine, &EngineController::unload);
    m_progress = new QProgressBar;
    m_progress->setRange(0, 1000);
    m_progress->setTextVisible(false);
    m_loadStatus = new QLabel;
    m_loadStatus->setObjectName(QStringLiteral("muted"));
    loadRow->addWidget(m_load);
    loadRow->addWidget(m_cancel);
    loadRow->addWidget(m_unload);
    loadRow->addWidget(m_progress, 1);
    main->addLayout(loadRow);
    main->addWidget(m_loadStatus);
    main->addStretch(1);
    scroll->setWidget(page);
    root->addWidget(scroll, 1);
}

void ModelView::resizeEvent(QResizeEvent* e) {
    QWidget::resizeEvent(e);
    fitCardRow();
}

// Side by side when both boxes fit the page (a vertical scroll bar's width kept free, so showing
// one never flips the layout back), else the card above the settings.
void ModelView::fitCardRow() {
    int need = m_cardRow->spacing();
    for (int i = 0; i < m_cardRow->count(); ++i)
        if (QWidget* w = m_cardRow->itemAt(i)->widget()) need += w->minimumSizeHint().width();
    const int room = m_scroll->width() - m_scroll->verticalScrollBar()->sizeHint().width();
    const auto dir = room >= need ? QBoxLayout::LeftToRight : QBoxLayout::TopToBottom;
    if (m_cardRow->direction() != dir) m_cardRow->setDirection(dir);
}

void ModelView::setDevices(const QList<DeviceMemory>& devices) {
    m_devices = devices;
    m_updating = true;
    m_device->clear();
    for (const auto& d : m_devices)
        m_device->addItem(QStringLiteral("%1 — %2 free of %3").arg(d.name, bytes(d.freeBytes), bytes(d.totalBytes)));
    // CPU is listed last; the planner follows the backend choice.
    const bool cpuOnly = m_backend->currentData().toString() == QLatin1String("cpu");
    m_device->setCurrentIndex(cpuOnly ? int(m_devices.size()) - 1 : 0);
    m_updating = false;
    updatePlan();
}

void ModelView::chooseFolder() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open model folder"),
                                                          m_dir.isEmpty() ? QDir::homePath() : QFileInfo(m_dir).path());
    if (!dir.isEmpty()) openModel(dir);
}

void ModelView::openModel(const QString& dir) {
    const QString path = QDir::cleanPath(QFileInfo(dir).absoluteFilePath());
    m_title->setText(QFileInfo(path).fileName());
    m_path->setText(tr("Reading %1…").arg(path));
    runInBackground(
        this,
        [path] {
            auto r = lmw::engine::readModelInfo(path.toStdString());
            if (r.ok()) return std::make_pair(std::optional<ModelInfo>(r.value()), QString());
            // The title names the kind of failure: no config.json at all, or a model folder whose
            // files are broken or not supported.
            QString title = !QFileInfo::exists(path + QStringLiteral("/config.json")) ? tr("Not a model folder")
                            : r.error().code() == lmw::ErrorCode::Unsupported         ? tr("Model not supported")
                                                                                      : tr("Could not read the model");
            return std::make_pair(std::optional<ModelInfo>(),
                                  title + QLatin1Char('\n') + QString::fromStdString(r.error().what()));
        },
        [this, path](std::pair<std::optional<ModelInfo>, QString> result) {
            if (!result.first) {
                m_loadWhenRead = false;
                // The header goes back to the model that is still open (name and path together).
                if (!m_info) {
                    m_title->setText(tr("No model opened"));
                    m_path->clear();
                } else {
                    m_title->setText(QString::fromStdString(m_info->name));
                    m_path->setText(m_dir);
                }
                const QString title = result.second.section(QLatin1Char('\n'), 0, 0);
                const QString why = result.second.section(QLatin1Char('\n'), 1);
                emit errorOccurred(title, tr("%1 cannot be opened as a model:\n\n%2").arg(path, why));
                return;
            }
            m_dir = path;
            m_info = std::move(result.first);
            showInfo();
            emit modelInfoReady(path);
            if (m_loadWhenRead) {
                m_loadWhenRead = false;
                loadCurrent();
            }
        });
}

void ModelView::openAndLoad(const QString& dir) {
    m_loadWhenRead = true;
    openModel(dir);
}

void ModelView::showInfo() {
    while (m_card->rowCount() > 0) m_card->removeRow(0);
    const ModelInfo& i = *m_info;
    const auto& c = i.config;
    m_title->setText(QString::fromStdString(i.name));
    m_path->setText(m_dir);
    auto add = [this](const QString& k, const QString& v) {
        auto* l = new QLabel(v);
        l->setTextInteractionFlags(Qt::TextSelectableByMouse);
        m_card->addRow(k, l);
    };
    add(tr("Architecture"), QStringLiteral("%1 (%2)").arg(QString::fromStdString(c.architecture), QString::fromLatin1(engine::familyName(c.family))));
    add(tr("Parameters"), QString::fromStdString(lmw::engine::formatParameters(i.parameters)));
    add(tr("Weights dtype"), QString::fromStdString(i.dtype));
    add(tr("Quantization"), QString::fromStdString(i.quantization));
    add(tr("Size on disk"), bytes(i.diskBytes));
    add(tr("Context length"), tr("%1 tokens").arg(i.contextLength));
    add(tr("Layers / heads"), tr("%1 layers, %2 query / %3 KV heads, hidden %4")
                                  .arg(c.numLayers).arg(c.numHeads).arg(c.numKvHeads).arg(c.hiddenSize));
    add(tr("Tokenizer"), i.tokenizerFile.empty() ? tr("none found (tokenizer.json or tokenizer.model)")
                                                 : QString::fromStdString(i.tokenizerFile));
    add(tr("Chat template"), QString::fromStdString(i.chatTemplate));
    updatePlan();
    updateButtons();
    fitCardRow();  // a longer card may no longer fit beside the settings
}

EngineSettings ModelView::settings() const {
    EngineSettings s;
    s.backend = m_backend->currentData().toString();
    s.quantPolicy = m_kv->currentData().toInt();
    s.cacheFraction = m_cacheFraction->value();
    s.sessionLen = m_sessionLen->value();
    s.maxBatchSize = m_maxBatch->value();
    return s;
}

void ModelView::setSettings(const EngineSettings& s) {
    m_updating = true;
    m_backend->setCurrentIndex(std::max(0, m_backend->findData(s.backend)));
    m_kv->setCurrentIndex(std::max(0, m_kv->findData(s.quantPolicy)));
    m_cacheFraction->setValue(s.cacheFraction);
    m_sessionLen->setValue(s.sessionLen);
    m_maxBatch->setValue(s.maxBatchSize);
    m_updating = false;
    settingsChanged();
}

void ModelView::settingsChanged() {
    if (m_updating) return;
    settings().save();
    if (!m_devices.isEmpty() && sender() == m_backend) {  // the planner follows the chosen backend
        const bool cpu = m_backend->currentData().toString() == QLatin1String("cpu");
        m_device->setCurrentIndex(cpu ? int(m_devices.size()) - 1 : 0);
    }
    updatePlan();
}

QString ModelView::warningText() const { return m_warning->isHidden() ? QString() : m_warning->text(); }

void ModelView::updatePlan() {
    if (m_updating) return;
    if (!m_info) {
        m_planText->setText(tr("Open a model to see how much memory it needs."));
        m_bar->setPlan({});
        m_warning->hide();
        return;
    }
    const int idx = m_device->currentIndex();
    DeviceMemory device = (idx >= 0 && idx < m_devices.size()) ? m_devices[idx] : DeviceMemory{};
    const auto s = settings();
    if (device.kind.isEmpty() && s.backend == QLatin1String("cpu")) device.kind = s.backend;  // not probed yet
    int session = s.sessionLen;
    if (m_info->contextLength > 0 && session > m_info->contextLength) session = m_info->contextLength;
    m_plan = planMemory(*m_info, session, s.quantPolicy, s.maxBatchSize, device);
    m_bar->setPlan(m_plan);
    QString text = tr("Weights %1 + KV cache %2 (%3 × %4 tokens, %5) + overhead %6 = <b>%7</b>")
                       .arg(bytes(m_plan.weights), bytes(m_plan.kvCache))
                       .arg(s.maxBatchSize)
                       .arg(session)
                       .arg(kvPrecisionName(s.quantPolicy, device.kind), bytes(m_plan.overhead), bytes(m_plan.total));
    if (m_plan.available) text += tr(" of %1 free").arg(bytes(m_plan.available));
    if (session < s.sessionLen) text += tr("<br>Session length capped at the model's context (%1).").arg(session);
    m_planText->setText(text);
    m_warning->setText(m_plan.warning);
    m_warning->setVisible(!m_plan.warning.isEmpty());
}

void ModelView::updateButtons() {
    using S = EngineController::State;
    const S st = m_engine->state();
    m_load->setEnabled(m_info.has_value() && (st == S::Unloaded || st == S::Ready));
    m_load->setText(st == S::Ready && m_engine->modelDir() == m_dir ? tr("Reload") : tr("Load"));
    m_cancel->setEnabled(st == S::Loading);
    m_unload->setEnabled(st == S::Ready);
}

void ModelView::loadCurrent() {
    if (!m_info) return;
    m_engine->load(settings().toConfig(m_dir, m_info->contextLength));
}

void ModelView::refreshRecent() {
    m_recent->clear();
    for (const QString& dir : RecentModels::list()) {
        auto* item = new QListWidgetItem(QFileInfo(dir).fileName() + QLatin1Char('\n') + dir);
        item->setData(Qt::UserRole, dir);
        item->setToolTip(dir);
        m_recent->addItem(item);
    }
}

}  // namespace lmw::gui
