// The server's bounds without a model: log escaping, the prompt byte bound, the response size
// bound and the in-flight budget, and the transport's error answers.
#include <QtTest>

#include "../../server/src/api_error.h"
#include "../../server/src/log_escape.h"
#include "../../server/src/response_budget.h"

using namespace lmw::server;
using nlohmann::json;

class TestLimits : public QObject {
    Q_OBJECT
private slots:
    void logEscaping() {
        QCOMPARE(escapeForLog("plain /v1/models"), std::string("plain /v1/models"));
        QCOMPARE(escapeForLog("a\r\nFAKE 200"), std::string("a\\r\\nFAKE 200"));
        QCOMPARE(escapeForLog("\x1b[2Jred\x07"), std::string("\\x1b[2Jred\\x07"));
        QCOMPARE(escapeForLog("back\\slash"), std::string("back\\\\slash"));
        QCOMPARE(escapeForLog(std::string("nul\0x", 5)), std::string("nul\\x00x"));
        QCOMPARE(escapeForLog("caf\xC3\xA9 \xE2\x82\xAC"), std::string("caf\xC3\xA9 \xE2\x82\xAC"));  // UTF-8 stays
        QCOMPARE(escapeForLog("\xC2\x9B" "31m"), std::string("\\xc2\\x9b31m"));  // C1 CSI
        QCOMPARE(escapeForLog("bad\xff\xC3"), std::string("bad\\xff\\xc3"));     // not UTF-8
        QCOMPARE(escapeForLog("\xED\xA0\x80"), std::string("\\xed\\xa0\\x80"));  // a surrogate
    }

    void promptBound() {
        TokenFacts f;
        f.maxBytes = 16;
        // 100 tokens of at most 16 bytes, from text that NFKC may have shrunk 4x: 6400 bytes.
        QCOMPARE(promptByteBound(f, 100), size_t(6400));
        QCOMPARE(promptByteBound(f, -3), size_t(0));
    }

    void responseBound() {
        TokenFacts f;
        f.maxBytes = 8;
        f.maxJson = 10;
        AnswerShape plain;
        plain.tokens = 100;
        plain.envelope = 200;
        plain.fixed = 300;
        const size_t base = responseBytesBound(plain, f);
        QCOMPARE(base, size_t(300 + 200 + 100 * 10));
        AnswerShape lp = plain;
        lp.logprobs = true;
        lp.topLogprobs = 20;
        AnswerShape lp0 = lp;
        lp0.topLogprobs = 0;
        QVERIFY(responseBytesBound(lp, f) > responseBytesBound(lp0, f));
        QVERIFY(responseBytesBound(lp0, f) > base);
        AnswerShape stream = plain;
        stream.stream = true;
        QVERIFY(responseBytesBound(stream, f) >= 100 * (200 + 10));  // a chunk per token
        AnswerShape many = plain;
        many.choices = 64;
        many.tokens = 64 * 511;
        QVERIFY(responseBytesBound(many, f) > 64 * 511 * 10);
    }

    void budget() {
        ResponseBudget b(1000);
        QVERIFY(b.reserve(5000));  // alone: admitted (it could never fit otherwise)
        QVERIFY(!b.reserve(1));
        b.release(5000);
        QVERIFY(b.reserve(600));
        QVERIFY(b.reserve(400));
        QVERIFY(!b.reserve(1));
        QCOMPARE(b.used(), size_t(1000));
        b.release(600);
        QVERIFY(b.reserve(500));
        b.release(100000);
        QCOMPARE(b.used(), size_t(0));
    }

    void errorAnswers() {
        QCOMPARE(tooManyInFlight(10, 20).status, 429);
        QCOMPARE(tooManyInFlight(10, 20).code, std::string("rate_limit_exceeded"));
        ApiError big = responseTooLarge(5000, 1000, "n");
        QCOMPARE(big.status, 400);
        QCOMPARE(big.param, std::string("n"));
        QVERIFY(big.message.find("5000") != std::string::npos && big.message.find("1000") != std::string::npos);
        ApiError mt = maxTokensTooLarge(20, 1000, 512);
        QCOMPARE(mt.status, 400);
        QCOMPARE(mt.param, std::string("max_tokens"));
        QCOMPARE(mt.code, std::string("context_length_exceeded"));
        QVERIFY(mt.message.find("1020") != std::string::npos);
        QCOMPARE(hostNotAllowed("evil.example").status, 403);
        QCOMPARE(shuttingDown().status, 503);
        QCOMPARE(fromHttpStatus(408, "", "", 1).code, std::string("request_timeout"));
        QCOMPARE(fromHttpStatus(431, "", "", 1).status, 431);
        QCOMPARE(fromHttpStatus(400, "", "", 1, "Two different Content-Length headers.").message,
                 std::string("Two different Content-Length headers."));
        json j = json::parse(fromHttpStatus(413, "", "", 4096).body());
        QCOMPARE(j["error"]["code"], json("payload_too_large"));
    }
};

QTEST_GUILESS_MAIN(TestLimits)
#include "test_limits.moc"
