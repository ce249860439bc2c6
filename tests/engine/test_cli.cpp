// `lmw` as a user runs it: output on stdout, one clear error line and exit code 1 on bad input.
#include <QtTest>

#include <filesystem>
#include <fstream>

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
        QTest::newRow("bench, a workload that does not fit the session")
            << QStringList{"bench", model(), "--backend", "cpu", "--context", "2", "--decode-tokens", "2",
                           "--session-len", "6", "--requests", "2", "--workload", "sharegpt"}
            << "ShareGPT-like lengths need requests of at least 8 tokens";
    }
    void badInputIsOneClearError() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const Run r = runLmw(args);
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("error: ") && r.err.contains(message), qPrintable(r.err));
        QVERIFY(!r.err.contains("terminate called"));
    }

    // The throughput test with ShareGPT-like lengths and Poisson arrivals: every request answered,
    // the plan's lengths the same for the same seed and not for another, the goodput counted.
    void benchThroughputWorkload() {
        auto bench = [](const QString& seed) {
            const Run r = runLmw({"bench", model(), "--backend", "cpu", "--context", "32", "--decode-tokens", "4",
                                  "--requests", "24", "--concurrency", "4", "--workload", "sharegpt", "--request-rate",
                                  "400", "--workload-seed", seed});
            if (r.code != 0) qWarning("%s", qPrintable(r.err));
            return r;
        };
        const Run a = bench("5"), b = bench("5"), c = bench("6");
        QCOMPARE(a.code, 0);
        const QRegularExpression head(R"(throughput: 24 requests \(24 ok\), concurrency 4, ShareGPT-like lengths \((prompt mean [0-9.]+, output mean [0-9.]+) tokens\), Poisson arrivals at 400.00 requests/s, seed (\d))");
        const auto ma = head.match(a.out), mb = head.match(b.out), mc = head.match(c.out);
        QVERIFY2(ma.hasMatch() && mb.hasMatch() && mc.hasMatch(), qPrintable(a.out + c.out));
        QCOMPARE(ma.captured(1), mb.captured(1));
        QVERIFY(ma.captured(1) != mc.captured(1));
        QCOMPARE(mc.captured(2), QString("6"));
        const auto good = QRegularExpression(R"(goodput \(TTFT <= 2000 ms, time per output token <= 50 ms\): ([0-9.]+) requests/s \((\d+) of 24 requests\))").match(a.out);
        const auto rate = QRegularExpression(R"(\n  ([0-9.]+) requests/s, ([0-9.]+) output tok/s)").match(a.out);
        QVERIFY2(good.hasMatch() && rate.hasMatch(), qPrintable(a.out));
        QVERIFY(good.captured(2).toInt() >= 1 && good.captured(2).toInt() <= 24);
        QVERIFY(good.captured(1).toDouble() <= rate.captured(1).toDouble() + 0.01);
        QVERIFY(rate.captured(2).toDouble() > 0);
        for (const char* line : {"time to first token      ms: p50", "inter-token latency      ms: p50",
                                 "time per output token    ms: p50"})
            QVERIFY2(a.out.contains(line), line);
    }

    // --chat-template-kwargs become template variables: a prefix given that way renders the same
    // prompt (same prompt token count, same reply) as writing it into the message.
    void chatTemplateKwargsReachTheTemplate() {
        QTemporaryDir tmp;
        const QString tmpl = tmp.filePath("prefix.jinja");
        {
            std::ofstream f(tmpl.toStdString());
            f << "{{ bos_token }}{{ prefix | default('') }}{{ messages[0].content }}";
        }
        auto gen = [&](const QString& prompt, const QStringList& extra) {
            QStringList args{"generate", model(), "--chat", "--chat-template", tmpl, "--prompt", prompt,
                             "--temperature", "0", "--max-new-tokens", "12", "--backend", "cpu"};
            return runLmw(args + extra);
        };
        const Run written = gen("Once upon a time", {});
        const Run viaKwargs = gen("upon a time", {"--chat-template-kwargs", R"({"prefix": "Once "})"});
        const Run without = gen("upon a time", {});
        QCOMPARE(written.code, 0);
        QCOMPARE(viaKwargs.code, 0);
        auto promptTokens = [](const Run& r) {
            const QRegularExpressionMatch m = QRegularExpression("prompt (\\d+) tokens").match(r.err);
            return m.hasMatch() ? m.captured(1).toInt() : -1;
        };
        QVERIFY2(promptTokens(written) > 0, qPrintable(written.err));
        QCOMPARE(promptTokens(viaKwargs), promptTokens(written));
        QCOMPARE(viaKwargs.out, written.out);
        QVERIFY(promptTokens(without) < promptTokens(written));
    }

    void badChatTemplateKwargs_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        const QStringList chat{"generate", model(), "--chat", "--prompt", "hi", "--backend", "cpu", "--chat-template-kwargs"};
        QTest::newRow("not JSON") << (chat + QStringList{"{enable_thinking: false}"}) << "--chat-template-kwargs is not valid JSON";
        QTest::newRow("not an object") << (chat + QStringList{"[1]"}) << "--chat-template-kwargs must be a JSON object";
        QTest::newRow("reserved") << (chat + QStringList{R"({"messages": []})"})
                                  << "--chat-template-kwargs: chat template kwargs cannot set 'messages'";
        QTest::newRow("without --chat") << QStringList{"generate", model(), "--prompt", "hi", "--chat-template-kwargs", "{}"}
                                        << "--chat-template-kwargs applies to chat prompts: add --chat";
        QTest::newRow("lmw chat") << QStringList{"chat", model(), "--chat-template-kwargs", "true"}
                                  << "--chat-template-kwargs must be a JSON object";
    }
    void badChatTemplateKwargs() { badInputIsOneClearError(); }

    void missingTokenizerIsNamed() {
        QTemporaryDir tmp;
        const fs::path dir = tmp.path().toStdString();
        for (const auto& f : fs::directory_iterator(lmw::test::modelDir()))
            if (f.path().filename() != "tokenizer.model") fs::copy(f.path(), dir / f.path().filename());
        const Run r = runLmw({"generate", QString::fromStdString(dir.string()), "--prompt", "hi", "--backend", "cpu"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("tokenizer.model"), qPrintable(r.err));
    }

    // `lmw info` says which tokenizer file and which chat template the engine will use.
    void infoNamesTokenizerAndTemplate_data() {
        QTest::addColumn<QString>("name");
        QTest::addColumn<QString>("family");
        QTest::addColumn<QString>("tokenizer");
        QTest::addColumn<QString>("chatTemplate");
        QTest::addColumn<int>("headDim");
        QTest::newRow("stories260K") << "stories260K" << "llama" << "tokenizer.model" << "built-in llama2" << 8;
        QTest::newRow("qwen3-tiny") << "qwen3-tiny" << "qwen3" << "tokenizer.json" << "tokenizer_config.json (Jinja)" << 32;
        QTest::newRow("llama3-tiny") << "llama3-tiny" << "llama" << "tokenizer.json" << "tokenizer_config.json (Jinja)" << 12;
    }
    void infoNamesTokenizerAndTemplate() {
        QFETCH(QString, name);
        QFETCH(QString, family);
        QFETCH(QString, tokenizer);
        QFETCH(QString, chatTemplate);
        QFETCH(int, headDim);
        const Run r = runLmw({"info", QString::fromStdString(lmw::test::modelDir(name.toStdString())), "--json"});
        QCOMPARE(r.code, 0);
        const auto j = nlohmann::json::parse(r.out.toStdString());
        QCOMPARE(QString::fromStdString(j.at("family").get<std::string>()), family);
        QCOMPARE(QString::fromStdString(j.at("tokenizer").get<std::string>()), tokenizer);
        QCOMPARE(QString::fromStdString(j.at("chat_template").get<std::string>()), chatTemplate);
        QCOMPARE(j.at("head_dim").get<int>(), headDim);
    }

    // --chat on the tokenizer.json families: their own templates, and the turn ends at the template's
    // end-of-turn token (the reply has no template markup).
    void generateChatOnTokenizerJsonModels_data() {
        QTest::addColumn<QString>("name");
        QTest::newRow("qwen3-tiny") << "qwen3-tiny";
        QTest::newRow("llama3-tiny") << "llama3-tiny";
    }
    void generateChatOnTokenizerJsonModels() {
        QFETCH(QString, name);
        const Run r = runLmw({"generate", QString::fromStdString(lmw::test::modelDir(name.toStdString())), "--prompt",
                              "Tell me a story about a cat.", "--chat", "--temperature", "0", "--max-new-tokens", "12",
                              "--backend", "cpu", "-q"});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY(!r.out.trimmed().isEmpty());
        for (const char* markup : {"<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>"})
            QVERIFY2(!r.out.contains(QLatin1String(markup)), qPrintable(r.out));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
