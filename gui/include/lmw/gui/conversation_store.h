#pragma once
// Conversations on disk: one JSON file per conversation in a folder (the app data folder by default).
#include <QString>
#include <QVector>

#include "lmw/gui/conversation.h"

namespace lmw::gui {

class ConversationStore {
public:
    // dir empty: <AppDataLocation>/conversations
    explicit ConversationStore(QString dir = {});
    const QString& dir() const { return m_dir; }

    QVector<Conversation> loadAll() const;  // oldest first; unreadable files are skipped
    bool save(const Conversation& c) const;  // atomic (QSaveFile)
    bool remove(const QString& id) const;
    static bool exportMarkdown(const Conversation& c, const QString& path);

    // The presets, in <dir>/presets/presets.json (beside the conversations, not among them).
    struct Presets {
        QVector<ChatPreset> list;
        QString defaultName;  // new conversations start from this one; empty: from the built-in defaults
    };
    Presets loadPresets() const;
    bool savePresets(const Presets& p) const;

private:
    QString path(const QString& id) const;
    QString m_dir;
};

}  // namespace lmw::gui
