#pragma once
// Engine settings the user picks in the Models view; persisted in QSettings and applied on (re)load.
#include <QString>
#include <QStringList>

#include "lmw/engine.h"

namespace lmw::gui {

struct EngineSettings {
    QString backend = QStringLiteral("auto");  // "auto", "cuda", "cpu"
    int quantPolicy = 0;                        // KV cache: 0 = 16-bit, 8 = int8, 4 = int4
    double cacheFraction = 0.8;                 // of free memory after weights
    int sessionLen = 2048;                      // capped by the model's context length at load time
    int maxBatchSize = 16;

    static EngineSettings load();  // from QSettings (defaults where unset)
    void save() const;
    lmw::engine::EngineConfig toConfig(const QString& modelDir, int modelContext = 0) const;
    bool operator==(const EngineSettings&) const = default;
};

// Most recently opened model folders, newest first, at most `max`.
class RecentModels {
public:
    static QStringList list();
    static void add(const QString& dir, int max = 8);
    static void remove(const QString& dir);
    static QString last();
};

}  // namespace lmw::gui
