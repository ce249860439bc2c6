// POST /v1/embeddings on a real server (stories260K, CPU): OpenAI's answer shape, the vectors the
// engine gives for the same input (mean, and last with --embedding-pooling last), base64 = the float
// vector's bytes, token-id inputs, several inputs in order, and hostile bodies: each a 400 in OpenAI's
// error shape naming the field, and the server goes on serving.
#include <QtTest>

#include <cstring>
#include <future>

#include "http_client.h"
#include "lmw/engine.h"
#include "lmw/server.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using lmw::test::request;
using nlohmann::json;

namespace {

constexpr int kSessionLen = 128;

std::vector<float> floatsOf(const json& embedding) { return embedding.get<std::vector<float>>(); }

std::vector<float> fromBase64(const std::string& text) {
    const QByteArray bytes = QByteArray::fromBase64(QByteArray::fromStdString(text), QByteArray::AbortOnBase64DecodingErrors);
    std::vector<float> v(size_t(bytes.size()) / 4);
    for (size_t i = 0; i < v.size(); ++i) {
        uint32_t u = 0;
        for (int b = 0; b < 4; ++b) u |= uint32_t(uint8_t(bytes[qsizetype(i * 4) + b])) << (8 * b);  // little-endian
        std::memcpy(&v[i], &u, 4);
    }
    return v;
}

double maxDiff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return 1e9;
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
    return m;
}

}  // namespace

class TestEmbeddingsRoute : public QObject {
    Q_OBJECT

    std::shared_ptr<engine::Engine> m_engine;
    std::unique_ptr<server::Server> m_server;
    int m_port = 0;

    int serve(server::Server& s, const server::ServerOptions& o) {
        s.setEngine(m_engine);
        auto r = s.start("127.0.0.1", 0, o);
        if (!r) qFatal("start: %s", r.error().what());
        return r.value();
    }

    json post(const json& body, int status = 200, int port = 0) {
        const auto r = request(port ? port : m_port, "POST", "/v1/embeddings", body.dump());
        if (r.status != status) qWarning("%s: %d %s", body.dump().substr(0, 200).c_str(), r.status, r.body.c_str());
        return r.status == status ? json::parse(r.body) : json();
    }

    // The engine's own vector for these ids (what the route must answer).
    std::vector<float> direct(std::vector<int32_t> ids, engine::Pooling pooling = engine::Pooling::Mean) {
        engine::Request r;
        r.promptIds = std::move(ids);
        r.output = engine::RequestOutput::Embedding;
        r.pooling = pooling;
        std::promise<std::vector<float>> done;
        m_engine->submit(std::move(r), [&](const engine::Event& ev) {
            if (ev.final) done.set_value(ev.embedding);
        });
        return done.get_future().get();
    }

    std::vector<int32_t> ids(const std::string& text) { return m_engine->tokenizer().encode(text); }

    // A 400 in OpenAI's error shape for `param`, with `code`.
    void refused(const json& body, const std::string& param, const std::string& code) {
        const auto r = request(m_port, "POST", "/v1/embeddings", body.dump());
        QVERIFY2(r.status == 400, qPrintable(QString::fromStdString(body.dump().substr(0, 120) + " -> " + r.body)));
        const json e = json::parse(r.body)["error"];
        QVERIFY(e["message"].is_string() && !e["message"].get<std::string>().empty());
        QCOMPARE(e["type"], json("invalid_request_error"));
        QCOMPARE(e["param"], json(param));
        QCOMPARE(e["code"], json(code));
    }

private slots:
    void initTestCase() {
        engine::EngineConfig c;
        c.modelDir = lmw::test::modelDir();
        c.backend = "cpu";
        c.threads = 2;
        c.sessionLen = kSessionLen;
        auto e = engine::Engine::load(c);
        if (!e) qFatal("load: %s", e.error().what());
        m_engine = std::move(e.value());
        m_server = std::make_unique<server::Server>();
        server::ServerOptions o;
        o.modelName = "stories";
        m_port = serve(*m_server, o);
    }

