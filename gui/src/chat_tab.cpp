#include "lmw/gui/chat_tab.h"

#include <QCheckBox>
#include <QClipboard>
#include <QInputDialog>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QJsonDocument>
#include <QMimeData>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QScrollBar>
#include <QShortcut>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardPaths>
#include <QVBoxLayout>

#include "lmw/gui/chat_controller.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/message_widget.h"

namespace lmw::gui {

ChatTab::ChatTab(ChatController* chat, const QString& id, QWidget* parent) : QWidget(parent), m_chat(chat), m_id(id) {
    auto* root = new QHBoxLayout(this);
    root->setContentsMargins(0, 0, 0, 0);
    auto* split = new QSplitter;
    root->addWidget(split);

    auto* left = new QWidget;
    auto* lv = new QVBoxLayout(left);
    lv->setContentsMargins(12, 12, 12, 12);
    m_scroll = new QScrollArea;
    m_scroll->setWidgetResizable(true);
    m_scroll->setFrameShape(QFrame::NoFrame);
    m_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    auto* listHost = new QWidget;
    listHost->setObjectName(QStringLiteral("messageList"));
    m_list = new QVBoxLayout(listHost);
    m_list->setSpacing(10);
    m_empty = new QLabel(tr("Ask something to start the conversation.\nEnter sends, Shift+Enter starts a new line, Esc stops."));
    m_empty->setObjectName(QStringLiteral("muted"));
    m_empty->setAlignment(Qt::AlignCenter);
    m_list->addWidget(m_empty);
    m_list->addStretch(1);
    m_scroll->setWidget(listHost);
    // The view follows the end while it is there: the range grows after each layout pass (a tab
    // shown for the first time, a message re-rendered), so scrolling once would land short of it.
    QScrollBar* bar = m_scroll->verticalScrollBar();
    connect(bar, &QScrollBar::rangeChanged, this, [this, bar](int, int max) {
        if (m_followEnd) bar->setValue(max);
    });
    connect(bar, &QScrollBar::valueChanged, this, [this, bar](int v) { m_followEnd = v >= bar->maximum() - 40; });
    lv->addWidget(m_scroll, 1);

    m_editBanner = new QLabel(tr("Editing your last message: Send makes it a new version; the earlier one stays (‹ › switch). Esc cancels."));
    m_editBanner->setObjectName(QStringLiteral("banner"));
    m_editBanner->hide();
    lv->addWidget(m_editBanner);
    m_notice = new QLabel;
    m_notice->setObjectName(QStringLiteral("warning"));
    m_notice->setWordWrap(true);
    m_notice->hide();
    lv->addWidget(m_notice);
    m_attachBar = new QWidget;
    auto* ah = new QHBoxLayout(m_attachBar);
    ah->setContentsMargins(0, 0, 0, 0);
    m_attachLabel = new QLabel;
    m_attachLabel->setObjectName(QStringLiteral("attachments"));
    m_attachLabel->setWordWrap(true);
    auto* removeFiles = new QPushButton(tr("Remove files"));
    connect(removeFiles, &QPushButton::clicked, this, &ChatTab::clearAttachments);
    ah->addWidget(m_attachLabel, 1);
    ah->addWidget(removeFiles);
    m_attachBar->hide();
    lv->addWidget(m_attachBar);
    auto* inputRow = new QHBoxLayout;
    m_input = new QPlainTextEdit;
    m_input->setPlaceholderText(tr("Message the model…"));
    m_input->setFixedHeight(84);
    m_input->installEventFilter(this);
    m_input->viewport()->installEventFilter(this);  // drops arrive at the viewport
    m_input->viewport()->setAcceptDrops(true);
    inputRow->addWidget(m_input, 1);
    auto* buttons = new QVBoxLayout;
    m_send = new QPushButton(tr("Send"));
    m_send->setObjectName(QStringLiteral("primary"));
    m_send->setToolTip(tr("Send (Enter)"));
    m_stop = new QPushButton(tr("Stop"));
    m_stop->setToolTip(tr("Stop generating (Esc)"));
    connect(m_send, &QPushButton::clicked, this, &ChatTab::send);
    connect(m_stop, &QPushButton::clicked, this, &ChatTab::stop);
    auto* attach = new QPushButton(tr("Attach…"));
    attach->setObjectName(QStringLiteral("attach"));
    attach->setToolTip(tr("Add text, Markdown or code files to your next message (or drop them on the box)"));
    connect(attach, &QPushButton::clicked, this, [this] {
        for (const QString& f : QFileDialog::getOpenFileNames(this, tr("Attach files"))) attachFile(f);
    });
    buttons->addWidget(m_send);
    buttons->addWidget(m_stop);
    buttons->addWidget(attach);
    buttons->addStretch(1);
    inputRow->addLayout(buttons);
    lv->addLayout(inputRow);
    split->addWidget(left);
    // The settings scroll when the window is short (its minimum size is smaller than the panel).
    auto* settings = new QScrollArea;
    settings->setWidget(buildSettings());
    settings->setWidgetResizable(true);
    settings->setFrameShape(QFrame::NoFrame);
    settings->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    // At least what its spin boxes and fields need (the panel's own minimum may be less).
    settings->setMinimumWidth(std::max(settings->widget()->minimumWidth(), settings->widget()->minimumSizeHint().width()) +
                              settings->verticalScrollBar()->sizeHint().width());
    settings->setMaximumWidth(settings->widget()->maximumWidth() + 16);
    split->addWidget(settings);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 0);
    split->setSizes({1000, settings->minimumWidth()});  // the messages get the room; drag for wider settings

