#include "lmw/gui/message_widget.h"

#include <QAbstractTextDocumentLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QRegularExpression>
#include <QStyle>
#include <QTextBlock>
#include <QTextBrowser>
#include <QTextCursor>
#include <QTextDocument>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>

namespace lmw::gui {

// Models write a single newline meaning a new line; Markdown would join such lines with a space.
// Outside code fences, each one becomes a hard break.
static QString keepLineBreaks(const QString& markdown) {
    const QStringList lines = markdown.split(QLatin1Char('\n'));
    QString out;
    bool fence = false;
    for (int i = 0; i < lines.size(); ++i) {
        const QString& line = lines[i];
        if (line.trimmed().startsWith(QLatin1String("```"))) fence = !fence;
        out += line;
        if (i + 1 == lines.size()) break;
        const bool nextBlank = lines[i + 1].trimmed().isEmpty();
        if (!fence && !line.trimmed().isEmpty() && !nextBlank && !line.trimmed().startsWith(QLatin1String("```")))
            out += QStringLiteral("  ");
        out += QLatin1Char('\n');
    }
    return out;
}

void setMarkdownWithCodeBlocks(QTextDocument* doc, const QString& markdown) {
    doc->setMarkdown(keepLineBreaks(markdown), QTextDocument::MarkdownDialectGitHub);
    QTextCursor cursor(doc);
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
        QTextBlockFormat f = b.blockFormat();
        if (!f.hasProperty(QTextFormat::BlockCodeFence) && !f.nonBreakableLines()) continue;
        f.setBackground(QColor(0xf1, 0xf3, 0xf5));
        f.setLeftMargin(8);
        f.setRightMargin(8);
        cursor.setPosition(b.position());
        cursor.setBlockFormat(f);
    }
}

MessageWidget::MessageWidget(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("message"));
    setAttribute(Qt::WA_StyledBackground);
    auto* v = new QVBoxLayout(this);
    v->setContentsMargins(12, 8, 12, 8);
    v->setSpacing(4);
    auto* head = new QHBoxLayout;
    m_who = new QLabel;
    m_who->setObjectName(QStringLiteral("who"));
    head->addWidget(m_who);
    auto tool = [this, head](const QString& text, const QString& tip) {
        auto* b = new QToolButton;
        b->setText(text);
        b->setToolTip(tip);
        b->setAutoRaise(true);
        head->addWidget(b);
        return b;
    };
    // Branches: "‹ 2/3 ›" when Regenerate or Edit kept earlier versions of this message.
    m_previous = tool(QStringLiteral("‹"), tr("Show the previous version of this message"));
    m_version = new QLabel;
    m_version->setObjectName(QStringLiteral("stats"));
    head->addWidget(m_version);
    m_next = tool(QStringLiteral("›"), tr("Show the next version of this message"));
    connect(m_previous, &QToolButton::clicked, this, [this] { emit versionRequested(m_shownVersion - 1); });
    connect(m_next, &QToolButton::clicked, this, [this] { emit versionRequested(m_shownVersion + 1); });
    head->addStretch(1);
    m_copy = tool(tr("Copy"), tr("Copy this message"));
    m_edit = tool(tr("Edit"), tr("Edit this message and send it again"));
    m_regen = tool(tr("Regenerate"), tr("Replace this reply with a new one"));
    connect(m_copy, &QToolButton::clicked, this, [this] { emit copyRequested(m_answer); });
    connect(m_edit, &QToolButton::clicked, this, &MessageWidget::editRequested);
    connect(m_regen, &QToolButton::clicked, this, &MessageWidget::regenerateRequested);
    v->addLayout(head);

    m_thinkButton = new QToolButton;
    m_thinkButton->setObjectName(QStringLiteral("thinkingToggle"));
    m_thinkButton->setCheckable(true);
    m_thinkButton->setAutoRaise(true);
    m_thinkButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    m_thinkButton->setArrowType(Qt::RightArrow);
    m_thinkButton->setToolTip(tr("Show or hide the model's reasoning"));
    // The arrow shows the state; a sunken checked button would read as a pressed action.
    m_thinkButton->setStyleSheet(QStringLiteral("QToolButton { color: #6b7280; border: none; background: transparent; padding: 2px 0; }"));
    m_thinkButton->hide();
    connect(m_thinkButton, &QToolButton::clicked, this, [this](bool open) {
        m_thinkChosen = true;
        setThinkingOpen(open);
    });
    v->addWidget(m_thinkButton, 0, Qt::AlignLeft);
    m_thinkBody = new QTextBrowser;
    m_thinkBody->setObjectName(QStringLiteral("thinking"));
    m_thinkBody->setFrameShape(QFrame::NoFrame);
    m_thinkBody->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_thinkBody->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_thinkBody->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    m_thinkBody->setStyleSheet(
        QStringLiteral("QTextBrowser { color: #6b7280; background: #f9fafb; border: none; border-left: 3px solid #d1d5db; }"));
    m_thinkBody->hide();
    v->addWidget(m_thinkBody);

    m_body = new QTextBrowser;
    m_body->setOpenExternalLinks(true);
    m_body->setFrameShape(QFrame::NoFrame);
    m_body->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_body->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_body->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    m_body->viewport()->setAutoFillBackground(false);
    m_body->setStyleSheet(QStringLiteral("background: transparent;"));
    v->addWidget(m_body);
    m_stats = new QLabel;
    m_stats->setObjectName(QStringLiteral("stats"));
    m_stats->setWordWrap(true);  // a narrow window wraps the stats instead of widening the message
    v->addWidget(m_stats);

    m_renderTimer.setSingleShot(true);
    m_renderTimer.setInterval(50);
    connect(&m_renderTimer, &QTimer::timeout, this, &MessageWidget::render);
    setActions(false, false, false);
}