    void answerShapeAndVector() {
        const json j = post({{"model", "stories"}, {"input", "Once upon a time"}});
        QCOMPARE(j["object"], json("list"));
        QCOMPARE(j["model"], json("stories"));
        QCOMPARE(j["data"].size(), size_t(1));
        QCOMPARE(j["data"][0]["object"], json("embedding"));
        QCOMPARE(j["data"][0]["index"], json(0));
        const std::vector<float> v = floatsOf(j["data"][0]["embedding"]);
        QCOMPARE(int(v.size()), m_engine->info().config.hiddenSize);
        // Tokenized with the model's BOS rule, as a completion's prompt.
        const std::vector<int32_t> t = ids("Once upon a time");
        QCOMPARE(t.front(), m_engine->tokenizer().bosId());
        QCOMPARE(j["usage"]["prompt_tokens"], json(t.size()));
        QCOMPARE(j["usage"]["total_tokens"], json(t.size()));
        QVERIFY(maxDiff(v, direct(t)) < 1e-6);
        double norm = 0;
        for (float x : v) norm += double(x) * x;
        QVERIFY(std::abs(norm - 1) < 1e-5);
    }

    void base64IsTheFloatVectorsBytes() {
        const json f = post({{"input", "The cat sat on the mat."}, {"encoding_format", "float"}});
        const json b = post({{"input", "The cat sat on the mat."}, {"encoding_format", "base64"}});
        QVERIFY(b["data"][0]["embedding"].is_string());
        const std::vector<float> decoded = fromBase64(b["data"][0]["embedding"].get<std::string>());
        QCOMPARE(int(decoded.size()), m_engine->info().config.hiddenSize);
        QCOMPARE(decoded, floatsOf(f["data"][0]["embedding"]));  // the JSON floats read back exactly
        QCOMPARE(b["usage"], f["usage"]);
    }

    void tokenIdsAndSeveralInputs() {
        const std::vector<std::string> texts = {"Once upon a time", "Lily and Ben went to the park.", "A big dog"};
        const json many = post({{"input", texts}});
        QCOMPARE(many["data"].size(), texts.size());
        int tokens = 0;
        for (size_t i = 0; i < texts.size(); ++i) {
            QCOMPARE(many["data"][i]["index"], json(i));
            const std::vector<int32_t> t = ids(texts[i]);
            tokens += int(t.size());
            QVERIFY(maxDiff(floatsOf(many["data"][i]["embedding"]), direct(t)) < 1e-5);
        }
        QCOMPARE(many["usage"]["prompt_tokens"], json(tokens));
        // One token-id array, and arrays of them: the ids as they are (no BOS added).
        const std::vector<int32_t> t = ids("Once upon a time");
        const json one = post({{"input", t}});
        QVERIFY(maxDiff(floatsOf(one["data"][0]["embedding"]), floatsOf(many["data"][0]["embedding"])) < 1e-5);
        const std::vector<int32_t> noBos(t.begin() + 1, t.end());
        const json lists = post({{"input", {noBos, t}}});
        QCOMPARE(lists["data"].size(), size_t(2));
        QCOMPARE(lists["usage"]["prompt_tokens"], json(2 * t.size() - 1));
        QVERIFY(maxDiff(floatsOf(lists["data"][0]["embedding"]), direct(noBos)) < 1e-5);
        QVERIFY(maxDiff(floatsOf(lists["data"][1]["embedding"]), direct(t)) < 1e-5);
        QVERIFY(maxDiff(floatsOf(lists["data"][0]["embedding"]), floatsOf(lists["data"][1]["embedding"])) > 1e-3);
        // An input may fill the whole session.
        std::vector<int32_t> full(kSessionLen, 300);
        QCOMPARE(post({{"input", full}})["usage"]["prompt_tokens"], json(kSessionLen));
    }

