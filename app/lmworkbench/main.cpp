// lmworkbench: the desktop app. `lmworkbench [MODEL_DIR]` opens that model (no argument: the last
// one, or the model picker). `--screenshot FILE [--send TEXT]` loads the model, optionally sends a
// message, saves a picture of the window and quits (used by the tests and the docs). One window
// per user: a second launch hands its folder to the running one (SingleInstance) and exits.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QSettings>
#include <QTimer>
#include <cstdio>
#include <cstring>
#include <memory>

#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_view.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/main_window.h"
#include "lmw/gui/single_instance.h"
#include "lmw/version.h"

using namespace lmw::gui;

// --help and --version print and quit without a display (help2man runs them at build time).
static bool textOnly(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        for (const char* flag : {"-h", "--help", "--help-all", "-v", "--version"})
            if (std::strcmp(argv[i], flag) == 0) return true;
    return false;
}

int main(int argc, char** argv) {
    std::unique_ptr<QCoreApplication> core(textOnly(argc, argv) ? new QCoreApplication(argc, argv)
                                                                  : new QApplication(argc, argv));
    QApplication::setOrganizationName(QStringLiteral("LMWorkbench"));
    QApplication::setApplicationName(QStringLiteral("lmworkbench"));
    QApplication::setApplicationDisplayName(QStringLiteral("LM Workbench"));
    QApplication::setApplicationVersion(QStringLiteral(LMW_VERSION));
    QApplication::setDesktopFileName(QStringLiteral("lmworkbench"));

    QCommandLineParser cli;
    cli.setApplicationDescription(QStringLiteral("LM Workbench: run, chat with, serve and quantize local LLMs."));
    cli.addHelpOption();
    QCommandLineOption version({QStringLiteral("v"), QStringLiteral("version")},
                               QStringLiteral("Display the versions of the app, Qt and the CUDA runtime, driver and device."));
    cli.addOption(version);
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
    cli.process(*core);
    if (cli.isSet(version)) {
        std::printf("%s\n", lmw::versionText("lmworkbench", {{"Qt", qVersion()}}).c_str());
        return 0;
    }
    auto* gui = qobject_cast<QApplication*>(core.get());
    if (!gui) {  // a flag's value looked like --help
        std::fprintf(stderr, "lmworkbench: -h/--help/-v/--version cannot be an option's value\n");
        return 2;
    }
    QApplication& app = *gui;

    QString conversations;
    if (cli.isSet(profile)) {
        const QString dir = QDir(cli.value(profile)).absolutePath();
        QDir().mkpath(dir);
        QSettings::setDefaultFormat(QSettings::IniFormat);
        QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, dir);
        conversations = dir + QStringLiteral("/conversations");
    }

    const QStringList args = cli.positionalArguments();
    const QString modelDir = args.isEmpty() ? QString() : QFileInfo(args.first()).absoluteFilePath();
    // One window per user and profile; --screenshot runs (tests, docs) stand alone.
    std::unique_ptr<SingleInstance> instance;
    if (!cli.isSet(screenshot)) {
        instance = std::make_unique<SingleInstance>(QSettings().fileName());
        if (instance->sendToRunning(modelDir)) return 0;  // the running window opens it
        if (!instance->listen())
            std::fprintf(stderr, "lmworkbench: not the single instance (%s)\n", qPrintable(instance->errorString()));
    }

    initResources();
    applyAppStyle();
    MainWindow window(conversations);
    if (instance) instance->serve(&window);

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