    auto* esc = new QShortcut(QKeySequence(Qt::Key_Escape), this);
    esc->setContext(Qt::WidgetWithChildrenShortcut);
    connect(esc, &QShortcut::activated, this, [this] {
        if (m_editing) {
            m_editing = false;
            m_editBanner->hide();
            m_input->clear();
        } else {
            stop();
        }
    });

    connect(m_chat, &ChatController::messagesReset, this, [this](const QString& id) {
        if (id == m_id) rebuild();
    });
    connect(m_chat, &ChatController::messageUpdated, this, [this](const QString& id, int index) {
        if (id == m_id) updateMessage(index);
    });
    connect(m_chat, &ChatController::generatingChanged, this, [this](const QString& id, bool on) {
        if (id == m_id) setGenerating(on);
    });
    connect(m_chat, &ChatController::conversationChanged, this, [this](const QString& id) {
        if (id == m_id) loadSettings();
    });
    connect(m_chat, &ChatController::contextFull, this, [this](const QString& id, const QString& message) {
        if (id != m_id) return;
        m_notice->setText(tr("This conversation no longer fits the model's context: %1. Start a new chat (Ctrl+T), "
                             "let earlier messages go (Context: Truncate the middle or Rolling window), or edit your "
                             "last message to be shorter.")
                              .arg(message));
        m_notice->show();
    });
    connect(m_chat->engine(), &EngineController::stateChanged, this, &ChatTab::capMaxTokens);
    connect(m_chat->engine(), &EngineController::stateChanged, this, &ChatTab::updateContextUsed);
    connect(m_chat->engine(), &EngineController::stateChanged, this, &ChatTab::showAttachments);
    capMaxTokens();
    fillPresets();
    loadSettings();
    rebuild();
    setGenerating(m_chat->isGenerating(m_id));
}

