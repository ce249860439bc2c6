#include "lmw/gui/chat_controller.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QStringDecoder>
#include <QRandomGenerator>
#include <QUuid>
#include <memory>
#include <poppler-qt6.h>
#include <algorithm>

#include "lmw/chat_template.h"
#include "lmw/output_parser.h"

namespace lmw::gui {

ChatController::ChatController(EngineController* engine, ConversationStore store, QObject* parent)
    : QObject(parent), m_engine(engine), m_store(std::move(store)), m_presets(m_store.loadPresets()) {
    connect(m_engine, &EngineController::generationDelta, this,
            [this](quint64 id, const QString& text, int tokens) { onDelta(id, text, tokens); });
    connect(m_engine, &EngineController::generationFinished, this, &ChatController::onFinished);
    connect(m_engine, &EngineController::unloaded, this, &ChatController::onEngineGone);
}

void ChatController::restore() {
    m_conversations = m_store.loadAll();
    for (const auto& c : m_conversations)
        if (c.open) emit conversationAdded(c.id);
    if (ids().isEmpty()) newConversation();
    emit historyChanged();
}

QStringList ChatController::ids() const {
    QStringList out;
    for (const auto& c : m_conversations)
        if (c.open) out << c.id;
    return out;
}

QStringList ChatController::closedIds() const {
    QVector<const Conversation*> closed;
    for (const auto& c : m_conversations)
        if (!c.open) closed << &c;
    std::stable_sort(closed.begin(), closed.end(), [](auto* a, auto* b) { return a->updated > b->updated; });
    QStringList out;
    for (auto* c : closed) out << c->id;
    return out;
}

QStringList ChatController::search(const QString& text) const {
    const QString needle = text.trimmed();
    QVector<const Conversation*> hits;
    for (const auto& c : m_conversations) {
        bool hit = needle.isEmpty() || c.title.contains(needle, Qt::CaseInsensitive);
        for (int i = 0; !hit && i < c.messages.size(); ++i) hit = c.messages[i].content.contains(needle, Qt::CaseInsensitive);
        if (hit) hits << &c;
    }
    std::stable_sort(hits.begin(), hits.end(), [](auto* a, auto* b) { return a->updated > b->updated; });
    QStringList out;
    for (auto* c : hits) out << c->id;
    return out;
}

bool ChatController::undoRemove() {
    if (!m_lastRemoved || find(m_lastRemoved->id)) return false;
    m_conversations.append(*m_lastRemoved);
    m_lastRemoved.reset();
    Conversation& c = m_conversations.last();
    if (!m_store.save(c))
        emit errorOccurred(tr("Could not restore the conversation"),
                           tr("Writing %1 failed. Is the disk full or read-only?").arg(m_store.dir()));
    if (c.open) emit conversationAdded(c.id);
    emit historyChanged();
    return true;
}

const Conversation* ChatController::conversation(const QString& id) const {
    for (const auto& c : m_conversations)
        if (c.id == id) return &c;
    return nullptr;
}

Conversation* ChatController::find(const QString& id) {
    for (auto& c : m_conversations)
        if (c.id == id) return &c;
    return nullptr;
}

void ChatController::touchAndSave(Conversation& c) {
    c.updated = QDateTime::currentDateTime();
    if (!m_store.save(c))
        emit errorOccurred(tr("Could not save the conversation"),
                           tr("Writing %1 failed. Is the disk full or read-only?").arg(m_store.dir()));
    emit historyChanged();
}

QStringList ChatController::presetNames() const {
    QStringList names;
    for (const ChatPreset& p : m_presets.list) names << p.name;
    return names;
}

const ChatPreset* ChatController::preset(const QString& name) const {
    for (const ChatPreset& p : m_presets.list)
        if (p.name == name) return &p;
    return nullptr;
}

void ChatController::applyTo(Conversation& c, const ChatPreset& p) {
    c.systemPrompt = p.systemPrompt;
    c.sampling = p.sampling;
    c.contextOverflow = p.contextOverflow;
    c.thinking = p.thinking;
    c.jsonOutput = p.jsonOutput;
}

void ChatController::savePresets() {
    if (!m_store.savePresets(m_presets))
        emit errorOccurred(tr("Could not save the presets"),
                           tr("Writing %1 failed. Is the disk full or read-only?").arg(m_store.dir()));
    emit presetsChanged();
}

bool ChatController::savePreset(const QString& id, const QString& name) {
    const Conversation* c = find(id);
    const QString n = name.trimmed();
    if (!c || n.isEmpty()) return false;
    ChatPreset p{n, c->systemPrompt, c->sampling, c->contextOverflow, c->thinking, c->jsonOutput};
    auto it = std::find_if(m_presets.list.begin(), m_presets.list.end(), [&](const ChatPreset& x) { return x.name == n; });
    if (it != m_presets.list.end()) *it = p;
    else m_presets.list.append(p);
    savePresets();
    return true;
}

bool ChatController::applyPreset(const QString& id, const QString& name) {
    Conversation* c = find(id);
    const ChatPreset* p = preset(name);
    if (!c || !p) return false;
    applyTo(*c, *p);
    touchAndSave(*c);
    emit conversationChanged(id);
    return true;
}

void ChatController::removePreset(const QString& name) {
    const auto n = m_presets.list.removeIf([&](const ChatPreset& p) { return p.name == name; });
    if (n == 0) return;
    if (m_presets.defaultName == name) m_presets.defaultName.clear();
    savePresets();
}

void ChatController::setDefaultPreset(const QString& name) {
    if (!name.isEmpty() && !preset(name)) return;
    m_presets.defaultName = name;
    savePresets();
}

QString ChatController::newConversation(const QString& title) {
    Conversation c;
    if (const ChatPreset* p = preset(m_presets.defaultName)) applyTo(c, *p);
    c.id = QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-hhmmss-")) +
           QUuid::createUuid().toString(QUuid::Id128).left(8);
    c.title = title.isEmpty() ? tr("Chat %1").arg(m_conversations.size() + 1) : title;
    c.created = c.updated = QDateTime::currentDateTime();
    m_conversations.append(c);
    touchAndSave(m_conversations.last());
    emit conversationAdded(c.id);
    return c.id;
}

void ChatController::closeConversation(const QString& id) {
    Conversation* c = find(id);
    if (!c || !c->open) return;
    stop(id);  // the reply's final event still finds the conversation and saves it
    c->open = false;
    touchAndSave(*c);
    emit conversationRemoved(id);
}

bool ChatController::reopenConversation(const QString& id) {
    Conversation* c = find(id);
    if (!c || c->open) return false;
    // Tab order is the conversations' order: a reopened one goes last.
    Conversation moved = *c;
    m_conversations.removeIf([&](const Conversation& x) { return x.id == id; });
    moved.open = true;
    m_conversations.append(moved);
    touchAndSave(m_conversations.last());
    emit conversationAdded(id);
    return true;
}

void ChatController::removeConversation(const QString& id) {
    stop(id);
    for (int i = 0; i < m_conversations.size(); ++i) {
        if (m_conversations[i].id != id) continue;
        m_lastRemoved = m_conversations.takeAt(i);
        m_store.remove(id);
        if (m_running.contains(id)) {  // its final event will find no conversation and is dropped
            m_byRequest.remove(m_running[id].requestId);
            m_running.remove(id);
        }
        emit conversationRemoved(id);
        emit historyChanged();
        return;
    }
}

void ChatController::rename(const QString& id, const QString& title) {
    Conversation* c = find(id);
    if (!c || title.trimmed().isEmpty() || c->title == title.trimmed()) return;
    c->title = title.trimmed();
    touchAndSave(*c);
    emit conversationChanged(id);
}

void ChatController::setSystemPrompt(const QString& id, const QString& prompt) {
    Conversation* c = find(id);
    if (!c || c->systemPrompt == prompt) return;
    c->systemPrompt = prompt;
    touchAndSave(*c);
    emit conversationChanged(id);
}

void ChatController::setContextOverflow(const QString& id, const QString& policy) {
    Conversation* c = find(id);
    lmw::engine::ContextOverflow p;
    if (!c || c->contextOverflow == policy || !lmw::engine::parseContextOverflow(policy.toStdString(), p)) return;
    c->contextOverflow = policy;
    touchAndSave(*c);
    emit conversationChanged(id);
}

void ChatController::setSampling(const QString& id, const SamplingSettings& s) {
    Conversation* c = find(id);
    if (!c || c->sampling == s) return;
    c->sampling = s;
    touchAndSave(*c);
    emit conversationChanged(id);
}

namespace {

nlohmann::ordered_json toKwargs(const QJsonObject& o) {
    return nlohmann::ordered_json::parse(QJsonDocument(o).toJson(QJsonDocument::Compact).toStdString());
}

}  // namespace

bool ChatController::setTemplateOptions(const QString& id, const QString& json, QString* error) {
    Conversation* c = find(id);
    if (!c) return false;
    QJsonObject kwargs;
    if (!json.trimmed().isEmpty()) {
        QJsonParseError pe;
        const QJsonDocument doc = QJsonDocument::fromJson(json.toUtf8(), &pe);
        QString problem;
        if (pe.error != QJsonParseError::NoError)
            problem = tr("Not valid JSON: %1 (at character %2).").arg(pe.errorString()).arg(pe.offset + 1);
        else if (!doc.isObject())
            problem = tr("Write a JSON object, for example {\"enable_thinking\": false}.");
        if (problem.isEmpty()) {
            kwargs = doc.object();
            try {
                lmw::engine::ChatTemplate::checkKwargs(toKwargs(kwargs));
            } catch (const lmw::Error& e) {
                problem = QString::fromStdString(e.what());
            }
        }
        if (!problem.isEmpty()) {
            if (error) *error = problem;
            return false;
        }
    }
    if (c->templateKwargs != kwargs) {
        c->templateKwargs = kwargs;
        touchAndSave(*c);
        emit conversationChanged(id);
    }
    return true;
}

void ChatController::setThinking(const QString& id, bool on) {
    Conversation* c = find(id);
    if (!c || c->thinking == on) return;
    c->thinking = on;
    touchAndSave(*c);
    emit conversationChanged(id);
}

std::shared_ptr<const lmw::engine::Grammar> ChatController::compileSchema(const QString& schema, QString* error) {
    auto fail = [&](const QString& why) -> std::shared_ptr<const lmw::engine::Grammar> {
        if (error) *error = why;
        return nullptr;
    };
    if (schema.trimmed().isEmpty()) return lmw::engine::Grammar::anyJsonObject();
    nlohmann::ordered_json j;  // ordered: the reply's keys follow the schema's order
    try {
        j = nlohmann::ordered_json::parse(schema.toStdString());
    } catch (const nlohmann::json::parse_error& e) {
        // Qt's parser words it for people ("unterminated string (at character 12)").
        QJsonParseError pe;
        QJsonDocument::fromJson(schema.toUtf8(), &pe);
        return fail(pe.error != QJsonParseError::NoError
                        ? tr("Not valid JSON: %1 (at character %2).").arg(pe.errorString()).arg(pe.offset + 1)
                        : tr("Not valid JSON: %1").arg(QString::fromStdString(e.what())));
    }
    if (!j.is_object()) return fail(tr("A JSON Schema is an object, for example {\"type\": \"object\"}."));
    try {
        return lmw::engine::Grammar::fromJsonSchema(j);
    } catch (const lmw::Error& e) {
        return fail(QString::fromStdString(e.what()));
    }
}

bool ChatController::schemaReady(const Conversation& c) {
    QString error;
    if (!c.jsonOutput.enabled || compileSchema(c.jsonOutput.schema, &error)) return true;
    emit errorOccurred(tr("The JSON schema is not valid"), error);
    return false;
}

bool ChatController::setJsonOutput(const QString& id, const JsonOutput& json, QString* error) {
    Conversation* c = find(id);
    if (!c) return false;
    if (c->jsonOutput != json) {
        c->jsonOutput = json;
        touchAndSave(*c);
        emit conversationChanged(id);
    }
    return !json.enabled || compileSchema(json.schema, error) != nullptr;
}

std::optional<Attachment> ChatController::readAttachment(const QString& path, QString* error) {
    const QFileInfo fi(path);
    auto fail = [&](const QString& why) -> std::optional<Attachment> {
        if (error) *error = why;
        return std::nullopt;
    };
    if (fi.suffix().compare(QLatin1String("pdf"), Qt::CaseInsensitive) == 0) {
        // The page text poppler lays out; the file may be large (images), its text may not.
        const std::unique_ptr<Poppler::Document> doc = Poppler::Document::load(path);
        if (!doc) return fail(tr("%1 cannot be read as a PDF (damaged, or not a PDF file).").arg(fi.fileName()));
        if (doc->isLocked()) return fail(tr("%1 is password-protected.").arg(fi.fileName()));
        QString text;
        for (int i = 0; i < doc->numPages(); ++i) {
            const std::unique_ptr<Poppler::Page> page = doc->page(i);
            if (page) text += page->text(QRectF()).trimmed() + QStringLiteral("\n\n");
            if (text.size() > kMaxAttachmentBytes)
                return fail(tr("%1 has more than %2 MB of text; attachments can be at most that.")
                                .arg(fi.fileName())
                                .arg(kMaxAttachmentBytes >> 20));
        }
        if (text.trimmed().isEmpty())
            return fail(tr("%1 has no text to read (a scanned PDF holds only pictures).").arg(fi.fileName()));
        return Attachment{fi.fileName(), text.trimmed()};
    }
    if (fi.size() > kMaxAttachmentBytes)
        return fail(tr("%1 is %2 MB; attachments can be at most %3 MB.")
                        .arg(fi.fileName())
                        .arg(double(fi.size()) / (1 << 20), 0, 'f', 1)
                        .arg(kMaxAttachmentBytes >> 20));
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return fail(tr("%1 cannot be read: %2").arg(fi.fileName(), f.errorString()));
    const QByteArray bytes = f.readAll();
    QStringDecoder utf8(QStringDecoder::Utf8);
    const QString text = utf8.decode(bytes);
    if (utf8.hasError() || bytes.contains('\0'))
        return fail(tr("%1 is not a text file (only UTF-8 text, Markdown and code can be attached).").arg(fi.fileName()));
    return Attachment{fi.fileName(), text};
}

bool ChatController::send(const QString& id, const QString& text, const QVector<Attachment>& attachments) {
    Conversation* c = find(id);
    if (!c) return false;
    if (text.trimmed().isEmpty() && attachments.isEmpty()) return false;
    if (isGenerating(id)) {
        emit errorOccurred(tr("Still answering"), tr("Wait for the reply or press Stop before sending again."));
        return false;
    }
    if (!m_engine->isReady()) {
        emit errorOccurred(tr("No model loaded"), tr("Open a model folder in the Models view and load it first."));
        return false;
    }
    if (!schemaReady(*c)) return false;
    return submit(id, text, attachments, {});
}

bool ChatController::submit(const QString& id, const QString& text, const QVector<Attachment>& attachments,
                            Versions earlier) {
    Conversation* c = find(id);
    const bool firstMessage = c->messages.isEmpty();
    c->messages.append({QStringLiteral("user"), text, QDateTime::currentDateTime(), std::nullopt, {}, attachments});
    if (!earlier.empty()) c->putVersions(int(c->messages.size()) - 1, std::move(earlier));
    if (firstMessage && c->title.startsWith(tr("Chat "))) {  // name the tab after the first question
        QString t = text.trimmed().isEmpty() ? attachments.first().name : text.simplified();
        c->title = t.length() > 32 ? t.left(30) + QStringLiteral("…") : t;
        emit conversationChanged(id);
    }
    return startReply(id);
}

bool ChatController::startReply(const QString& id, Versions earlier) {
    Conversation* c = find(id);
    lmw::engine::Request req;
    if (!c->systemPrompt.trimmed().isEmpty()) req.messages.push_back({"system", c->systemPrompt.toStdString()});
    // Earlier replies go back with their <think> blocks: the template decides what to keep of them
    // (Qwen3's drops the reasoning of all but the turn in progress).
    for (const auto& m : c->messages) req.messages.push_back({m.role.toStdString(), m.promptText().toStdString()});
    req.sampling = c->sampling.toParams();
    if (!c->templateKwargs.isEmpty()) req.templateKwargs = toKwargs(c->templateKwargs);
    // The Thinking switch, where the template has one; enable_thinking written in the template
    // options wins over it (the tab shows the switch set by them).
    if (!c->thinking && m_engine->templateSupportsThinking() && !c->templateKwargs.contains(QLatin1String("enable_thinking"))) {
        if (req.templateKwargs.is_null()) req.templateKwargs = nlohmann::ordered_json::object();
        req.templateKwargs["enable_thinking"] = false;
    }
    if (c->jsonOutput.enabled) {
        QString error;
        req.grammar = compileSchema(c->jsonOutput.schema, &error);
        if (!req.grammar) {
            emit errorOccurred(tr("The JSON schema is not valid"), error);
            return false;
        }
    }
    if (!req.sampling.seed) req.sampling.seed = QRandomGenerator::global()->generate64() >> 1;
    lmw::engine::parseContextOverflow(c->contextOverflow.toStdString(), req.contextOverflow);  // else Stop

    ChatMessageRecord reply;
    reply.role = QStringLiteral("assistant");
    reply.time = QDateTime::currentDateTime();
    reply.json = c->jsonOutput.enabled;
    // A template that ends the prompt inside <think> (DeepSeek-R1 distills): the reply starts in
    // its reasoning, with no opening tag to find.
    if (const auto engine = m_engine->engine();
        !reply.json && engine && engine->chatTemplate().source().find("<think>") != std::string::npos) {
        try {
            reply.startsInReasoning = lmw::engine::promptOpensReasoning(engine->renderChat(req.messages, true, req.templateKwargs));
        } catch (const lmw::Error&) {
            // The engine reports the same failure for the request itself.
        }
    }
    c->messages.append(std::move(reply));
    if (!earlier.empty()) c->putVersions(int(c->messages.size()) - 1, std::move(earlier));
    touchAndSave(*c);
    emit messagesReset(id);

    const auto requestId = m_engine->submit(std::move(req));
    if (requestId == 0) {
        c->messages.last().error = tr("No model loaded");
        emit messageUpdated(id, int(c->messages.size()) - 1);
        return false;
    }
    Running run;
    run.requestId = requestId;
    run.messageIndex = int(c->messages.size()) - 1;
    run.clock.start();
    run.promptBudget = m_engine->sessionLength();
    run.maxTokens = c->sampling.maxTokens;
    m_running.insert(id, run);
    m_byRequest.insert(requestId, id);
    emit generatingChanged(id, true);
    return true;
}

void ChatController::stop(const QString& id) {
    auto it = m_running.find(id);
    if (it == m_running.end() || it->stopRequested) return;
    it->stopRequested = true;
    m_engine->cancel(it->requestId);
}

bool ChatController::regenerate(const QString& id) {
    Conversation* c = find(id);
    if (!c || isGenerating(id) || c->messages.isEmpty()) return false;
    if (!m_engine->isReady()) {
        emit errorOccurred(tr("No model loaded"), tr("Open a model folder in the Models view and load it first."));
        return false;
    }
    if (!schemaReady(*c)) return false;
    if (c->messages.last().role != QLatin1String("assistant")) return startReply(id);  // a reply that never came
    const int at = int(c->messages.size()) - 1;
    if (at == 0) return false;
    auto versions = c->takeVersions(at);
    // A reply that failed or stopped before any text is not worth keeping as a version.
    std::erase_if(versions, [](const auto& v) { return v.size() == 1 && v.front().content.isEmpty(); });
    return startReply(id, std::move(versions));
}

bool ChatController::editLastUserMessage(const QString& id, const QString& text) {
    Conversation* c = find(id);
    if (!c || isGenerating(id) || text.trimmed().isEmpty()) return false;
    int last = -1;
    for (int i = int(c->messages.size()) - 1; i >= 0 && last < 0; --i)
        if (c->messages[i].role == QLatin1String("user")) last = i;
    if (last < 0) return false;
    if (!m_engine->isReady()) {
        emit errorOccurred(tr("No model loaded"), tr("Open a model folder in the Models view and load it first."));
        return false;
    }
    if (!schemaReady(*c)) return false;
    const QVector<Attachment> files = c->messages[last].attachments;  // the edit keeps them
    return submit(id, text, files, c->takeVersions(last));
}

bool ChatController::showVersion(const QString& id, int index, int version) {
    Conversation* c = find(id);
    if (!c || isGenerating(id) || !c->showVersion(index, version)) return false;
    touchAndSave(*c);
    emit messagesReset(id);
    return true;
}

bool ChatController::exportMarkdown(const QString& id, const QString& path) const {
    const Conversation* c = conversation(id);
    return c && ConversationStore::exportMarkdown(*c, path);
}

void ChatController::onDelta(quint64 requestId, const QString& text, int tokens) {
    auto it = m_byRequest.find(requestId);
    if (it == m_byRequest.end()) return;
    const QString id = *it;
    Conversation* c = find(id);
    auto run = m_running.find(id);
    if (run == m_running.end()) return;
    if (tokens > 0 && run->firstTokenSeconds < 0) run->firstTokenSeconds = run->clock.elapsed() / 1000.0;
    run->tokens += tokens;
    const int index = run->messageIndex;
    if (!c || index < 0 || index >= c->messages.size()) return;
    c->messages[index].content += text;
    emit messageUpdated(id, index);
}

void ChatController::onFinished(quint64 requestId, const GenerationResult& r) {
    auto it = m_byRequest.find(requestId);
    if (it == m_byRequest.end()) return;
    finishRunning(*it, r);
}

void ChatController::finishRunning(const QString& id, const GenerationResult& r) {
    Running run = m_running.take(id);
    m_byRequest.remove(run.requestId);
    Conversation* c = find(id);
    if (c && run.messageIndex >= 0 && run.messageIndex < c->messages.size()) {
        auto& m = c->messages[run.messageIndex];
        // An engine torn down mid-reply ends it without timings: take what the stream showed.
        GenerationResult t = r;
        if (t.completionTokens < run.tokens) t.completionTokens = run.tokens;
        if (t.firstTokenSeconds <= 0 && run.firstTokenSeconds > 0) t.firstTokenSeconds = run.firstTokenSeconds;
        if (t.totalSeconds <= 0 || t.totalSeconds < t.firstTokenSeconds) t.totalSeconds = run.clock.elapsed() / 1000.0;
        MessageStats s;
        s.promptTokens = t.promptTokens;
        s.completionTokens = t.completionTokens;
        s.droppedMessages = t.droppedMessages;
        s.firstTokenSeconds = t.firstTokenSeconds;
        s.totalSeconds = t.totalSeconds;
        s.tokensPerSecond = t.tokensPerSecond();
        s.finishReason = t.finishReason;
        // Cancelled without Stop: the model was unloaded under it.
        if (s.finishReason == QLatin1String("cancelled") && !run.stopRequested) s.finishReason = QStringLiteral("unloaded");
        // Cut off by the session length, not by Max tokens: say so.
        if (s.finishReason == QLatin1String("length") && run.promptBudget > 0 &&
            s.promptTokens + s.completionTokens >= run.promptBudget && s.completionTokens < run.maxTokens)
            s.finishReason = QStringLiteral("context");
        m.stats = s;
        if (r.finishReason == QLatin1String("error")) m.error = r.error;
        touchAndSave(*c);
        emit messageUpdated(id, run.messageIndex);
    }
    emit generatingChanged(id, false);
    emit generationFinished(id, r);
    if (r.contextExceeded)
        emit contextFull(id, r.error);
    else if (r.finishReason == QLatin1String("error"))
        emit errorOccurred(tr("The reply failed"), r.error.isEmpty() ? tr("The engine reported an error.") : r.error);
}

void ChatController::onEngineGone() {
    // No final event comes: the stats are what the stream showed (the prompt size is unknown).
    const auto ids = m_running.keys();
    for (const QString& id : ids) {
        const Running& run = m_running[id];
        GenerationResult r;
        r.finishReason = QStringLiteral("unloaded");
        r.completionTokens = run.tokens;
        r.firstTokenSeconds = std::max(0.0, run.firstTokenSeconds);
        r.totalSeconds = run.clock.elapsed() / 1000.0;
        finishRunning(id, r);
    }
}

}  // namespace lmw::gui
