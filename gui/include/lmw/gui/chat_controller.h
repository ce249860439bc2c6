#pragma once
// Conversations and their generations: builds requests from a conversation, streams the reply into
// its last message, and saves every change through the ConversationStore.
#include <QElapsedTimer>
#include <QHash>
#include <QObject>
#include <QVector>

#include "lmw/gui/conversation.h"
#include "lmw/gui/conversation_store.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/grammar.h"

namespace lmw::gui {

class ChatController : public QObject {
    Q_OBJECT
public:
    ChatController(EngineController* engine, ConversationStore store, QObject* parent = nullptr);

    // Reads the store; emits conversationAdded for each (a new empty one when there is none).
    void restore();

    QStringList ids() const;        // the open ones, in tab order
    QStringList closedIds() const;  // closed but kept on disk, most recently used first
    // Every conversation, open or closed, most recently used first, whose title or any message
    // contains `text` (case-insensitive; empty text: all of them). The history list.
    QStringList search(const QString& text = {}) const;
    const Conversation* conversation(const QString& id) const;
    bool isGenerating(const QString& id) const { return m_running.contains(id); }
    int generatingCount() const { return int(m_running.size()); }
    const ConversationStore& store() const { return m_store; }
    EngineController* engine() const { return m_engine; }

    QString newConversation(const QString& title = {});
    // Closes the tab; the conversation stays on disk. A reply in progress is stopped and what it
    // wrote so far is kept.
    void closeConversation(const QString& id);
    bool reopenConversation(const QString& id);  // shows a closed one again
    void removeConversation(const QString& id);  // deletes it, file and all
    // The last conversation removed comes back (its file too, open or closed as it was). False when
    // there is none to bring back.
    bool undoRemove();
    QString lastRemovedTitle() const { return m_lastRemoved ? m_lastRemoved->title : QString(); }
    void rename(const QString& id, const QString& title);
    void setSystemPrompt(const QString& id, const QString& prompt);
    void setSampling(const QString& id, const SamplingSettings& s);
    // "stop", "truncate-middle" or "rolling-window" (lmw::engine::ContextOverflow); others are ignored.
    void setContextOverflow(const QString& id, const QString& policy);
    // Chat template options as JSON object text (Hugging Face's chat_template_kwargs, e.g.
    // {"enable_thinking": false}); empty text clears them. False, with the reason in *error, when
    // the text is not such an object (the options stay as they were).
    bool setTemplateOptions(const QString& id, const QString& json, QString* error = nullptr);
    // Thinking on or off, for templates that read enable_thinking (see Conversation::thinking).
    void setThinking(const QString& id, bool on);
    // JSON output: kept as given, even a schema that does not compile (the user is still typing);
    // false, with the reason in *error, when it is on and the schema does not compile. A reply
    // cannot start while that is so.
    bool setJsonOutput(const QString& id, const JsonOutput& json, QString* error = nullptr);
    // The grammar of a JSON output schema (empty text: any JSON object), or null with the reason
    // in *error: not JSON, not an object, or a keyword the engine does not support
    // ("unsupported JSON Schema keyword 'pattern' at /properties/x").
    static std::shared_ptr<const lmw::engine::Grammar> compileSchema(const QString& schema, QString* error = nullptr);

    // Appends the user's message and starts the reply. False when it cannot start (no model, busy,
    // empty text); the reason goes to errorOccurred.
    bool send(const QString& id, const QString& text, const QVector<Attachment>& attachments = {});
    // A text file (text, Markdown, code; at most kMaxAttachmentBytes) or a PDF's text (through
    // poppler) as an attachment, or nothing with the reason in *error (not text, too large,
    // unreadable, a PDF that is locked or holds no text).
    static std::optional<Attachment> readAttachment(const QString& path, QString* error);
    static constexpr qint64 kMaxAttachmentBytes = 2 << 20;
    void stop(const QString& id);
    // A new reply in place of the last one; the one it replaces stays as an earlier version.
    bool regenerate(const QString& id);
    // Replaces the last user message and sends it again; the message it replaces and the reply
    // after it stay as an earlier version.
    bool editLastUserMessage(const QString& id, const QString& text);
    // Shows another version of message `index` and what followed it (Conversation::showVersion).
    // False while the conversation generates or when there is no such version.
    bool showVersion(const QString& id, int index, int version);

    bool exportMarkdown(const QString& id, const QString& path) const;

    // Presets (saved with the store): a conversation's system prompt, sampling and context policy
    // under a name. savePreset replaces one of the same name; applyPreset sets them on a
    // conversation; new conversations start from the default preset when there is one.
    QStringList presetNames() const;
    const ChatPreset* preset(const QString& name) const;
    bool savePreset(const QString& id, const QString& name);
    bool applyPreset(const QString& id, const QString& name);
    void removePreset(const QString& name);
    void setDefaultPreset(const QString& name);  // empty: none
    QString defaultPreset() const { return m_presets.defaultName; }

signals:
    void conversationAdded(const QString& id);
    void conversationRemoved(const QString& id);  // closed or deleted: its tab goes
    void conversationChanged(const QString& id);  // title, system prompt, sampling or template options
    void messagesReset(const QString& id);        // messages added/removed: redraw all
    void messageUpdated(const QString& id, int index);  // streaming text or stats of one message
    void generatingChanged(const QString& id, bool generating);
    void generationFinished(const QString& id, const lmw::gui::GenerationResult& result);
    // The prompt no longer fits the model's session: shown in the tab, not as a dialog.
    void contextFull(const QString& id, const QString& message);
    void errorOccurred(const QString& title, const QString& message);
    void noticed(const QString& message);  // a passing confirmation (the status bar shows it)
    // The history list changed: conversations restored, added, removed, renamed, closed, reopened or used.
    void historyChanged();
    void presetsChanged();

private:
    struct Running {
        lmw::engine::RequestId requestId = 0;
        int messageIndex = -1;
        bool stopRequested = false;
        // What the deltas told so far: the stats when no final event comes (the model unloaded).
        QElapsedTimer clock;
        double firstTokenSeconds = -1;
        int tokens = 0;
        int promptBudget = 0;  // session length at submit: a "length" end there is the context's
        int maxTokens = 0;
    };
    using Versions = std::vector<std::vector<ChatMessageRecord>>;
    Conversation* find(const QString& id);
    // Appends the user's message (with `earlier` as its other versions) and starts the reply.
    bool submit(const QString& id, const QString& text, const QVector<Attachment>& attachments, Versions earlier);
    bool startReply(const QString& id, Versions earlier = {});
    // JSON output off, or its schema compiles; else errorOccurred says why (checked before a send,
    // regenerate or edit changes the messages).
    bool schemaReady(const Conversation& c);
    void onDelta(quint64 requestId, const QString& text, int tokens);
    void onFinished(quint64 requestId, const lmw::gui::GenerationResult& r);
    void onEngineGone();
    void finishRunning(const QString& id, const GenerationResult& r);
    void touchAndSave(Conversation& c);

    EngineController* m_engine;
    ConversationStore m_store;
    QVector<Conversation> m_conversations;
    std::optional<Conversation> m_lastRemoved;  // for undoRemove
    ConversationStore::Presets m_presets;
    void savePresets();
    static void applyTo(Conversation& c, const ChatPreset& p);
    QHash<QString, Running> m_running;                 // conversation id -> its generation
    QHash<lmw::engine::RequestId, QString> m_byRequest;  // request id -> conversation id
};

}  // namespace lmw::gui
