#include "lmw/gui/conversation.h"

#include <QJsonArray>
#include <algorithm>

#include "lmw/output_parser.h"
#include "nlohmann/json.hpp"

namespace lmw::gui {

lmw::engine::SamplingParams SamplingSettings::toParams() const {
    lmw::engine::SamplingParams p;
    p.temperature = float(temperature);
    p.topP = float(topP);
    p.topK = topK;
    p.maxNewTokens = maxTokens;
    p.repetitionPenalty = float(repetitionPenalty);
    if (seed >= 0) p.seed = uint64_t(seed);
    return p;
}

QJsonObject SamplingSettings::toJson() const {
    return {{"temperature", temperature}, {"top_p", topP},  {"top_k", topK}, {"max_tokens", maxTokens},
            {"repetition_penalty", repetitionPenalty},      {"seed", double(seed)}};
}

SamplingSettings SamplingSettings::fromJson(const QJsonObject& o) {
    SamplingSettings s;
    s.temperature = o.value("temperature").toDouble(s.temperature);
    s.topP = o.value("top_p").toDouble(s.topP);
    s.topK = o.value("top_k").toInt(s.topK);
    s.maxTokens = o.value("max_tokens").toInt(s.maxTokens);
    s.repetitionPenalty = o.value("repetition_penalty").toDouble(s.repetitionPenalty);
    s.seed = qint64(o.value("seed").toDouble(double(s.seed)));
    return s;
}

QString ChatMessageRecord::promptText() const {
    QString out;
    for (const Attachment& a : attachments) out += QStringLiteral("%1:\n```\n%2\n```\n\n").arg(a.name, a.text);
    return out + content;
}

// Written only when it differs from the default, so older files and presets read the same.
static void putJsonOutput(QJsonObject& o, const JsonOutput& j) {
    if (j.enabled || !j.schema.isEmpty()) o.insert("json_output", QJsonObject{{"enabled", j.enabled}, {"schema", j.schema}});
}

static JsonOutput jsonOutputFrom(const QJsonObject& o) {
    const QJsonObject j = o.value("json_output").toObject();
    return {j.value("enabled").toBool(), j.value("schema").toString()};
}

ChatMessageRecord::Parts ChatMessageRecord::parts(bool streaming) const {
    lmw::engine::OutputParserOptions opts;
    opts.reasoningParser = "think";
    opts.startsInReasoning = startsInReasoning;
    lmw::engine::OutputParser parser(opts);
    parser.feed(content.toStdString());
    if (!streaming) parser.finish();
    const auto& r = parser.result();
    Parts p{QString::fromStdString(r.reasoning), QString::fromStdString(r.content)};
    p.inReasoning = (startsInReasoning || content.trimmed().startsWith(QLatin1String("<think>"))) &&
                    !content.contains(QLatin1String("</think>"));
    return p;
}

QString ChatMessageRecord::prettyJson() const {
    try {
        return QString::fromStdString(nlohmann::ordered_json::parse(content.toStdString()).dump(2));
    } catch (const nlohmann::json::exception&) {
        return content;
    }
}

QJsonObject ChatPreset::toJson() const {
    QJsonObject o{{"name", name},
                  {"system_prompt", systemPrompt},
                  {"sampling", sampling.toJson()},
                  {"context_overflow", contextOverflow}};
    if (!thinking) o.insert("thinking", false);
    putJsonOutput(o, jsonOutput);
    return o;
}

ChatPreset ChatPreset::fromJson(const QJsonObject& o) {
    ChatPreset p;
    p.name = o.value("name").toString();
    p.systemPrompt = o.value("system_prompt").toString();
    p.sampling = SamplingSettings::fromJson(o.value("sampling").toObject());
    p.contextOverflow = o.value("context_overflow").toString(p.contextOverflow);
    p.thinking = o.value("thinking").toBool(true);
    p.jsonOutput = jsonOutputFrom(o);
    return p;
}

static QJsonObject statsToJson(const MessageStats& s) {
    QJsonObject o{{"prompt_tokens", s.promptTokens},          {"completion_tokens", s.completionTokens},
                  {"first_token_seconds", s.firstTokenSeconds}, {"total_seconds", s.totalSeconds},
                  {"tokens_per_second", s.tokensPerSecond},   {"finish_reason", s.finishReason}};
    if (s.droppedMessages) o.insert("dropped_messages", s.droppedMessages);
    return o;
}

static MessageStats statsFromJson(const QJsonObject& o) {
    MessageStats s;
    s.promptTokens = o.value("prompt_tokens").toInt();
    s.completionTokens = o.value("completion_tokens").toInt();
    s.droppedMessages = o.value("dropped_messages").toInt();
    s.firstTokenSeconds = o.value("first_token_seconds").toDouble();
    s.totalSeconds = o.value("total_seconds").toDouble();
    s.tokensPerSecond = o.value("tokens_per_second").toDouble();
    s.finishReason = o.value("finish_reason").toString();
    return s;
}

std::vector<std::vector<ChatMessageRecord>> Conversation::takeVersions(int index) {
    ChatMessageRecord& head = messages[index];
    std::vector<std::vector<ChatMessageRecord>> all = std::move(head.otherVersions);
    const int at = std::clamp(head.version, 0, int(all.size()));
    head.otherVersions.clear();
    head.version = 0;
    all.insert(all.begin() + at, std::vector<ChatMessageRecord>(messages.begin() + index, messages.end()));
    messages.resize(index);
    return all;
}

void Conversation::putVersions(int index, std::vector<std::vector<ChatMessageRecord>> versions) {
    messages[index].version = int(versions.size());
    messages[index].otherVersions = std::move(versions);
}

bool Conversation::showVersion(int index, int version) {
    if (index < 0 || index >= messages.size() || version < 0 || version >= messages[index].versionCount()) return false;
    auto all = takeVersions(index);
    for (auto& m : all[size_t(version)]) messages.append(std::move(m));
    all.erase(all.begin() + version);
    messages[index].otherVersions = std::move(all);
    messages[index].version = version;
    return true;
}

static QJsonArray messagesToJson(const auto& messages) {
    QJsonArray out;
    for (const ChatMessageRecord& m : messages) {
        QJsonObject o{{"role", m.role}, {"content", m.content}, {"time", m.time.toString(Qt::ISODateWithMs)}};
        if (m.stats) o.insert("stats", statsToJson(*m.stats));
        if (!m.error.isEmpty()) o.insert("error", m.error);
        if (m.json) o.insert("json", true);
        if (m.startsInReasoning) o.insert("starts_in_reasoning", true);
        if (!m.attachments.isEmpty()) {
            QJsonArray files;
            for (const Attachment& a : m.attachments) files.append(QJsonObject{{"name", a.name}, {"text", a.text}});
            o.insert("attachments", files);
        }
        if (!m.otherVersions.empty()) {
            QJsonArray versions;
            for (const auto& v : m.otherVersions) versions.append(messagesToJson(v));
            o.insert("other_versions", versions);
            o.insert("version", m.version);
        }
        out.append(o);
    }
    return out;
}

static QVector<ChatMessageRecord> messagesFromJson(const QJsonArray& a) {
    QVector<ChatMessageRecord> out;
    for (const auto& v : a) {
        const QJsonObject m = v.toObject();
        ChatMessageRecord r;
        r.role = m.value("role").toString();
        r.content = m.value("content").toString();
        r.time = QDateTime::fromString(m.value("time").toString(), Qt::ISODateWithMs);
        if (m.contains("stats")) r.stats = statsFromJson(m.value("stats").toObject());
        r.error = m.value("error").toString();
        r.json = m.value("json").toBool();
        r.startsInReasoning = m.value("starts_in_reasoning").toBool();
        for (const auto& f : m.value("attachments").toArray())
            r.attachments.append({f.toObject().value("name").toString(), f.toObject().value("text").toString()});
        for (const auto& branch : m.value("other_versions").toArray()) {
            const auto tail = messagesFromJson(branch.toArray());
            if (!tail.isEmpty()) r.otherVersions.emplace_back(tail.begin(), tail.end());
        }
        r.version = std::clamp(m.value("version").toInt(), 0, int(r.otherVersions.size()));
        out.append(std::move(r));
    }
    return out;
}

QJsonObject Conversation::toJson() const {
    const QJsonArray msgs = messagesToJson(messages);
    QJsonObject o{{"version", 1},
                  {"id", id},
                  {"title", title},
                  {"system_prompt", systemPrompt},
                  {"sampling", sampling.toJson()},
                  {"created", created.toString(Qt::ISODateWithMs)},
                  {"updated", updated.toString(Qt::ISODateWithMs)},
                  {"messages", msgs}};
    if (!templateKwargs.isEmpty()) o.insert("template_kwargs", templateKwargs);
    if (contextOverflow != QLatin1String("stop")) o.insert("context_overflow", contextOverflow);
    if (!thinking) o.insert("thinking", false);
    putJsonOutput(o, jsonOutput);
    if (!open) o.insert("open", false);
    return o;
}

Conversation Conversation::fromJson(const QJsonObject& o) {
    Conversation c;
    c.id = o.value("id").toString();
    c.title = o.value("title").toString();
    c.systemPrompt = o.value("system_prompt").toString();
    c.sampling = SamplingSettings::fromJson(o.value("sampling").toObject());
    c.templateKwargs = o.value("template_kwargs").toObject();
    c.contextOverflow = o.value("context_overflow").toString(c.contextOverflow);
    c.created = QDateTime::fromString(o.value("created").toString(), Qt::ISODateWithMs);
    c.updated = QDateTime::fromString(o.value("updated").toString(), Qt::ISODateWithMs);
    c.thinking = o.value("thinking").toBool(true);
    c.jsonOutput = jsonOutputFrom(o);
    c.open = o.value("open").toBool(true);
    c.messages = messagesFromJson(o.value("messages").toArray());
    return c;
}

QString Conversation::toMarkdown() const {
    QString md = QStringLiteral("# %1\n\n").arg(title);
    if (!systemPrompt.isEmpty()) md += QStringLiteral("> **System:** %1\n\n").arg(systemPrompt);
    for (const auto& m : messages) {
        md += m.role == QLatin1String("user") ? QStringLiteral("## You\n\n") : QStringLiteral("## Assistant\n\n");
        for (const Attachment& a : m.attachments) md += QStringLiteral("*Attached: %1*\n\n").arg(a.name);
        if (m.role == QLatin1String("assistant") && m.json) {
            md += QStringLiteral("```json\n%1\n```\n\n").arg(m.prettyJson().trimmed());
        } else if (m.role == QLatin1String("assistant")) {
            // The reasoning as a quote above the answer, as the tab shows it above the reply.
            const auto p = m.parts();
            if (!p.reasoning.trimmed().isEmpty())
                md += QStringLiteral("> **Thinking:**\n> ") +
                      p.reasoning.trimmed().replace(QLatin1Char('\n'), QStringLiteral("\n> ")) + QStringLiteral("\n\n");
            md += p.answer.trimmed() + QStringLiteral("\n\n");
        } else {
            md += m.content.trimmed() + QStringLiteral("\n\n");
        }
        if (m.stats)
            md += QStringLiteral("*%1 prompt + %2 completion tokens, %3 tokens/s*\n\n")
                      .arg(m.stats->promptTokens)
                      .arg(m.stats->completionTokens)
                      .arg(m.stats->tokensPerSecond, 0, 'f', 1);
    }
    return md;
}

}  // namespace lmw::gui
