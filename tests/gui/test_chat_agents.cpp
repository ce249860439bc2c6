// Issue 14 in the chat tab: a reply's <think> block as a collapsible Thinking block above the
// answer, the per-tab Thinking switch (qwen3-tiny's real Qwen3 template reads enable_thinking;
// stories260K's does not), and JSON output (a schema validated as it is typed, constrained replies
// shown indented, kept over a restart). Ends with the two pictures for docs/images.
#include <QCheckBox>
#include <QDir>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSet>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTabWidget>
#include <QTest>
#include <QTextBlock>
#include <QTextBrowser>
#include <QToolButton>

#include "gui/gui_test_env.h"
#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/chat_view.h"
#include "lmw/gui/engine_settings.h"
#include "lmw/gui/message_widget.h"
#include "lmw/gui/model_view.h"

using namespace lmw::gui;

namespace {

// What a thinking model writes: Qwen3's shape, "\n" after <think>, "\n\n" after </think>.
const QString kThinkingReply = QStringLiteral(
    "<think>\nThree cats, four legs each: 3 x 4 = 12.\nCheck: 4 + 4 + 4 = 12.\n</think>\n\nThree cats have **12 legs**.");
const QString kReasoning = QStringLiteral("Three cats, four legs each: 3 x 4 = 12.\nCheck: 4 + 4 + 4 = 12.");

ChatMessageRecord message(const QString& role, const QString& content) {
    ChatMessageRecord m;
    m.role = role;
    m.content = content;
    m.time = QDateTime::currentDateTime();
    return m;
}

// A schema with every kind of value a tiny model has to be forced into; strings bounded so the
// reply ends well within max tokens.
const QString kSchema = QStringLiteral(
    "{\"type\": \"object\", \"properties\": {"
    "\"name\": {\"type\": \"string\", \"maxLength\": 16},"
    "\"age\": {\"type\": \"integer\"},"
    "\"mood\": {\"enum\": [\"happy\", \"sad\"]},"
    "\"toys\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"maxLength\": 8}, \"maxItems\": 2}},"
    "\"required\": [\"name\", \"age\", \"mood\", \"toys\"]}");

}  // namespace

class TestChatAgents : public QObject {
    Q_OBJECT
    std::unique_ptr<lmw::test::GuiTestEnv> m_env;
    std::unique_ptr<EngineController> m_stories;
    std::unique_ptr<EngineController> m_qwen;

    ConversationStore freshStore() {
        static int n = 0;
        return ConversationStore(m_env->path(QStringLiteral("agents%1").arg(++n)));
    }
    static SamplingSettings seeded(qint64 seed, int maxTokens) {
        SamplingSettings s;
        s.seed = seed;
        s.maxTokens = maxTokens;
        return s;
    }
    static QToolButton* copyButton(MessageWidget* w) {
        for (auto* b : w->findChildren<QToolButton*>())
            if (b->text() == QStringLiteral("Copy")) return b;
        return nullptr;
    }
    // A reply in JSON mode, checked against kSchema by hand (the grammar must have forced all of it).
    static void checkAgainstSchema(const QString& reply) {
        QJsonParseError pe;
        const QJsonDocument doc = QJsonDocument::fromJson(reply.toUtf8(), &pe);
        QVERIFY2(pe.error == QJsonParseError::NoError, qPrintable(pe.errorString() + QStringLiteral(": ") + reply));
        QVERIFY2(doc.isObject(), qPrintable(reply));
        const QJsonObject o = doc.object();
        QCOMPARE(o.keys(), QStringList({"age", "mood", "name", "toys"}));  // QJsonObject sorts them
        QVERIFY(o.value("name").isString());
        QVERIFY(o.value("name").toString().size() <= 16);
        QVERIFY(o.value("age").isDouble());
        QCOMPARE(o.value("age").toDouble(), double(qint64(o.value("age").toDouble())));
        QVERIFY(o.value("mood") == QJsonValue("happy") || o.value("mood") == QJsonValue("sad"));
        QVERIFY(o.value("toys").isArray());
        QVERIFY(o.value("toys").toArray().size() <= 2);
    }
private slots:
    void initTestCase() {
        m_env = std::make_unique<lmw::test::GuiTestEnv>();
        applyAppStyle();
        m_stories = std::make_unique<EngineController>();
        m_qwen = std::make_unique<EngineController>();
        QSignalSpy storiesLoaded(m_stories.get(), &EngineController::loaded);
        QSignalSpy qwenLoaded(m_qwen.get(), &EngineController::loaded);
        m_stories->load(lmw::test::smallConfig());
        m_qwen->load(lmw::test::smallConfig("qwen3-tiny"));
        QVERIFY(storiesLoaded.count() || storiesLoaded.wait(30000));
        QVERIFY(qwenLoaded.count() || qwenLoaded.wait(60000));
        QVERIFY(m_qwen->templateSupportsThinking());
        QVERIFY(!m_stories->templateSupportsThinking());
    }
    void cleanupTestCase() {
        m_stories.reset();
        m_qwen.reset();
    }