void MessageWidget::setMessage(const ChatMessageRecord& m, bool streaming) {
    const bool user = m.role == QLatin1String("user");
    if (m.role != m_role) {
        m_role = m.role;
        m_who->setText(user ? tr("You") : tr("Assistant"));
        setProperty("role", m.role);
        style()->unpolish(this);
        style()->polish(this);
    }
    QString stats;
    if (m.stats) {
        const auto& s = *m.stats;
        auto count = [](int n) { return n == 1 ? tr("1 token") : tr("%1 tokens").arg(n); };
        // Only the figures that were measured: no speed from one token, no first-token time
        // before the first token, no prompt size when the model went away before reporting it.
        QStringList parts{count(s.completionTokens)};
        if (s.completionTokens > 1 && s.tokensPerSecond > 0) parts << tr("%1 tok/s").arg(s.tokensPerSecond, 0, 'f', 1);
        if (s.completionTokens > 0 && s.firstTokenSeconds > 0)
            parts << (s.firstTokenSeconds < 0.9995 ? tr("first token %1 ms").arg(std::max(1, int(s.firstTokenSeconds * 1000 + 0.5)))
                                                   : tr("first token %1 s").arg(s.firstTokenSeconds, 0, 'f', 2));
        if (s.promptTokens > 0) parts << tr("prompt %1").arg(count(s.promptTokens));
        if (s.finishReason == QLatin1String("cancelled")) parts << tr("stopped");
        else if (s.finishReason == QLatin1String("unloaded")) parts << tr("stopped: the model was unloaded");
        else if (s.finishReason == QLatin1String("length")) parts << tr("hit max tokens");
        else if (s.finishReason == QLatin1String("context")) parts << tr("cut off: the context is full");
        stats = parts.join(QStringLiteral(" · "));
    } else if (streaming) {
        stats = tr("generating…");
    }
    if (!m.attachments.isEmpty()) {
        QStringList names;
        for (const Attachment& a : m.attachments) names << a.name;
        stats = tr("Attached: %1").arg(names.join(QStringLiteral(", ")));
    }
    if (!m.error.isEmpty()) stats = tr("Error: %1").arg(m.error);
    m_shownVersion = m.version;
    m_versionCount = m.versionCount();
    m_version->setText(QStringLiteral("%1/%2").arg(m.version + 1).arg(m_versionCount));
    m_version->setToolTip(tr("Version %1 of %2").arg(m.version + 1).arg(m_versionCount));
    updateVersionButtons();
    m_stats->setText(stats);
    m_stats->setVisible(!stats.isEmpty());
    const bool wasStreaming = m_streaming;
    m_streaming = streaming;
    if (m.content != m_text || m.json != m_json || m.startsInReasoning != m_startsInReasoning || wasStreaming != streaming ||
        m_body->document()->isEmpty()) {
        // Another message in this place (a version switch, a new reply): the block opens or closes
        // by itself again.
        if (!m.content.startsWith(m_text) || m_text.isEmpty()) m_thinkChosen = false;
        m_text = m.content;
        m_json = m.json;
        m_startsInReasoning = m.startsInReasoning;
        if (streaming) {  // coalesce deltas: Markdown layout per token would be wasted work
            if (!m_renderTimer.isActive()) m_renderTimer.start();
        } else {
            m_renderTimer.stop();
            render();
        }
    }
}

