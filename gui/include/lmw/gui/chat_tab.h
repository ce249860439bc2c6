#pragma once
// One conversation tab: the message list, the input box (Enter sends, Shift+Enter is a new line,
// Esc stops), and the side panel with the system prompt, sampling settings, chat template
// options (with the Thinking switch) and JSON output (a schema, validated as it is typed).
#include <QTimer>
#include <QVector>
#include <QWidget>

#include "lmw/gui/conversation.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QScrollArea;
class QSpinBox;
class QVBoxLayout;

namespace lmw::gui {

class ChatController;
class MessageWidget;

class ChatTab : public QWidget {
    Q_OBJECT
public:
    ChatTab(ChatController* chat, const QString& id, QWidget* parent = nullptr);
    QString id() const { return m_id; }

    QPlainTextEdit* input() const { return m_input; }
    QPlainTextEdit* systemPrompt() const { return m_system; }
    QSpinBox* maxTokens() const { return m_maxTokens; }
    QLabel* notice() const { return m_notice; }
    QComboBox* contextPolicy() const { return m_contextPolicy; }
    QComboBox* presetBox() const { return m_preset; }
    QCheckBox* presetDefault() const { return m_presetDefault; }
    QLabel* attachments() const { return m_attachLabel; }
    const QVector<Attachment>& pendingAttachments() const { return m_attached; }
    QLabel* contextUsed() const { return m_contextUsed; }
    QLineEdit* templateOptions() const { return m_templateOptions; }
    QLabel* templateOptionsError() const { return m_templateError; }
    QCheckBox* thinkingSwitch() const { return m_thinking; }
    QCheckBox* jsonOutput() const { return m_jsonOutput; }
    QPlainTextEdit* jsonSchema() const { return m_jsonSchema; }
    QLabel* jsonSchemaError() const { return m_jsonError; }
    int messageCount() const { return int(m_messages.size()); }
    QScrollArea* messageScroll() const { return m_scroll; }
    MessageWidget* messageAt(int i) const { return m_messages.value(i); }
    bool isEditing() const { return m_editing; }

public slots:
    void send();  // sends (or, while editing, replaces) the text in the input box
    void stop();
    void startEditLast();
    void exportMarkdown();
    void savePresetAs(const QString& name);  // this tab's settings as a preset (Save as… asks the name)
    // Adds a file to the next message (Attach… and a drop on the input box come here); false, with
    // the reason in the tab's notice, when it is not a text file that fits.
    bool attachFile(const QString& path);
    void clearAttachments();

protected:
    bool eventFilter(QObject* o, QEvent* e) override;

private:
    QWidget* buildSettings();
    void rebuild();
    void updateMessage(int index);
    void updateActions();
    void setGenerating(bool on);
    void loadSettings();
    void flushSystemPrompt();
    void capMaxTokens();
    void applySampling();
    void applyTemplateOptions();
    void updateThinkingSwitch();
    void applyJsonOutput();
    void updateContextUsed();
    void fillPresets();
    void showAttachments();
    void scrollToEnd(bool force);

    ChatController* m_chat;
    QString m_id;
    bool m_editing = false;
    bool m_loading = false;
    bool m_followEnd = true;  // the message list stays scrolled to its end (until the user scrolls up)
    QVector<MessageWidget*> m_messages;
    QScrollArea* m_scroll = nullptr;
    QVBoxLayout* m_list = nullptr;
    QLabel* m_empty = nullptr;
    QLabel* m_editBanner = nullptr;
    QLabel* m_notice = nullptr;  // the conversation no longer fits the context
    QComboBox* m_contextPolicy = nullptr;  // what a reply does when the conversation fills the context
    QComboBox* m_preset = nullptr;         // applies a saved preset to this conversation
    QCheckBox* m_presetDefault = nullptr;  // the chosen preset starts new conversations
    QVector<Attachment> m_attached;        // files for the next message
    QWidget* m_attachBar = nullptr;
    QLabel* m_attachLabel = nullptr;       // their names and token counts
    QLabel* m_contextUsed = nullptr;       // the last reply's prompt + reply of the session's tokens
    QPlainTextEdit* m_input = nullptr;
    QPushButton* m_send = nullptr;
    QPushButton* m_stop = nullptr;
    QPlainTextEdit* m_system = nullptr;
    QTimer m_systemTimer;
    QDoubleSpinBox* m_temperature = nullptr;
    QDoubleSpinBox* m_topP = nullptr;
    QSpinBox* m_topK = nullptr;
    QSpinBox* m_maxTokens = nullptr;
    QDoubleSpinBox* m_repetition = nullptr;
    QSpinBox* m_seed = nullptr;
    QLineEdit* m_templateOptions = nullptr;
    QLabel* m_templateError = nullptr;
    QCheckBox* m_thinking = nullptr;  // enable_thinking, where the template reads it
    QCheckBox* m_jsonOutput = nullptr;
    QPlainTextEdit* m_jsonSchema = nullptr;
    QLabel* m_jsonError = nullptr;  // why the schema does not compile (checked per keystroke)
};

}  // namespace lmw::gui
