#pragma once
// A chat conversation as the app keeps it: messages, system prompt, sampling settings, chat
// template options; JSON on disk, Markdown for export.
#include <QDateTime>
#include <QJsonObject>
#include <QString>
#include <QVector>
#include <optional>
#include <vector>

#include "lmw/sampling.h"


namespace lmw::gui {

struct SamplingSettings {
    double temperature = 0.8;
    double topP = 0.95;
    int topK = 40;
    int maxTokens = 256;
    double repetitionPenalty = 1.0;
    qint64 seed = -1;  // -1: a new random seed each time

    lmw::engine::SamplingParams toParams() const;
    QJsonObject toJson() const;
    static SamplingSettings fromJson(const QJsonObject& o);
    bool operator==(const SamplingSettings&) const = default;
};

// Structured output for a conversation's replies: each one is a JSON document the schema allows
// (constrained decoding, lmw::engine::Grammar). An empty schema means any JSON object.
struct JsonOutput {
    bool enabled = false;
    QString schema;  // JSON Schema text as the user wrote it (kept even while it does not compile)
    bool operator==(const JsonOutput&) const = default;
};

// A named start for a conversation: system prompt, sampling, context policy, thinking, JSON output.
struct ChatPreset {
    QString name;
    QString systemPrompt;
    SamplingSettings sampling;
    QString contextOverflow = QStringLiteral("stop");
    bool thinking = true;
    JsonOutput jsonOutput;
    QJsonObject toJson() const;
    static ChatPreset fromJson(const QJsonObject& o);
};

struct MessageStats {
    int promptTokens = 0;
    int completionTokens = 0;
    int droppedMessages = 0;  // earlier messages the context policy left out of this reply's prompt
    double firstTokenSeconds = 0;
    double totalSeconds = 0;
    double tokensPerSecond = 0;
    QString finishReason;
};

// A file's text given with a message (text, Markdown, code): the model reads it before the message.
struct Attachment {
    QString name;  // the file's name, as the prompt and the message show it
    QString text;
    bool operator==(const Attachment&) const = default;
};

struct ChatMessageRecord {
    QString role;  // "user" or "assistant"
    QString content;
    QDateTime time;
    std::optional<MessageStats> stats;  // assistant replies that finished
    QString error;                      // a reply that failed
    QVector<Attachment> attachments;    // user messages: files given with it
    // Replies: written under a JSON grammar (shown pretty-printed), and whether the prompt opened a
    // <think> block (the reply then starts inside its reasoning; lmw::engine::promptOpensReasoning).
    bool json = false;
    bool startsInReasoning = false;
    // What the model reads: each attachment as a fenced block under its name, then the content.
    QString promptText() const;
    // A reply split by the "think" reasoning parser (lmw/output_parser.h): the text of a leading
    // <think>...</think> block and the answer after it (the content as is when there is none).
    // Streaming: only what is decided so far (a partial "<think" or "</think" tag is held back).
    struct Parts {
        QString reasoning;
        QString answer;
        bool inReasoning = false;  // the block is open: no answer yet
    };
    Parts parts(bool streaming = false) const;
    // A JSON reply re-indented (2 spaces, keys in the model's order); the content as is when it
    // does not parse (cut off by max tokens).
    QString prettyJson() const;
    // Branches. Regenerate and Edit keep what they replace: the other versions of this message,
    // each with the messages that followed it, in the order they were written; this one is
    // number `version` among all of them (0-based).
    std::vector<std::vector<ChatMessageRecord>> otherVersions = {};
    int version = 0;
    int versionCount() const { return int(otherVersions.size()) + 1; }
};

struct Conversation {
    QString id;  // file name stem
    QString title;
    QString systemPrompt;
    SamplingSettings sampling;
    QJsonObject templateKwargs;  // extra chat template variables (chat_template_kwargs), e.g. enable_thinking
    // When the conversation no longer fits the context: lmw::engine::contextOverflowName's names.
    QString contextOverflow = QStringLiteral("stop");
    // Where the chat template reads enable_thinking (Qwen3): false sends enable_thinking=false,
    // unless templateKwargs sets enable_thinking itself (the explicit option wins).
    bool thinking = true;
    JsonOutput jsonOutput;
    QVector<ChatMessageRecord> messages;
    QDateTime created;
    QDateTime updated;
    bool open = true;  // shown as a tab; a closed one stays on disk and can be reopened

    // Branches of the message at `index` (see ChatMessageRecord::otherVersions).
    // takeVersions cuts the messages at `index` and returns every version of that message with
    // its continuation, the one shown included, in order; putVersions makes the message now at
    // `index` the newest of them. showVersion switches to another one (false when out of range).
    std::vector<std::vector<ChatMessageRecord>> takeVersions(int index);
    void putVersions(int index, std::vector<std::vector<ChatMessageRecord>> versions);
    bool showVersion(int index, int version);

    QJsonObject toJson() const;
    static Conversation fromJson(const QJsonObject& o);
    QString toMarkdown() const;
};

}  // namespace lmw::gui
