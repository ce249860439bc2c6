#include "lmw/gui/engine_settings.h"

#include <QSettings>
#include <algorithm>

namespace lmw::gui {

EngineSettings EngineSettings::load() {
    QSettings s;
    EngineSettings e;
    s.beginGroup(QStringLiteral("engine"));
    e.backend = s.value(QStringLiteral("backend"), e.backend).toString();
    e.quantPolicy = s.value(QStringLiteral("quantPolicy"), e.quantPolicy).toInt();
    e.cacheFraction = s.value(QStringLiteral("cacheFraction"), e.cacheFraction).toDouble();
    e.sessionLen = s.value(QStringLiteral("sessionLen"), e.sessionLen).toInt();
    e.maxBatchSize = s.value(QStringLiteral("maxBatchSize"), e.maxBatchSize).toInt();
    s.endGroup();
    if (e.quantPolicy != 0 && e.quantPolicy != 4 && e.quantPolicy != 8) e.quantPolicy = 0;
    if (e.backend != QLatin1String("cpu") && e.backend != QLatin1String("cuda")) e.backend = QStringLiteral("auto");
    return e;
}

void EngineSettings::save() const {
    QSettings s;
    s.beginGroup(QStringLiteral("engine"));
    s.setValue(QStringLiteral("backend"), backend);
    s.setValue(QStringLiteral("quantPolicy"), quantPolicy);
    s.setValue(QStringLiteral("cacheFraction"), cacheFraction);
    s.setValue(QStringLiteral("sessionLen"), sessionLen);
    s.setValue(QStringLiteral("maxBatchSize"), maxBatchSize);
    s.endGroup();
}

lmw::engine::EngineConfig EngineSettings::toConfig(const QString& modelDir, int modelContext) const {
    lmw::engine::EngineConfig c;
    c.modelDir = modelDir.toStdString();
    c.backend = backend.toStdString();
    c.quantPolicy = quantPolicy;
    c.cacheMaxEntryCount = cacheFraction;
    // A session longer than the model was trained for only makes sense with rope scaling; the
    // engine decides (0 = the model's own context).
    c.sessionLen = (modelContext > 0 && sessionLen > modelContext) ? modelContext : sessionLen;
    c.maxBatchSize = maxBatchSize;
    return c;
}

QStringList RecentModels::list() { return QSettings().value(QStringLiteral("recentModels")).toStringList(); }

void RecentModels::add(const QString& dir, int max) {
    QStringList l = list();
    l.removeAll(dir);
    l.prepend(dir);
    while (l.size() > max) l.removeLast();
    QSettings().setValue(QStringLiteral("recentModels"), l);
}

void RecentModels::remove(const QString& dir) {
    QStringList l = list();
    l.removeAll(dir);
    QSettings().setValue(QStringLiteral("recentModels"), l);
}

QString RecentModels::last() {
    QStringList l = list();
    return l.isEmpty() ? QString() : l.first();
}

}  // namespace lmw::gui