    // The <think> block goes into a Thinking block, closed, above the answer; the toggle shows and
    // hides it; the answer and Copy leave it out.
    void thinkingBlockSplitsReply() {
        MessageWidget w;
        w.resize(600, 400);
        w.show();
        w.setMessage(message(QStringLiteral("assistant"), kThinkingReply), false);
        QVERIFY(w.thinkingButton()->isVisible());
        QVERIFY(!w.thinkingBody()->isVisible());  // a finished reply: closed
        QCOMPARE(w.reasoningText(), kReasoning);
        QCOMPARE(w.answerText(), QStringLiteral("Three cats have **12 legs**."));
        QCOMPARE(w.body()->toPlainText(), QStringLiteral("Three cats have 12 legs."));  // Markdown, no reasoning
        QCOMPARE(w.text(), kThinkingReply);  // the stored text stays whole
        QCOMPARE(w.thinkingButton()->text(), QStringLiteral("Thought · 18 words"));

        QTest::mouseClick(w.thinkingButton(), Qt::LeftButton);
        QVERIFY(w.thinkingBody()->isVisible());
        QCOMPARE(w.thinkingBody()->toPlainText(), kReasoning);
        QCOMPARE(w.thinkingButton()->arrowType(), Qt::DownArrow);
        QVERIFY(w.thinkingBody()->height() > 30);  // two lines of reasoning fit
        QTest::mouseClick(w.thinkingButton(), Qt::LeftButton);
        QVERIFY(!w.thinkingBody()->isVisible());
        QCOMPARE(w.thinkingButton()->arrowType(), Qt::RightArrow);

        QSignalSpy copied(&w, &MessageWidget::copyRequested);
        QTest::mouseClick(copyButton(&w), Qt::LeftButton);
        QCOMPARE(copied.count(), 1);
        QCOMPARE(copied.at(0).at(0).toString(), QStringLiteral("Three cats have **12 legs**."));

        // A reply with no <think> at its start has no block (a later <think> is content).
        w.setMessage(message(QStringLiteral("assistant"), QStringLiteral("Plain <think>not this</think> answer")), false);
        QVERIFY(!w.thinkingButton()->isVisible());
        QCOMPARE(w.answerText(), QStringLiteral("Plain <think>not this</think> answer"));

        // Exported Markdown: the reasoning as a quote above the answer.
        Conversation c;
        c.title = QStringLiteral("Cats");
        c.messages = {message(QStringLiteral("user"), QStringLiteral("Legs?")), message(QStringLiteral("assistant"), kThinkingReply)};
        const QString md = c.toMarkdown();
        QVERIFY2(md.contains(QStringLiteral("## Assistant\n\n> **Thinking:**\n> Three cats, four legs each: 3 x 4 = 12.\n"
                                            "> Check: 4 + 4 + 4 = 12.\n\nThree cats have **12 legs**.\n")),
                 qPrintable(md));
    }

