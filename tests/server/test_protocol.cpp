// Request parsing and validation: every malformed field is a 400 naming the field.
#include <QtTest>

#include "../../server/src/api_error.h"
#include "../../server/src/protocol.h"

using namespace lmw::server;
using nlohmann::json;

namespace {

// Runs f, expects an ApiException, returns its error.
template <class F>
ApiError errorOf(F&& f) {
    try {
        f();
    } catch (const ApiException& e) {
        return e.error;
    }
    return ApiError{0, "no error", "", "", ""};
}

json chat(json extra = json::object()) {
    json j = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    for (auto& [k, v] : extra.items()) j[k] = v;
    return j;
}

}  // namespace

class TestProtocol : public QObject {
    Q_OBJECT
private slots:
    void parsesMinimalChat() {
        ChatRequest r = parseChatRequest(chat());
        QCOMPARE(r.gen.model, std::string("m"));
        QCOMPARE(r.messages.size(), size_t(1));
        QCOMPARE(r.messages[0].role, std::string("user"));
        QCOMPARE(r.messages[0].content, std::string("hi"));
        QCOMPARE(r.gen.n, 1);
        QVERIFY(!r.gen.stream);
        QVERIFY(!r.gen.maxTokens.has_value());
        QCOMPARE(r.gen.sampling.temperature, 1.0f);
        QCOMPARE(r.gen.sampling.topP, 1.0f);
        QCOMPARE(r.gen.sampling.topK, 0);
    }

    void parsesAllSamplingFields() {
        ChatRequest r = parseChatRequest(chat({{"temperature", 0.7}, {"top_p", 0.9}, {"top_k", 40}, {"min_p", 0.05},
                                               {"max_tokens", 1024}, {"stop", {"\n\n", "The end"}}, {"seed", 42},
                                               {"presence_penalty", 0.5}, {"frequency_penalty", -0.5},
                                               {"repetition_penalty", 1.1}, {"n", 3}, {"stream", true},
                                               {"stream_options", {{"include_usage", true}}}, {"user", "u1"},
                                               {"logprobs", true}, {"top_logprobs", 5}}));
        QCOMPARE(r.gen.sampling.temperature, 0.7f);
        QCOMPARE(r.gen.sampling.topP, 0.9f);
        QCOMPARE(r.gen.sampling.topK, 40);
        QCOMPARE(r.gen.sampling.minP, 0.05f);
        QCOMPARE(*r.gen.maxTokens, 1024);
        QCOMPARE(r.gen.sampling.stop, (std::vector<std::string>{"\n\n", "The end"}));
        QCOMPARE(*r.gen.sampling.seed, uint64_t(42));
        QCOMPARE(r.gen.sampling.presencePenalty, 0.5f);
        QCOMPARE(r.gen.sampling.frequencyPenalty, -0.5f);
        QCOMPARE(r.gen.sampling.repetitionPenalty, 1.1f);
        QCOMPARE(r.gen.n, 3);
        QVERIFY(r.gen.stream);
        QVERIFY(r.gen.includeUsage);
        QVERIFY(r.logprobs);
        QCOMPARE(r.topLogprobs, 5);
    }

    void maxCompletionTokensWins() {
        ChatRequest r = parseChatRequest(chat({{"max_tokens", 10}, {"max_completion_tokens", 20}}));
        QCOMPARE(*r.gen.maxTokens, 20);
        QCOMPARE(*parseChatRequest(chat({{"max_tokens", 5.0}})).gen.maxTokens, 5);  // integral double is fine
    }

    void nullMeansDefault() {
        ChatRequest r = parseChatRequest(chat({{"temperature", nullptr}, {"max_tokens", nullptr}, {"stop", nullptr}}));
        QCOMPARE(r.gen.sampling.temperature, 1.0f);
        QVERIFY(!r.gen.maxTokens);
        QVERIFY(r.gen.sampling.stop.empty());
    }