QString MessageWidget::statsText() const { return m_stats->isHidden() ? QString() : m_stats->text(); }

void MessageWidget::setActions(bool canEdit, bool canRegenerate, bool canSwitchVersion) {
    m_edit->setVisible(canEdit);
    m_regen->setVisible(canRegenerate);
    m_canSwitch = canSwitchVersion;
    updateVersionButtons();
}

void MessageWidget::updateVersionButtons() {
    const bool branched = m_versionCount > 1;
    for (QWidget* w : {static_cast<QWidget*>(m_previous), static_cast<QWidget*>(m_version), static_cast<QWidget*>(m_next)})
        w->setVisible(branched);
    m_previous->setEnabled(m_canSwitch && m_shownVersion > 0);
    m_next->setEnabled(m_canSwitch && m_shownVersion + 1 < m_versionCount);
}

void MessageWidget::render() {
    const bool reply = m_role == QLatin1String("assistant");
    ChatMessageRecord r;
    r.content = m_text;
    r.startsInReasoning = m_startsInReasoning;
    QString md;
    bool thinking = false;  // the reply has a reasoning block (maybe still empty, while it opens)
    bool inReasoning = false;
    if (reply && m_json) {
        // Indented once complete; while it streams (or when cut short) the text as it came.
        m_answer = m_streaming ? m_text : r.prettyJson();
        m_reasoning.clear();
        md = m_answer.trimmed().isEmpty() ? QString() : QStringLiteral("```json\n%1\n```").arg(m_answer.trimmed());
    } else if (reply) {
        const auto p = r.parts(m_streaming);
        m_reasoning = p.reasoning.trimmed();
        m_answer = p.answer;
        inReasoning = p.inReasoning;
        thinking = !m_reasoning.isEmpty() || inReasoning;
        md = m_answer.trimmed();
    } else {
        m_answer = m_text;
        m_reasoning.clear();
        md = m_text.trimmed();
    }
    if (md.isEmpty() && reply && !thinking) md = QStringLiteral("…");

    m_thinkButton->setVisible(thinking);
    if (thinking) {
        const int words = int(m_reasoning.split(QRegularExpression(QStringLiteral("\\s+")), Qt::SkipEmptyParts).size());
        m_thinkButton->setText(m_streaming && inReasoning ? tr("Thinking…")
                                                          : words == 1 ? tr("Thought · 1 word") : tr("Thought · %1 words").arg(words));
        m_thinkBody->setPlainText(m_reasoning);
        setThinkingOpen(m_thinkChosen ? m_thinkButton->isChecked() : m_streaming && inReasoning);
    } else {
        setThinkingOpen(false);
    }
    m_body->setVisible(!md.isEmpty());
    setMarkdownWithCodeBlocks(m_body->document(), md);
    fitHeight();
}

void MessageWidget::setThinkingOpen(bool open) {
    open = open && !m_thinkButton->isHidden();
    m_thinkButton->setChecked(open);
    m_thinkButton->setArrowType(open ? Qt::DownArrow : Qt::RightArrow);
    m_thinkBody->setVisible(open);
    fitHeight();
}

void MessageWidget::fitHeight() {
    for (QTextBrowser* b : {m_body, m_thinkBody}) {
        if (!b) continue;
        QTextDocument* doc = b->document();
        doc->setTextWidth(b->viewport()->width() > 50 ? b->viewport()->width() : width() - 24);
        const int h = int(doc->documentLayout()->documentSize().height()) + 4;
        b->setFixedHeight(std::max(h, 20));
    }
}

void MessageWidget::resizeEvent(QResizeEvent* e) {
    QWidget::resizeEvent(e);
    fitHeight();
}

}  // namespace lmw::gui