QWidget* ChatTab::buildSettings() {
    auto* panel = new QWidget;
    panel->setObjectName(QStringLiteral("sidePanel"));
    panel->setMinimumWidth(240);
    panel->setMaximumWidth(340);
    auto* v = new QVBoxLayout(panel);
    v->setContentsMargins(12, 12, 12, 12);
    auto* presetBox = new QGroupBox(tr("Preset"));
    auto* pv = new QVBoxLayout(presetBox);
    m_preset = new QComboBox;
    m_preset->setObjectName(QStringLiteral("preset"));
    m_preset->setToolTip(tr("A saved system prompt with its sampling and context settings: choosing one sets them here"));
    auto* presetRow = new QHBoxLayout;
    auto* savePreset = new QPushButton(tr("Save as…"));
    savePreset->setObjectName(QStringLiteral("savePreset"));
    savePreset->setToolTip(tr("Save this chat's system prompt, sampling and context settings under a name"));
    m_presetDefault = new QCheckBox(tr("Default"));
    m_presetDefault->setObjectName(QStringLiteral("presetDefault"));
    m_presetDefault->setToolTip(tr("New chats start from this preset"));
    presetRow->addWidget(m_presetDefault, 1);
    presetRow->addWidget(savePreset);
    pv->addWidget(m_preset);
    pv->addLayout(presetRow);
    v->addWidget(presetBox);
    connect(m_preset, &QComboBox::activated, this, [this](int i) {
        const QString name = m_preset->itemData(i).toString();
        if (!name.isEmpty()) m_chat->applyPreset(m_id, name);
        fillPresets();
    });
    connect(savePreset, &QPushButton::clicked, this, [this] {
        bool ok = false;
        const QString name = QInputDialog::getText(this, tr("Save preset"), tr("Name"), QLineEdit::Normal,
                                                   m_preset->currentData().toString(), &ok);
        if (ok) savePresetAs(name);
    });
    connect(m_presetDefault, &QCheckBox::toggled, this, [this](bool on) {
        if (m_loading) return;
        const QString name = m_preset->currentData().toString();
        m_chat->setDefaultPreset(on ? name : QString());
    });
    connect(m_chat, &ChatController::presetsChanged, this, &ChatTab::fillPresets);

    auto* sysBox = new QGroupBox(tr("System prompt"));
    auto* sv = new QVBoxLayout(sysBox);
    m_system = new QPlainTextEdit;
    m_system->setPlaceholderText(tr("You are a helpful assistant."));
    m_system->setFixedHeight(100);
    sv->addWidget(m_system);
    v->addWidget(sysBox);
    m_systemTimer.setSingleShot(true);
    m_systemTimer.setInterval(400);
    connect(m_system, &QPlainTextEdit::textChanged, this, [this] {
        if (!m_loading) m_systemTimer.start();
    });
    connect(&m_systemTimer, &QTimer::timeout, this, &ChatTab::flushSystemPrompt);

    auto* box = new QGroupBox(tr("Sampling"));
    auto* f = new QFormLayout(box);
    auto dspin = [](double lo, double hi, double step, int dec) {
        auto* s = new QDoubleSpinBox;
        s->setRange(lo, hi);
        s->setSingleStep(step);
        s->setDecimals(dec);
        return s;
    };
    m_temperature = dspin(0, 2, 0.05, 2);
    m_temperature->setToolTip(tr("0 = always the most likely token"));
    m_topP = dspin(0.01, 1, 0.05, 2);
    m_topK = new QSpinBox;
    m_topK->setRange(0, 1000);
    m_topK->setSpecialValueText(tr("off"));
    m_maxTokens = new QSpinBox;
    m_maxTokens->setRange(1, 1 << 20);
    m_repetition = dspin(0.5, 2, 0.05, 2);
    m_seed = new QSpinBox;
    m_seed->setRange(-1, std::numeric_limits<int>::max());
    m_seed->setSpecialValueText(tr("random"));
    f->addRow(tr("Temperature"), m_temperature);
    f->addRow(tr("Top-p"), m_topP);
    f->addRow(tr("Top-k"), m_topK);
    f->addRow(tr("Max &tokens"), m_maxTokens);  // Alt+T
    f->addRow(tr("Repetition penalty"), m_repetition);
    f->addRow(tr("Seed"), m_seed);
    v->addWidget(box);
    for (auto* s : {m_temperature, m_topP, m_repetition})
        connect(s, &QDoubleSpinBox::valueChanged, this, &ChatTab::applySampling);
    for (auto* s : {m_topK, m_maxTokens, m_seed}) connect(s, &QSpinBox::valueChanged, this, &ChatTab::applySampling);

    auto* ctxBox = new QGroupBox(tr("Conte&xt"));  // Alt+X: the policy box
    auto* cv = new QVBoxLayout(ctxBox);
    m_contextPolicy = new QComboBox;
    m_contextPolicy->setObjectName(QStringLiteral("contextOverflow"));
    m_contextPolicy->addItem(tr("Stop at the limit"), QStringLiteral("stop"));
    m_contextPolicy->addItem(tr("Truncate the middle"), QStringLiteral("truncate-middle"));
    m_contextPolicy->addItem(tr("Rolling window"), QStringLiteral("rolling-window"));
    m_contextPolicy->setToolTip(
        tr("When the conversation and the reply no longer fit the model's context:\n"
           "Stop at the limit: the reply is refused.\n"
           "Truncate the middle: the system prompt, the first exchange and the latest messages stay; "
           "messages in between are left out of the prompt (not deleted).\n"
           "Rolling window: the oldest messages after the system prompt are left out."));
    cv->addWidget(m_contextPolicy);
    m_contextUsed = new QLabel;
    m_contextUsed->setObjectName(QStringLiteral("muted"));
    m_contextUsed->setWordWrap(true);
    cv->addWidget(m_contextUsed);
    v->addWidget(ctxBox);
    connect(m_contextPolicy, &QComboBox::currentIndexChanged, this, [this] {
        if (!m_loading) m_chat->setContextOverflow(m_id, m_contextPolicy->currentData().toString());
    });

    auto* tmplBox = new QGroupBox(tr("Chat template"));
    auto* tv = new QVBoxLayout(tmplBox);
    tv->addWidget(new QLabel(tr("Template options (JSON)")));
    m_templateOptions = new QLineEdit;
    m_templateOptions->setPlaceholderText(QStringLiteral("{\"enable_thinking\": false}"));
    m_templateOptions->setToolTip(
        tr("Extra variables for the model's chat template, as Hugging Face's chat_template_kwargs.\n"
           "{\"enable_thinking\": false} turns thinking off for Qwen3; other templates read other names."));
    tv->addWidget(m_templateOptions);
    m_templateError = new QLabel;
    m_templateError->setObjectName(QStringLiteral("warning"));
    m_templateError->setWordWrap(true);
    m_templateError->hide();
    tv->addWidget(m_templateError);
    m_thinking = new QCheckBox(tr("Thinking"));
    m_thinking->setObjectName(QStringLiteral("thinking"));
    tv->addWidget(m_thinking);
    v->addWidget(tmplBox);
    // Applied when editing ends (Enter, or focus moving to Send or the input box), not per keystroke.
    connect(m_templateOptions, &QLineEdit::editingFinished, this, &ChatTab::applyTemplateOptions);
    connect(m_thinking, &QCheckBox::toggled, this, [this](bool on) {
        if (!m_loading) m_chat->setThinking(m_id, on);
    });
    connect(m_chat->engine(), &EngineController::stateChanged, this, &ChatTab::updateThinkingSwitch);

    auto* jsonBox = new QGroupBox(tr("JSON output"));
    auto* jv = new QVBoxLayout(jsonBox);
    m_jsonOutput = new QCheckBox(tr("Reply with JSON"));
    m_jsonOutput->setObjectName(QStringLiteral("jsonOutput"));
    m_jsonOutput->setToolTip(tr("Each reply is one JSON document that the schema allows (constrained decoding), "
                                "shown indented. An empty schema allows any JSON object."));
    jv->addWidget(m_jsonOutput);
    m_jsonSchema = new QPlainTextEdit;
    m_jsonSchema->setObjectName(QStringLiteral("jsonSchema"));
    m_jsonSchema->setPlaceholderText(QStringLiteral("{\"type\": \"object\", \"properties\": {\"answer\": {\"type\": \"string\"}}}"));
    m_jsonSchema->setToolTip(
        tr("A JSON Schema: type, properties, required, enum, const, anyOf/oneOf, items, prefixItems, min/maxItems, "
           "min/maxLength, local $ref/$defs. Empty: any JSON object."));
    m_jsonSchema->setFixedHeight(110);
    jv->addWidget(m_jsonSchema);
    m_jsonError = new QLabel;
    m_jsonError->setObjectName(QStringLiteral("warning"));
    m_jsonError->setWordWrap(true);
    m_jsonError->hide();
    jv->addWidget(m_jsonError);
    v->addWidget(jsonBox);
    connect(m_jsonOutput, &QCheckBox::toggled, this, &ChatTab::applyJsonOutput);
    connect(m_jsonSchema, &QPlainTextEdit::textChanged, this, &ChatTab::applyJsonOutput);

    auto* exportButton = new QPushButton(tr("Export as Markdown…"));
    connect(exportButton, &QPushButton::clicked, this, &ChatTab::exportMarkdown);
    v->addWidget(exportButton);
    v->addStretch(1);
    return panel;
}

