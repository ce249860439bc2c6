#include "lmw/gui/conversation_store.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonObject>
#include <QJsonDocument>
#include <QSaveFile>
#include <QStandardPaths>
#include <algorithm>

namespace lmw::gui {

ConversationStore::ConversationStore(QString dir) : m_dir(std::move(dir)) {
    if (m_dir.isEmpty())
        m_dir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/conversations");
    QDir().mkpath(m_dir);
}

ConversationStore::Presets ConversationStore::loadPresets() const {
    Presets p;
    QFile f(m_dir + QStringLiteral("/presets/presets.json"));
    if (!f.open(QIODevice::ReadOnly)) return p;
    const QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
    for (const auto& v : o.value("presets").toArray()) {
        ChatPreset c = ChatPreset::fromJson(v.toObject());
        if (!c.name.isEmpty()) p.list.append(c);
    }
    p.defaultName = o.value("default").toString();
    return p;
}

bool ConversationStore::savePresets(const Presets& p) const {
    QDir().mkpath(m_dir + QStringLiteral("/presets"));
    QSaveFile f(m_dir + QStringLiteral("/presets/presets.json"));
    if (!f.open(QIODevice::WriteOnly)) return false;
    QJsonArray list;
    for (const ChatPreset& c : p.list) list.append(c.toJson());
    f.write(QJsonDocument(QJsonObject{{"presets", list}, {"default", p.defaultName}}).toJson());
    return f.commit();
}

QString ConversationStore::path(const QString& id) const { return m_dir + QLatin1Char('/') + id + QStringLiteral(".json"); }

QVector<Conversation> ConversationStore::loadAll() const {
    QVector<Conversation> out;
    const auto files = QDir(m_dir).entryInfoList({QStringLiteral("*.json")}, QDir::Files);
    for (const QFileInfo& fi : files) {
        QFile f(fi.absoluteFilePath());
        if (!f.open(QIODevice::ReadOnly)) continue;
        const auto doc = QJsonDocument::fromJson(f.readAll());
        if (!doc.isObject()) continue;
        Conversation c = Conversation::fromJson(doc.object());
        if (c.id.isEmpty()) c.id = fi.completeBaseName();
        out.append(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const Conversation& a, const Conversation& b) {
        return a.created != b.created ? a.created < b.created : a.id < b.id;
    });
    return out;
}

bool ConversationStore::save(const Conversation& c) const {
    QSaveFile f(path(c.id));
    if (!f.open(QIODevice::WriteOnly)) return false;
    f.write(QJsonDocument(c.toJson()).toJson(QJsonDocument::Indented));
    return f.commit();
}

bool ConversationStore::remove(const QString& id) const { return QFile::remove(path(id)); }

bool ConversationStore::exportMarkdown(const Conversation& c, const QString& path) {
    QSaveFile f(path);
    if (!f.open(QIODevice::WriteOnly)) return false;
    f.write(c.toMarkdown().toUtf8());
    return f.commit();
}

}  // namespace lmw::gui
