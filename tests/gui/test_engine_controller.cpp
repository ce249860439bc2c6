// EngineController with the real stories260K model: load / unload, streaming as queued signals,
// cancel, and errors as signals (never exceptions, never a blocked GUI thread).
#include <QSignalSpy>
#include <QTest>
#include <QThread>

#include "gui/gui_test_env.h"
#include "lmw/gui/engine_controller.h"

using namespace lmw::gui;
using lmw::test::smallConfig;

class TestEngineController : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> m_env;

private slots:
    void initTestCase() { m_env = std::make_unique<lmw::test::GuiTestEnv>(); }

    void loadStreamUnload() {
        EngineController ec;
        QSignalSpy loaded(&ec, &EngineController::loaded);
        QSignalSpy progress(&ec, &EngineController::loadProgress);
        QSignalSpy states(&ec, &EngineController::stateChanged);
        ec.load(smallConfig());
        QCOMPARE(ec.state(), EngineController::State::Loading);  // returns at once: loading is off-thread
        QVERIFY(loaded.wait(30000));
        QCOMPARE(loaded.at(0).at(0).toString(), lmw::test::model());
        QVERIFY(ec.isReady());
        QVERIFY(progress.count() >= 1);
        QCOMPARE(ec.modelInfo()->config.numLayers, 5);
        QCOMPARE(ec.modelInfo()->config.vocabSize, 512);

        // Greedy continuation of the reference prompt, streamed as deltas, equals the HF reference.
        const auto ref = lmw::test::reference()["cases"][1];
        QVERIFY(!ref["prompt"].get<std::string>().empty());
        lmw::engine::Request req;
        req.prompt = ref["prompt"].get<std::string>();
        req.sampling.temperature = 0;
        req.sampling.maxNewTokens = int(ref["greedy_ids"].size());
        req.sampling.ignoreEos = true;
        QSignalSpy deltas(&ec, &EngineController::generationDelta);
        QSignalSpy finished(&ec, &EngineController::generationFinished);
        const auto id = ec.submit(req);
        QVERIFY(id != 0);
        QCOMPARE(ec.activeRequests(), 1);
        QVERIFY(finished.wait(30000));
        QString text;
        int tokens = 0;
        for (const auto& d : deltas) {
            QCOMPARE(d.at(0).toULongLong(), quint64(id));
            text += d.at(1).toString();
            tokens += d.at(2).toInt();
        }
        const auto r = finished.at(0).at(1).value<GenerationResult>();
        QVERIFY2(r.finishReason == QStringLiteral("length"), qPrintable(r.finishReason + QStringLiteral(": ") + r.error));
        QCOMPARE(r.completionTokens, int(ref["greedy_ids"].size()));
        QCOMPARE(tokens, r.completionTokens);
        QCOMPARE(r.promptTokens, int(ref["input_ids"].size()));
        QVERIFY(r.tokensPerSecond() > 0);
        QVERIFY(deltas.count() > 1);  // streamed, not one lump
        QCOMPARE(text.trimmed(), QString::fromStdString(ref["greedy_text"].get<std::string>()).trimmed());
        QCOMPARE(ec.activeRequests(), 0);

        QSignalSpy unloaded(&ec, &EngineController::unloaded);
        QSignalSpy aboutToUnload(&ec, &EngineController::aboutToUnload);
        ec.unload();
        QCOMPARE(aboutToUnload.count(), 1);
        QCOMPARE(ec.state(), EngineController::State::Unloading);
        QVERIFY(unloaded.wait(30000));
        QCOMPARE(ec.state(), EngineController::State::Unloaded);
        QVERIFY(!ec.engine());
    }

    void cancelStopsGeneration() {
        EngineController ec;
        QSignalSpy loaded(&ec, &EngineController::loaded);
        ec.load(smallConfig());
        QVERIFY(loaded.wait(30000));
        lmw::engine::Request req;
        req.prompt = "Once upon a time";
        req.sampling.maxNewTokens = 400;
        req.sampling.ignoreEos = true;
        QSignalSpy deltas(&ec, &EngineController::generationDelta);
        QSignalSpy finished(&ec, &EngineController::generationFinished);
        const auto id = ec.submit(req);
        QVERIFY(deltas.wait(30000));
        ec.cancel(id);
        QVERIFY(finished.wait(30000));
        const auto r = finished.at(0).at(1).value<GenerationResult>();
        QCOMPARE(r.finishReason, QStringLiteral("cancelled"));
        QVERIFY2(r.completionTokens < 400, qPrintable(QString::number(r.completionTokens)));
    }

    void badFolderIsAnErrorSignal() {
        EngineController ec;
        QSignalSpy failed(&ec, &EngineController::loadFailed);
        QSignalSpy errors(&ec, &EngineController::errorOccurred);
        auto c = smallConfig();
        c.modelDir = m_env->path(QStringLiteral("no-such-model")).toStdString();
        ec.load(c);
        QVERIFY(failed.wait(30000));
        QCOMPARE(failed.at(0).at(1).toBool(), false);
        QVERIFY2(failed.at(0).at(0).toString().contains(QStringLiteral("no-such-model")),
                 qPrintable(failed.at(0).at(0).toString()));
        QCOMPARE(errors.count(), 1);
        QCOMPARE(errors.at(0).at(0).toString(), QStringLiteral("Could not load the model"));
        QCOMPARE(ec.state(), EngineController::State::Unloaded);
    }

    void cancelLoad() {
        EngineController ec;
        QSignalSpy failed(&ec, &EngineController::loadFailed);
        QSignalSpy loaded(&ec, &EngineController::loaded);
        QSignalSpy errors(&ec, &EngineController::errorOccurred);
        ec.load(smallConfig());
        ec.cancelLoad();  // before the loader's first progress report can return true
        QVERIFY(failed.wait(30000));
        QCOMPARE(failed.at(0).at(1).toBool(), true);
        QCOMPARE(loaded.count(), 0);
        QCOMPARE(errors.count(), 0);  // a cancel is not an error dialog
        QCOMPARE(ec.state(), EngineController::State::Unloaded);
    }

    void submitWithoutModelIsAnError() {
        EngineController ec;
        QSignalSpy errors(&ec, &EngineController::errorOccurred);
        lmw::engine::Request req;
        req.prompt = "hi";
        QCOMPARE(ec.submit(req), lmw::engine::RequestId(0));
        QCOMPARE(errors.count(), 1);
        QCOMPARE(errors.at(0).at(0).toString(), QStringLiteral("No model loaded"));
    }

    void reloadSwapsEngine() {
        EngineController ec;
        QSignalSpy loaded(&ec, &EngineController::loaded);
        QSignalSpy unloaded(&ec, &EngineController::unloaded);
        ec.load(smallConfig());
        QVERIFY(loaded.wait(30000));
        ec.load(smallConfig("stories260K-qwen2"));  // unload first, then load the new one
        QTRY_COMPARE_WITH_TIMEOUT(loaded.count(), 2, 30000);
        QCOMPARE(unloaded.count(), 1);
        QCOMPARE(ec.modelInfo()->config.family, lmw::engine::ModelFamily::Qwen2);
    }
};

QTEST_MAIN(TestEngineController)
#include "test_engine_controller.moc"