void ChatTab::savePresetAs(const QString& name) {
    flushSystemPrompt();
    if (!m_chat->savePreset(m_id, name)) return;
    m_preset->setCurrentIndex(m_preset->findData(name.trimmed()));
    fillPresets();
}

// The presets in the box (the chosen one kept), and whether the chosen one is the default.
void ChatTab::fillPresets() {
    const QString keep = m_preset->currentData().toString();
    m_loading = true;
    m_preset->clear();
    m_preset->addItem(tr("Choose a preset…"), QString());
    for (const QString& n : m_chat->presetNames()) m_preset->addItem(n, n);
    m_preset->setCurrentIndex(std::max(0, m_preset->findData(keep)));
    const QString chosen = m_preset->currentData().toString();
    m_presetDefault->setEnabled(!chosen.isEmpty());
    m_presetDefault->setChecked(!chosen.isEmpty() && chosen == m_chat->defaultPreset());
    m_loading = false;
}

void ChatTab::loadSettings() {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c) return;
    m_loading = true;
    if (m_system->toPlainText() != c->systemPrompt && !m_systemTimer.isActive()) m_system->setPlainText(c->systemPrompt);
    m_temperature->setValue(c->sampling.temperature);
    m_topP->setValue(c->sampling.topP);
    m_topK->setValue(c->sampling.topK);
    m_maxTokens->setValue(std::min(c->sampling.maxTokens, m_maxTokens->maximum()));
    m_repetition->setValue(c->sampling.repetitionPenalty);
    m_seed->setValue(int(std::clamp<qint64>(c->sampling.seed, -1, std::numeric_limits<int>::max())));
    m_contextPolicy->setCurrentIndex(std::max(0, m_contextPolicy->findData(c->contextOverflow)));
    if (m_templateError->isHidden()) {  // an invalid text being fixed is the user's, not replaced
        const QString text = c->templateKwargs.isEmpty()
                                 ? QString()
                                 : QString::fromUtf8(QJsonDocument(c->templateKwargs).toJson(QJsonDocument::Compact));
        if (m_templateOptions->text() != text && !m_templateOptions->hasFocus()) m_templateOptions->setText(text);
    }
    m_jsonOutput->setChecked(c->jsonOutput.enabled);
    if (m_jsonSchema->toPlainText() != c->jsonOutput.schema) m_jsonSchema->setPlainText(c->jsonOutput.schema);
    updateThinkingSwitch();
    m_loading = false;
    QString error;
    const bool compiles = ChatController::compileSchema(c->jsonOutput.schema, &error) != nullptr;
    m_jsonError->setText(compiles ? QString() : error);
    m_jsonError->setVisible(!compiles);
}