    // While only the reasoning streams the block is open; once the answer starts it closes, unless
    // the user chose otherwise.
    void thinkingBlockWhileStreaming() {
        MessageWidget w;
        w.resize(600, 400);
        w.show();
        w.setMessage(message(QStringLiteral("assistant"), QStringLiteral("<think>\nThree cats")), true);
        QTRY_VERIFY(w.thinkingBody()->isVisible());
        QCOMPARE(w.thinkingButton()->text(), QStringLiteral("Thinking…"));
        QCOMPARE(w.thinkingBody()->toPlainText(), QStringLiteral("Three cats"));
        QVERIFY(!w.body()->isVisible());  // no answer yet
        // A partial closing tag is held back, not shown as reasoning.
        w.setMessage(message(QStringLiteral("assistant"), QStringLiteral("<think>\nThree cats, four legs.\n</thi")), true);
        QTRY_COMPARE(w.thinkingBody()->toPlainText(), QStringLiteral("Three cats, four legs."));
        w.setMessage(message(QStringLiteral("assistant"), QStringLiteral("<think>\nThree cats, four legs.\n</think>\n\nTwelve")), true);
        QTRY_VERIFY(!w.thinkingBody()->isVisible());
        QVERIFY(w.body()->isVisible());
        QCOMPARE(w.body()->toPlainText(), QStringLiteral("Twelve"));
        QCOMPARE(w.thinkingButton()->text(), QStringLiteral("Thought · 4 words"));
        // Opened by hand: more answer streaming in keeps it open.
        QTest::mouseClick(w.thinkingButton(), Qt::LeftButton);
        w.setMessage(message(QStringLiteral("assistant"), QStringLiteral("<think>\nThree cats, four legs.\n</think>\n\nTwelve legs.")), false);
        QVERIFY(w.thinkingBody()->isVisible());
        QCOMPARE(w.body()->toPlainText(), QStringLiteral("Twelve legs."));
    }

    // Conversations from disk show the block in their tab; a reply whose prompt opened <think>
    // (starts_in_reasoning, DeepSeek-R1 style) splits at </think> with no opening tag.
    void thinkingInTabFromStore() {
        ConversationStore store = freshStore();
        Conversation c;
        c.id = QStringLiteral("thinking");
        c.title = QStringLiteral("Cats");
        c.created = c.updated = QDateTime::currentDateTime();
        c.messages = {message(QStringLiteral("user"), QStringLiteral("How many legs do three cats have?")),
                      message(QStringLiteral("assistant"), kThinkingReply),
                      message(QStringLiteral("user"), QStringLiteral("And two?")),
                      message(QStringLiteral("assistant"), QStringLiteral("Two times four.\n</think>\n\nEight."))};
        c.messages[3].startsInReasoning = true;
        QVERIFY(store.save(c));
        ChatController chat(m_qwen.get(), store);
        ChatView view(&chat);
        view.resize(1000, 700);
        view.show();
        chat.restore();
        QVERIFY(chat.conversation(c.id)->messages[3].startsInReasoning);
        ChatTab* tab = view.tab(c.id);
        QVERIFY(tab);
        QCOMPARE(tab->messageCount(), 4);
        MessageWidget* first = tab->messageAt(1);
        QVERIFY(first->thinkingButton()->isVisible());
        QVERIFY(!first->thinkingBody()->isVisible());
        QVERIFY(!first->body()->toPlainText().contains(QStringLiteral("4 + 4")));
        QTest::mouseClick(first->thinkingButton(), Qt::LeftButton);
        QVERIFY(first->thinkingBody()->isVisible());
        MessageWidget* second = tab->messageAt(3);
        QCOMPARE(second->reasoningText(), QStringLiteral("Two times four."));
        QCOMPARE(second->body()->toPlainText(), QStringLiteral("Eight."));
        QVERIFY(!tab->messageAt(0)->thinkingButton()->isVisible());  // user messages never have one
    }

