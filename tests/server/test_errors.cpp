// The one error mapping: engine error codes and HTTP statuses -> OpenAI error bodies.
#include <QtTest>

#include "../../server/src/api_error.h"
#include "../../server/src/metrics.h"

using namespace lmw::server;
using nlohmann::json;

class TestErrors : public QObject {
    Q_OBJECT
private slots:
    void bodyShape() {
        ApiError e = badRequest("bad temperature", "temperature", "invalid_value");
        json j = json::parse(e.body());
        QCOMPARE(j, json({{"error", {{"message", "bad temperature"}, {"type", "invalid_request_error"},
                                     {"param", "temperature"}, {"code", "invalid_value"}}}}));
        json k = json::parse(badRequest("x").body());
        QVERIFY(k["error"]["param"].is_null());
        QVERIFY(k["error"]["code"].is_null());
    }

    void engineCodes() {
        using lmw::ErrorCode;
        QCOMPARE(fromEngine(ErrorCode::InvalidArgument, "m").status, 400);
        ApiError ctx = fromEngine(ErrorCode::ContextLengthExceeded, "too long");
        QCOMPARE(ctx.status, 400);
        QCOMPARE(ctx.code, std::string("context_length_exceeded"));
        QCOMPARE(fromEngine(ErrorCode::OutOfMemory, "kv").status, 503);
        QCOMPARE(fromEngine(ErrorCode::Internal, "x").status, 500);
        QCOMPARE(fromEngine(ErrorCode::Cuda, "x").type, std::string("server_error"));
    }

    void httpStatuses() {
        QCOMPARE(fromHttpStatus(413, "POST", "/v1/chat/completions", 16u << 20).code, std::string("payload_too_large"));
        QVERIFY(fromHttpStatus(413, "POST", "/", 16u << 20).message.find("16777216") != std::string::npos);
        QCOMPARE(fromHttpStatus(404, "GET", "/nope", 1).code, std::string("unknown_url"));
        QCOMPARE(fromHttpStatus(405, "GET", "/v1/completions", 1).status, 405);
        QCOMPARE(unauthorized().status, 401);
        QCOMPARE(unauthorized().code, std::string("invalid_api_key"));
        QCOMPARE(modelNotFound("gpt-4").status, 404);
        QCOMPARE(modelNotFound("gpt-4").code, std::string("model_not_found"));
        QCOMPARE(serviceUnavailable("loading").status, 503);
        ApiError c = contextLengthExceeded(600, 512);
        QCOMPARE(c.code, std::string("context_length_exceeded"));
        QVERIFY(c.message.find("512") != std::string::npos && c.message.find("600") != std::string::npos);
    }

    void metricsText() {
        Metrics m;
        m.requestStarted();
        m.requestFinished("/v1/chat/completions", 200);
        m.requestStarted();
        m.requestFinished("/v1/chat/completions", 400);
        m.generationFinished(10, 5, 0.02, 0.1, 0.01);
        m.clientDisconnected();
        lmw::engine::EngineStats s;
        s.running = 3;
        s.kvBlocksTotal = 8;
        s.kvBlocksUsed = 2;
        std::string text = m.render(&s, "stories");
        auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
        QVERIFY(has("lmw_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1"));
        QVERIFY(has("lmw_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"} 1"));
        QVERIFY(has("lmw_prompt_tokens_total 10"));
        QVERIFY(has("lmw_generation_tokens_total 5"));
        QVERIFY(has("lmw_client_disconnects_total 1"));
        QVERIFY(has("lmw_engine_requests_running 3"));
        QVERIFY(has("lmw_engine_kv_cache_usage_ratio 0.25"));
        QVERIFY(has("lmw_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"));
        QVERIFY(has("lmw_time_to_first_token_seconds_bucket{le=\"0.01\"} 0"));
        QVERIFY(has("lmw_time_to_first_token_seconds_count 1"));
        QVERIFY(has("lmw_http_requests_in_flight 0"));
        QVERIFY(has("lmw_model_loaded{model=\"stories\"} 1"));
        QVERIFY(m.render(nullptr, "x").find("lmw_engine_requests_running") == std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestErrors)
#include "test_errors.moc"