// A reply can never be longer than the session leaves after the prompt; the field says so.
void ChatTab::capMaxTokens() {
    const int session = m_chat->engine()->sessionLength();
    m_loading = true;  // a smaller model's cap shows, but the conversation keeps its own setting
    m_maxTokens->setMaximum(session > 1 ? session - 1 : 1 << 20);
    m_maxTokens->setToolTip(session > 1 ? tr("At most %1: the model's session holds %2 tokens, prompt and reply together.")
                                              .arg(session - 1)
                                              .arg(session)
                                        : QString());
    if (const Conversation* c = m_chat->conversation(m_id)) m_maxTokens->setValue(std::min(c->sampling.maxTokens, m_maxTokens->maximum()));
    m_loading = false;
}

void ChatTab::applyTemplateOptions() {
    QString error;
    const bool ok = m_chat->setTemplateOptions(m_id, m_templateOptions->text(), &error);
    m_templateError->setText(error);
    m_templateError->setVisible(!ok);
}

// Enabled where the loaded template reads enable_thinking; an enable_thinking in the template
// options decides instead (the switch shows their value, greyed).
void ChatTab::updateThinkingSwitch() {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c) return;
    const bool supported = m_chat->engine()->templateSupportsThinking();
    const QJsonValue explicitValue = c->templateKwargs.value(QLatin1String("enable_thinking"));
    const bool loading = m_loading;
    m_loading = true;
    m_thinking->setChecked(explicitValue.isBool() ? explicitValue.toBool() : c->thinking);
    m_thinking->setEnabled(supported && explicitValue.isUndefined());
    m_loading = loading;
    m_thinking->setToolTip(!supported ? tr("The loaded model's chat template has no thinking switch (enable_thinking).")
                           : !explicitValue.isUndefined()
                               ? tr("Set by enable_thinking in the template options above.")
                               : tr("Let the model reason in a <think> block before it answers (enable_thinking). "
                                    "The reasoning shows in a collapsible Thinking block above the reply."));
}

