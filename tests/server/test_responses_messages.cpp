// POST /v1/responses (OpenAI's Responses API) and /v1/messages, /v1/messages/count_tokens
// (Anthropic's Messages API) on real servers: stories260K for the shapes, the event sequences,
// usage and stop sequences; qwen3-tiny (a real Qwen3 template with tools and enable_thinking; random
// weights, so calls are forced by tool_choice and the grammar) for tool round trips; hostile bodies,
// Anthropic's error shape and x-api-key auth; the route table against resources/openapi.json.
#include <QtTest>

#include <mutex>
#include <set>

#include "../../server/src/api_formats.h"
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

namespace {

struct SseEvent {
    std::string name;  // the `event:` line
    json data;
};

// "event: X\ndata: {...}\n\n" blocks; every block must have both lines and JSON data.
std::vector<SseEvent> parseSse(const std::string& body) {
    std::vector<SseEvent> out;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t end = body.find("\n\n", pos);
        if (end == std::string::npos) end = body.size();
        const std::string block = body.substr(pos, end - pos);
        pos = end + 2;
        if (block.empty()) continue;
        SseEvent e;
        size_t nl = block.find('\n');
        if (block.rfind("event: ", 0) != 0 || nl == std::string::npos || block.compare(nl + 1, 6, "data: ") != 0) {
            e.name = "<malformed>";
            e.data = block;
        } else {
            e.name = block.substr(7, nl - 7);
            e.data = json::parse(block.substr(nl + 7), nullptr, false);
        }
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<std::string> namesOf(const std::vector<SseEvent>& evs) {
    std::vector<std::string> n;
    for (const auto& e : evs) n.push_back(e.name);
    return n;
}

// The kinds of events in order, runs of one kind collapsed (deltas).
std::vector<std::string> collapsed(const std::vector<SseEvent>& evs) {
    std::vector<std::string> n;
    for (const auto& e : evs)
        if (n.empty() || n.back() != e.name) n.push_back(e.name);
    return n;
}

const json kWeatherSchema = {{"type", "object"},
                             {"properties", {{"city", {{"type", "string"}, {"maxLength", 12}}}}},
                             {"required", {"city"}},
                             {"additionalProperties", false}};

}  // namespace

class TestResponsesMessages : public QObject {
    Q_OBJECT

    // Declared before the servers, so they outlive them: m_qwen's log callback runs until it stops.
    std::mutex m_logMutex;
    std::vector<server::RequestLogEntry> m_log;  // m_qwen's request log (what the GUI's table shows)
    Served m_stories, m_qwen, m_keyed;

    static lmw::test::HttpReply post(int port, const std::string& path, const json& body, const std::string& headers = {}) {
        return request(port, "POST", path, body.dump(), headers);
    }
    // A 200 JSON answer (the test fails loudly otherwise).
    static json ok(int port, const std::string& path, const json& body, const std::string& headers = {}) {
        const auto r = post(port, path, body, headers);
        if (r.status != 200) qWarning("%s %s -> %d %s", path.c_str(), body.dump().c_str(), r.status, r.body.c_str());
        return r.status == 200 ? json::parse(r.body) : json();
    }
    // An error answer in Anthropic's shape with this status and error type.
    static bool anthropicError(const lmw::test::HttpReply& r, int status, const std::string& type) {
        const json j = json::parse(r.body, nullptr, false);
        const bool good = r.status == status && j.is_object() && j.value("type", "") == "error" &&
                          j["error"].value("type", "") == type && !j["error"].value("message", "").empty() &&
                          !j.contains("param");
        if (!good) qWarning("want %d %s, got %d %s", status, type.c_str(), r.status, r.body.c_str());
        return good;
    }
    static bool openAIError(const lmw::test::HttpReply& r, int status, const std::string& param = {}) {
        const json j = json::parse(r.body, nullptr, false);
        const bool good = r.status == status && j.is_object() && j.contains("error") && j["error"].contains("message") &&
                          (param.empty() || j["error"]["param"] == param);
        if (!good) qWarning("want %d %s, got %d %s", status, param.c_str(), r.status, r.body.c_str());
        return good;
    }
    static bool healthy(int port) { return request(port, "GET", "/health").status == 200; }
    static std::string outputText(const json& response) {
        std::string t;
        for (const auto& item : response["output"])
            if (item["type"] == "message")
                for (const auto& part : item["content"]) t += part["text"].get<std::string>();
        return t;
    }

private slots:
    void initTestCase() {
        m_stories = serve("stories260K");
        server::ServerOptions logged;
        logged.requestLog = [this](const server::RequestLogEntry& e) {
            std::lock_guard lock(m_logMutex);
            m_log.push_back(e);
        };
        m_qwen = serve("qwen3-tiny", logged, 1024);  // room for the tools in the prompt and a forced call
        server::ServerOptions o;
        o.apiKeys = {"sekrit"};
        m_keyed = serve("stories260K", o);
    }

