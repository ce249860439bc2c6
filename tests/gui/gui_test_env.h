#pragma once
// Keeps GUI tests off the user's files: QStandardPaths test mode, QSettings in a temp folder, and
// a temp folder for conversations. Create one at the start of initTestCase().
#include <QCoreApplication>
#include <QDir>
#include <QImage>
#include <QSet>
#include <QSignalSpy>
#include <QTest>
#include <QWidget>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>

#include "lmw/engine.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/engine_settings.h"
#include "lmw/gui/main_window.h"
#include "lmw/gui/model_view.h"
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

// The main window as the screenshots show it: 1280x800, the CPU with a 512-token session, `model`
// loaded. False when it did not load within a minute.
inline bool showLoaded(lmw::gui::MainWindow& w, const QString& model) {
    w.setDialogsEnabled(false);
    w.resize(1280, 800);
    w.show();
    lmw::gui::EngineSettings es;
    es.backend = QStringLiteral("cpu");
    es.sessionLen = 512;
    es.maxBatchSize = 8;
    w.modelView()->setSettings(es);
    QSignalSpy loaded(w.engine(), &lmw::gui::EngineController::loaded);
    w.startWith(model);
    return loaded.wait(60000);
}

// Saves a picture of w as NAME.png in $LMW_SCREENSHOT_DIR (else <build>/screenshots), after
// checking it is a real rendering (many colours, not a blank or black frame).
inline void saveScreenshot(QWidget* w, const QString& name) {
    QTest::qWait(150);  // let queued layout / paint events settle
    const QImage img = w->grab().toImage();
    QVERIFY(!img.isNull());
    QSet<QRgb> colours;
    for (int y = 0; y < img.height(); y += 4)
        for (int x = 0; x < img.width(); x += 4) colours.insert(img.pixel(x, y));
    QVERIFY2(colours.size() > 40, qPrintable(name + QStringLiteral(": %1 colours").arg(colours.size())));
    const QString dir = qEnvironmentVariableIsSet("LMW_SCREENSHOT_DIR") ? qEnvironmentVariable("LMW_SCREENSHOT_DIR")
                                                                          : QStringLiteral(LMW_BINARY_DIR "/screenshots");
    QDir().mkpath(dir);
    const QString file = dir + QLatin1Char('/') + name + QStringLiteral(".png");
    QVERIFY2(img.save(file), qPrintable(file));
}

}  // namespace lmw::test