// Checked per keystroke; saved as typed, so a half-written schema survives a restart.
void ChatTab::applyJsonOutput() {
    if (m_loading) return;
    QString error;
    const bool compiles = ChatController::compileSchema(m_jsonSchema->toPlainText(), &error) != nullptr;
    m_jsonError->setText(compiles ? QString() : error);
    m_jsonError->setVisible(!compiles);
    m_chat->setJsonOutput(m_id, {m_jsonOutput->isChecked(), m_jsonSchema->toPlainText()});
}

void ChatTab::applySampling() {
    if (m_loading) return;
    SamplingSettings s;
    s.temperature = m_temperature->value();
    s.topP = m_topP->value();
    s.topK = m_topK->value();
    s.maxTokens = m_maxTokens->value();
    s.repetitionPenalty = m_repetition->value();
    s.seed = m_seed->value();
    m_chat->setSampling(m_id, s);
}

void ChatTab::rebuild() {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c) return;
    const int n = int(c->messages.size());
    while (m_messages.size() > n) delete m_messages.takeLast();
    while (m_messages.size() < n) {
        auto* w = new MessageWidget;
        connect(w, &MessageWidget::copyRequested, this, [](const QString& t) { QGuiApplication::clipboard()->setText(t); });
        connect(w, &MessageWidget::editRequested, this, &ChatTab::startEditLast);
        connect(w, &MessageWidget::regenerateRequested, this, [this] {
            flushSystemPrompt();
            m_chat->regenerate(m_id);
        });
        connect(w, &MessageWidget::versionRequested, this, [this, index = int(m_messages.size())](int version) {
            m_chat->showVersion(m_id, index, version);
        });
        m_list->insertWidget(int(m_messages.size()) + 1, w);  // after the empty-state label
        m_messages.append(w);
    }
    for (int i = 0; i < n; ++i) updateMessage(i);
    m_empty->setVisible(n == 0);
    updateContextUsed();
    updateActions();
    scrollToEnd(true);
}

void ChatTab::updateMessage(int index) {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c || index < 0 || index >= c->messages.size() || index >= m_messages.size()) return;
    const bool streaming = m_chat->isGenerating(m_id) && index == c->messages.size() - 1;
    m_messages[index]->setMessage(c->messages[index], streaming);
    scrollToEnd(false);
}

void ChatTab::updateActions() {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c) return;
    const bool busy = m_chat->isGenerating(m_id);
    int lastUser = -1;
    for (int i = 0; i < c->messages.size(); ++i)
        if (c->messages[i].role == QLatin1String("user")) lastUser = i;
    const int last = int(c->messages.size()) - 1;
    for (int i = 0; i < m_messages.size(); ++i) {
        const bool isReply = c->messages[i].role == QLatin1String("assistant");
        m_messages[i]->setActions(!busy && i == lastUser, !busy && isReply && i == last, !busy);
    }
}

void ChatTab::setGenerating(bool on) {
    m_send->setEnabled(!on);
    m_stop->setEnabled(on);
    updateActions();
    if (!on) {
        const Conversation* c = m_chat->conversation(m_id);
        if (c && !c->messages.isEmpty()) updateMessage(int(c->messages.size()) - 1);
        updateContextUsed();
    }
}

// The last finished reply's prompt + reply against the session, and what the policy left out for it.
void ChatTab::updateContextUsed() {
    const Conversation* c = m_chat->conversation(m_id);
    const MessageStats* s = nullptr;
    for (int i = c ? int(c->messages.size()) - 1 : -1; i >= 0 && !s; --i)
        if (c->messages[i].stats && c->messages[i].stats->promptTokens > 0) s = &*c->messages[i].stats;
    const int session = m_chat->engine()->sessionLength();
    if (!s || session <= 0) {
        m_contextUsed->setText(session > 0 ? tr("Context: %1 tokens").arg(session) : QString());
        return;
    }
    QString text = tr("Context used: %1 of %2 tokens").arg(s->promptTokens + s->completionTokens).arg(session);
    if (s->droppedMessages > 0)
        text += s->droppedMessages == 1 ? tr(" · 1 earlier message left out")
                                        : tr(" · %1 earlier messages left out").arg(s->droppedMessages);
    m_contextUsed->setText(text);
}

// The edit is saved after a pause in typing; a reply started before that pause must still use it.
void ChatTab::flushSystemPrompt() {
    m_systemTimer.stop();
    m_chat->setSystemPrompt(m_id, m_system->toPlainText());
}

