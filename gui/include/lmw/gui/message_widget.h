#pragma once
// One chat message: who said it, the text rendered as Markdown (re-rendered at most every 50 ms
// while it streams), the stats line under a reply, and its actions (copy, edit, regenerate,
// switch between versions).
// A reply that starts with a <think> block (split here, from the stored raw text, by the engine's
// "think" parser) shows it as a collapsible "Thinking" block above the answer: open while only the
// reasoning streams, closed once the answer starts (unless the user opened or closed it). A reply
// written in JSON mode shows its document re-indented in a code block.
#include <QTimer>
#include <QWidget>

#include <QLabel>

#include "lmw/gui/conversation.h"


class QTextBrowser;
class QTextDocument;
class QToolButton;

namespace lmw::gui {

class MessageWidget : public QWidget {
    Q_OBJECT
public:
    explicit MessageWidget(QWidget* parent = nullptr);
    void setMessage(const ChatMessageRecord& m, bool streaming);
    // Which actions this message offers (only the last user message / last reply get edit /
    // regenerate; no switching between versions while the conversation generates).
    void setActions(bool canEdit, bool canRegenerate, bool canSwitchVersion);
    QString text() const { return m_text; }  // the stored text, <think> block and all
    QString answerText() const { return m_answer; }  // what the body shows and Copy copies
    QString reasoningText() const { return m_reasoning; }
    QToolButton* thinkingButton() const { return m_thinkButton; }  // toggles the block; hidden without one
    QTextBrowser* thinkingBody() const { return m_thinkBody; }
    QString statsText() const;
    QTextBrowser* body() const { return m_body; }
    QToolButton* previousVersionButton() const { return m_previous; }
    QToolButton* nextVersionButton() const { return m_next; }
    QString versionText() const { return m_version->isHidden() ? QString() : m_version->text(); }

signals:
    void copyRequested(const QString& text);
    void editRequested();
    void regenerateRequested();
    void versionRequested(int version);  // the ‹ › arrows of a message with several versions

protected:
    void resizeEvent(QResizeEvent* e) override;

private:
    void render();
    void fitHeight();
    void updateVersionButtons();
    void setThinkingOpen(bool open);

    QString m_text;
    QString m_role;
    bool m_json = false;
    bool m_startsInReasoning = false;
    bool m_streaming = false;
    QString m_answer;
    QString m_reasoning;
    bool m_thinkChosen = false;  // the user opened or closed the block: it stays so
    bool m_dirty = false;
    QTimer m_renderTimer;
    QLabel* m_who = nullptr;
    QTextBrowser* m_body = nullptr;
    QToolButton* m_thinkButton = nullptr;
    QTextBrowser* m_thinkBody = nullptr;
    QLabel* m_stats = nullptr;
    QToolButton* m_copy = nullptr;
    QToolButton* m_edit = nullptr;
    QToolButton* m_regen = nullptr;
    QToolButton* m_previous = nullptr;
    QToolButton* m_next = nullptr;
    QLabel* m_version = nullptr;
    int m_shownVersion = 0;
    int m_versionCount = 1;
    bool m_canSwitch = false;
};

// Message text as Markdown with code blocks on a tinted background (QTextDocument has no CSS for
// fenced code).
void setMarkdownWithCodeBlocks(QTextDocument* doc, const QString& markdown);

}  // namespace lmw::gui