    void routeTableIsTheOpenApiDocument() {
        const json doc = json::parse(lmw::test::readFile(std::string(LMW_SOURCE_DIR) + "/resources/openapi.json"));
        std::set<std::string> table, documented;
        for (const auto& r : server::routeTable()) {
            std::string method = r.method;
            for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            table.insert(method + " " + r.path);
            QVERIFY2(doc["paths"].contains(r.path) && doc["paths"][r.path].contains(method), r.path.c_str());
            const json& op = doc["paths"][r.path][method];
            const bool open = op.contains("security") && op["security"].empty();
            QVERIFY2(open == !r.auth, r.path.c_str());
        }
        for (const auto& [path, ops] : doc["paths"].items())
            for (const auto& [method, op] : ops.items()) documented.insert(method + " " + path);
        QCOMPARE(table, documented);
        for (const char* p : {"/v1/responses", "/v1/messages", "/v1/messages/count_tokens"})
            QVERIFY(table.count(std::string("post ") + p));
    }

    // ---- Responses API ----

    void responseWhole() {
        const json body = {{"input", "Once upon a time"}, {"max_output_tokens", 8}, {"temperature", 0}};
        const json r = ok(m_stories.port, "/v1/responses", body);
        QCOMPARE(r["object"], json("response"));
        QVERIFY(r["id"].get<std::string>().rfind("resp_", 0) == 0);
        QVERIFY(r["created_at"].is_number_integer());
        QCOMPARE(r["model"], json("stories260K"));
        QCOMPARE(r["status"], json("incomplete"));  // 8 tokens cut the story
        QCOMPARE(r["incomplete_details"]["reason"], json("max_output_tokens"));
        QCOMPARE(r["max_output_tokens"], json(8));
        QCOMPARE(r["output"].size(), size_t(1));
        const json& item = r["output"][0];
        QCOMPARE(item["type"], json("message"));
        QCOMPARE(item["role"], json("assistant"));
        QVERIFY(item["id"].get<std::string>().rfind("msg_", 0) == 0);
        QCOMPARE(item["content"][0]["type"], json("output_text"));
        QVERIFY(!outputText(r).empty());
        const json& u = r["usage"];
        QCOMPARE(u["output_tokens"], json(8));
        QCOMPARE(u["total_tokens"].get<int>(), u["input_tokens"].get<int>() + 8);
        QVERIFY(u["input_tokens_details"].is_object() && u["output_tokens_details"].is_object());
        // The same prompt as chat completions renders for the same conversation.
        const json chat = ok(m_stories.port, "/v1/chat/completions",
                             {{"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}, {"max_tokens", 8},
                              {"temperature", 0}});
        QCOMPARE(u["input_tokens"], chat["usage"]["prompt_tokens"]);
        QCOMPARE(json(outputText(r)), chat["choices"][0]["message"]["content"]);
        // instructions are the system turn; a list of items is the same conversation.
        const json items = ok(m_stories.port, "/v1/responses",
                              {{"instructions", "Be brief."},
                               {"input", {{{"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "Once upon a time"}}}}}}},
                               {"max_output_tokens", 4}});
        const json chat2 = ok(m_stories.port, "/v1/chat/completions",
                              {{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Once upon a time"}}}},
                               {"max_tokens", 4}});
        QCOMPARE(items["usage"]["input_tokens"], chat2["usage"]["prompt_tokens"]);
        QCOMPARE(items["instructions"], json("Be brief."));
    }

    void responseStream() {
        const json body = {{"input", "Once upon a time"}, {"max_output_tokens", 12}, {"temperature", 0}};
        const json whole = ok(m_stories.port, "/v1/responses", body);
        json sbody = body;
        sbody["stream"] = true;
        const auto r = post(m_stories.port, "/v1/responses", sbody);
        QCOMPARE(r.status, 200);
        QCOMPARE(r.headers.at("content-type"), std::string("text/event-stream"));
        const auto evs = parseSse(r.body);
        const std::vector<std::string> want = {"response.created", "response.in_progress", "response.output_item.added",
                                               "response.content_part.added", "response.output_text.delta",
                                               "response.output_text.done", "response.content_part.done",
                                               "response.output_item.done", "response.incomplete"};
        QCOMPARE(collapsed(evs), want);
        std::string deltas;
        for (size_t i = 0; i < evs.size(); ++i) {
            QCOMPARE(evs[i].data["type"], json(evs[i].name));
            QVERIFY2(evs[i].data["sequence_number"] == json(i), evs[i].data.dump().c_str());
            if (evs[i].name == "response.output_text.delta") deltas += evs[i].data["delta"].get<std::string>();
        }
        const json& done = evs.back().data["response"];
        QCOMPARE(done["status"], json("incomplete"));
        QCOMPARE(done["usage"], whole["usage"]);
        QCOMPARE(deltas, outputText(whole));
        QCOMPARE(outputText(done), deltas);
        for (const auto& e : evs)
            if (e.name == "response.output_text.done") QCOMPARE(e.data["text"], json(deltas));
        QCOMPARE(evs[0].data["response"]["status"], json("in_progress"));
        QCOMPARE(evs[2].data["item"]["id"], done["output"][0]["id"]);
        QCOMPARE(evs[4].data["item_id"], done["output"][0]["id"]);
        QCOMPARE(evs[evs.size() - 2].data["item"], done["output"][0]);
    }

    void responseStatelessAndBadInput() {
        const int port = m_stories.port;
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"store", true}}), 400, "store"));
        QVERIFY(ok(port, "/v1/responses", {{"input", "hi"}, {"store", false}, {"max_output_tokens", 2}}).is_object());
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"previous_response_id", "resp_1"}}), 400,
                            "previous_response_id"));
        QVERIFY(openAIError(post(port, "/v1/responses", json::object()), 400, "input"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", {{{"type", "input_image"}}}}}), 400, "input[0].type"));
        QVERIFY(openAIError(post(port, "/v1/responses",
                                 {{"input", {{{"role", "user"}, {"content", {{{"type", "input_image"}, {"image_url", "x"}}}}}}}}),
                            400, "input[0].content[0].type"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", {{{"role", "robot"}, {"content", "x"}}}}}), 400,
                            "input[0].role"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"temperature", 9}}), 400, "temperature"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"max_output_tokens", 0}}), 400, "max_output_tokens"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"max_output_tokens", "9"}}), 400, "max_output_tokens"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"text", {{"format", {{"type", "yaml"}}}}}}), 400,
                            "text.format.type"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"tools", {{{"type", "web_search"}}}}}), 400,
                            "tools[0].type"));
        // Longer than the context: a 400 naming the context, before any engine work.
        const auto huge = post(port, "/v1/responses", {{"input", std::string(200000, 'a')}});
        QVERIFY(openAIError(huge, 400));
        QCOMPARE(json::parse(huge.body)["error"]["code"], json("context_length_exceeded"));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}, {"max_output_tokens", 100000}}), 400));
        QCOMPARE(request(port, "POST", "/v1/responses", "{not json").status, 400);
        QVERIFY(healthy(port));
        // text.format json_object: the grammar makes the reply a JSON object.
        const json j = ok(port, "/v1/responses",
                          {{"input", "hi"}, {"text", {{"format", {{"type", "json_object"}}}}}, {"max_output_tokens", 40}, {"temperature", 0}});
        if (j["status"] == "completed") QVERIFY(json::parse(outputText(j), nullptr, false).is_object());
        QVERIFY(outputText(j).rfind("{", 0) == 0);
    }

    void responseToolRoundTrip() {
        const int port = m_qwen.port;
        const json tools = {{{"type", "function"}, {"name", "get_weather"}, {"description", "Weather in a city"},
                             {"parameters", kWeatherSchema}}};
        // One call (a random model writes many), with room for the whitespace the grammar allows.
        const json body = {{"input", "What is the weather in Paris?"}, {"tools", tools}, {"tool_choice", "required"},
                           {"parallel_tool_calls", false}, {"max_output_tokens", 400}, {"temperature", 0}};
        const json r = ok(port, "/v1/responses", body);
        QVERIFY2(r["status"] == "completed", r.dump().c_str());
        json call;
        for (const auto& item : r["output"])
            if (item["type"] == "function_call") call = item;
        QVERIFY2(call.is_object(), r.dump().c_str());
        QCOMPARE(call["name"], json("get_weather"));
        QVERIFY(call["call_id"].get<std::string>().rfind("call_", 0) == 0);
        QVERIFY(call["id"].get<std::string>().rfind("fc_", 0) == 0);
        const json args = json::parse(call["arguments"].get<std::string>());
        QVERIFY(args["city"].is_string());
        // The reply's items go back with the tool's output: the next turn sees the call and its result.
        json input = json::array({{{"role", "user"}, {"content", "What is the weather in Paris?"}}});
        for (const auto& item : r["output"]) input.push_back(item);
        input.push_back({{"type", "function_call_output"}, {"call_id", call["call_id"]}, {"output", "Sunny, 21 C"}});
        const json next = ok(port, "/v1/responses", {{"input", input}, {"tools", tools}, {"max_output_tokens", 4}});
        QVERIFY(next["usage"]["input_tokens"].get<int>() > r["usage"]["input_tokens"].get<int>() + 8);
        QVERIFY(next["output"].is_array() && !next["output"].empty());
        // The same round trip as chat completions has it: the same prompt.
        const json chat = ok(port, "/v1/chat/completions",
                             {{"messages", {{{"role", "user"}, {"content", "What is the weather in Paris?"}},
                                            {{"role", "assistant"}, {"content", nullptr},
                                             {"tool_calls", {{{"id", call["call_id"]}, {"type", "function"},
                                                              {"function", {{"name", "get_weather"}, {"arguments", call["arguments"]}}}}}}},
                                            {{"role", "tool"}, {"tool_call_id", call["call_id"]}, {"content", "Sunny, 21 C"}}}},
                              {"tools", {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"description", "Weather in a city"},
                                                                              {"parameters", kWeatherSchema}}}}}},
                              {"max_tokens", 4}});
        QCOMPARE(next["usage"]["input_tokens"], chat["usage"]["prompt_tokens"]);
        // Streamed: the call's item with its argument events, equal to the whole answer's.
        json sbody = body;
        sbody["stream"] = true;
        sbody["tool_choice"] = {{"type", "function"}, {"name", "get_weather"}};
        const auto s = post(port, "/v1/responses", sbody);
        QCOMPARE(s.status, 200);
        const auto evs = parseSse(s.body);
        const auto names = collapsed(evs);
        const std::vector<std::string> want = {"response.created", "response.in_progress", "response.output_item.added",
                                               "response.function_call_arguments.delta",
                                               "response.function_call_arguments.done", "response.output_item.done",
                                               "response.completed"};
        QCOMPARE(names, want);
        const json& item = evs.back().data["response"]["output"][0];
        QCOMPARE(item["type"], json("function_call"));
        QCOMPARE(evs[4].data["arguments"], item["arguments"]);
        QVERIFY(json::parse(item["arguments"].get<std::string>())["city"].is_string());
    }

    // ---- Messages API ----

    void messageWhole() {
        const json body = {{"max_tokens", 8}, {"temperature", 0}, {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}};
        const json m = ok(m_stories.port, "/v1/messages", body, "anthropic-version: 2023-06-01\r\n");
        QCOMPARE(m["type"], json("message"));
        QCOMPARE(m["role"], json("assistant"));
        QVERIFY(m["id"].get<std::string>().rfind("msg_", 0) == 0);
        QCOMPARE(m["model"], json("stories260K"));
        QCOMPARE(m["stop_reason"], json("max_tokens"));
        QVERIFY(m["stop_sequence"].is_null());
        QCOMPARE(m["content"].size(), size_t(1));
        QCOMPARE(m["content"][0]["type"], json("text"));
        QCOMPARE(m["usage"]["output_tokens"], json(8));
        const json count = ok(m_stories.port, "/v1/messages/count_tokens", {{"messages", body["messages"]}});
        QCOMPARE(count, json({{"input_tokens", m["usage"]["input_tokens"]}}));
        // system as text blocks and content as text blocks: the same prompt as strings.
        const json blocks = {{"system", {{{"type", "text"}, {"text", "Be brief."}}}},
                             {"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Once upon a time"}}}}}}}};
        const json strings = {{"system", "Be brief."}, {"messages", body["messages"]}};
        const json c1 = ok(m_stories.port, "/v1/messages/count_tokens", blocks);
        QCOMPARE(c1, ok(m_stories.port, "/v1/messages/count_tokens", strings));
        QVERIFY(c1["input_tokens"].get<int>() > count["input_tokens"].get<int>());
        // With the chat completions prompt for the same turn.
        const json chat = ok(m_stories.port, "/v1/chat/completions",
                             {{"messages", body["messages"]}, {"max_tokens", 8}, {"temperature", 0}});
        QCOMPARE(m["usage"]["input_tokens"], chat["usage"]["prompt_tokens"]);
        QCOMPARE(m["content"][0]["text"], chat["choices"][0]["message"]["content"]);
    }

    void messageStream() {
        const json body = {{"max_tokens", 10}, {"temperature", 0}, {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}};
        const json whole = ok(m_stories.port, "/v1/messages", body);
        json sbody = body;
        sbody["stream"] = true;
        const auto r = post(m_stories.port, "/v1/messages", sbody);
        QCOMPARE(r.status, 200);
        const auto evs = parseSse(r.body);
        const std::vector<std::string> want = {"message_start", "ping", "content_block_start", "content_block_delta",
                                               "content_block_stop", "message_delta", "message_stop"};
        QCOMPARE(collapsed(evs), want);
        std::string text;
        for (const auto& e : evs) {
            QCOMPARE(e.data["type"], json(e.name));
            if (e.name == "content_block_delta") {
                QCOMPARE(e.data["index"], json(0));
                QCOMPARE(e.data["delta"]["type"], json("text_delta"));
                text += e.data["delta"]["text"].get<std::string>();
            }
        }
        const json& start = evs[0].data["message"];
        QCOMPARE(start["id"].get<std::string>().rfind("msg_", 0), size_t(0));
        QCOMPARE(start["usage"]["input_tokens"], whole["usage"]["input_tokens"]);
        QVERIFY(start["content"].empty() && start["stop_reason"].is_null());
        QCOMPARE(evs[2].data["content_block"], json({{"type", "text"}, {"text", ""}}));
        const json& delta = evs[evs.size() - 2].data;
        QCOMPARE(delta["delta"]["stop_reason"], json("max_tokens"));
        QCOMPARE(delta["usage"]["output_tokens"], json(10));
        QCOMPARE(json(text), whole["content"][0]["text"]);
    }

    void messageStopSequence() {
        const json body = {{"max_tokens", 24}, {"temperature", 0}, {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}};
        const std::string text = ok(m_stories.port, "/v1/messages", body)["content"][0]["text"];
        // A word from the middle of the greedy reply: the reply stops before it and names it.
        const size_t space = text.find(' ', text.size() / 2);
        QVERIFY2(space != std::string::npos && space + 3 < text.size(), text.c_str());
        const std::string stop = text.substr(space, 3);
        for (bool stream : {false, true}) {
            json b = body;
            b["stop_sequences"] = {"never-in-a-story", stop};
            b["stream"] = stream;
            const auto r = post(m_stories.port, "/v1/messages", b);
            QCOMPARE(r.status, 200);
            json m;
            std::string streamed;
            if (stream) {
                for (const auto& e : parseSse(r.body)) {
                    if (e.name == "message_delta") m = e.data["delta"];
                    if (e.name == "content_block_delta") streamed += e.data["delta"]["text"].get<std::string>();
                }
            } else {
                m = json::parse(r.body);
                streamed = m["content"][0]["text"];
            }
            QCOMPARE(m["stop_reason"], json("stop_sequence"));
            QCOMPARE(m["stop_sequence"], json(stop));
            QCOMPARE(streamed, text.substr(0, text.find(stop)));
        }
    }

    void messageBadInput() {
        const int port = m_stories.port;
        const json msgs = {{{"role", "user"}, {"content", "hi"}}};
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"messages", msgs}}), 400, "invalid_request_error"));  // no max_tokens
        QVERIFY(json::parse(post(port, "/v1/messages", {{"messages", msgs}}).body)["error"]["message"].get<std::string>().find("max_tokens") != std::string::npos);
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}}), 400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", json::array()}}), 400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 0}, {"messages", msgs}}), 400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", {{{"role", "system"}, {"content", "x"}}}}}),
                               400, "invalid_request_error"));
        const json image = {{{"role", "user"}, {"content", {{{"type", "image"}, {"source", {{"type", "base64"}}}}}}}};
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", image}}), 400, "invalid_request_error"));
        const json userToolUse = {{{"role", "user"}, {"content", {{{"type", "tool_use"}, {"id", "t"}, {"name", "f"}, {"input", json::object()}}}}}};
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", userToolUse}}), 400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", 5}}}}}), 400,
                               "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", msgs}, {"tool_choice", {{"type", "sometimes"}}}}),
                               400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", msgs}, {"tools", {{{"type", "web_search_20250305"}, {"name", "w"}}}}}),
                               400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", msgs}, {"model", "claude-opus-4"}}), 404,
                               "not_found_error"));
        QVERIFY(anthropicError(request(port, "POST", "/v1/messages", "{\"max_tokens\": 4, "), 400, "invalid_request_error"));
        QVERIFY(anthropicError(request(port, "POST", "/v1/messages/count_tokens", "[1]"), 400, "invalid_request_error"));
        QVERIFY(anthropicError(request(port, "GET", "/v1/messages"), 405, "invalid_request_error"));
        // Longer than the context.
        const json huge = {{{"role", "user"}, {"content", std::string(200000, 'a')}}};
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 4}, {"messages", huge}}), 400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages/count_tokens", {{"messages", huge}}), 400, "invalid_request_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", {{"max_tokens", 100000}, {"messages", msgs}}), 400, "invalid_request_error"));
        // OpenAI's routes keep OpenAI's shape.
        QVERIFY(openAIError(request(port, "POST", "/v1/chat/completions", "{"), 400));
        QVERIFY(healthy(port));
        QVERIFY(ok(port, "/v1/messages", {{"max_tokens", 2}, {"messages", msgs}}).is_object());
    }

    void messageToolRoundTrip() {
        const int port = m_qwen.port;
        const json tools = {{{"name", "get_weather"}, {"description", "Weather in a city"}, {"input_schema", kWeatherSchema}}};
        const json ask = {{"role", "user"}, {"content", "What is the weather in Paris?"}};
        for (const json& choice : {json{{"type", "any"}, {"disable_parallel_tool_use", true}},
                                   json{{"type", "tool"}, {"name", "get_weather"}}}) {
            const json body = {{"max_tokens", 400}, {"temperature", 0}, {"tools", tools}, {"tool_choice", choice}, {"messages", {ask}}};
            const json m = ok(port, "/v1/messages", body);
            QVERIFY2(m["stop_reason"] == "tool_use", m.dump().c_str());
            json use;
            for (const auto& b : m["content"])
                if (b["type"] == "tool_use") use = b;
            QVERIFY2(use.is_object(), m.dump().c_str());
            QCOMPARE(use["name"], json("get_weather"));
            QVERIFY(use["id"].get<std::string>().rfind("toolu_", 0) == 0);
            QVERIFY(use["input"]["city"].is_string());
            // Streamed: a tool_use block whose input_json_delta pieces make the same input.
            json sbody = body;
            sbody["stream"] = true;
            const auto s = post(port, "/v1/messages", sbody);
            QCOMPARE(s.status, 200);
            std::string partial;
            json start, stopReason;
            for (const auto& e : parseSse(s.body)) {
                if (e.name == "content_block_start" && e.data["content_block"]["type"] == "tool_use") start = e.data["content_block"];
                if (e.name == "content_block_delta" && e.data["delta"]["type"] == "input_json_delta")
                    partial += e.data["delta"]["partial_json"].get<std::string>();
                if (e.name == "message_delta") stopReason = e.data["delta"]["stop_reason"];
            }
            QCOMPARE(start["name"], json("get_weather"));
            QCOMPARE(start["input"], json::object());
            QCOMPARE(json::parse(partial), use["input"]);
            QCOMPARE(stopReason, json("tool_use"));
            // The result goes back as a tool_result block (string and text-block content, is_error).
            for (const json& content : {json("Sunny, 21 C"), json{{{"type", "text"}, {"text", "Sunny, 21 C"}}}}) {
                const json turn = {{"max_tokens", 4}, {"tools", tools},
                                   {"messages", {ask, {{"role", "assistant"}, {"content", m["content"]}},
                                                 {{"role", "user"}, {"content", {{{"type", "tool_result"}, {"tool_use_id", use["id"]}, {"content", content}}}}}}}};
                const json next = ok(port, "/v1/messages", turn);
                QCOMPARE(next["type"], json("message"));
                QVERIFY(next["usage"]["input_tokens"].get<int>() > m["usage"]["input_tokens"].get<int>() + 8);
                json countBody = turn;
                countBody.erase("max_tokens");
                QCOMPARE(ok(port, "/v1/messages/count_tokens", countBody)["input_tokens"], next["usage"]["input_tokens"]);
            }
        }
    }

    // The request log (the GUI's Requests table) has the new endpoints with their tokens and marks.
    void requestLog() {
        const json tools = {{{"name", "get_weather"}, {"input_schema", kWeatherSchema}}};
        const json m = ok(m_qwen.port, "/v1/messages",
                          {{"max_tokens", 300}, {"tools", tools}, {"tool_choice", {{"type", "tool"}, {"name", "get_weather"}}},
                           {"stream", false}, {"messages", {{{"role", "user"}, {"content", "Paris?"}}}}});
        QVERIFY(m.is_object());
        QVERIFY(post(m_qwen.port, "/v1/responses", {{"input", "hi"}, {"max_output_tokens", 3}, {"stream", true}}).status == 200);
        QCOMPARE(post(m_qwen.port, "/v1/messages", {{"messages", json::array()}}).status, 400);
        // Each is logged once its answer is out, so they may arrive in any order: found by what they are.
        server::RequestLogEntry msg, resp, bad;
        auto find = [&] {
            std::lock_guard lock(m_logMutex);
            for (const auto& e : m_log) {
                if (e.endpoint == "/v1/messages" && e.status == 200 && e.tools) msg = e;
                if (e.endpoint == "/v1/responses" && e.stream) resp = e;
                if (e.endpoint == "/v1/messages" && e.status == 400) bad = e;
            }
            return !msg.endpoint.empty() && !resp.endpoint.empty() && !bad.endpoint.empty();
        };
        for (int i = 0; i < 200 && !find(); ++i) QTest::qWait(10);
        QVERIFY(find());
        QCOMPARE(msg.endpoint, std::string("/v1/messages"));
        QCOMPARE(msg.status, 200);
        QVERIFY(msg.tools && msg.structured && !msg.stream);
        QCOMPARE(msg.promptTokens, m["usage"]["input_tokens"].get<int>());
        QCOMPARE(msg.completionTokens, m["usage"]["output_tokens"].get<int>());
        QCOMPARE(resp.endpoint, std::string("/v1/responses"));
        QVERIFY(resp.stream);
        QCOMPARE(resp.completionTokens, 3);
        QCOMPARE(bad.endpoint, std::string("/v1/messages"));
        QCOMPARE(bad.status, 400);
        QVERIFY(!bad.error.empty());
    }

    void messageThinkingSetsTheTemplate() {
        // Qwen3's template has enable_thinking: disabled puts an empty think block in the prompt.
        const json base = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
        json on = base, off = base;
        on["thinking"] = {{"type", "enabled"}, {"budget_tokens", 1024}};
        off["thinking"] = {{"type", "disabled"}};
        const int nOn = ok(m_qwen.port, "/v1/messages/count_tokens", on)["input_tokens"];
        const int nOff = ok(m_qwen.port, "/v1/messages/count_tokens", off)["input_tokens"];
        QCOMPARE(ok(m_qwen.port, "/v1/messages/count_tokens", base)["input_tokens"].get<int>(), nOn);
        QVERIFY2(nOff > nOn, (std::to_string(nOff) + " vs " + std::to_string(nOn)).c_str());
        json bad = base;
        bad["thinking"] = {{"type", "maybe"}};
        QVERIFY(anthropicError(post(m_qwen.port, "/v1/messages/count_tokens", bad), 400, "invalid_request_error"));
    }

    void apiKeys() {
        const int port = m_keyed.port;
        const json msg = {{"max_tokens", 2}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
        QVERIFY(anthropicError(post(port, "/v1/messages", msg), 401, "authentication_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages", msg, "x-api-key: wrong\r\n"), 401, "authentication_error"));
        QVERIFY(anthropicError(post(port, "/v1/messages/count_tokens", msg), 401, "authentication_error"));
        QVERIFY(ok(port, "/v1/messages", msg, "x-api-key: sekrit\r\nanthropic-version: 2023-06-01\r\n").is_object());
        QVERIFY(ok(port, "/v1/messages", msg, "Authorization: Bearer sekrit\r\n").is_object());
        // x-api-key works everywhere; OpenAI's routes answer in their shape.
        QVERIFY(ok(port, "/v1/responses", {{"input", "hi"}, {"max_output_tokens", 2}}, "x-api-key: sekrit\r\n").is_object());
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}}), 401));
        QVERIFY(openAIError(post(port, "/v1/responses", {{"input", "hi"}}, "x-api-key: wrong\r\n"), 401));
        // A wrong Bearer is not rescued by a right x-api-key.
        QVERIFY(anthropicError(post(port, "/v1/messages", msg, "Authorization: Bearer wrong\r\nx-api-key: sekrit\r\n"), 401,
                               "authentication_error"));
        QVERIFY(healthy(port));
    }

    // A reply that thinks, then answers (what a Qwen3 with real weights writes), through both formats
    // without an engine: reasoning items / thinking blocks (with a signature), whole = streamed.
    void reasoningBecomesThinking() {
        const std::vector<std::string> pieces = {"<thi", "nk>\nLet me see", ".\n</think>\n\nHel", "lo there."};
        server::Shape shape;
        shape.id = "x_1";
        shape.model = "m";
        shape.parse = true;
        shape.parsing.reasoningParser = "think";
        auto run = [&](const std::shared_ptr<server::AnswerFormat>& f, bool stream) {
            std::vector<server::ChoiceState> choices(1);
            choices[0].promptTokens = 7;
            server::UsageCounts u{7, 5};
            if (!stream) {
                for (const auto& p : pieces) choices[0].text += p;
                choices[0].finish = engine::FinishReason::Stop;
                return f->wholeBody(shape, choices, u);
            }
            std::string out = f->streamStart(shape, choices);
            for (size_t i = 0; i < pieces.size(); ++i) {
                engine::Event e;
                e.text = pieces[i];
                e.final = i + 1 == pieces.size();
                if (e.final) e.finish = choices[0].finish = engine::FinishReason::Stop;
                out += f->streamEvent(shape, choices[0], e);
            }
            return out + f->streamEnd(shape, choices, u);
        };
        const json m = json::parse(run(server::messagesFormat(), false));
        QCOMPARE(m["content"], json::parse("[{\"type\":\"thinking\",\"thinking\":\"Let me see.\",\"signature\":\"\"},"
                                           "{\"type\":\"text\",\"text\":\"Hello there.\"}]"));
        QCOMPARE(m["stop_reason"], json("end_turn"));
        std::string thinking, text;
        std::vector<std::string> blocks;
        for (const auto& e : parseSse(run(server::messagesFormat(), true))) {
            if (e.name == "content_block_start") blocks.push_back(e.data["content_block"]["type"]);
            if (e.name != "content_block_delta") continue;
            const json& d = e.data["delta"];
            if (d["type"] == "thinking_delta") thinking += d["thinking"].get<std::string>();
            if (d["type"] == "text_delta") text += d["text"].get<std::string>();
            if (d["type"] == "signature_delta") QCOMPARE(e.data["index"], json(0));
        }
        QCOMPARE(blocks, (std::vector<std::string>{"thinking", "text"}));
        QCOMPARE(thinking, std::string("Let me see."));
        QCOMPARE(text, std::string("Hello there."));

        const json r = json::parse(run(server::responsesFormat(json::object()), false));
        QCOMPARE(r["output"].size(), size_t(2));
        QCOMPARE(r["output"][0]["type"], json("reasoning"));
        QCOMPARE(r["output"][0]["content"][0]["text"], json("Let me see."));
        QCOMPARE(r["output"][1]["content"][0]["text"], json("Hello there."));
        const auto evs = parseSse(run(server::responsesFormat(json::object()), true));
        const json& done = evs.back().data["response"];
        QCOMPARE(evs.back().name, std::string("response.completed"));
        QCOMPARE(done["output"][0]["content"], r["output"][0]["content"]);
        QCOMPARE(done["output"][1]["content"], r["output"][1]["content"]);
        std::string reasoning;
        for (const auto& e : evs)
            if (e.name == "response.reasoning_text.delta") reasoning += e.data["delta"].get<std::string>();
        QCOMPARE(reasoning, std::string("Let me see."));
    }

    void loadingServerAnswersInAnthropicShape() {
        server::Server s;
        s.setLoadingStatus("weights 10%");
        auto r = s.start("127.0.0.1", 0);
        QVERIFY(r.ok());
        const json msg = {{"max_tokens", 2}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
        QVERIFY(anthropicError(post(r.value(), "/v1/messages", msg), 503, "overloaded_error"));
        QVERIFY(openAIError(post(r.value(), "/v1/responses", {{"input", "hi"}}), 503));
    }
};

QTEST_GUILESS_MAIN(TestResponsesMessages)
#include "test_responses_messages.moc"
