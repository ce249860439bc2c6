// One lmworkbench per user: a second launch's folder reaches the running window over the local
// socket and opens (loads) there.
#include <QFileInfo>
#include <QLocalSocket>

#include "gui_test_env.h"
#include "lmw/gui/single_instance.h"

using namespace lmw::gui;

class TestSingleInstance : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> env;

private slots:
    void initTestCase() { env = std::make_unique<lmw::test::GuiTestEnv>(); }

    void noneRunning() {
        SingleInstance lone(env->path(QStringLiteral("nobody.ini")));
        QVERIFY(!lone.sendToRunning(QStringLiteral("/x"), 300));
    }

    void keysStayApart() {
        SingleInstance a(env->path(QStringLiteral("a.ini"))), b(env->path(QStringLiteral("b.ini"))),
            a2(env->path(QStringLiteral("a.ini")));
        QVERIFY(a.serverName() != b.serverName());
        QCOMPARE(a.serverName(), a2.serverName());
        QVERIFY(a.serverName().startsWith(QStringLiteral("lmworkbench-")));
    }

    void secondLaunchOpensInTheRunningWindow() {
        const QString key = env->path(QStringLiteral("settings.ini"));
        SingleInstance running(key);
        QVERIFY2(running.listen(), qPrintable(running.errorString()));
        MainWindow w(env->conversations());
        w.setDialogsEnabled(false);
        EngineSettings es;
        es.backend = QStringLiteral("cpu");
        es.sessionLen = 256;
        w.modelView()->setSettings(es);
        w.show();
        running.serve(&w);
        QSignalSpy asked(&running, &SingleInstance::openRequested);
        QSignalSpy loaded(w.engine(), &EngineController::loaded);

        SingleInstance second(key);  // what a second `lmworkbench DIR` does before it exits
        const QString dir = QFileInfo(lmw::test::model()).absoluteFilePath();
        QVERIFY(second.sendToRunning(dir));
        QVERIFY(asked.wait(5000));
        QCOMPARE(asked.first().first().toString(), dir);
        QVERIFY(loaded.count() > 0 || loaded.wait(60000));
        QCOMPARE(w.currentView(), MainWindow::ChatPage);
        QVERIFY(w.windowTitle().startsWith(QStringLiteral("stories260K")));

        // A plain second launch (no folder) only raises the window; a stranger's bytes do nothing.
        QVERIFY(second.sendToRunning(QString()));
        QVERIFY(asked.wait(5000));
        QCOMPARE(asked.last().first().toString(), QString());
        QLocalSocket stranger;
        stranger.connectToServer(running.serverName());
        QVERIFY(stranger.waitForConnected(2000));
        stranger.write("hello");
        stranger.waitForBytesWritten(2000);
        stranger.disconnectFromServer();
        QTest::qWait(300);
        QCOMPARE(asked.count(), 2);
    }

    void staleSocketIsTakenOver() {
        const QString key = env->path(QStringLiteral("stale.ini"));
        {
            SingleInstance first(key);
            QVERIFY(first.listen());
        }  // gone; a crash would leave the file, which listen() removes
        SingleInstance next(key);
        QVERIFY2(next.listen(), qPrintable(next.errorString()));
        QSignalSpy asked(&next, &SingleInstance::openRequested);
        QVERIFY(SingleInstance(key).sendToRunning(QStringLiteral("/m")));
        QVERIFY(asked.wait(5000));
    }
};

QTEST_MAIN(TestSingleInstance)
#include "test_single_instance.moc"