void ChatTab::send() {
    const QString text = m_input->toPlainText();
    if (text.trimmed().isEmpty() && (m_attached.isEmpty() || m_editing)) return;
    flushSystemPrompt();
    m_notice->hide();
    if (m_jsonOutput->isChecked() && !m_jsonError->isHidden()) {  // the controller would refuse it too, in a dialog
        m_notice->setText(tr("JSON output is on and its schema is not valid: %1 Fix the schema (or turn JSON output off) "
                             "and send again.")
                              .arg(m_jsonError->text()));
        m_notice->show();
        return;
    }
    const bool ok = m_editing ? m_chat->editLastUserMessage(m_id, text) : m_chat->send(m_id, text, m_attached);
    if (ok) {
        if (!m_editing) clearAttachments();
        m_input->clear();
        m_editing = false;
        m_editBanner->hide();
    }
}

void ChatTab::stop() { m_chat->stop(m_id); }

void ChatTab::startEditLast() {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c || m_chat->isGenerating(m_id)) return;
    for (int i = int(c->messages.size()) - 1; i >= 0; --i) {
        if (c->messages[i].role != QLatin1String("user")) continue;
        m_input->setPlainText(c->messages[i].content);
        m_editing = true;
        m_editBanner->show();
        m_input->setFocus();
        return;
    }
}

void ChatTab::exportMarkdown() {
    const Conversation* c = m_chat->conversation(m_id);
    if (!c) return;
    QString name = c->title;
    name.replace(QRegularExpression(QStringLiteral("[^\\w\\- ]")), QStringLiteral("_"));
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export conversation"),
        QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation) + QLatin1Char('/') + name + QStringLiteral(".md"),
        tr("Markdown (*.md)"));
    if (path.isEmpty()) return;
    if (m_chat->exportMarkdown(m_id, path)) emit m_chat->noticed(tr("Exported to %1").arg(path));
    else emit m_chat->errorOccurred(tr("Export failed"), tr("Could not write %1.").arg(path));
}

void ChatTab::scrollToEnd(bool force) {
    QScrollBar* bar = m_scroll->verticalScrollBar();
    if (force) m_followEnd = true;
    if (m_followEnd) bar->setValue(bar->maximum());
}

bool ChatTab::attachFile(const QString& path) {
    QString error;
    const auto a = ChatController::readAttachment(path, &error);
    if (!a) {
        m_notice->setText(error);
        m_notice->show();
        return false;
    }
    m_attached.append(*a);
    showAttachments();
    return true;
}

void ChatTab::clearAttachments() {
    m_attached.clear();
    showAttachments();
}

// The files of the next message with what each adds to the prompt, in tokens of the loaded model.
void ChatTab::showAttachments() {
    QStringList parts;
    const auto engine = m_chat->engine()->engine();
    for (const Attachment& a : m_attached) {
        if (!engine) {
            parts << a.name;
            continue;
        }
        ChatMessageRecord only;
        only.attachments = {a};
        const int n = int(engine->tokenizer().encode(only.promptText().toStdString(), false).size());
        parts << (n == 1 ? tr("%1 (1 token)").arg(a.name) : tr("%1 (%2 tokens)").arg(a.name).arg(n));
    }
    m_attachLabel->setText(tr("Attached: %1").arg(parts.join(QStringLiteral(" · "))));
    m_attachBar->setVisible(!m_attached.isEmpty());
}

bool ChatTab::eventFilter(QObject* o, QEvent* e) {
    if (o == m_input->viewport() && (e->type() == QEvent::DragEnter || e->type() == QEvent::Drop)) {
        auto* d = static_cast<QDropEvent*>(e);
        if (!d->mimeData()->hasUrls()) return QWidget::eventFilter(o, e);  // dropped text is typed text
        d->acceptProposedAction();
        if (e->type() == QEvent::Drop)
            for (const QUrl& u : d->mimeData()->urls())
                if (u.isLocalFile()) attachFile(u.toLocalFile());
        return true;
    }
    if (o == m_input && e->type() == QEvent::KeyPress) {
        auto* k = static_cast<QKeyEvent*>(e);
        if ((k->key() == Qt::Key_Return || k->key() == Qt::Key_Enter) && !(k->modifiers() & Qt::ShiftModifier)) {
            send();
            return true;
        }
    }
    return QWidget::eventFilter(o, e);
}

}  // namespace lmw::gui
