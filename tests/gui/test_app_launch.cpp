// Launches the real `lmworkbench` binary: it opens stories260K, sends a message, saves a screenshot
// of its window and exits 0. Under Xvfb (DISPLAY set, as scripts/test.sh runs ctest) it uses the real
// X11 platform; otherwise offscreen.
#include <QImage>
#include <QProcess>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>

#include "test_util.h"

class TestAppLaunch : public QObject {
    Q_OBJECT

private slots:
    void screenshotAfterAChatTurn() {
        QTemporaryDir tmp;
        const QString bin = QStringLiteral(LMW_BINARY_DIR "/app/lmworkbench");
        const QString shot = qEnvironmentVariableIsSet("LMW_SCREENSHOT_DIR")
                                 ? qEnvironmentVariable("LMW_SCREENSHOT_DIR") + QStringLiteral("/app-launch.png")
                                 : tmp.path() + QStringLiteral("/app.png");
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        if (env.contains(QStringLiteral("DISPLAY"))) env.remove(QStringLiteral("QT_QPA_PLATFORM"));
        p.setProcessEnvironment(env);
        p.setProcessChannelMode(QProcess::MergedChannels);
        p.start(bin, {QStringLiteral("--profile"), tmp.path() + QStringLiteral("/profile"), QStringLiteral("--screenshot"), shot,
                      QStringLiteral("--send"), QStringLiteral("Once upon a time"), QString::fromStdString(lmw::test::modelDir())});
        QVERIFY2(p.waitForStarted(10000), qPrintable(bin));
        QVERIFY(p.waitForFinished(180000));
        const QString output = QString::fromUtf8(p.readAll());
        QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, qPrintable(output));
        QVERIFY2(output.contains(QStringLiteral("saved ") + shot), qPrintable(output));

        QImage img(shot);
        QVERIFY(!img.isNull());
        QVERIFY(img.width() >= 1000 && img.height() >= 600);
        // A real window, not a blank picture: many colours (text, sidebar, buttons).
        QSet<QRgb> colours;
        for (int y = 0; y < img.height(); y += 3)
            for (int x = 0; x < img.width(); x += 3) colours.insert(img.pixel(x, y));
        QVERIFY2(colours.size() > 50, qPrintable(QString::number(colours.size())));
        // The dark sidebar is on the left, the light chat area on the right.
        QVERIFY(qGray(img.pixel(20, img.height() / 2)) < 80);
        QVERIFY(qGray(img.pixel(img.width() / 2, img.height() / 2)) > 200);

        // The conversation was saved in the profile, with the reply.
        QDir conv(tmp.path() + QStringLiteral("/profile/conversations"));
        const auto files = conv.entryList({QStringLiteral("*.json")});
        QCOMPARE(files.size(), 1);
        const auto j = lmw::test::readJson((conv.filePath(files.first())).toStdString());
        QCOMPARE(j["messages"].size(), size_t(2));
        QCOMPARE(j["messages"][0]["content"].get<std::string>(), std::string("Once upon a time"));
        QVERIFY(j["messages"][1]["stats"]["completion_tokens"].get<int>() > 0);
    }

    void badFolderExitsWithError() {
        QTemporaryDir tmp;
        QProcess p;
        p.setProcessChannelMode(QProcess::MergedChannels);
        p.start(QStringLiteral(LMW_BINARY_DIR "/app/lmworkbench"),
                {QStringLiteral("--profile"), tmp.path(), QStringLiteral("--screenshot"), tmp.path() + QStringLiteral("/x.png"),
                 tmp.path()});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 1);
        QVERIFY2(QString::fromUtf8(p.readAll()).contains(QStringLiteral("Not a model folder")), "no error message");
    }
};

QTEST_MAIN(TestAppLaunch)
#include "test_app_launch.moc"