    // The switch reaches the request: Qwen3's template writes an empty <think></think> into the
    // prompt when enable_thinking is false, so the prompt is longer by those tokens. Template
    // options that set enable_thinking win, and the switch shows them, greyed.
    void thinkingSwitchReachesRequest() {
        const QString dir = m_env->path(QStringLiteral("switch"));
        QString on, off, explicitOn;
        {
            ChatController chat(m_qwen.get(), ConversationStore(dir));
            ChatView view(&chat);
            view.show();
            chat.restore();
            on = chat.ids().first();
            off = chat.newConversation();
            explicitOn = chat.newConversation();
            for (const QString& id : {on, off, explicitOn}) chat.setSampling(id, seeded(9, 3));
            ChatTab* offTab = view.tab(off);
            QVERIFY(offTab->thinkingSwitch()->isEnabled());
            QVERIFY(offTab->thinkingSwitch()->isChecked());  // on by default
            offTab->thinkingSwitch()->click();
            QVERIFY(!chat.conversation(off)->thinking);
            QVERIFY(chat.conversation(on)->thinking);

            chat.setThinking(explicitOn, false);
            QVERIFY(chat.setTemplateOptions(explicitOn, QStringLiteral("{\"enable_thinking\": true}")));
            ChatTab* explicitTab = view.tab(explicitOn);
            QVERIFY(!explicitTab->thinkingSwitch()->isEnabled());
            QVERIFY(explicitTab->thinkingSwitch()->isChecked());

            QSignalSpy finished(&chat, &ChatController::generationFinished);
            for (const QString& id : {on, off, explicitOn}) QVERIFY(chat.send(id, QStringLiteral("Hello")));
            QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 3, 60000);
            const int onTokens = chat.conversation(on)->messages[1].stats->promptTokens;
            const int offTokens = chat.conversation(off)->messages[1].stats->promptTokens;
            const int explicitTokens = chat.conversation(explicitOn)->messages[1].stats->promptTokens;
            // The prompts the engine renders with and without enable_thinking=false.
            const auto engine = m_qwen->engine();
            const std::vector<lmw::engine::ChatMessage> hello{{"user", "Hello"}};
            const auto tokens = [&](const nlohmann::ordered_json& kwargs) {
                return int(engine->encodeChat(engine->renderChat(hello, true, kwargs)).size());
            };
            QVERIFY(engine->renderChat(hello, true, {{"enable_thinking", false}}).find("<think>") != std::string::npos);
            QCOMPARE(onTokens, tokens(nullptr));
            QCOMPARE(offTokens, tokens({{"enable_thinking", false}}));
            QVERIFY(offTokens > onTokens);
            QCOMPARE(explicitTokens, onTokens);
        }
        // Kept with the conversation.
        ChatController again(m_qwen.get(), ConversationStore(dir));
        again.restore();
        QVERIFY(!again.conversation(off)->thinking);
        QVERIFY(again.conversation(on)->thinking);
        ChatView view(&again);
        QVERIFY(!view.tab(off)->thinkingSwitch()->isChecked());

