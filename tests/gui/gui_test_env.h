#pragma once
// Keeps GUI tests off the user's files: QStandardPaths test mode, QSettings in a temp folder, and
// a temp folder for conversations. Create one at the start of initTestCase().
#include <QCoreApplication>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>

#include "lmw/engine.h"
#include "lmw/gui/main_window.h"
#include "test_util.h"

namespace lmw::test {

struct GuiTestEnv {
    QTemporaryDir dir;
    GuiTestEnv() {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("LMWorkbenchTest"));
        QCoreApplication::setApplicationName(QStringLiteral("lmworkbench-test"));
        QSettings::setDefaultFormat(QSettings::IniFormat);
        QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, dir.path() + QStringLiteral("/settings"));
        QSettings().clear();
        lmw::gui::initResources();
    }
    QString conversations() const { return dir.path() + QStringLiteral("/conversations"); }
    QString path(const QString& name) const { return dir.path() + QLatin1Char('/') + name; }
};

inline QString model(const std::string& name = "stories260K") { return QString::fromStdString(modelDir(name)); }

// A small engine config for the CPU: short sessions keep the KV cache tiny.
inline lmw::engine::EngineConfig smallConfig(const std::string& name = "stories260K") {
    lmw::engine::EngineConfig c;
    c.modelDir = modelDir(name);
    c.backend = "cpu";
    c.sessionLen = 512;
    c.maxBatchSize = 8;
    c.threads = 2;
    return c;
}

}  // namespace lmw::test