    void chatTemplateKwargs() {
        QVERIFY(parseChatRequest(chat()).templateKwargs.is_null());
        QVERIFY(parseChatRequest(chat({{"chat_template_kwargs", nullptr}})).templateKwargs.is_null());
        ChatRequest r = parseChatRequest(chat({{"chat_template_kwargs", {{"enable_thinking", false}, {"x", {1, "y"}}}}}));
        QCOMPARE(r.templateKwargs, nlohmann::ordered_json({{"enable_thinking", false}, {"x", {1, "y"}}}));
        ApiError e = errorOf([] { parseChatRequest(chat({{"chat_template_kwargs", {{"messages", 1}}}})); });
        QCOMPARE(e.message, std::string("Invalid value for 'chat_template_kwargs': chat template kwargs cannot set "
                                        "'messages' (it is part of the request)."));
    }

    void multiTurnAndContentParts() {
        json body = chat();
        body["messages"] = {{{"role", "system"}, {"content", "Be brief."}},
                            {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}},
                            {{"role", "assistant"}, {"content", nullptr}},
                            {{"role", "developer"}, {"content", "x"}}};
        ChatRequest r = parseChatRequest(body);
        QCOMPARE(r.messages.size(), size_t(4));
        QCOMPARE(r.messages[1].content, std::string("a\nb"));
        QCOMPARE(r.messages[2].content, std::string());
        QCOMPARE(r.messages[3].role, std::string("system"));
    }

    // Tools, tool_choice, tool turns and response_format as OpenAI sends them.
    void parsesToolsAndResponseFormat() {
        json body = chat();
        json fn = {{"name", "get_weather"}, {"description", "Weather now"}};
        fn["parameters"] = {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}};
        body["tools"] = json::array({{{"type", "function"}, {"function", fn}}});
        body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
        body["parallel_tool_calls"] = false;
        json call = {{"id", "call_1"}, {"type", "function"}};
        call["function"] = {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}};
        body["messages"] = json::array({{{"role", "user"}, {"content", "Weather in Paris?"}},
                                        {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array({call})}},
                                        {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "22 C"}}});
        ChatRequest r = parseChatRequest(body);
        QCOMPARE(r.tools.size(), size_t(1));
        QCOMPARE(r.tools[0]["function"]["name"], nlohmann::ordered_json("get_weather"));
        QCOMPARE(r.tools[0]["function"]["parameters"]["properties"]["city"]["type"], nlohmann::ordered_json("string"));
        QCOMPARE(int(r.toolChoice.mode), int(ToolChoice::Function));
        QCOMPARE(r.toolChoice.function, std::string("get_weather"));
        QVERIFY(!r.parallelToolCalls);
        QCOMPARE(r.messages[1].content, std::string());
        QCOMPARE(r.messages[1].toolCalls[0]["function"]["arguments"]["city"], nlohmann::ordered_json("Paris"));  // an object now
        QCOMPARE(r.messages[1].toolCalls[0]["id"], nlohmann::ordered_json("call_1"));
        QCOMPARE(r.messages[2].role, std::string("tool"));
        QCOMPARE(r.messages[2].toolCallId, std::string("call_1"));

        json schema = chat({{"response_format", {{"type", "json_schema"},
                                                 {"json_schema", {{"name", "person"}, {"strict", true},
                                                                  {"schema", {{"type", "object"}}}}}}}});
        ChatRequest s = parseChatRequest(schema);
        QCOMPARE(int(s.responseFormat.kind), int(ResponseFormat::JsonSchema));
        QCOMPARE(s.responseFormat.name, std::string("person"));
        QVERIFY(s.responseFormat.strict);
        QCOMPARE(s.responseFormat.schema["type"], json("object"));
        QCOMPARE(int(parseChatRequest(chat({{"response_format", {{"type", "json_object"}}}})).responseFormat.kind),
                 int(ResponseFormat::JsonObject));
        QCOMPARE(int(parseChatRequest(chat({{"tools", json::array()}, {"tool_choice", "none"}})).toolChoice.mode),
                 int(ToolChoice::None));
    }

    void rejectsBadChatFields_data() {
        QTest::addColumn<QString>("body");
        QTest::addColumn<QString>("param");
        QTest::addColumn<QString>("code");
        auto row = [](const char* name, json b, const char* param, const char* code) {
            QTest::newRow(name) << QString::fromStdString(b.dump()) << QString(param) << QString(code);
        };
        json noMessages = chat();
        noMessages.erase("messages");
        row("missing messages", noMessages, "messages", "missing_required_parameter");
        row("messages not array", chat({{"messages", "hi"}}), "messages", "invalid_type");
        row("empty messages", chat({{"messages", json::array()}}), "messages", "empty_array");
        row("unknown role", chat({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), "messages[0].role", "invalid_value");
        row("role not string", chat({{"messages", {{{"role", 5}, {"content", "x"}}}}}), "messages[0].role", "invalid_type");
        row("missing content", chat({{"messages", {{{"role", "user"}}}}}), "messages[0].content", "missing_required_parameter");
        row("content number", chat({{"messages", {{{"role", "user"}, {"content", 5}}}}}), "messages[0].content", "invalid_type");
        row("image part", chat({{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}),
            "messages[0].content[0].type", "unsupported_content_type");
        row("temperature high", chat({{"temperature", 2.5}}), "temperature", "invalid_value");
        row("temperature negative", chat({{"temperature", -0.1}}), "temperature", "invalid_value");
        row("temperature string", chat({{"temperature", "hot"}}), "temperature", "invalid_type");
        row("top_p zero", chat({{"top_p", 0}}), "top_p", "invalid_value");
        row("top_k -2", chat({{"top_k", -2}}), "top_k", "invalid_value");
        row("max_tokens negative", chat({{"max_tokens", -1}}), "max_tokens", "invalid_value");
        row("max_tokens zero", chat({{"max_tokens", 0}}), "max_tokens", "invalid_value");
        row("max_tokens huge", chat({{"max_tokens", 1e30}}), "max_tokens", "invalid_value");
        row("max_tokens u64", chat({{"max_tokens", 18446744073709551615ull}}), "max_tokens", "invalid_value");
        row("max_tokens fraction", chat({{"max_tokens", 1.5}}), "max_tokens", "invalid_type");
        row("max_tokens string", chat({{"max_tokens", "10"}}), "max_tokens", "invalid_type");
        row("n zero", chat({{"n", 0}}), "n", "invalid_value");
        row("n huge", chat({{"n", 100000}}), "n", "invalid_value");
        row("stop number", chat({{"stop", 5}}), "stop", "invalid_type");
        row("stop list of numbers", chat({{"stop", {1, 2}}}), "stop", "invalid_type");
        row("too many stops", chat({{"stop", json(std::vector<std::string>(17, "x"))}}), "stop", "invalid_value");
        row("stream string", chat({{"stream", "yes"}}), "stream", "invalid_type");
        row("stream_options without stream", chat({{"stream_options", {{"include_usage", true}}}}), "stream_options", "invalid_value");
        row("top_logprobs without logprobs", chat({{"top_logprobs", 2}}), "top_logprobs", "invalid_value");
        row("top_logprobs 21", chat({{"logprobs", true}, {"top_logprobs", 21}}), "top_logprobs", "invalid_value");
        row("seed float", chat({{"seed", 1.5}}), "seed", "invalid_type");
        row("presence 3", chat({{"presence_penalty", 3}}), "presence_penalty", "invalid_value");
        row("repetition 0", chat({{"repetition_penalty", 0}}), "repetition_penalty", "invalid_value");
        const json fn = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
        row("tools not array", chat({{"tools", fn}}), "tools", "invalid_type");
        row("tool without function", chat({{"tools", {{{"type", "function"}}}}}), "tools[0].function", "missing_required_parameter");
        row("tool type", chat({{"tools", {{{"type", "retrieval"}, {"function", {{"name", "f"}}}}}}}), "tools[0].type", "invalid_value");
        row("tool name spaces", chat({{"tools", {{{"type", "function"}, {"function", {{"name", "get weather"}}}}}}}),
            "tools[0].function.name", "invalid_value");
        row("tool name twice", chat({{"tools", {fn, fn}}}), "tools[1].function.name", "invalid_value");
        row("tool parameters string", chat({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", "x"}}}}}}}),
            "tools[0].function.parameters", "invalid_type");
        row("tool_choice without tools", chat({{"tool_choice", "required"}}), "tool_choice", "invalid_value");
        row("tool_choice unknown", chat({{"tools", {fn}}, {"tool_choice", "sometimes"}}), "tool_choice", "invalid_value");
        row("tool_choice other function", chat({{"tools", {fn}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}),
            "tool_choice", "invalid_value");
        row("tool message without id", chat({{"messages", {{{"role", "tool"}, {"content", "22 C"}}}}}),
            "messages[0].tool_call_id", "missing_required_parameter");
        row("tool call arguments not JSON",
            chat({{"messages", {{{"role", "assistant"},
                                 {"tool_calls", {{{"id", "c1"}, {"type", "function"},
                                                  {"function", {{"name", "f"}, {"arguments", "{oops"}}}}}}}}}}),
            "messages[0].tool_calls[0].function.arguments", "invalid_value");
        row("response_format type", chat({{"response_format", {{"type", "xml"}}}}), "response_format.type", "invalid_value");
        row("json_schema without name", chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", json::object()}}}}}}),
            "response_format.json_schema.name", "missing_required_parameter");
        row("json_schema schema string",
            chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", "{}"}}}}}}),
            "response_format.json_schema.schema", "invalid_type");
        row("model number", chat({{"model", 7}}), "model", "invalid_type");
        row("chat_template_kwargs not object", chat({{"chat_template_kwargs", "enable_thinking=false"}}),
            "chat_template_kwargs", "invalid_type");
        row("chat_template_kwargs list", chat({{"chat_template_kwargs", {1, 2}}}), "chat_template_kwargs", "invalid_type");
        row("chat_template_kwargs sets messages", chat({{"chat_template_kwargs", {{"messages", json::array()}}}}),
            "chat_template_kwargs", "invalid_value");
        row("chat_template_kwargs sets add_generation_prompt",
            chat({{"chat_template_kwargs", {{"add_generation_prompt", false}}}}), "chat_template_kwargs", "invalid_value");
    }
    void rejectsBadChatFields() {
        QFETCH(QString, body);
        QFETCH(QString, param);
        QFETCH(QString, code);
        ApiError e = errorOf([&] { parseChatRequest(parseBody(body.toStdString())); });
        QCOMPARE(e.status, 400);
        QCOMPARE(e.type, std::string("invalid_request_error"));
        QCOMPARE(QString::fromStdString(e.param), param);
        QCOMPARE(QString::fromStdString(e.code), code);
        QVERIFY(!e.message.empty());
    }

    void rejectsBrokenBodies_data() {
        QTest::addColumn<QByteArray>("body");
        QTest::newRow("empty") << QByteArray("");
        QTest::newRow("truncated") << QByteArray("{\"model\": \"m\", \"messages\": [");
        QTest::newRow("trailing garbage") << QByteArray("{} x");
        QTest::newRow("array") << QByteArray("[1,2,3]");
        QTest::newRow("string") << QByteArray("\"hello\"");
        QTest::newRow("invalid utf8") << QByteArray("{\"model\": \"\xff\xfe\"}");
        QTest::newRow("lone surrogate") << QByteArray("{\"model\": \"\\ud800\"}");
        QTest::newRow("deep") << QByteArray(100000, '[');
        QTest::newRow("single quotes") << QByteArray("{'model': 'm'}");
        QTest::newRow("nul byte") << QByteArray("{\"a\":1}\0", 8);
    }
    void rejectsBrokenBodies() {
        QFETCH(QByteArray, body);
        ApiError e = errorOf([&] { parseBody(body.toStdString()); });
        QCOMPARE(e.status, 400);
        QVERIFY(e.code == "invalid_json");
        QVERIFY(!e.body().empty());  // the message may quote bad bytes: body() must still dump
    }

    void depthCountsOnlyOutsideStrings() {
        QCOMPARE(jsonDepth("{\"a\":[1,{\"b\":2}]}", 64), 3);
        QCOMPARE(jsonDepth("{\"a\":\"[[[[[[\"}", 64), 1);
        QCOMPARE(jsonDepth("{\"a\":\"\\\"[[[\"}", 64), 1);
        QVERIFY(jsonDepth(std::string(1000, '['), 64) > 64);
        // 64 levels are fine
        std::string ok = std::string(63, '[') + std::string(63, ']');
        QCOMPARE(parseBody("{\"x\":" + ok + "}").size(), size_t(1));
    }

    void parsesCompletions() {
        CompletionRequest r = parseCompletionRequest({{"model", "m"}, {"prompt", "Once"}, {"echo", true}, {"max_tokens", 8}});
        QCOMPARE(r.prompts.size(), size_t(1));
        QCOMPARE(r.prompts[0].text, std::string("Once"));
        QVERIFY(r.echo);
        QCOMPARE(r.logprobs, -1);
        r = parseCompletionRequest({{"prompt", {"a", "b"}}, {"n", 2}, {"logprobs", 3}});
        QCOMPARE(r.prompts.size(), size_t(2));
        QCOMPARE(r.logprobs, 3);
        r = parseCompletionRequest({{"prompt", {1, 400, 7}}});
        QVERIFY(r.prompts[0].isIds);
        QCOMPARE(r.prompts[0].ids, (std::vector<int32_t>{1, 400, 7}));
        r = parseCompletionRequest({{"prompt", {{1, 2}, {3}}}});
        QCOMPARE(r.prompts.size(), size_t(2));
        QCOMPARE(r.prompts[1].ids, (std::vector<int32_t>{3}));
        r = parseCompletionRequest({{"prompt", "x"}, {"suffix", ""}});  // empty suffix is no suffix
        QCOMPARE(r.prompts.size(), size_t(1));
    }

    void rejectsBadCompletions() {
        auto check = [](json body, const char* param, const char* code) {
            ApiError e = errorOf([&] { parseCompletionRequest(body); });
            QCOMPARE(e.status, 400);
            QCOMPARE(e.param, std::string(param));
            QCOMPARE(e.code, std::string(code));
        };
        check({{"model", "m"}}, "prompt", "missing_required_parameter");
        check({{"prompt", 5}}, "prompt", "invalid_type");
        check({{"prompt", json::array()}}, "prompt", "empty_array");
        check({{"prompt", {"a", 5}}}, "prompt[1]", "invalid_type");
        check({{"prompt", {1, -5}}}, "prompt", "invalid_value");
        check({{"prompt", "x"}, {"suffix", "end"}}, "suffix", "unsupported_parameter");
        check({{"prompt", "x"}, {"echo", true}, {"logprobs", 1}}, "echo", "unsupported_parameter");
        check({{"prompt", "x"}, {"logprobs", 50}}, "logprobs", "invalid_value");
        check({{"prompt", "x"}, {"best_of", 3}}, "best_of", "unsupported_parameter");
        check({{"prompt", json(std::vector<std::string>(40, "p"))}, {"n", 2}}, "n", "invalid_value");
    }

    void parsesEncode() {
        EncodeRequest r = parseEncodeRequest({{"input", "hello"}});
        QVERIFY(!r.batch);
        QVERIFY(r.addBos);
        r = parseEncodeRequest({{"input", {"a", "b"}}, {"add_bos", false}, {"do_preprocess", true}});
        QVERIFY(r.batch);
        QCOMPARE(r.inputs.size(), size_t(2));
        QVERIFY(!r.addBos);
        QVERIFY(r.doPreprocess);
        QCOMPARE(errorOf([] { parseEncodeRequest({{"input", 3}}); }).param, std::string("input"));
    }
};

QTEST_GUILESS_MAIN(TestProtocol)
#include "test_protocol.moc"