    void hostileInputs() {
        refused({{"input", 5}}, "input", "invalid_type");
        refused({{"input", json::object()}}, "input", "invalid_type");
        refused({{"input", json::parse("[\"a\", 3]")}}, "input[1]", "invalid_type");
        refused({{"input", json::parse("[1, \"a\"]")}}, "input", "invalid_type");
        refused({{"input", json::parse("[1.5, 2]")}}, "input[0]", "invalid_type");
        refused(json{{"model", "stories"}}, "input", "missing_required_parameter");
        refused({{"input", json::array()}}, "input", "empty_array");
        refused({{"input", ""}}, "input", "invalid_value");
        refused({{"input", {"fine", ""}}}, "input[1]", "invalid_value");
        refused({{"input", json::parse("[[]]")}}, "input[0]", "empty_array");
        refused({{"input", json::parse("[-1]")}}, "input", "invalid_value");
        refused({{"input", {1, 100000}}}, "input", "invalid_value");  // not in the vocabulary
        refused({{"input", {"ok", {1, 100000}}}}, "input[1]", "invalid_value");
        // Beyond the context: by tokens, and by bytes before tokenizing.
        std::string story = lmw::test::readFile(lmw::test::testData("stories.txt")).substr(0, 2000);
        QVERIFY(int(ids(story).size()) > kSessionLen);
        refused({{"input", {"short", story}}}, "input[1]", "context_length_exceeded");
        refused({{"input", std::vector<int32_t>(kSessionLen + 1, 300)}}, "input", "context_length_exceeded");
        refused({{"input", std::string(1 << 20, 'a')}}, "input", "context_length_exceeded");
        refused({{"input", "hi"}, {"dimensions", 32}}, "dimensions", "unsupported_parameter");
        refused({{"input", "hi"}, {"encoding_format", "int8"}}, "encoding_format", "invalid_value");
        refused({{"input", "hi"}, {"encoding_format", 1}}, "encoding_format", "invalid_type");
        refused({{"input", std::vector<std::string>(2049, "hi")}}, "input", "invalid_value");
        const auto notJson = request(m_port, "POST", "/v1/embeddings", "{\"input\": [1, 2");
        QCOMPARE(notJson.status, 400);
        QVERIFY(json::parse(notJson.body)["error"]["message"].is_string());
        QCOMPARE(request(m_port, "POST", "/v1/embeddings", json{{"model", "other"}, {"input", "hi"}}.dump()).status, 404);
        QCOMPARE(request(m_port, "GET", "/v1/embeddings").status, 405);
        // Still serving, and 2048 inputs are fine.
        const json ok = post({{"input", std::vector<std::string>(2048, "hi")}, {"encoding_format", "base64"}});
        QCOMPARE(ok["data"].size(), size_t(2048));
        QCOMPARE(ok["data"][2047]["index"], json(2047));
        QCOMPARE(ok["data"][2047]["embedding"], ok["data"][0]["embedding"]);
    }

    // --embedding-pooling last, and an answer bound over --max-response-bytes.
    void serverOptions() {
        server::Server last;
        server::ServerOptions o;
        o.embeddingPooling = engine::Pooling::Last;
        o.maxResponseBytes = 4000;
        const int port = serve(last, o);
        const std::vector<int32_t> t = ids("The little boat");
        const json j = post({{"input", "The little boat"}}, 200, port);
        QVERIFY(maxDiff(floatsOf(j["data"][0]["embedding"]), direct(t, engine::Pooling::Last)) < 1e-6);
        QVERIFY(maxDiff(floatsOf(j["data"][0]["embedding"]), direct(t)) > 1e-3);
        const auto big = request(port, "POST", "/v1/embeddings", json{{"input", {"a", "b", "c", "d", "e"}}}.dump());
        QCOMPARE(big.status, 400);
        QCOMPARE(json::parse(big.body)["error"]["code"], json("response_too_large"));
        QCOMPARE(post({{"input", {"a", "b", "c", "d", "e"}}, {"encoding_format", "base64"}}, 200, port)["data"].size(),
                 size_t(5));
        last.stop();
    }

    void cleanupTestCase() { m_server->stop(); }
};

QTEST_GUILESS_MAIN(TestEmbeddingsRoute)
#include "test_embeddings_route.moc"
