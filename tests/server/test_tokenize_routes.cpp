// POST /tokenize and /detokenize (llama-server's shapes) on real servers for stories260K
// (sentencepiece), qwen3-tiny and llama3-tiny (tokenizer.json): the ids of every tokenizer case in
// the models' reference.json (Hugging Face's), with and without the special tokens around a text,
// back to the text; pieces; special-token text by the server's rule or parse_special; bad input.
#include <QtTest>

#include <algorithm>

#include "http_client.h"
#include "served.h"
#include "lmw/engine.h"
#include "lmw/server.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using lmw::test::request;
using lmw::test::Served;
using lmw::test::serve;
using nlohmann::json;

class TestTokenizeRoutes : public QObject {
    Q_OBJECT

    static json post(int port, const std::string& path, const json& body, int status = 200) {
        const auto r = request(port, "POST", path, body.dump());
        if (r.status != status) qWarning("%s %s: %d %s", path.c_str(), body.dump().c_str(), r.status, r.body.c_str());
        return r.status == status ? json::parse(r.body) : json();
    }
    static json ids(const json& tokens) {
        json out = json::array();
        for (const auto& t : tokens) out.push_back(t.is_object() ? t["id"] : t);
        return out;
    }

private slots:
    void referenceCasesRoundTrip_data() {
        QTest::addColumn<QString>("model");
        for (const char* m : {"stories260K", "qwen3-tiny", "llama3-tiny"}) QTest::newRow(m) << QString(m);
    }
    void referenceCasesRoundTrip() {
        QFETCH(QString, model);
        const Served s = serve(model.toStdString());
        const json ref = json::parse(lmw::test::readFile(lmw::test::modelDir(model.toStdString()) + "/reference.json"));
        int checked = 0;
        if (ref["tokenizer_cases"].is_object()) {  // stories260K: text -> ids with BOS (sentencepiece)
            for (const auto& [text, want] : ref["tokenizer_cases"].items()) {
                const json got = post(s.port, "/tokenize", {{"content", text}, {"add_special", true}});
                QCOMPARE(got["tokens"], want);
                json plain = want;
                plain.erase(plain.begin());  // without BOS
                QCOMPARE(post(s.port, "/tokenize", {{"content", text}})["tokens"], plain);
                QCOMPARE(post(s.port, "/detokenize", {{"tokens", plain}})["content"], json(text));
                ++checked;
            }
        } else {
            for (const auto& c : ref["tokenizer_cases"]) {
                // As Hugging Face encodes: special-token text in the case is a special token.
                const json body = {{"content", c["text"]}, {"parse_special", true}};
                QVERIFY2(post(s.port, "/tokenize", body)["tokens"] == c["ids"], c["text"].dump().c_str());
                json withSpecial = body;
                withSpecial["add_special"] = true;
                QCOMPARE(post(s.port, "/tokenize", withSpecial)["tokens"], c["ids_with_special"]);
                QCOMPARE(post(s.port, "/detokenize", {{"tokens", c["ids"]}})["content"], c["decoded"]);
                ++checked;
            }
        }
        QVERIFY(checked >= 6);

        // Pieces: each id with its text, a part of a character as its bytes; the ids are the same.
        const std::string text = "日本語 émoji 🙂 Hello";
        const json plain = post(s.port, "/tokenize", {{"content", text}});
        const json pieces = post(s.port, "/tokenize", {{"content", text}, {"with_pieces", true}});
        QCOMPARE(ids(pieces["tokens"]), plain["tokens"]);
        std::string bytes;
        for (const auto& t : pieces["tokens"]) {
            if (t["piece"].is_string()) bytes += t["piece"].get<std::string>();
            else
                for (const auto& b : t["piece"]) bytes += char(b.get<int>());
        }
        QVERIFY2(bytes.find("Hello") != std::string::npos, bytes.c_str());
        QCOMPARE(post(s.port, "/detokenize", {{"tokens", plain["tokens"]}})["content"], json(text));
    }

    // Special-token text is plain text unless the request says parse_special (or the server allows it).
    void specialTokensAndErrors() {
        const Served s = serve("qwen3-tiny");
        const int32_t imEnd = s.engine->tokenizer().tokenId("<|im_end|>").value();
        const json asText = post(s.port, "/tokenize", {{"content", "a<|im_end|>b"}});
        QVERIFY(std::find(asText["tokens"].begin(), asText["tokens"].end(), json(imEnd)) == asText["tokens"].end());
        const json parsed = post(s.port, "/tokenize", {{"content", "a<|im_end|>b"}, {"parse_special", true}});
        QVERIFY(std::find(parsed["tokens"].begin(), parsed["tokens"].end(), json(imEnd)) != parsed["tokens"].end());
        QCOMPARE(post(s.port, "/detokenize", {{"tokens", parsed["tokens"]}})["content"], json("a<|im_end|>b"));  // kept

        auto error = [&](const std::string& path, const json& body, const char* param) {
            const json e = post(s.port, path, body, 400);
            QCOMPARE(e["error"]["param"], json(param));
            QVERIFY(!e["error"]["message"].get<std::string>().empty());
        };
        error("/tokenize", json::object(), "content");
        error("/tokenize", {{"content", 5}}, "content");
        error("/tokenize", {{"content", "x"}, {"with_pieces", "yes"}}, "with_pieces");
        error("/detokenize", {{"tokens", "1 2"}}, "tokens");
        error("/detokenize", {{"tokens", {1, 2.5}}}, "tokens");
        error("/detokenize", {{"tokens", {1, 151936 + 5}}}, "tokens");
        error("/detokenize", {{"tokens", {-1}}}, "tokens");
        QCOMPARE(request(s.port, "GET", "/tokenize").status, 405);
        QCOMPARE(post(s.port, "/detokenize", {{"tokens", json::array()}})["content"], json(""));  // still serving
    }
};

QTEST_GUILESS_MAIN(TestTokenizeRoutes)
#include "test_tokenize_routes.moc"
