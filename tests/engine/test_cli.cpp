// `lmw` as a user runs it: output on stdout, one clear error line and exit code 1 on bad input.
#include <QtTest>

#include <filesystem>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

struct Run {
    int code;
    QString out, err;
};

Run runLmw(const QStringList& args) {
    QProcess p;
    p.start(QString::fromStdString(lmw::test::lmwBinary()), args);
    if (!p.waitForFinished(120000)) qFatal("lmw did not finish");
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
            QString::fromUtf8(p.readAllStandardError())};
}

QString model() { return QString::fromStdString(lmw::test::modelDir()); }

}  // namespace

class TestCli : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        if (!fs::exists(lmw::test::lmwBinary())) QSKIP("lmw is not built");
    }

    void version() {
        const Run r = runLmw({"--version"});
        QCOMPARE(r.code, 0);
        QVERIFY(r.out.startsWith("lmw " LMW_VERSION));
    }

    void generateStreamsTheGreedyContinuation() {
        const Run r = runLmw({"generate", model(), "--prompt", "Once upon a time", "--temperature", "0", "--max-new-tokens",
                           "16", "--backend", "cpu", "--quiet"});
        QCOMPARE(r.code, 0);
        // The reference greedy text of this prompt (transformers), continuing the prompt.
        QVERIFY2(r.out.startsWith(", there was a little girl named Lily."), qPrintable(r.out));
    }

    void seededSamplingIsReproducible() {
        const QStringList args{"generate", model(), "--prompt", "Once upon a time", "--temperature", "1", "--seed",
                               "42", "--max-new-tokens", "24", "--backend", "cpu", "--quiet"};
        const Run a = runLmw(args), b = runLmw(args);
        QCOMPARE(a.code, 0);
        QCOMPARE(a.out, b.out);
    }

    void badInputIsOneClearError_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("missing folder") << QStringList{"generate", "/nonexistent/model", "--prompt", "hi"}
                                        << "/nonexistent/model/config.json: not found";
        QTest::newRow("empty prompt") << QStringList{"generate", model(), "--prompt", "", "--backend", "cpu"}
                                      << "the prompt is empty";
        QTest::newRow("bad temperature") << QStringList{"generate", model(), "--prompt", "hi", "--temperature", "5",
                                                        "--backend", "cpu"}
                                         << "temperature";
        QTest::newRow("info on a missing folder") << QStringList{"info", "/nonexistent"} << "config.json";
    }
    void badInputIsOneClearError() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const Run r = runLmw(args);
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("error: ") && r.err.contains(message), qPrintable(r.err));
        QVERIFY(!r.err.contains("terminate called"));
    }

    void missingTokenizerIsNamed() {
        QTemporaryDir tmp;
        const fs::path dir = tmp.path().toStdString();
        for (const auto& f : fs::directory_iterator(lmw::test::modelDir()))
            if (f.path().filename() != "tokenizer.model") fs::copy(f.path(), dir / f.path().filename());
        const Run r = runLmw({"generate", QString::fromStdString(dir.string()), "--prompt", "hi", "--backend", "cpu"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("tokenizer.model"), qPrintable(r.err));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
