// ChatController + ConversationStore + the chat widgets with the real stories260K model: a turn
// streams into its tab, Stop cancels, Regenerate replaces (keeping versions), edit-and-resend, tabs keep separate
// histories, conversations survive a restart, Markdown export, chat template options.
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDropEvent>
#include <QFile>
#include <QFileInfo>
#include <QMimeData>
#include <QPainter>
#include <QPdfWriter>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QPlainTextEdit>
#include <QSpinBox>
#include <QTextBlock>
#include <QTextDocument>
#include <QSignalSpy>
#include <QTabWidget>
#include <QToolButton>
#include <QTest>

#include "gui/gui_test_env.h"
#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/chat_view.h"
#include "lmw/gui/history_panel.h"
#include "lmw/gui/message_widget.h"

using namespace lmw::gui;

class TestChatController : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> m_env;
    std::unique_ptr<EngineController> m_engine;

    // A store folder of its own per test function.
    ConversationStore freshStore() {
        static int n = 0;
        return ConversationStore(m_env->path(QStringLiteral("conv%1").arg(++n)));
    }
    static SamplingSettings seeded(qint64 seed, int maxTokens = 40) {
        SamplingSettings s;
        s.seed = seed;
        s.maxTokens = maxTokens;
        return s;
    }

private slots:
    void initTestCase() {
        m_env = std::make_unique<lmw::test::GuiTestEnv>();
        m_engine = std::make_unique<EngineController>();
        QSignalSpy loaded(m_engine.get(), &EngineController::loaded);
        m_engine->load(lmw::test::smallConfig());
        QVERIFY(loaded.wait(30000));
    }
    void cleanupTestCase() { m_engine.reset(); }

    void turnStreamsIntoTab() {
        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        chat.restore();
        QCOMPARE(chat.ids().size(), 1);  // an empty store starts with one new conversation
        QCOMPARE(view.tabs()->count(), 1);
        const QString id = chat.ids().first();
        chat.setSampling(id, seeded(7));
        ChatTab* tab = view.tab(id);
        QVERIFY(tab);
        QSignalSpy updates(&chat, &ChatController::messageUpdated);
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QSignalSpy generating(&chat, &ChatController::generatingChanged);
        tab->input()->setPlainText(QStringLiteral("Once upon a time"));
        QTest::keyClick(tab->input(), Qt::Key_Return);  // Enter sends
        QVERIFY(tab->input()->toPlainText().isEmpty());
        QVERIFY(chat.isGenerating(id));
        QCOMPARE(tab->messageCount(), 2);
        QVERIFY(finished.wait(30000));
        QVERIFY2(updates.count() > 3, qPrintable(QString::number(updates.count())));  // streamed token by token
        QCOMPARE(generating.count(), 2);
        const Conversation* c = chat.conversation(id);
        QCOMPARE(c->messages.size(), 2);
        QCOMPARE(c->messages[0].role, QStringLiteral("user"));
        QCOMPARE(c->messages[0].content, QStringLiteral("Once upon a time"));
        QCOMPARE(c->messages[1].role, QStringLiteral("assistant"));
        QVERIFY(!c->messages[1].content.trimmed().isEmpty());
        QVERIFY(c->messages[1].stats.has_value());
        QVERIFY(c->messages[1].stats->completionTokens > 0);
        QVERIFY(c->messages[1].stats->completionTokens <= 40);
        QVERIFY(c->messages[1].stats->promptTokens > 4);
        // The widget shows the reply and its token counts / speed.
        QCOMPARE(tab->messageAt(1)->text(), c->messages[1].content);
        QVERIFY2(tab->messageAt(1)->statsText().startsWith(QString::number(c->messages[1].stats->completionTokens) +
                                                           QStringLiteral(" tokens")),
                 qPrintable(tab->messageAt(1)->statsText()));
        QVERIFY(tab->messageAt(1)->statsText().contains(QStringLiteral("tok/s")));
        QCOMPARE(view.tabs()->tabText(0), QStringLiteral("Once upon a time"));  // named after the first question
    }

    void stopCancels() {
        ChatController chat(m_engine.get(), freshStore());
        chat.restore();
        const QString id = chat.ids().first();
        chat.setSampling(id, seeded(3, 450));
        QSignalSpy updates(&chat, &ChatController::messageUpdated);
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("Tell me a long story")));
        QVERIFY(updates.wait(30000));
        chat.stop(id);
        QVERIFY(finished.wait(30000));
        const auto r = finished.at(0).at(1).value<GenerationResult>();
        QCOMPARE(r.finishReason, QStringLiteral("cancelled"));
        const Conversation* c = chat.conversation(id);
        QCOMPARE(c->messages[1].stats->finishReason, QStringLiteral("cancelled"));
        QVERIFY(c->messages[1].stats->completionTokens < 450);
        QVERIFY(!chat.isGenerating(id));
    }

    void stopFromEscape() {
        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        view.show();
        chat.restore();
        const QString id = chat.ids().first();
        chat.setSampling(id, seeded(5, 450));
        QSignalSpy updates(&chat, &ChatController::messageUpdated);
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("Once")));
        QVERIFY(updates.wait(30000));
        QTest::keyClick(view.tab(id)->input(), Qt::Key_Escape);
        QVERIFY(finished.wait(30000));
        QCOMPARE(finished.at(0).at(1).value<GenerationResult>().finishReason, QStringLiteral("cancelled"));
    }

    void regenerateReplaces() {
        ChatController chat(m_engine.get(), freshStore());
        chat.restore();
        const QString id = chat.ids().first();
        chat.setSampling(id, seeded(11));
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("Lily and Ben")));
        QVERIFY(finished.wait(30000));
        const QString first = chat.conversation(id)->messages[1].content;
        chat.setSampling(id, seeded(12));
        QVERIFY(chat.regenerate(id));
        QVERIFY(finished.wait(30000));
        const Conversation* c = chat.conversation(id);
        QCOMPARE(c->messages.size(), 2);  // replaced, not appended
        QCOMPARE(c->messages[0].content, QStringLiteral("Lily and Ben"));
        QVERIFY(c->messages[1].content != first);
        // Same seed again: the same reply (the seed reaches the engine).
        const QString second = c->messages[1].content;
        QVERIFY(chat.regenerate(id));
        QVERIFY(finished.wait(30000));
        QCOMPARE(chat.conversation(id)->messages[1].content, second);
    }

    // Issue 13, branches: Regenerate and Edit keep what they replace; ‹ › under a message switch
    // between its versions, each with what followed it; they survive a restart.
    void branchesKeepEarlierVersions() {
        const QString dir = m_env->path(QStringLiteral("branches"));
        QString id;
        QString a, b, c;
        {
            ChatController chat(m_engine.get(), ConversationStore(dir));
            ChatView view(&chat);
            view.show();
            chat.restore();
            id = chat.ids().first();
            QSignalSpy finished(&chat, &ChatController::generationFinished);
            auto reply = [&](qint64 seed) {
                chat.setSampling(id, seeded(seed, 12));
                return chat.regenerate(id) && finished.wait(30000);
            };
            chat.setSampling(id, seeded(11, 12));
            QVERIFY(chat.send(id, QStringLiteral("Lily and Ben")));
            QVERIFY(finished.wait(30000));
            a = chat.conversation(id)->messages[1].content;
            ChatTab* tab = view.tab(id);
            QVERIFY(tab->messageAt(1)->versionText().isEmpty());  // one version: no arrows
            QVERIFY(reply(12));
            b = chat.conversation(id)->messages[1].content;
            QVERIFY(reply(13));
            c = chat.conversation(id)->messages[1].content;
            QVERIFY(a != b && b != c);
            const Conversation* conv = chat.conversation(id);
            QCOMPARE(conv->messages.size(), 2);
            QCOMPARE(conv->messages[1].versionCount(), 3);
            QCOMPARE(conv->messages[1].version, 2);
            QCOMPARE(conv->messages[1].otherVersions[0].front().content, a);
            QCOMPARE(conv->messages[1].otherVersions[1].front().content, b);
            QCOMPARE(tab->messageAt(1)->versionText(), QStringLiteral("3/3"));
            QVERIFY(!tab->messageAt(1)->nextVersionButton()->isEnabled());

            // The conversation goes on under reply c; then its last question is edited.
            chat.setSampling(id, seeded(14, 12));
            QVERIFY(chat.send(id, QStringLiteral("What next?")));
            QVERIFY(finished.wait(30000));
            QVERIFY(chat.editLastUserMessage(id, QStringLiteral("And then?")));
            QVERIFY(finished.wait(30000));
            QCOMPARE(conv->messages.size(), 4);
            QCOMPARE(conv->messages[2].content, QStringLiteral("And then?"));
            QCOMPARE(conv->messages[2].versionCount(), 2);
            QCOMPARE(conv->messages[2].otherVersions[0].size(), size_t(2));  // the question and its reply
            QCOMPARE(conv->messages[2].otherVersions[0].front().content, QStringLiteral("What next?"));

            // ‹ on the first reply: reply b, and nothing after it (c's continuation waits with c).
            QTest::mouseClick(tab->messageAt(1)->previousVersionButton(), Qt::LeftButton);
            QCOMPARE(conv->messages.size(), 2);
            QCOMPARE(conv->messages[1].content, b);
            QCOMPARE(tab->messageAt(1)->versionText(), QStringLiteral("2/3"));
            QVERIFY(chat.showVersion(id, 1, 0));
            QCOMPARE(conv->messages[1].content, a);
            QVERIFY(!tab->messageAt(1)->previousVersionButton()->isEnabled());
            QVERIFY(!chat.showVersion(id, 1, 3));  // no such version
            QVERIFY(!chat.showVersion(id, 7, 0));
            // A new turn here builds on reply a only.
            chat.setSampling(id, seeded(15, 12));
            QVERIFY(chat.send(id, QStringLiteral("Who is Ben?")));
            QVERIFY(!chat.showVersion(id, 1, 2));  // not while it generates
            QVERIFY(!tab->messageAt(1)->nextVersionButton()->isEnabled());
            QVERIFY(finished.wait(30000));
            QCOMPARE(conv->messages.size(), 4);
            QCOMPARE(conv->messages[2].content, QStringLiteral("Who is Ben?"));
            QVERIFY(chat.showVersion(id, 1, 2));  // back to c, with both versions of its question
            QCOMPARE(conv->messages.size(), 4);
            QCOMPARE(conv->messages[1].content, c);
            QCOMPARE(conv->messages[2].content, QStringLiteral("And then?"));
            QCOMPARE(conv->messages[2].versionCount(), 2);
            QCOMPARE(tab->messageAt(2)->versionText(), QStringLiteral("2/2"));
        }
        ChatController again(m_engine.get(), ConversationStore(dir));
        again.restore();
        const Conversation* conv = again.conversation(id);
        QVERIFY(conv);
        QCOMPARE(conv->messages.size(), 4);
        QCOMPARE(conv->messages[1].versionCount(), 3);
        QCOMPARE(conv->messages[1].version, 2);
        QCOMPARE(conv->messages[2].versionCount(), 2);
        QVERIFY(again.showVersion(id, 1, 0));
        QCOMPARE(conv->messages.size(), 4);  // reply a and the turn that followed it
        QCOMPARE(conv->messages[1].content, a);
        QCOMPARE(conv->messages[2].content, QStringLiteral("Who is Ben?"));
    }

    void editAndResend() {
        ChatController chat(m_engine.get(), freshStore());
        chat.restore();
        const QString id = chat.ids().first();
        chat.setSampling(id, seeded(1));
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("The cat")));
        QVERIFY(finished.wait(30000));
        QVERIFY(chat.editLastUserMessage(id, QStringLiteral("The dog")));
        QVERIFY(finished.wait(30000));
        const Conversation* c = chat.conversation(id);
        QCOMPARE(c->messages.size(), 2);
        QCOMPARE(c->messages[0].content, QStringLiteral("The dog"));
        QVERIFY(c->messages[1].stats.has_value());
    }

    void tabsKeepSeparateHistories() {
        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        chat.restore();
        const QString a = chat.ids().first();
        const QString b = chat.newConversation();
        QCOMPARE(view.tabs()->count(), 2);
        chat.setSystemPrompt(b, QStringLiteral("You tell stories."));
        chat.setSampling(a, seeded(1, 20));
        chat.setSampling(b, seeded(2, 30));
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        // Both at once: the engine batches them.
        QVERIFY(chat.send(a, QStringLiteral("First tab")));
        QVERIFY(chat.send(b, QStringLiteral("Second tab")));
        QCOMPARE(chat.generatingCount(), 2);
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 30000);
        QCOMPARE(chat.conversation(a)->messages.size(), 2);
        QCOMPARE(chat.conversation(b)->messages.size(), 2);
        QCOMPARE(chat.conversation(a)->messages[0].content, QStringLiteral("First tab"));
        QCOMPARE(chat.conversation(b)->messages[0].content, QStringLiteral("Second tab"));
        QVERIFY(chat.conversation(a)->systemPrompt.isEmpty());
        QCOMPARE(chat.conversation(b)->systemPrompt, QStringLiteral("You tell stories."));
        QCOMPARE(chat.conversation(a)->sampling.maxTokens, 20);
        QCOMPARE(chat.conversation(b)->sampling.maxTokens, 30);
        QVERIFY(chat.conversation(a)->messages[1].stats->completionTokens <= 20);
        QCOMPARE(view.tab(a)->messageCount(), 2);
        QCOMPARE(view.tab(b)->messageCount(), 2);
        // The system prompt is part of the prompt: more prompt tokens in b.
        QVERIFY(chat.conversation(b)->messages[1].stats->promptTokens >
                chat.conversation(a)->messages[1].stats->promptTokens);
        view.closeCurrentTab();  // b is current (the last opened)
        QCOMPARE(view.tabs()->count(), 1);
        QCOMPARE(chat.ids(), QStringList{a});
    }

    void conversationsSurviveRestart() {
        const QString dir = m_env->path(QStringLiteral("restart"));
        QString id, reply;
        {
            ChatController chat(m_engine.get(), ConversationStore(dir));
            chat.restore();
            id = chat.ids().first();
            chat.rename(id, QStringLiteral("Kept"));
            chat.setSystemPrompt(id, QStringLiteral("Be brief."));
            chat.setSampling(id, seeded(9, 25));
            QSignalSpy finished(&chat, &ChatController::generationFinished);
            QVERIFY(chat.send(id, QStringLiteral("Hello there")));
            QVERIFY(finished.wait(30000));
            chat.newConversation(QStringLiteral("Second"));
            reply = chat.conversation(id)->messages[1].content;
        }
        ChatController chat(m_engine.get(), ConversationStore(dir));
        ChatView view(&chat);
        chat.restore();
        QCOMPARE(chat.ids().size(), 2);
        QCOMPARE(chat.ids().first(), id);
        const Conversation* c = chat.conversation(id);
        QCOMPARE(c->title, QStringLiteral("Kept"));
        QCOMPARE(c->systemPrompt, QStringLiteral("Be brief."));
        QCOMPARE(c->sampling.seed, qint64(9));
        QCOMPARE(c->sampling.maxTokens, 25);
        QCOMPARE(c->messages.size(), 2);
        QCOMPARE(c->messages[0].content, QStringLiteral("Hello there"));
        QCOMPARE(c->messages[1].content, reply);
        QVERIFY(c->messages[1].stats->completionTokens > 0);
        QCOMPARE(view.tabs()->count(), 2);
        QCOMPARE(view.tabs()->tabText(0), QStringLiteral("Kept"));
        QCOMPARE(view.tabs()->tabText(1), QStringLiteral("Second"));
        QCOMPARE(view.tab(id)->messageCount(), 2);

        const QString md = m_env->path(QStringLiteral("kept.md"));
        QVERIFY(chat.exportMarkdown(id, md));
        QFile f(md);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(f.readAll());
        QVERIFY(text.startsWith(QStringLiteral("# Kept\n")));
        QVERIFY(text.contains(QStringLiteral("## You\n\nHello there\n")));
        QVERIFY(text.contains(QStringLiteral("## Assistant\n\n") + reply.trimmed()));
    }

    // Template options: checked, kept with the conversation, sent as the request's template kwargs.
    void templateOptions() {
        // An engine whose chat template prints a prefix the options can set.
        const QString tmpl = m_env->path(QStringLiteral("prefix.jinja"));
        {
            QFile f(tmpl);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("{{ bos_token }}{{ prefix | default('') }}{{ messages[0].content }}");
        }
        auto config = lmw::test::smallConfig();
        config.chatTemplate = tmpl.toStdString();
        EngineController engine;
        QSignalSpy loaded(&engine, &EngineController::loaded);
        engine.load(config);
        QVERIFY(loaded.wait(30000));
        const QString dir = m_env->path(QStringLiteral("options"));
        ChatController chat(&engine, ConversationStore(dir));
        ChatView view(&chat);
        view.show();
        chat.restore();
        const QString id = chat.ids().first();
        QSignalSpy changed(&chat, &ChatController::conversationChanged);
        QString error;
        QVERIFY(!chat.setTemplateOptions(id, QStringLiteral("{enable_thinking: false}"), &error));
        QVERIFY2(error.startsWith(QStringLiteral("Not valid JSON")), qPrintable(error));
        QVERIFY(!chat.setTemplateOptions(id, QStringLiteral("[1]"), &error));
        QVERIFY2(error.contains(QStringLiteral("JSON object")), qPrintable(error));
        QVERIFY(!chat.setTemplateOptions(id, QStringLiteral(R"({"messages": []})"), &error));
        QCOMPARE(error, QStringLiteral("chat template kwargs cannot set 'messages' (it is part of the request)"));
        QCOMPARE(changed.count(), 0);
        QVERIFY(chat.conversation(id)->templateKwargs.isEmpty());

        // The tab's field applies when editing ends; a bad text says why and changes nothing.
        ChatTab* tab = view.tab(id);
        tab->templateOptions()->setFocus();
        tab->templateOptions()->setText(QStringLiteral("[1]"));
        QTest::keyClick(tab->templateOptions(), Qt::Key_Return);
        QVERIFY(!tab->templateOptionsError()->isHidden());
        QVERIFY(chat.conversation(id)->templateKwargs.isEmpty());
        tab->templateOptions()->setText(QStringLiteral(R"({"prefix": "Once "})"));
        QTest::keyClick(tab->templateOptions(), Qt::Key_Return);
        QVERIFY(tab->templateOptionsError()->isHidden());
        QCOMPARE(chat.conversation(id)->templateKwargs, QJsonObject({{"prefix", "Once "}}));
        QCOMPARE(changed.count(), 1);

        // Sent with the request: the same prompt as writing the prefix into the message.
        chat.setSampling(id, seeded(4, 12));
        const QString plain = chat.newConversation();  // starts from the defaults (issue 13)
        chat.setSampling(plain, seeded(4, 12));
        QVERIFY(chat.setTemplateOptions(plain, QString()));
        QVERIFY(chat.conversation(plain)->templateKwargs.isEmpty());
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("upon a time")));
        QVERIFY(chat.send(plain, QStringLiteral("Once upon a time")));
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 30000);
        const auto& viaOptions = chat.conversation(id)->messages[1];
        const auto& written = chat.conversation(plain)->messages[1];
        QCOMPARE(viaOptions.stats->promptTokens, written.stats->promptTokens);
        QCOMPARE(viaOptions.content, written.content);

        // Kept on disk.
        ChatController again(&engine, ConversationStore(dir));
        again.restore();
        QCOMPARE(again.conversation(id)->templateKwargs, QJsonObject({{"prefix", "Once "}}));
        QVERIFY(again.conversation(plain)->templateKwargs.isEmpty());
    }

    // Issue 13, defect 2: a system prompt typed just before Send is the one the reply uses (the
    // edit used to be saved 400 ms later, after the request had gone out without it).
    void systemPromptEditUsedByNextReply() {
        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        chat.restore();
        const QString id = chat.ids().first();
        chat.setSampling(id, seeded(21, 8));
        ChatTab* tab = view.tab(id);
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("Hello")));
        QVERIFY(finished.wait(30000));
        const int plainPrompt = chat.conversation(id)->messages[1].stats->promptTokens;

        const QString system = QStringLiteral("You are a storyteller who writes about a little dog named Max.");
        tab->systemPrompt()->setPlainText(system);  // typed, and Send pressed at once
        tab->input()->setPlainText(QStringLiteral("Hello"));
        QTest::keyClick(tab->input(), Qt::Key_Return);
        QCOMPARE(chat.conversation(id)->systemPrompt, system);  // saved before the request went out
        QVERIFY(finished.wait(30000));
        const int withSystem = chat.conversation(id)->messages[3].stats->promptTokens;
        QVERIFY2(withSystem > plainPrompt + 5, qPrintable(QStringLiteral("%1 vs %2").arg(withSystem).arg(plainPrompt)));
        // Regenerate builds the same prompt: the reply really had the system prompt.
        QVERIFY(chat.regenerate(id));
        QVERIFY(finished.wait(30000));
        QCOMPARE(chat.conversation(id)->messages[3].stats->promptTokens, withSystem);
    }

    // Issue 13, defect 3 (the GUI side of "stop"): Max tokens is capped by the session, a prompt
    // that no longer fits is an inline notice in the tab (no dialog), and a reply cut off by the
    // session length says so instead of "hit max tokens".
    void contextFullIsInlineAndLabelled() {
        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        view.show();
        chat.restore();
        const QString id = chat.ids().first();
        SamplingSettings huge = seeded(4, 100000);
        chat.setSampling(id, huge);
        ChatTab* tab = view.tab(id);
        QCOMPARE(m_engine->sessionLength(), 512);
        QCOMPARE(tab->maxTokens()->maximum(), 511);
        QCOMPARE(tab->maxTokens()->value(), 511);

        QSignalSpy errors(&chat, &ChatController::errorOccurred);
        QSignalSpy full(&chat, &ChatController::contextFull);
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        QVERIFY(chat.send(id, QStringLiteral("Once upon a time there was a dog. ").repeated(80)));
        QVERIFY(finished.wait(30000));
        QCOMPARE(full.count(), 1);
        QVERIFY(errors.isEmpty());  // no modal dialog
        QVERIFY(tab->notice()->isVisible());
        QVERIFY2(tab->notice()->text().contains(QStringLiteral("no longer fits")), qPrintable(tab->notice()->text()));
        QVERIFY(full.at(0).at(1).toString().contains(QStringLiteral("session length is 512")));

        // Fill the session nearly to the end: the reply stops at the context, not at Max tokens.
        // Two prompt sizes give the tokens of one repeat.
        const QString probeId = chat.newConversation();
        chat.setSampling(probeId, seeded(4, 1));
        QVERIFY(chat.send(probeId, QStringLiteral("dog ").repeated(40)));
        QVERIFY(finished.wait(30000));
        const int p40 = chat.conversation(probeId)->messages[1].stats->promptTokens;
        const QString longId = chat.newConversation();
        chat.setSampling(longId, seeded(4, 400));
        QVERIFY(chat.send(longId, QStringLiteral("dog ").repeated(80)));
        QVERIFY(finished.wait(30000));
        const int p80 = chat.conversation(longId)->messages[1].stats->promptTokens;
        const double perRepeat = (p80 - p40) / 40.0;
        QVERIFY(perRepeat > 0);
        const int repeats = 80 + int((512 - 8 - p80) / perRepeat);
        QVERIFY(chat.editLastUserMessage(longId, QStringLiteral("dog ").repeated(repeats)));
        QVERIFY(finished.wait(30000));
        const auto& reply = chat.conversation(longId)->messages[1];
        QVERIFY2(reply.stats->promptTokens < 512 && reply.stats->promptTokens > 400,
                 qPrintable(QString::number(reply.stats->promptTokens)));
        if (reply.stats->promptTokens + reply.stats->completionTokens == 512) {
            QCOMPARE(reply.stats->finishReason, QStringLiteral("context"));
            QVERIFY2(view.tab(longId)->messageAt(1)->statsText().contains(QStringLiteral("context is full")),
                     qPrintable(view.tab(longId)->messageAt(1)->statsText()));
        } else {
            QCOMPARE(reply.stats->finishReason, QStringLiteral("stop"));  // the model ended it first
        }
        QVERIFY(!view.tab(longId)->messageAt(1)->statsText().contains(QStringLiteral("max tokens")));
    }

    // Issue 13, context policy: chosen in the tab, a long conversation keeps working (earlier messages
    // left out of the prompt, never deleted), the tab says how much of the context the last reply used
    // and what was left out, and the choice is kept with the conversation.
    void contextPolicyKeepsLongConversationsGoing() {
        const QString dir = m_env->path(QStringLiteral("policy"));
        QString id;
        {
            ChatController chat(m_engine.get(), ConversationStore(dir));
            ChatView view(&chat);
            view.show();
            chat.restore();
            id = chat.ids().first();
            chat.setSampling(id, seeded(5, 40));
            ChatTab* tab = view.tab(id);
            QCOMPARE(tab->contextPolicy()->currentData().toString(), QStringLiteral("stop"));
            tab->contextPolicy()->setCurrentIndex(tab->contextPolicy()->findData(QStringLiteral("truncate-middle")));
            QCOMPARE(chat.conversation(id)->contextOverflow, QStringLiteral("truncate-middle"));

            QSignalSpy full(&chat, &ChatController::contextFull);
            QSignalSpy finished(&chat, &ChatController::generationFinished);
            int dropped = 0;
            for (int turn = 0; turn < 6; ++turn) {
                QVERIFY(chat.send(id, QStringLiteral("Turn %1: once upon a time there was a dog. ").arg(turn).repeated(6)));
                QVERIFY(finished.wait(30000));
                const auto& reply = chat.conversation(id)->messages.last();
                QVERIFY2(reply.error.isEmpty(), qPrintable(reply.error));
                QVERIFY(reply.stats && reply.stats->promptTokens + reply.stats->completionTokens <= 512);
                dropped = reply.stats->droppedMessages;
            }
            QCOMPARE(full.count(), 0);
            QVERIFY2(dropped > 0, "the last replies needed earlier messages left out");
            QCOMPARE(chat.conversation(id)->messages.size(), 12);  // nothing deleted
            QVERIFY2(tab->contextUsed()->text().contains(QStringLiteral("of 512 tokens")) &&
                         tab->contextUsed()->text().contains(QStringLiteral("left out")),
                     qPrintable(tab->contextUsed()->text()));
        }
        ChatController again(m_engine.get(), ConversationStore(dir));
        again.restore();
        QCOMPARE(again.conversation(id)->contextOverflow, QStringLiteral("truncate-middle"));
        QVERIFY(again.conversation(id)->messages.last().stats->droppedMessages > 0);
    }

    // Issue 13, history: every conversation (open or closed) in the history list, newest first; the
    // search box finds them by title and by content; activating a closed one reopens it in a tab;
    // Delete removes one, file and all, and Undo brings it back.
    void historyListSearchReopenDeleteUndo() {
        const QString dir = m_env->path(QStringLiteral("history"));
        ChatController chat(m_engine.get(), ConversationStore(dir));
        ChatView view(&chat);
        view.show();
        chat.restore();
        HistoryPanel* history = view.history();
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        const QString a = chat.ids().first();
        chat.rename(a, QStringLiteral("Dragons"));
        chat.setSampling(a, seeded(6, 8));
        QVERIFY(chat.send(a, QStringLiteral("Tell me about a purple elephant.")));
        QVERIFY(finished.wait(30000));
        const QString b = chat.newConversation(QStringLiteral("Cooking"));
        chat.setSampling(b, seeded(6, 8));
        QVERIFY(chat.send(b, QStringLiteral("How do I boil rice?")));
        QVERIFY(finished.wait(30000));
        chat.closeConversation(a);
        QVERIFY(!view.tab(a));
        QCOMPARE(history->shownIds(), QStringList({a, b}));  // a was used last (closing it)

        QTest::keyClicks(history->searchBox(), QStringLiteral("ELEPHANT"));  // content, any case
        QCOMPARE(history->shownIds(), QStringList({a}));
        history->searchBox()->clear();
        QTest::keyClicks(history->searchBox(), QStringLiteral("cook"));  // title
        QCOMPARE(history->shownIds(), QStringList({b}));
        history->searchBox()->clear();
        QTest::keyClicks(history->searchBox(), QStringLiteral("no such words"));
        QVERIFY(history->shownIds().isEmpty());
        history->searchBox()->clear();
        QCOMPARE(history->list()->count(), 2);

        // Activating the closed one (Enter on it) reopens it and shows its tab.
        history->list()->setFocus();
        history->list()->setCurrentRow(int(history->shownIds().indexOf(a)));
        QTest::keyClick(history->list(), Qt::Key_Return);
        QVERIFY(view.tab(a));
        QCOMPARE(view.currentTab()->id(), a);
        QVERIFY(chat.conversation(a)->open);

        // Delete, then Undo: the file goes and comes back, with its messages.
        const QString file = dir + QStringLiteral("/") + b + QStringLiteral(".json");
        QVERIFY(QFile::exists(file));
        history->list()->setCurrentRow(int(history->shownIds().indexOf(b)));
        QTest::keyClick(history->list(), Qt::Key_Delete);
        QVERIFY(!chat.conversation(b));
        QVERIFY(!QFile::exists(file));
        QVERIFY(!history->shownIds().contains(b));
        QVERIFY(history->undoButton()->isVisible());
        QTest::mouseClick(history->undoButton(), Qt::LeftButton);
        QVERIFY(chat.conversation(b));
        QCOMPARE(chat.conversation(b)->messages.size(), 2);
        QVERIFY(QFile::exists(file));
        QVERIFY(history->shownIds().contains(b));
        QVERIFY(view.tab(b));  // it was open: its tab is back
        QVERIFY(!chat.undoRemove());  // nothing more to bring back
    }

    // Issue 13, presets: a tab's system prompt, sampling and context policy saved under a name,
    // chosen in another tab's Preset box, made the default for new chats, kept across a restart.
    void presetsSaveChooseDefault() {
        const QString dir = m_env->path(QStringLiteral("presets"));
        {
            ChatController chat(m_engine.get(), ConversationStore(dir));
            ChatView view(&chat);
            view.show();
            chat.restore();
            const QString a = chat.ids().first();
            ChatTab* ta = view.tab(a);
            chat.setSystemPrompt(a, QStringLiteral("You are a pirate."));
            SamplingSettings pirate = seeded(7, 33);
            pirate.temperature = 0.3;
            chat.setSampling(a, pirate);
            chat.setContextOverflow(a, QStringLiteral("rolling-window"));
            ta->savePresetAs(QStringLiteral("Pirate"));
            QCOMPARE(chat.presetNames(), QStringList({QStringLiteral("Pirate")}));
            QCOMPARE(ta->presetBox()->currentData().toString(), QStringLiteral("Pirate"));

            const QString b = chat.newConversation();  // no default preset yet: the built-in defaults
            QCOMPARE(chat.conversation(b)->systemPrompt, QString());
            ChatTab* tb = view.tab(b);
            QCOMPARE(tb->presetBox()->currentIndex(), 0);
            QVERIFY(!tb->presetDefault()->isEnabled());
            tb->presetBox()->setFocus();
            QTest::keyClick(tb->presetBox(), Qt::Key_Down);  // as a user picks it
            const Conversation* cb = chat.conversation(b);
            QCOMPARE(cb->systemPrompt, QStringLiteral("You are a pirate."));
            QCOMPARE(cb->sampling, pirate);
            QCOMPARE(cb->contextOverflow, QStringLiteral("rolling-window"));
            QCOMPARE(tb->systemPrompt()->toPlainText(), QStringLiteral("You are a pirate."));
            QCOMPARE(tb->contextPolicy()->currentData().toString(), QStringLiteral("rolling-window"));

            QVERIFY(tb->presetDefault()->isEnabled());
            tb->presetDefault()->setChecked(true);
            QCOMPARE(chat.defaultPreset(), QStringLiteral("Pirate"));
            const QString c = chat.newConversation();
            QCOMPARE(chat.conversation(c)->systemPrompt, QStringLiteral("You are a pirate."));
            QCOMPARE(chat.conversation(c)->sampling, pirate);
        }
        ChatController again(m_engine.get(), ConversationStore(dir));
        QCOMPARE(again.presetNames(), QStringList({QStringLiteral("Pirate")}));
        QCOMPARE(again.defaultPreset(), QStringLiteral("Pirate"));
        again.removePreset(QStringLiteral("Pirate"));
        QVERIFY(again.presetNames().isEmpty());
        QVERIFY(again.defaultPreset().isEmpty());
        QVERIFY(ConversationStore(dir).loadPresets().list.isEmpty());
    }

    // Issue 13, attachments: text files picked or dropped on the input box go into the next message
    // (their token count shown before sending); the model reads them before the message; binary,
    // PDF and oversized files are refused with the reason; they are kept with the conversation.
    void attachmentsGoIntoThePrompt() {
        const QString dir = m_env->path(QStringLiteral("attach"));
        auto write = [&](const QString& name, const QByteArray& bytes) {
            const QString p = m_env->path(QStringLiteral("files")) + QStringLiteral("/") + name;
            QDir().mkpath(QFileInfo(p).path());
            QFile f(p);
            f.open(QIODevice::WriteOnly);
            f.write(bytes);
            return p;
        };
        const QString notes = write(QStringLiteral("notes.md"), "# Notes\nThe secret word is pineapple.\n");
        const QString code = write(QStringLiteral("main.cpp"), "int main() { return 0; }\n");
        const QString binary = write(QStringLiteral("blob.bin"), QByteArray("\x7f""ELF\0\0\x01", 7));
        const QString pdf = write(QStringLiteral("paper.pdf"), "%PDF-1.4\n");
        const QString big = write(QStringLiteral("big.txt"), QByteArray(int(ChatController::kMaxAttachmentBytes) + 1, 'a'));

        QString id;
        {
            ChatController chat(m_engine.get(), ConversationStore(dir));
            ChatView view(&chat);
            view.show();
            chat.restore();
            id = chat.ids().first();
            chat.setSampling(id, seeded(8, 8));
            ChatTab* tab = view.tab(id);
            QVERIFY(tab->attachFile(notes));
            QVERIFY2(tab->attachments()->isVisible() && tab->attachments()->text().contains(QStringLiteral("notes.md (")) &&
                         tab->attachments()->text().contains(QStringLiteral("token")),
                     qPrintable(tab->attachments()->text()));
            for (const QString& bad : {binary, pdf, big}) {
                QVERIFY(!tab->attachFile(bad));
                QVERIFY(tab->notice()->isVisible());
                QVERIFY2(tab->notice()->text().contains(QFileInfo(bad).fileName()), qPrintable(tab->notice()->text()));
                if (bad == pdf) QVERIFY(tab->notice()->text().contains(QStringLiteral("PDF")));
            }
            // A file dropped on the input box is attached, not pasted.
            QMimeData mime;
            mime.setUrls({QUrl::fromLocalFile(code)});
            QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
            QCoreApplication::sendEvent(tab->input()->viewport(), &enter);
            QVERIFY(enter.isAccepted());
            QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
            QCoreApplication::sendEvent(tab->input()->viewport(), &drop);
            QVERIFY2(tab->pendingAttachments().size() == 2, qPrintable(tab->notice()->text() + QStringLiteral(" / ") + tab->attachments()->text()));
            QVERIFY(tab->input()->toPlainText().isEmpty());

            QSignalSpy finished(&chat, &ChatController::generationFinished);
            tab->input()->setFocus();
            QTest::keyClicks(tab->input(), QStringLiteral("What is the secret word?"));
            QTest::keyClick(tab->input(), Qt::Key_Return);
            QVERIFY(finished.wait(30000));
            QVERIFY(tab->pendingAttachments().isEmpty());
            QVERIFY(!tab->attachments()->isVisible());
            const auto& user = chat.conversation(id)->messages[0];
            QCOMPARE(user.content, QStringLiteral("What is the secret word?"));
            QCOMPARE(user.attachments.size(), 2);
            QCOMPARE(user.attachments[0].name, QStringLiteral("notes.md"));
            QVERIFY(user.promptText().contains(QStringLiteral("The secret word is pineapple.")));
            QVERIFY2(tab->messageAt(0)->statsText().contains(QStringLiteral("Attached: notes.md, main.cpp")),
                     qPrintable(tab->messageAt(0)->statsText()));
            // The prompt held the files: the same question alone is much shorter.
            const QString alone = chat.newConversation();
            chat.setSampling(alone, seeded(8, 8));
            QVERIFY(chat.send(alone, QStringLiteral("What is the secret word?")));
            QVERIFY(finished.wait(30000));
            const int withFiles = chat.conversation(id)->messages[1].stats->promptTokens;
            const int without = chat.conversation(alone)->messages[1].stats->promptTokens;
            QVERIFY2(withFiles > without + 10, qPrintable(QStringLiteral("%1 vs %2").arg(withFiles).arg(without)));
        }
        ChatController again(m_engine.get(), ConversationStore(dir));
        again.restore();
        QCOMPARE(again.conversation(id)->messages[0].attachments.size(), 2);
        QCOMPARE(again.conversation(id)->messages[0].attachments[1].text, QStringLiteral("int main() { return 0; }\n"));
    }

    // Issue 13, PDF attachments: the text of every page (poppler), the token count shown before
    // sending; a PDF without text (scanned pictures) or a damaged one is refused with the reason.
    void pdfAttachmentsGiveTheirText() {
        const QString files = m_env->path(QStringLiteral("pdf"));
        QDir().mkpath(files);
        auto writePdf = [&](const QString& name, const QStringList& pages) {
            const QString path = files + QStringLiteral("/") + name;
            QPdfWriter pdf(path);
            QPainter p(&pdf);
            for (int i = 0; i < pages.size(); ++i) {
                if (i) pdf.newPage();
                if (pages[i].isEmpty()) p.fillRect(QRect(100, 100, 2000, 1000), Qt::gray);  // a picture, no text
                else p.drawText(QRect(0, 0, 8000, 2000), Qt::AlignLeft | Qt::AlignTop, pages[i]);
            }
            p.end();
            return path;
        };
        const QString paper = writePdf(QStringLiteral("paper.pdf"), {QStringLiteral("The secret word is mango."),
                                                                      QStringLiteral("Page two says kiwi.")});
        QString error;
        const auto a = ChatController::readAttachment(paper, &error);
        QVERIFY2(a, qPrintable(error));
        QCOMPARE(a->name, QStringLiteral("paper.pdf"));
        QVERIFY2(a->text.contains(QStringLiteral("The secret word is mango.")), qPrintable(a->text));
        QVERIFY2(a->text.indexOf(QStringLiteral("kiwi")) > a->text.indexOf(QStringLiteral("mango")), qPrintable(a->text));

        const QString scan = writePdf(QStringLiteral("scan.pdf"), {QString()});
        QVERIFY(!ChatController::readAttachment(scan, &error));
        QVERIFY2(error.contains(QStringLiteral("scan.pdf")) && error.contains(QStringLiteral("no text")), qPrintable(error));
        QFile damaged(files + QStringLiteral("/damaged.pdf"));  // a header and nothing a reader could recover
        QVERIFY(damaged.open(QIODevice::WriteOnly));
        damaged.write("%PDF-1.7\n1 0 obj << /Type /Catalog >>\n");
        damaged.close();
        QVERIFY(!ChatController::readAttachment(damaged.fileName(), &error));
        QVERIFY2(error.contains(QStringLiteral("damaged.pdf")) && error.contains(QStringLiteral("PDF")), qPrintable(error));

        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        chat.restore();
        ChatTab* tab = view.tab(chat.ids().first());
        QVERIFY(tab->attachFile(paper));
        QVERIFY2(tab->attachments()->text().contains(QStringLiteral("paper.pdf (")) &&
                     tab->attachments()->text().contains(QStringLiteral("token")),
                 qPrintable(tab->attachments()->text()));
        QCOMPARE(tab->pendingAttachments().size(), 1);
    }

    // Issue 13, defect 4: closing a tab keeps the conversation on disk (stopping a reply in
    // progress cleanly), and it can be reopened, also after a restart.
    void closeTabKeepsConversation() {
        const QString dir = m_env->path(QStringLiteral("closing"));
        QString id;
        {
            ChatController chat(m_engine.get(), ConversationStore(dir));
            ChatView view(&chat);
            chat.restore();
            id = chat.ids().first();
            chat.setSampling(id, seeded(8, 450));
            QSignalSpy updates(&chat, &ChatController::messageUpdated);
            QSignalSpy finished(&chat, &ChatController::generationFinished);
            QVERIFY(chat.send(id, QStringLiteral("Tell me a long story")));
            QVERIFY(updates.wait(30000));
            view.closeCurrentTab();  // while it generates
            QCOMPARE(view.tabs()->count(), 1);  // a fresh tab took its place
            QVERIFY(!chat.ids().contains(id));
            QCOMPARE(chat.closedIds(), QStringList{id});
            QVERIFY(finished.wait(30000));
            QVERIFY(!chat.isGenerating(id));
            const Conversation* c = chat.conversation(id);
            QVERIFY(c);
            QCOMPARE(c->messages.size(), 2);
            QCOMPARE(c->messages[1].stats->finishReason, QStringLiteral("cancelled"));
            QVERIFY(QFile::exists(dir + QLatin1Char('/') + id + QStringLiteral(".json")));
        }
        ChatController chat(m_engine.get(), ConversationStore(dir));
        ChatView view(&chat);
        chat.restore();
        QVERIFY(!chat.ids().contains(id));  // still closed after a restart
        QCOMPARE(view.tabs()->count(), 1);
        QCOMPARE(chat.closedIds(), QStringList{id});
        QVERIFY(chat.reopenConversation(id));
        QCOMPARE(view.tabs()->count(), 2);
        QVERIFY(view.tab(id));
        QCOMPARE(view.tab(id)->messageCount(), 2);
        QCOMPARE(chat.conversation(id)->messages[0].content, QStringLiteral("Tell me a long story"));
        QVERIFY(chat.closedIds().isEmpty());
    }

    // A long conversation shown again (reopened, or restored at start) opens at its end, also when
    // its tab is laid out only after it was filled; scrolling up stops the following.
    void longConversationOpensAtItsEnd() {
        const QString dir = m_env->path(QStringLiteral("long"));
        Conversation c;
        c.id = QStringLiteral("long1");
        c.title = QStringLiteral("Long");
        c.created = c.updated = QDateTime::currentDateTime();
        c.open = false;
        for (int i = 0; i < 30; ++i)
            c.messages.append({i % 2 ? QStringLiteral("assistant") : QStringLiteral("user"),
                               QStringLiteral("Message %1: once upon a time there was a cat.").arg(i),
                               QDateTime::currentDateTime(), std::nullopt, {}});
        QVERIFY(ConversationStore(dir).save(c));
        ChatController chat(m_engine.get(), ConversationStore(dir));
        ChatView view(&chat);
        view.resize(1000, 500);
        view.show();
        chat.restore();
        QVERIFY(chat.reopenConversation(c.id));
        QScrollBar* bar = view.tab(c.id)->messageScroll()->verticalScrollBar();
        QTRY_VERIFY(bar->maximum() > 500);
        QTRY_COMPARE(bar->value(), bar->maximum());
        bar->setValue(0);  // the user scrolls up: a new message does not pull the view down
        chat.rename(c.id, QStringLiteral("Long story"));
        QTest::qWait(50);
        QCOMPARE(bar->value(), 0);
    }

    // Issue 13, defect 10: the chat view names the model that answers, and says when there is none.
    void chatViewShowsLoadedModel() {
        ChatController chat(m_engine.get(), freshStore());
        ChatView view(&chat);
        QCOMPARE(view.modelLabel()->text(), QStringLiteral("stories260K · unquantized · 512-token context"));
        EngineController none;
        ChatController idle(&none, freshStore());
        ChatView empty(&idle);
        QCOMPARE(empty.modelLabel()->text(), QStringLiteral("No model loaded"));
    }

    // Issue 13, defect 10: a new tab starts from the defaults, not from the last tab's settings.
    void newTabStartsFromDefaults() {
        ChatController chat(m_engine.get(), freshStore());
        chat.restore();
        const QString a = chat.ids().first();
        chat.setSystemPrompt(a, QStringLiteral("Be terse."));
        chat.setSampling(a, seeded(3, 17));
        const QString b = chat.newConversation();
        QVERIFY(chat.conversation(b)->systemPrompt.isEmpty());
        QCOMPARE(chat.conversation(b)->sampling, SamplingSettings{});
    }

    // Issue 13, defect 5: the statistics say only what was measured — after the model is
    // unloaded mid-reply (tokens streamed, no prompt size), after Stop, and "1 token".
    void statisticsAfterUnloadAndStop() {
        EngineController engine;
        QSignalSpy loaded(&engine, &EngineController::loaded);
        engine.load(lmw::test::smallConfig());
        QVERIFY(loaded.wait(30000));
        ChatController chat(&engine, freshStore());
        ChatView view(&chat);
        chat.restore();
        const QString id = chat.ids().first();
        QSignalSpy finished(&chat, &ChatController::generationFinished);

        chat.setSampling(id, seeded(6, 1));
        QVERIFY(chat.send(id, QStringLiteral("Once")));
        QVERIFY(finished.wait(30000));
        const QString one = view.tab(id)->messageAt(1)->statsText();
        QVERIFY2(one.startsWith(QStringLiteral("1 token · ")), qPrintable(one));
        QVERIFY2(!one.contains(QStringLiteral("tok/s")), qPrintable(one));  // no speed from one token

        chat.setSampling(id, seeded(6, 450));
        QSignalSpy updates(&chat, &ChatController::messageUpdated);
        QVERIFY(chat.send(id, QStringLiteral("Tell me a long story")));
        QTRY_VERIFY_WITH_TIMEOUT(chat.conversation(id)->messages[3].content.size() > 20, 30000);
        engine.unload();
        QTRY_VERIFY_WITH_TIMEOUT(!chat.isGenerating(id), 30000);
        const auto& m = chat.conversation(id)->messages[3];
        QVERIFY(m.stats.has_value());
        QVERIFY2(m.stats->completionTokens > 1, qPrintable(QString::number(m.stats->completionTokens)));
        const QString text = view.tab(id)->messageAt(3)->statsText();
        QVERIFY2(text.startsWith(QString::number(m.stats->completionTokens) + QStringLiteral(" tokens")), qPrintable(text));
        QVERIFY(m.stats->firstTokenSeconds > 0);  // from the stream: the engine sent no timings
        QVERIFY(m.stats->totalSeconds >= m.stats->firstTokenSeconds);
        QVERIFY2(!text.contains(QStringLiteral("prompt 0")) && !text.contains(QStringLiteral(" 0 ms")), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("unloaded")), qPrintable(text));

        // Stop before the first token: no first-token time, no speed.
        ChatMessageRecord stopped{QStringLiteral("assistant"), QString(), QDateTime::currentDateTime(), MessageStats{}, {}};
        stopped.stats->promptTokens = 12;
        stopped.stats->finishReason = QStringLiteral("cancelled");
        MessageWidget w;
        w.setMessage(stopped, false);
        QCOMPARE(w.statsText(), QStringLiteral("0 tokens · prompt 12 tokens · stopped"));
    }

    void sendWithoutModelIsAnError() {
        EngineController none;
        ChatController chat(&none, freshStore());
        chat.restore();
        QSignalSpy errors(&chat, &ChatController::errorOccurred);
        QVERIFY(!chat.send(chat.ids().first(), QStringLiteral("hi")));
        QCOMPARE(errors.count(), 1);
        QCOMPARE(errors.at(0).at(0).toString(), QStringLiteral("No model loaded"));
        QCOMPARE(chat.conversation(chat.ids().first())->messages.size(), 0);
    }

    // Issue 13, defect 10: a single newline in a reply is a line break, not a space.
    void replyLineBreaksKept() {
        QTextDocument doc;
        setMarkdownWithCodeBlocks(&doc, QStringLiteral("Line one\nLine two\n\n```\na\nb\n```\n"));
        const QString plain = doc.toPlainText();
        QVERIFY2(!plain.contains(QStringLiteral("Line one Line two")), qPrintable(plain));
        QVERIFY2(plain.contains(QStringLiteral("Line one")) && plain.contains(QStringLiteral("Line two")), qPrintable(plain));
        QVERIFY2(plain.contains(QStringLiteral("a\nb")), qPrintable(plain));  // code untouched
    }

    void markdownCodeBlocks() {
        QTextDocument doc;
        setMarkdownWithCodeBlocks(&doc, QStringLiteral("Text\n\n```cpp\nint x = 1;\n```\n"));
        QVERIFY(doc.toPlainText().contains(QStringLiteral("int x = 1;")));
        bool tinted = false;
        for (QTextBlock b = doc.begin(); b.isValid(); b = b.next())
            if (b.text() == QStringLiteral("int x = 1;")) tinted = b.blockFormat().background().color() == QColor(0xf1, 0xf3, 0xf5);
        QVERIFY(tinted);
    }
};

QTEST_MAIN(TestChatController)
#include "test_chat_controller.moc"