        // stories260K's template has no switch: greyed, and the request is what it was.
        ChatController stories(m_stories.get(), freshStore());
        ChatView storiesView(&stories);
        stories.restore();
        ChatTab* tab = storiesView.tab(stories.ids().first());
        QVERIFY(!tab->thinkingSwitch()->isEnabled());
        QVERIFY(tab->thinkingSwitch()->toolTip().contains(QStringLiteral("no thinking switch")));
    }

    // The schema is checked per keystroke: not JSON, not an object, an unsupported keyword each say
    // why in the red label, and Send refuses (with the reason in the tab) while it is so.
    void jsonSchemaValidatedAsTyped() {
        ChatController chat(m_stories.get(), freshStore());
        ChatView view(&chat);
        view.show();
        chat.restore();
        const QString id = chat.ids().first();
        ChatTab* tab = view.tab(id);
        QVERIFY(tab->jsonSchemaError()->isHidden());
        tab->jsonOutput()->setChecked(true);
        QVERIFY(chat.conversation(id)->jsonOutput.enabled);
        QVERIFY(tab->jsonSchemaError()->isHidden());  // empty schema: any JSON object

        tab->jsonSchema()->setFocus();
        QTest::keyClicks(tab->jsonSchema(), QStringLiteral("{\"type\": "));
        QVERIFY(!tab->jsonSchemaError()->isHidden());
        QVERIFY2(tab->jsonSchemaError()->text().startsWith(QStringLiteral("Not valid JSON")),
                 qPrintable(tab->jsonSchemaError()->text()));
        tab->jsonSchema()->setPlainText(QStringLiteral("[1, 2]"));
        QVERIFY2(tab->jsonSchemaError()->text().contains(QStringLiteral("is an object")), qPrintable(tab->jsonSchemaError()->text()));
        tab->jsonSchema()->setPlainText(
            QStringLiteral("{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"a+\"}}}"));
        QCOMPARE(tab->jsonSchemaError()->text(), QStringLiteral("JSON schema: unsupported JSON Schema keyword 'pattern' at /properties/x"));
        QVERIFY(!tab->jsonSchemaError()->isHidden());
        QCOMPARE(chat.conversation(id)->jsonOutput.schema, tab->jsonSchema()->toPlainText());  // kept as typed

        QSignalSpy errors(&chat, &ChatController::errorOccurred);
        tab->input()->setPlainText(QStringLiteral("Tell me about Lily"));
        tab->send();
        QCOMPARE(tab->messageCount(), 0);
        QVERIFY(!tab->notice()->isHidden());
        QVERIFY2(tab->notice()->text().contains(QStringLiteral("'pattern'")), qPrintable(tab->notice()->text()));
        QCOMPARE(tab->input()->toPlainText(), QStringLiteral("Tell me about Lily"));  // not lost
        QCOMPARE(errors.count(), 0);  // said in the tab, not in a dialog
        // The controller refuses too (Regenerate, Edit, other callers).
        QVERIFY(!chat.send(id, QStringLiteral("Hello")));
        QCOMPARE(errors.count(), 1);
        QVERIFY(chat.conversation(id)->messages.isEmpty());

        // Fixed: the label goes and Send works.
        tab->jsonSchema()->setPlainText(kSchema);
        QVERIFY(tab->jsonSchemaError()->isHidden());
        chat.setSampling(id, seeded(2, 200));
        QSignalSpy finished(&chat, &ChatController::generationFinished);
        tab->send();
        QCOMPARE(tab->messageCount(), 2);
        QVERIFY(tab->notice()->isHidden());
        QVERIFY(finished.wait(60000));
        // Off again: an invalid schema no longer blocks anything.
        tab->jsonSchema()->setPlainText(QStringLiteral("{"));
        tab->jsonOutput()->setChecked(false);
        QVERIFY(chat.send(id, QStringLiteral("Once")));
        QVERIFY(finished.wait(60000));
        QVERIFY(!chat.conversation(id)->messages.last().json);
    }

    // A reply under the schema parses and has the schema's keys and types even from stories260K;
    // it is shown indented in a code block (keys in the schema's order), and all of it survives a restart.
    void jsonReplyPrettyPrinted() {
        const QString dir = m_env->path(QStringLiteral("json"));
        QString id;
        {
            ChatController chat(m_stories.get(), ConversationStore(dir));
            ChatView view(&chat);
            view.resize(1000, 700);
            view.show();
            chat.restore();
            id = chat.ids().first();
            chat.setSampling(id, seeded(11, 200));
            ChatTab* tab = view.tab(id);
            tab->jsonOutput()->setChecked(true);
            tab->jsonSchema()->setPlainText(kSchema);
            QSignalSpy finished(&chat, &ChatController::generationFinished);
            tab->input()->setPlainText(QStringLiteral("Lily is four and has a ball."));
            tab->send();
            QVERIFY(finished.wait(60000));
            const ChatMessageRecord& reply = chat.conversation(id)->messages[1];
            QCOMPARE(reply.stats->finishReason, QStringLiteral("stop"));  // the document ended, not max tokens
            QVERIFY(reply.json);
            checkAgainstSchema(reply.content);
            const QString shown = tab->messageAt(1)->body()->toPlainText();
            QVERIFY2(shown.contains(QStringLiteral("{\n  \"name\": ")), qPrintable(shown));
            QVERIFY2(shown.indexOf(QStringLiteral("\"name\"")) < shown.indexOf(QStringLiteral("\"age\"")), qPrintable(shown));
            QVERIFY2(shown.indexOf(QStringLiteral("\"age\"")) < shown.indexOf(QStringLiteral("\"mood\"")), qPrintable(shown));
            QCOMPARE(QJsonDocument::fromJson(shown.toUtf8()), QJsonDocument::fromJson(reply.content.toUtf8()));
            // A code block: the tinted fence background.
            QVERIFY(tab->messageAt(1)->body()->document()->firstBlock().blockFormat().hasProperty(QTextFormat::BackgroundBrush));
            QCOMPARE(tab->messageAt(1)->answerText(), reply.prettyJson());
        }
        ChatController again(m_stories.get(), ConversationStore(dir));
        ChatView view(&again);
        view.resize(1000, 700);
        view.show();
        again.restore();
        const Conversation* c = again.conversation(id);
        QVERIFY(c->jsonOutput.enabled);
        QCOMPARE(c->jsonOutput.schema, kSchema);
        QVERIFY(c->messages[1].json);
        QVERIFY(!c->messages[0].json);
        ChatTab* tab = view.tab(id);
        QVERIFY(tab->jsonOutput()->isChecked());
        QCOMPARE(tab->jsonSchema()->toPlainText(), kSchema);
        QVERIFY(tab->jsonSchemaError()->isHidden());
        QVERIFY(tab->messageAt(1)->body()->toPlainText().contains(QStringLiteral("{\n  \"name\": ")));
        // Markdown export keeps it as a JSON code block.
        QVERIFY(c->toMarkdown().contains(QStringLiteral("```json\n{\n  \"name\": ")));
    }

    // Presets carry the thinking switch and the JSON output setting.
    void presetsKeepThinkingAndJson() {
        ChatController chat(m_stories.get(), freshStore());
        chat.restore();
        const QString id = chat.ids().first();
        chat.setThinking(id, false);
        chat.setJsonOutput(id, {true, kSchema});
        QVERIFY(chat.savePreset(id, QStringLiteral("Structured")));
        const QString other = chat.newConversation();
        QVERIFY(chat.conversation(other)->thinking);
        QVERIFY(!chat.conversation(other)->jsonOutput.enabled);
        QVERIFY(chat.applyPreset(other, QStringLiteral("Structured")));
        QVERIFY(!chat.conversation(other)->thinking);
        QCOMPARE(chat.conversation(other)->jsonOutput, (JsonOutput{true, kSchema}));
        ChatController again(m_stories.get(), chat.store());
        QVERIFY(!again.preset(QStringLiteral("Structured"))->thinking);
        QCOMPARE(again.preset(QStringLiteral("Structured"))->jsonOutput, (JsonOutput{true, kSchema}));
    }

    // docs/images/chat-thinking.png and chat-json.png: the real window.
    void screenshots() {
        {
            ConversationStore store(m_env->path(QStringLiteral("shot-thinking")));
            Conversation c;
            c.id = QStringLiteral("cats");
            c.title = QStringLiteral("Cat legs");
            c.created = c.updated = QDateTime::currentDateTime();
            c.messages = {message(QStringLiteral("user"), QStringLiteral("How many legs do three cats have?")),
                          message(QStringLiteral("assistant"), kThinkingReply)};
            MessageStats s;
            s.promptTokens = 16;
            s.completionTokens = 41;
            s.firstTokenSeconds = 0.012;
            s.totalSeconds = 0.4;
            s.tokensPerSecond = 102.5;
            s.finishReason = QStringLiteral("stop");
            c.messages[1].stats = s;
            QVERIFY(store.save(c));
            MainWindow w(store.dir());
            QVERIFY(lmw::test::showLoaded(w, lmw::test::model("qwen3-tiny")));
            w.showView(MainWindow::ChatPage);
            ChatTab* tab = w.chatView()->tab(c.id);
            QVERIFY(tab);
            w.chatView()->tabs()->setCurrentWidget(tab);
            QTest::qWait(100);
            QTest::mouseClick(tab->messageAt(1)->thinkingButton(), Qt::LeftButton);
            QVERIFY(tab->messageAt(1)->thinkingBody()->isVisible());
            QVERIFY(tab->thinkingSwitch()->isEnabled());
            lmw::test::saveScreenshot(&w, QStringLiteral("chat-thinking"));
        }
        MainWindow w(m_env->path(QStringLiteral("shot-json")));
        QVERIFY(lmw::test::showLoaded(w, lmw::test::model()));
        w.showView(MainWindow::ChatPage);
        ChatController* chat = w.chat();
        const QString id = w.chatView()->currentTab()->id();
        chat->rename(id, QStringLiteral("Story card"));
        chat->setSampling(id, seeded(11, 200));
        ChatTab* tab = w.chatView()->tab(id);
        tab->jsonOutput()->setChecked(true);
        tab->jsonSchema()->setPlainText(kSchema);
        QSignalSpy finished(chat, &ChatController::generationFinished);
        tab->input()->setPlainText(QStringLiteral("Lily is four and has a ball."));
        tab->send();
        QVERIFY(finished.wait(60000));
        checkAgainstSchema(chat->conversation(id)->messages[1].content);
        // The settings panel scrolled down to the JSON output group.
        QScrollArea* settings = nullptr;
        for (QWidget* p = tab->jsonSchema(); p && !settings; p = p->parentWidget()) settings = qobject_cast<QScrollArea*>(p);
        QVERIFY(settings);
        settings->ensureWidgetVisible(tab->jsonSchemaError()->parentWidget());
        lmw::test::saveScreenshot(&w, QStringLiteral("chat-json"));
    }
};

QTEST_MAIN(TestChatAgents)
#include "test_chat_agents.moc"
