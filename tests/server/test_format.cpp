// Wire format: OpenAI's exact JSON shapes for responses and Server-Sent-Event chunks.
#include <QtTest>

#include "../../server/src/api_error.h"
#include "../../server/src/format.h"

using namespace lmw::server;
using nlohmann::json;

class TestFormat : public QObject {
    Q_OBJECT
private slots:
    void sseFraming() {
        QCOMPARE(sseEvent(json{{"a", 1}}), std::string("data: {\"a\":1}\n\n"));
        QCOMPARE(std::string(kSseDone), std::string("data: [DONE]\n\n"));
    }

    void roleChunkThenContentThenFinish() {
        json role = chatChunk("chatcmpl-1", 1700000000, "m", 0, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr, false);
        QCOMPARE(role.dump(),
                 std::string(R"({"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],)"
                             R"("created":1700000000,"id":"chatcmpl-1","model":"m","object":"chat.completion.chunk","system_fingerprint":null})"));
        json last = chatChunk("chatcmpl-1", 1, "m", 2, json::object(), nullptr, "stop", true);
        QCOMPARE(last["choices"][0]["delta"], json::object());
        QCOMPARE(last["choices"][0]["finish_reason"], json("stop"));
        QCOMPARE(last["choices"][0]["index"], json(2));
        QVERIFY(last.contains("usage") && last["usage"].is_null());
        QVERIFY(!role.contains("usage"));  // only with stream_options.include_usage
    }

    void usageChunkHasNoChoices() {
        json u = usageChunk("chat.completion.chunk", "id", 5, "m", {7, 3});
        QCOMPARE(u["choices"], json::array());
        QCOMPARE(u["usage"], json({{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}}));
        QCOMPARE(u["object"], json("chat.completion.chunk"));
    }

    void chatCompletionShape() {
        std::vector<ChoiceResult> choices = {{0, "Hello", "stop", {}}, {1, "Hi", "length", {}}};
        json c = chatCompletion("chatcmpl-x", 42, "stories", choices, {5, 4}, false, {});
        QCOMPARE(c["object"], json("chat.completion"));
        QCOMPARE(c["model"], json("stories"));
        QCOMPARE(c["created"], json(42));
        QCOMPARE(c["choices"].size(), size_t(2));
        QCOMPARE(c["choices"][0]["message"]["role"], json("assistant"));
        QCOMPARE(c["choices"][0]["message"]["content"], json("Hello"));
        QCOMPARE(c["choices"][1]["finish_reason"], json("length"));
        QVERIFY(c["choices"][0]["logprobs"].is_null());
        QCOMPARE(c["usage"]["total_tokens"], json(9));
    }

    // Issue 14: a parsed reply's message (reasoning_content, tool_calls, content null when it only
    // calls) and its streamed deltas, from the parser's events of a real Qwen3-style reply, streamed
    // in small pieces: the deltas put back together give the whole message.
    void reasoningAndToolCallShapes() {
        const std::string reply =
            "<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        lmw::engine::OutputParserOptions o;
        o.toolCallParser = "qwen";
        o.reasoningParser = "think";
        o.idSeed = 9;
        const auto whole = lmw::engine::OutputParser::parse(reply, o);
        ChoiceResult r{0, whole.content, "tool_calls", {}, whole.reasoning, whole.toolCalls};
        const json m = chatCompletion("id", 1, "m", {r}, {1, 1}, false, {})["choices"][0]["message"];
        QVERIFY(m["content"].is_null());
        QCOMPARE(m["reasoning_content"], json("The user wants weather."));
        QCOMPARE(m["tool_calls"].size(), size_t(1));
        QCOMPARE(m["tool_calls"][0]["type"], json("function"));
        QCOMPARE(m["tool_calls"][0]["function"]["name"], json("get_weather"));
        QCOMPARE(m["tool_calls"][0]["function"]["arguments"], json(R"({"city":"Paris"})"));
        QVERIFY(m["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0) == 0);

        lmw::engine::OutputParser parser(o);
        std::string reasoning, content, arguments;
        json call;
        auto take = [&](const std::vector<lmw::engine::OutputEvent>& evs) {
            for (const auto& e : evs) {
                const json d = parsedDelta(e);
                if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
                if (d.contains("content")) content += d["content"].get<std::string>();
                if (d.contains("tool_calls")) {
                    const json& t = d["tool_calls"][0];
                    QCOMPARE(t["index"], json(0));
                    if (t.contains("id")) {
                        QVERIFY(call.is_null());  // id, type and name come once, first
                        QCOMPARE(t["function"]["arguments"], json(""));
                        call = t;
                    }
                    arguments += t["function"]["arguments"].get<std::string>();
                }
            }
        };
        for (size_t i = 0; i < reply.size(); i += 3) take(parser.feed(reply.substr(i, 3)));
        take(parser.finish());
        QCOMPARE(reasoning, whole.reasoning);
        QCOMPARE(content, std::string());
        QCOMPARE(call["id"], m["tool_calls"][0]["id"]);
        QCOMPARE(call["function"]["name"], json("get_weather"));
        QCOMPARE(arguments, whole.toolCalls[0].arguments);
    }

    void chatLogprobsShape() {
        lmw::engine::TokenLogprob lp{65, "A", -0.25f, {{65, -0.25f}, {66, -1.5f}}};
        json c = chatCompletion("id", 1, "m", {{0, "A", "length", {lp}}}, {1, 1}, true,
                                [](int32_t id) { return std::string(1, char(id)); });
        json content = c["choices"][0]["logprobs"]["content"];
        QCOMPARE(content.size(), size_t(1));
        QCOMPARE(content[0]["token"], json("A"));
        QCOMPARE(content[0]["logprob"].get<double>(), -0.25);
        QCOMPARE(content[0]["bytes"], json({65}));
        QCOMPARE(content[0]["top_logprobs"][1]["token"], json("B"));
        QCOMPARE(content[0]["top_logprobs"][1]["logprob"].get<double>(), -1.5);
    }

    void completionShapeAndLogprobs() {
        lmw::engine::TokenLogprob a{1, "Once", -0.5f, {{1, -0.5f}}};
        lmw::engine::TokenLogprob b{2, " upon", -1.0f, {{2, -1.0f}}};
        json c = textCompletion("cmpl-1", 3, "m", {{0, "Once upon", "length", {a, b}}}, {2, 2}, true,
                                [](int32_t id) { return id == 1 ? std::string("Once") : std::string(" upon"); });
        QCOMPARE(c["object"], json("text_completion"));
        QCOMPARE(c["choices"][0]["text"], json("Once upon"));
        json lp = c["choices"][0]["logprobs"];
        QCOMPARE(lp["tokens"], json({"Once", " upon"}));
        QCOMPARE(lp["text_offset"], json({0, 4}));
        QCOMPARE(lp["top_logprobs"][1][" upon"].get<double>(), -1.0);
        json chunk = textChunk("cmpl-1", 3, "m", 0, " upon", nullptr, nullptr, false);
        QCOMPARE(chunk["choices"][0]["text"], json(" upon"));
        QCOMPARE(chunk["object"], json("text_completion"));
    }

    void finishReasons() {
        using lmw::engine::FinishReason;
        QCOMPARE(finishReasonText(FinishReason::Stop), std::string("stop"));
        QCOMPARE(finishReasonText(FinishReason::Length), std::string("length"));
        // "abort" is no OpenAI value: a request the server cancelled was cut short.
        QCOMPARE(finishReasonText(FinishReason::Cancelled), std::string("length"));
    }

    void logprobTokensKeepTheirBytes() {
        // A token's text is its raw bytes: " there" keeps its space, half a character keeps its byte.
        lmw::engine::TokenLogprob space{5, " there", -0.1f, {}};
        lmw::engine::TokenLogprob half{6, "\xC3", -0.2f, {}};
        lmw::engine::TokenLogprob rest{7, "\xA9!", -0.3f, {}};
        json chat = chatLogprobs({space, half, rest}, nullptr);
        QCOMPARE(chat["content"][0]["token"], json(" there"));
        QCOMPARE(chat["content"][0]["bytes"], json({32, 116, 104, 101, 114, 101}));
        QCOMPARE(chat["content"][1]["bytes"], json({0xC3}));
        QCOMPARE(chat["content"][2]["bytes"], json({0xA9, 33}));
        // text_offset counts characters: " there" is 6, "\xC3\xA9" (é) one more.
        json text = completionLogprobs({space, half, rest}, nullptr, 3);
        QCOMPARE(text["text_offset"], json({3, 9, 10}));
        QCOMPARE(utf8Chars("\xC3\xA9t\xE2\x82\xAC"), size_t(3));
    }

    void invalidUtf8NeverThrows() {
        std::string s = sseEvent(json{{"content", std::string("a\xff" "b")}});
        QCOMPARE(s, std::string("data: {\"content\":\"a\xEF\xBF\xBD" "b\"}\n\n"));
    }

    void idsAreUnique() {
        std::string a = newCompletionId("chatcmpl-"), b = newCompletionId("chatcmpl-");
        QCOMPARE(a.size(), size_t(9 + 24));
        QVERIFY(a != b);
        QVERIFY(a.rfind("chatcmpl-", 0) == 0);
    }
};

QTEST_GUILESS_MAIN(TestFormat)
#include "test_format.moc"
