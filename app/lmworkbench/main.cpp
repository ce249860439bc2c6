// lmworkbench: the desktop app. `lmworkbench [MODEL_DIR]` opens that model (no argument: the last
// one, or the model picker). `--screenshot FILE [--send TEXT]` loads the model, optionally sends a
// message, saves a picture of the window and quits (used by the tests and the docs).
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QSettings>
#include <QTimer>
#include <cstdio>

#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_view.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/main_window.h"

using namespace lmw::gui;

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("LMWorkbench"));
    QApplication::setApplicationName(QStringLiteral("lmworkbench"));
    QApplication::setApplicationDisplayName(QStringLiteral("LM Workbench"));
    QApplication::setApplicationVersion(QStringLiteral(LMW_VERSION));
    QApplication::setDesktopFileName(QStringLiteral("lmworkbench"));

    QCommandLineParser cli;
    cli.setApplicationDescription(QStringLiteral("LM Workbench: run, chat with, serve and quantize local LLMs."));
    cli.addHelpOption();
    cli.addVersionOption();
    cli.addPositionalArgument(QStringLiteral("MODEL_DIR"), QStringLiteral("Hugging Face model folder to open"));
    QCommandLineOption screenshot(QStringLiteral("screenshot"), QStringLiteral("Save a picture of the window to FILE and quit."),
                                  QStringLiteral("FILE"));
    QCommandLineOption send(QStringLiteral("send"), QStringLiteral("With --screenshot: send TEXT in the chat first."),
                            QStringLiteral("TEXT"));
    QCommandLineOption profile(QStringLiteral("profile"),
                               QStringLiteral("Keep settings and conversations in DIR instead of the user's folders."),
                               QStringLiteral("DIR"));
    QCommandLineOption timeout(QStringLiteral("timeout"), QStringLiteral("With --screenshot: give up after SECONDS."),
                               QStringLiteral("SECONDS"), QStringLiteral("120"));
    cli.addOptions({screenshot, send, profile, timeout});
    cli.process(app);

    QString conversations;
    if (cli.isSet(profile)) {
        const QString dir = QDir(cli.value(profile)).absolutePath();
        QDir().mkpath(dir);
        QSettings::setDefaultFormat(QSettings::IniFormat);
        QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, dir);
        conversations = dir + QStringLiteral("/conversations");
    }

    initResources();
    applyAppStyle();
    MainWindow window(conversations);
    const QStringList args = cli.positionalArguments();
    const QString modelDir = args.isEmpty() ? QString() : args.first();

    if (cli.isSet(screenshot)) {
        const QString file = cli.value(screenshot);
        const QString text = cli.value(send);
        if (modelDir.isEmpty()) {
            std::fprintf(stderr, "lmworkbench: --screenshot needs a MODEL_DIR\n");
            return 2;
        }
        window.setDialogsEnabled(false);
        auto fail = [](const QString& why) {
            std::fprintf(stderr, "lmworkbench: %s\n", qPrintable(why));
            QCoreApplication::exit(1);
        };
        QObject::connect(&window, &MainWindow::errorShown, &app,
                         [fail](const QString& title, const QString& message) { fail(title + QStringLiteral(": ") + message); });
        auto shoot = [&window, file] {
            QTimer::singleShot(400, &window, [&window, file] {
                const bool ok = window.grab().save(file);
                std::fprintf(ok ? stdout : stderr, "%s %s\n", ok ? "saved" : "could not save", qPrintable(file));
                QCoreApplication::exit(ok ? 0 : 1);
            });
        };
        QObject::connect(window.engine(), &EngineController::loaded, &window, [&window, text, shoot] {
            window.showView(MainWindow::ChatPage);
            if (text.isEmpty()) {
                shoot();
                return;
            }
            const QString id = window.chatView()->currentTab()->id();
            QObject::connect(window.chat(), &ChatController::generationFinished, &window,
                             [id, shoot](const QString& conv, const GenerationResult&) {
                                 if (conv == id) shoot();
                             });
            window.chat()->send(id, text);
        });
        QTimer::singleShot(cli.value(timeout).toInt() * 1000, &app, [fail] { fail(QStringLiteral("timed out")); });
    }

    window.show();
    window.startWith(modelDir);
    return app.exec();
}
