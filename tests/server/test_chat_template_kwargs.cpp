// chat_template_kwargs in /v1/chat/completions reach the model's chat template: a real engine
// (stories260K on the CPU) with a Jinja template that prints what the kwargs set.
#include <QtTest>

#include <fstream>

#include "http_client.h"
#include "lmw/engine.h"
#include "lmw/server.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using lmw::test::request;
using nlohmann::json;

namespace {

const char* kTemplate =
    "{% if fail is defined %}{{ raise_exception('refused: ' ~ fail) }}{% endif %}"
    "{{ bos_token }}{{ prefix | default('') }}{{ messages[0].content }}";

}  // namespace

class TestChatTemplateKwargs : public QObject {
    Q_OBJECT
    QTemporaryDir m_tmp;
    server::Server m_server;
    int m_port = 0;

    lmw::test::HttpReply chat(const std::string& content, const json& extra = json::object()) {
        json body = {{"messages", {{{"role", "user"}, {"content", content}}}}, {"temperature", 0}, {"max_tokens", 12}};
        body.update(extra);
        return request(m_port, "POST", "/v1/chat/completions", body.dump());
    }

private slots:
    void initTestCase() {
        const std::string tmpl = m_tmp.filePath("prefix.jinja").toStdString();
        std::ofstream(tmpl) << kTemplate;
        engine::EngineConfig c;
        c.modelDir = lmw::test::modelDir();
        c.backend = "cpu";
        c.threads = 2;
        c.chatTemplate = tmpl;
        auto e = engine::Engine::load(c);
        QVERIFY2(e.ok(), e.ok() ? "" : e.error().what());
        m_server.setEngine(std::shared_ptr<engine::Engine>(std::move(e.value())));
        auto r = m_server.start("127.0.0.1", 0);
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().what());
        m_port = r.value();
    }

    // A prefix given as a kwarg renders the same prompt as writing it into the message.
    void kwargsReachTheTemplate() {
        const auto written = chat("Once upon a time");
        const auto viaKwargs = chat("upon a time", {{"chat_template_kwargs", {{"prefix", "Once "}}}});
        const auto without = chat("upon a time");
        QCOMPARE(written.status, 200);
        QCOMPARE(viaKwargs.status, 200);
        const json w = json::parse(written.body), k = json::parse(viaKwargs.body), n = json::parse(without.body);
        QCOMPARE(k["usage"]["prompt_tokens"], w["usage"]["prompt_tokens"]);
        QCOMPARE(k["choices"][0]["message"]["content"], w["choices"][0]["message"]["content"]);
        QVERIFY(n["usage"]["prompt_tokens"].get<int>() < w["usage"]["prompt_tokens"].get<int>());
        // null means none
        QCOMPARE(chat("hi", {{"chat_template_kwargs", nullptr}}).status, 200);
    }

    // Refused before generation: 400 naming the field; the template's own exception is a 400 too.
    void badKwargsAre400() {
        auto notObject = chat("hi", {{"chat_template_kwargs", "enable_thinking"}});
        QCOMPARE(notObject.status, 400);
        QCOMPARE(json::parse(notObject.body)["error"]["param"], json("chat_template_kwargs"));
        QCOMPARE(json::parse(notObject.body)["error"]["code"], json("invalid_type"));
        auto reserved = chat("hi", {{"chat_template_kwargs", {{"messages", json::array()}}}});
        QCOMPARE(reserved.status, 400);
        QCOMPARE(json::parse(reserved.body)["error"]["code"], json("invalid_value"));
        auto raised = chat("hi", {{"chat_template_kwargs", {{"fail", "by request"}}}, {"stream", true}});
        QCOMPARE(raised.status, 400);
        QCOMPARE(json::parse(raised.body)["error"]["message"], json("refused: by request"));
    }

    void cleanupTestCase() { m_server.stop(); }
};

QTEST_GUILESS_MAIN(TestChatTemplateKwargs)
#include "test_chat_template_kwargs.moc"
