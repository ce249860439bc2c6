// Help > About lists what `lmw --version` does (lmw::versionFacts) and the Qt version.
#include <QAction>
#include <QMenuBar>
#include <QMessageBox>
#include <QTimer>

#include "gui_test_env.h"
#include "lmw/version.h"

using namespace lmw::gui;

class TestAbout : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> env;

private slots:
    void initTestCase() { env = std::make_unique<lmw::test::GuiTestEnv>(); }

    void aboutListsTheVersionFacts() {
        MainWindow w(env->conversations());
        w.show();
        QAction* about = nullptr;
        for (QAction* a : w.menuBar()->findChildren<QAction*>())
            if (a->text() == QStringLiteral("&About LM Workbench")) about = a;
        QVERIFY(about);
        QString text;
        QTimer::singleShot(0, &w, [&text] {  // the box is modal: read and close it from inside
            for (QWidget* top : QApplication::topLevelWidgets())
                if (auto* box = qobject_cast<QMessageBox*>(top); box && box->isVisible()) {
                    text = box->text();
                    box->accept();
                }
        });
        about->trigger();
        QVERIFY(!text.isEmpty());
        QVERIFY2(text.contains(QStringLiteral("LM Workbench " LMW_VERSION)), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("Qt:&nbsp;</td><td>") + QString::fromLatin1(qVersion())), qPrintable(text));
        for (const auto& [name, value] : lmw::versionFacts()) {
            if (name == "LM Workbench") continue;
            QVERIFY2(text.contains(QString::fromStdString(name)), qPrintable(text));
            QVERIFY2(text.contains(QString::fromStdString(value).toHtmlEscaped()), qPrintable(text));
        }
    }
};

QTEST_MAIN(TestAbout)
#include "test_about.moc"
