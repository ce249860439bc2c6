// Output parsers (tool calls, reasoning): every format complete and split into stream chunks at
// every point, malformed output returned as content, reasoning on rendered Qwen3 prompts and
// replies, the parsers inverting the real chat templates' own rendering of tool calls, and a fuzz
// pass of random text in random chunks.
#include <QtTest>

#include <random>

#include "lmw/chat_template.h"
#include "lmw/error.h"
#include "lmw/output_parser.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using ojson = nlohmann::ordered_json;

namespace {

OutputParserOptions opts(const std::string& tools, const std::string& reasoning = "", bool inside = false,
                         std::uint64_t seed = 7) {
    OutputParserOptions o;
    o.toolCallParser = tools;
    o.reasoningParser = reasoning;
    o.startsInReasoning = inside;
    o.idSeed = seed;
    return o;
}

std::string describe(const ParsedOutput& p) {
    std::string s = "content=[" + p.content + "] reasoning=[" + p.reasoning + "] calls=";
    for (const auto& c : p.toolCalls) s += "{" + c.id + " " + c.name + " " + c.arguments + "}";
    return s;
}

bool same(const ParsedOutput& a, const ParsedOutput& b) {
    if (a.content != b.content || a.reasoning != b.reasoning || a.toolCalls.size() != b.toolCalls.size()) return false;
    for (size_t i = 0; i < a.toolCalls.size(); ++i)
        if (a.toolCalls[i].id != b.toolCalls[i].id || a.toolCalls[i].name != b.toolCalls[i].name ||
            a.toolCalls[i].arguments != b.toolCalls[i].arguments)
            return false;
    return true;
}

// Feeds the chunks and rebuilds the result from the events alone, checking the OpenAI delta order:
// a call's start (id, name) comes first, then pieces of its arguments; calls in index order.
// Returns an error string, or "" with `result` set.
std::string streamed(const std::vector<std::string>& chunks, const OutputParserOptions& o, ParsedOutput& result) {
    OutputParser parser(o);
    ParsedOutput r;
    std::vector<bool> gotArgs;
    auto take = [&](const std::vector<OutputEvent>& events) -> std::string {
        for (const auto& e : events) {
            switch (e.kind) {
            case OutputEvent::Kind::Content:
            case OutputEvent::Kind::Reasoning:
                if (e.text.empty()) return "empty text event";
                (e.kind == OutputEvent::Kind::Content ? r.content : r.reasoning) += e.text;
                break;
            case OutputEvent::Kind::ToolCallStart:
                if (e.toolIndex != int(r.toolCalls.size())) return "call start out of order";
                if (e.toolId.empty() || e.toolName.empty()) return "call start without id or name";
                r.toolCalls.push_back({e.toolId, e.toolName, ""});
                gotArgs.push_back(false);
                break;
            case OutputEvent::Kind::ToolCallArguments:
                if (e.toolIndex < 0 || e.toolIndex >= int(r.toolCalls.size())) return "arguments before start";
                r.toolCalls[e.toolIndex].arguments += e.text;
                gotArgs[e.toolIndex] = true;
                break;
            }
        }
        return "";
    };
    for (const auto& c : chunks)
        if (auto err = take(parser.feed(c)); !err.empty()) return err;
    if (auto err = take(parser.finish()); !err.empty()) return err;
    for (bool g : gotArgs)
        if (!g) return "call without arguments";
    if (!same(r, parser.result())) return "events disagree with result(): " + describe(r) + " vs " + describe(parser.result());
    result = r;
    return "";
}

std::vector<std::string> splitAt(const std::string& s, std::vector<size_t> cuts) {
    std::vector<std::string> out;
    size_t prev = 0;
    for (size_t c : cuts) {
        out.push_back(s.substr(prev, c - prev));
        prev = c;
    }
    out.push_back(s.substr(prev));
    return out;
}

std::vector<std::string> randomChunks(const std::string& s, std::mt19937& rng, size_t maxLen) {
    std::vector<std::string> out;
    std::uniform_int_distribution<size_t> len(0, maxLen);  // 0: empty chunks are legal deltas too
    for (size_t i = 0; i < s.size();) {
        const size_t n = std::min(len(rng), s.size() - i);
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

// The one-shot result, after checking that every chunking reproduces it: all 2-chunk splits, all
// 3-chunk splits for short texts, 1-byte chunks, and random chunkings with fixed seeds.
ParsedOutput checkStreaming(const std::string& text, const OutputParserOptions& o) {
    const ParsedOutput whole = OutputParser::parse(text, o);
    auto check = [&](const std::vector<std::string>& chunks, const std::string& how) {
        ParsedOutput r;
        const std::string err = streamed(chunks, o, r);
        if (!err.empty()) QTest::qFail((how + ": " + err).c_str(), __FILE__, __LINE__);
        else if (!same(r, whole))
            QTest::qFail((how + ": " + describe(r) + " != one-shot " + describe(whole)).c_str(), __FILE__, __LINE__);
        return err.empty() && same(r, whole);
    };
    if (!check({text}, "one chunk")) return whole;
    for (size_t i = 0; i <= text.size(); ++i)
        if (!check(splitAt(text, {i}), "split at " + std::to_string(i))) return whole;
    if (text.size() <= 90)
        for (size_t i = 0; i <= text.size(); ++i)
            for (size_t j = i; j <= text.size(); ++j)
                if (!check(splitAt(text, {i, j}), "split at " + std::to_string(i) + "," + std::to_string(j))) return whole;
    std::vector<std::string> bytes;
    for (char c : text) bytes.push_back(std::string(1, c));
    if (!check(bytes, "1-byte chunks")) return whole;
    for (unsigned seed = 1; seed <= 20; ++seed) {
        std::mt19937 rng(seed);
        if (!check(randomChunks(text, rng, 1 + seed % 9), "random chunks seed " + std::to_string(seed))) return whole;
    }
    return whole;
}

#define PARSE(var, text, o)               \
    const ParsedOutput var = checkStreaming(text, o); \
    if (QTest::currentTestFailed()) return

ojson readOrdered(const std::string& path) { return ojson::parse(lmw::test::readFile(path)); }

std::string modelTemplate(const std::string& model) {
    return readOrdered(lmw::test::modelDir(model) + "/tokenizer_config.json").at("chat_template").get<std::string>();
}

std::string between(const std::string& s, const std::string& from, const std::string& to) {
    const size_t a = s.rfind(from);
    if (a == std::string::npos) return "<missing " + from + ">";
    const size_t b = s.find(to, a + from.size());
    return s.substr(a + from.size(), b == std::string::npos ? std::string::npos : b - a - from.size());
}

const char* const kQwenCall1 = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>";
const char* const kQwenCall2 = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>";

}  // namespace

class TestOutputParser : public QObject {
    Q_OBJECT

private slots:
    void names() {
        QCOMPARE(toolCallParserNames(), (std::vector<std::string>{"qwen", "llama3", "internlm2", "mistral"}));
        QCOMPARE(reasoningParserNames(), std::vector<std::string>{"think"});
        for (const auto& n : toolCallParserNames()) QVERIFY(ToolCallParser::create(n) != nullptr);
    }

    void misuseIsAnError() {
        auto code = [](auto f) {
            try {
                f();
            } catch (const Error& e) {
                return e.code();
            }
            return ErrorCode::Internal;
        };
        QCOMPARE(code([] { OutputParser p(opts("hermes")); }), ErrorCode::InvalidArgument);
        QCOMPARE(code([] { OutputParser p(opts("", "deepseek")); }), ErrorCode::InvalidArgument);
        QCOMPARE(code([] { ToolCallParser::create("bogus"); }), ErrorCode::InvalidArgument);
        OutputParser p(opts("qwen"));
        p.feed("hi");
        p.finish();
        QCOMPARE(code([&] { p.feed("more"); }), ErrorCode::InvalidArgument);
        QCOMPARE(code([&] { p.finish(); }), ErrorCode::InvalidArgument);
        QCOMPARE(p.result().content, std::string("hi"));
    }

    void noParsersIsIdentity() {
        const std::string text = "  <tool_call>{\"name\": \"x\"}</tool_call> <think>a</think>\n";
        PARSE(r, text, opts("none", "none"));
        QCOMPARE(r.content, text);
        QVERIFY(r.reasoning.empty() && r.toolCalls.empty());
    }

    void idsAreDeterministic() {
        const std::string text = std::string(kQwenCall1) + kQwenCall2;
        const auto a = OutputParser::parse(text, opts("qwen", "", false, 42));
        const auto b = OutputParser::parse(text, opts("qwen", "", false, 42));
        const auto c = OutputParser::parse(text, opts("qwen", "", false, 43));
        QCOMPARE(a.toolCalls.size(), size_t(2));
        QCOMPARE(a.toolCalls[0].id, b.toolCalls[0].id);
        QVERIFY(a.toolCalls[0].id != a.toolCalls[1].id);
        QVERIFY(a.toolCalls[0].id != c.toolCalls[0].id);
        QCOMPARE(a.toolCalls[0].id.size(), size_t(5 + 24));
        QVERIFY(a.toolCalls[0].id.rfind("call_", 0) == 0);
    }

    // ---- qwen ----
    void qwenOneCall() {
        PARSE(r, kQwenCall1, opts("qwen"));
        QCOMPARE(r.content, std::string());
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"city":"Paris","unit":"c"})"));
    }

    void qwenSeveralCallsWithContent() {
        PARSE(r, "Let me check both.\n\n" + std::string(kQwenCall1) + "\n" + kQwenCall2 + "\n", opts("qwen"));
        QCOMPARE(r.content, std::string("Let me check both."));
        QCOMPARE(r.toolCalls.size(), size_t(2));
        QCOMPARE(r.toolCalls[1].name, std::string("get_time"));
        QCOMPARE(r.toolCalls[1].arguments, std::string(R"({"tz":"Europe/Paris"})"));

        PARSE(after, std::string(kQwenCall1) + "\n\nI asked for the weather.  Wait.", opts("qwen"));
        QCOMPARE(after.content, std::string("I asked for the weather.  Wait."));
        QCOMPARE(after.toolCalls.size(), size_t(1));
    }

    void qwenArgumentForms() {
        // Key order kept, UTF-8 kept, nested values compacted, a stringified object re-serialized,
        // no arguments = {}, "parameters" accepted.
        PARSE(r,
              "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"naïve 東京\", \"b\": [1, 2.5, {\"z\": null}], "
              "\"a\": true}}\n</tool_call>"
              "<tool_call>{\"name\": \"s\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>"
              "<tool_call>{\"name\": \"now\"}</tool_call>"
              "<tool_call>{\"name\": \"p\", \"parameters\": {\"k\": \"v\"}}</tool_call>",
              opts("qwen"));
        QCOMPARE(r.toolCalls.size(), size_t(4));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"q":"naïve 東京","b":[1,2.5,{"z":null}],"a":true})"));
        QCOMPARE(r.toolCalls[1].arguments, std::string(R"({"x":1})"));
        QCOMPARE(r.toolCalls[2].arguments, std::string("{}"));
        QCOMPARE(r.toolCalls[3].arguments, std::string(R"({"k":"v"})"));
        QCOMPARE(r.content, std::string());
    }

    void qwenMalformedIsContent_data() {
        QTest::addColumn<QString>("text");
        QTest::newRow("unterminated") << "Sure. <tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}";
        QTest::newRow("unterminated json") << "<tool_call>\n{\"name\": \"f\", \"argu";
        QTest::newRow("bad json") << "<tool_call>\n{name: f}\n</tool_call>";
        QTest::newRow("not an object") << "<tool_call>\n[1, 2]\n</tool_call>";
        QTest::newRow("missing name") << "<tool_call>\n{\"arguments\": {}}\n</tool_call>";
        QTest::newRow("empty name") << "<tool_call>{\"name\": \"\"}</tool_call>";
        QTest::newRow("name not a string") << "<tool_call>{\"name\": 3, \"arguments\": {}}</tool_call>";
        QTest::newRow("arguments not an object") << "<tool_call>{\"name\": \"f\", \"arguments\": 5}</tool_call>";
        QTest::newRow("arguments string not json") << "<tool_call>{\"name\": \"f\", \"arguments\": \"x=1\"}</tool_call>";
        QTest::newRow("trailing garbage in body") << "<tool_call>{\"name\": \"f\"} extra</tool_call>";
        QTest::newRow("marker mid text") << "Use the <tool_call> tag to call tools.";
        QTest::newRow("partial marker at end") << "I will call <tool_";
        QTest::newRow("closing tag only") << "done</tool_call>\n";
        QTest::newRow("empty body") << "<tool_call></tool_call>";
        QTest::newRow("whitespace only") << " \n\t ";
        QTest::newRow("too deep") << QString("<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": ") +
                                         QString(200, '[') + QString(200, ']') + "}}</tool_call>";
    }
    void qwenMalformedIsContent() {
        QFETCH(QString, text);
        const std::string t = text.toStdString();
        PARSE(r, t, opts("qwen"));
        QCOMPARE(r.content, t);
        QVERIFY(r.toolCalls.empty());
    }

    void qwenRecoversAfterMalformed() {
        // The bad call's text stays content; parsing resumes after its opening tag.
        PARSE(r, std::string("<tool_call>{oops <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>"), opts("qwen"));
        QCOMPARE(r.content, std::string("<tool_call>{oops"));
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.toolCalls[0].name, std::string("f"));

        PARSE(r2, std::string(kQwenCall1) + "\n<tool_call>\n{\"name\": \"g\"", opts("qwen"));
        QCOMPARE(r2.toolCalls.size(), size_t(1));
        QCOMPARE(r2.content, std::string("<tool_call>\n{\"name\": \"g\""));
    }

    // The Qwen3 template's own rendering of an assistant tool call, parsed back (think + qwen).
    void qwenInvertsQwen3Template() {
        const ojson ctx = {
            {"messages",
             {{{"role", "user"}, {"content", "Weather in Paris and the time?"}},
              {{"role", "assistant"},
               {"content", "Checking."},
               {"tool_calls",
                {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}, {"days", 2}}}}}},
                 {{"type", "function"}, {"function", {{"name", "get_time"}, {"arguments", ojson::object()}}}}}}}}},
            {"add_generation_prompt", false},
            {"bos_token", ""},
            {"eos_token", "<|im_end|>"}};
        const std::string rendered = renderJinja(modelTemplate("qwen3-tiny"), ctx);
        const std::string reply = between(rendered, "<|im_start|>assistant\n", "<|im_end|>");
        QVERIFY2(reply.find("<tool_call>") != std::string::npos, reply.c_str());
        PARSE(r, reply, opts("qwen", "think"));
        QCOMPARE(r.reasoning, std::string());
        QCOMPARE(r.content, std::string("Checking."));
        QCOMPARE(r.toolCalls.size(), size_t(2));
        QCOMPARE(r.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"city":"Paris","days":2})"));
        QCOMPARE(r.toolCalls[1].arguments, std::string("{}"));
    }

    // ---- llama3 ----
    void llama3Calls() {
        PARSE(r, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", opts("llama3"));
        QCOMPARE(r.content, std::string());
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"city":"Paris"})"));

        PARSE(r2,
              "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": \"}{;\"}}; {\"name\": \"b\", \"arguments\": {\"y\": 2}}\n",
              opts("llama3"));
        QCOMPARE(r2.toolCalls.size(), size_t(2));
        QCOMPARE(r2.toolCalls[0].arguments, std::string(R"({"x":"}{;"})"));
        QCOMPARE(r2.toolCalls[1].name, std::string("b"));
        QCOMPARE(r2.toolCalls[1].arguments, std::string(R"({"y":2})"));
        QCOMPARE(r2.content, std::string());

        PARSE(r3, "\n {\"type\": \"function\", \"function\": {\"name\": \"c\", \"parameters\": {}}};", opts("llama3"));
        QCOMPARE(r3.toolCalls.size(), size_t(1));
        QCOMPARE(r3.toolCalls[0].name, std::string("c"));
        QCOMPARE(r3.content, std::string());
    }

    void llama3TextAfterCalls() {
        PARSE(r, "{\"name\": \"a\", \"parameters\": {}} and then some words", opts("llama3"));
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.content, std::string("and then some words"));
        PARSE(r2, "{\"name\": \"a\", \"parameters\": {}}; not json", opts("llama3"));
        QCOMPARE(r2.toolCalls.size(), size_t(1));
        QCOMPARE(r2.content, std::string("; not json"));
    }

    void llama3ContentAndMalformed_data() {
        QTest::addColumn<QString>("text");
        QTest::newRow("prose") << "Hello! How can I help?";
        QTest::newRow("leading space prose") << "  \nParis is sunny.";
        QTest::newRow("braces later") << "Use {\"name\": \"f\"} to call.";
        QTest::newRow("unterminated") << "{\"name\": \"f\", \"parameters\": {\"a\": ";
        QTest::newRow("missing name") << "{\"parameters\": {\"a\": 1}}";
        QTest::newRow("not json") << "{name: f}";
        QTest::newRow("python tag code") << "<|python_tag|>brave_search.call(query=\"weather\")";
        QTest::newRow("partial tag") << "<|python";
        QTest::newRow("less than") << "<3 you";
        QTest::newRow("json array") << "[1, 2, 3]";
    }
    void llama3ContentAndMalformed() {
        QFETCH(QString, text);
        const std::string t = text.toStdString();
        PARSE(r, t, opts("llama3"));
        QCOMPARE(r.content, t);
        QVERIFY(r.toolCalls.empty());
    }

    void llama3SecondCallMalformed() {
        PARSE(r, "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {", opts("llama3"));
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.content, std::string("; {\"name\": \"b\", \"parameters\": {"));
    }

    // The Llama 3.2 template tells the model the format, and renders a call as the model should
    // write it; the parser reads that back.
    void llama3InvertsTemplate() {
        const std::string source = modelTemplate("llama3-tiny");
        const ojson tools = {{{"type", "function"},
                              {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}};
        const ojson ctx = {
            {"messages",
             {{{"role", "user"}, {"content", "Weather?"}},
              {{"role", "assistant"},
               {"tool_calls", {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Oslo"}}}}}}}}}}},
            {"tools", tools},
            {"add_generation_prompt", false},
            {"bos_token", "<|begin_of_text|>"},
            {"date_string", "26 Jul 2024"}};
        const std::string rendered = renderJinja(source, ctx);
        QVERIFY2(rendered.find(R"(Respond in the format {"name": function name, "parameters": dictionary)") != std::string::npos,
                 rendered.c_str());
        const std::string reply = between(rendered, "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>");
        PARSE(r, reply, opts("llama3"));
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"city":"Oslo"})"));
        QCOMPARE(r.content, std::string());
    }

    // ---- internlm2 ----
    void internlm2Calls() {
        PARSE(r,
              "I need to search.<|action_start|><|plugin|>\n{\"name\": \"search\", \"parameters\": {\"query\": \"上海 天气\"}}"
              "<|action_end|>\n",
              opts("internlm2"));
        QCOMPARE(r.content, std::string("I need to search."));
        QCOMPARE(r.toolCalls.size(), size_t(1));
        QCOMPARE(r.toolCalls[0].name, std::string("search"));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"query":"上海 天气"})"));

        PARSE(r2,
              "<|action_start|><|plugin|>\n{\"name\": \"a\", \"arguments\": {\"n\": 1}}<|action_end|>"
              "<|action_start|><|plugin|>\n{\"name\": \"b\", \"parameters\": {}}<|action_end|>",
              opts("internlm2"));
        QCOMPARE(r2.toolCalls.size(), size_t(2));
        QCOMPARE(r2.toolCalls[0].arguments, std::string(R"({"n":1})"));
        QCOMPARE(r2.toolCalls[1].name, std::string("b"));
    }

    void internlm2MalformedIsContent_data() {
        QTest::addColumn<QString>("text");
        QTest::newRow("interpreter") << "<|action_start|><|interpreter|>\nprint(1)<|action_end|>";
        QTest::newRow("unterminated") << "Let me.<|action_start|><|plugin|>\n{\"name\": \"a\", \"parameters\": {}}";
        QTest::newRow("bad json") << "<|action_start|><|plugin|>\n{\"name\": \"a\", }<|action_end|>";
        QTest::newRow("missing name") << "<|action_start|><|plugin|>\n{\"parameters\": {}}<|action_end|>";
        QTest::newRow("partial marker") << "text <|action_start|><|plu";
        QTest::newRow("action start only") << "<|action_start|> hmm";
    }
    void internlm2MalformedIsContent() {
        QFETCH(QString, text);
        const std::string t = text.toStdString();
        PARSE(r, t, opts("internlm2"));
        QCOMPARE(r.content, t);
        QVERIFY(r.toolCalls.empty());
    }

    // ---- mistral ----
    void mistralCalls() {
        PARSE(r,
              "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_time\", "
              "\"arguments\": {\"tz\": \"[CET]\"}}]",
              opts("mistral"));
        QCOMPARE(r.content, std::string());
        QCOMPARE(r.toolCalls.size(), size_t(2));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"city":"Paris"})"));
        QCOMPARE(r.toolCalls[1].name, std::string("get_time"));
        QCOMPARE(r.toolCalls[1].arguments, std::string(R"({"tz":"[CET]"})"));

        PARSE(r2, "Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}", opts("mistral"));
        QCOMPARE(r2.content, std::string("Sure."));
        QCOMPARE(r2.toolCalls.size(), size_t(2));
        QCOMPARE(r2.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r2.toolCalls[0].arguments, std::string(R"({"city":"Paris"})"));
        QCOMPARE(r2.toolCalls[1].arguments, std::string("{}"));

        PARSE(r3, "[TOOL_CALLS] {\"name\": \"one\", \"arguments\": {}} Done.", opts("mistral"));
        QCOMPARE(r3.toolCalls.size(), size_t(1));
        QCOMPARE(r3.content, std::string("Done."));
    }

    // tool_choice "required" / a named function: the reply is the JSON a grammar forced; decided at
    // the end, so a reply cut short is content.
    void forcedCalls() {
        OutputParserOptions o = opts("qwen");  // ignored when the calls are forced
        o.forcedCalls = true;
        PARSE(r, "[{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}, {\"name\": \"get_time\", \"parameters\": {}}]", o);
        QCOMPARE(r.content, std::string());
        QCOMPARE(r.toolCalls.size(), size_t(2));
        QCOMPARE(r.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r.toolCalls[0].arguments, std::string(R"({"city":"Paris"})"));
        QCOMPARE(r.toolCalls[1].arguments, std::string("{}"));
        PARSE(cut, "[{\"name\": \"get_weather\", \"parameters\": {\"ci", o);
        QCOMPARE(cut.content, std::string("[{\"name\": \"get_weather\", \"parameters\": {\"ci"));
        QVERIFY(cut.toolCalls.empty());
        PARSE(tagged, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", o);  // not the forced shape
        QVERIFY(tagged.toolCalls.empty());

        o.forcedFunction = "get_weather";
        PARSE(named, "{\"city\": \"Paris\", \"days\": [1, 2]}", o);
        QCOMPARE(named.toolCalls.size(), size_t(1));
        QCOMPARE(named.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(named.toolCalls[0].arguments, std::string(R"({"city":"Paris","days":[1,2]})"));
        QCOMPARE(named.toolCalls[0].id, OutputParser::parse("{}", o).toolCalls[0].id);  // ids: seed and index
        PARSE(notObject, "[1, 2]", o);
        QCOMPARE(notObject.content, std::string("[1, 2]"));
    }

    void mistralMalformedIsContent_data() {
        QTest::addColumn<QString>("text");
        QTest::newRow("unterminated array") << "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}";
        QTest::newRow("one bad element") << "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}, {\"arguments\": {}}]";
        QTest::newRow("empty array") << "[TOOL_CALLS] []";
        QTest::newRow("bad name") << "[TOOL_CALLS]get weather[ARGS]{}";
        QTest::newRow("args not object") << "[TOOL_CALLS]f[ARGS][1]";
        QTest::newRow("args unterminated") << "[TOOL_CALLS]f[ARGS]{\"a\": ";
        QTest::newRow("no args marker") << "[TOOL_CALLS]f";
        QTest::newRow("marker only") << "[TOOL_CALLS]";
        QTest::newRow("partial marker") << "see [TOOL_CA";
        QTest::newRow("prose") << "Plain [answer] here.";
    }
    void mistralMalformedIsContent() {
        QFETCH(QString, text);
        const std::string t = text.toStdString();
        PARSE(r, t, opts("mistral"));
        QCOMPARE(r.content, t);
        QVERIFY(r.toolCalls.empty());
    }

    // ---- reasoning ----
    void qwen3PromptStartState() {
        const auto tmpl = ChatTemplate::fromJinja(modelTemplate("qwen3-tiny"), "qwen3");
        const std::vector<ChatMessage> msgs = {{"user", "What is 2+2?"}};
        const std::string thinking = tmpl->render(msgs, true, "", "<|im_end|>", {{"enable_thinking", true}});
        const std::string plain = tmpl->render(msgs, true, "", "<|im_end|>", {{"enable_thinking", false}});
        const std::string defaults = tmpl->render(msgs, true, "", "<|im_end|>");
        // Thinking on: the model opens the block itself. Off: the prompt holds a closed empty block.
        QVERIFY(thinking.ends_with("<|im_start|>assistant\n"));
        QCOMPARE(defaults, thinking);
        QVERIFY(plain.ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
        QVERIFY(!promptOpensReasoning(thinking));
        QVERIFY(!promptOpensReasoning(plain));
        // A template that opens the block in the prompt (DeepSeek-R1 style).
        QVERIFY(promptOpensReasoning(thinking + "<think>\n"));
        QVERIFY(promptOpensReasoning("<think>"));
        QVERIFY(!promptOpensReasoning(thinking + "<think>\nx"));

        // So one configuration serves both: startsInReasoning = promptOpensReasoning(prompt).
        const auto o = opts("", "think", promptOpensReasoning(thinking));
        PARSE(r, "<think>\nThe user asks 2+2.\nThat is 4.\n</think>\n\nThe answer is 4.", o);
        QCOMPARE(r.reasoning, std::string("The user asks 2+2.\nThat is 4."));
        QCOMPARE(r.content, std::string("The answer is 4."));
        PARSE(r2, "The answer is 4.\n", opts("", "think", promptOpensReasoning(plain)));
        QCOMPARE(r2.content, std::string("The answer is 4.\n"));
        QCOMPARE(r2.reasoning, std::string());
    }

    // A reply as the Qwen3 template renders a finished assistant turn, parsed back.
    void qwen3RenderedReply() {
        const auto tmpl = ChatTemplate::fromJinja(modelTemplate("qwen3-tiny"), "qwen3");
        const std::vector<ChatMessage> msgs = {
            {"user", "What is 2+2?"}, {"assistant", "<think>\nAdd them.\n\nFour.\n</think>\n\nIt is 4.\n\nAnything else?"}};
        const std::string rendered = tmpl->render(msgs, false, "", "<|im_end|>");
        const std::string reply = between(rendered, "<|im_start|>assistant\n", "<|im_end|>");
        QCOMPARE(reply, std::string("<think>\nAdd them.\n\nFour.\n</think>\n\nIt is 4.\n\nAnything else?"));
        PARSE(r, reply, opts("", "think"));
        QCOMPARE(r.reasoning, std::string("Add them.\n\nFour."));
        QCOMPARE(r.content, std::string("It is 4.\n\nAnything else?"));

        // With enable_thinking false the model's reply is content only, even if it looks odd.
        PARSE(r2, "Sure: use <think> tags.", opts("", "think"));
        QCOMPARE(r2.content, std::string("Sure: use <think> tags."));
    }

    void reasoningEdges() {
        PARSE(inside, "Hmm, 2+2.\n</think>\n\nFour.", opts("", "think", true));
        QCOMPARE(inside.reasoning, std::string("Hmm, 2+2."));
        QCOMPARE(inside.content, std::string("Four."));
        PARSE(insideNl, "\nHmm.</think>Four.", opts("", "think", true));
        QCOMPARE(insideNl.reasoning, std::string("Hmm."));
        QCOMPARE(insideNl.content, std::string("Four."));
        PARSE(truncated, "<think>\nStill thinking\n", opts("", "think"));
        QCOMPARE(truncated.reasoning, std::string("Still thinking\n"));
        QCOMPARE(truncated.content, std::string());
        PARSE(partialClose, "<think>\nx\n</thi", opts("", "think"));
        QCOMPARE(partialClose.reasoning, std::string("x\n</thi"));
        PARSE(leadingSpace, "\n <think>a</think>b", opts("", "think"));
        QCOMPARE(leadingSpace.reasoning, std::string("a"));
        QCOMPARE(leadingSpace.content, std::string("b"));
        PARSE(second, "<think>a</think>\nb <think>c</think>", opts("", "think"));
        QCOMPARE(second.reasoning, std::string("a"));
        QCOMPARE(second.content, std::string("b <think>c</think>"));
        PARSE(empty, "<think>\n\n</think>\n\nHi", opts("", "think"));
        QCOMPARE(empty.reasoning, std::string());
        QCOMPARE(empty.content, std::string("Hi"));
        PARSE(partialOpen, "<thin", opts("", "think"));
        QCOMPARE(partialOpen.content, std::string("<thin"));
        PARSE(spaces, "  \n", opts("", "think"));
        QCOMPARE(spaces.content, std::string("  \n"));
        PARSE(nothing, "", opts("qwen", "think"));
        QVERIFY(nothing.content.empty() && nothing.reasoning.empty() && nothing.toolCalls.empty());
    }

    void thinkThenCall() {
        const std::string reply = "<think>\nI should use the weather tool; not <tool_call> here.\n</think>\n\n" +
                                  std::string(kQwenCall1) + "\n" + kQwenCall2;
        PARSE(r, reply, opts("qwen", "think"));
        QCOMPARE(r.reasoning, std::string("I should use the weather tool; not <tool_call> here."));
        QCOMPARE(r.content, std::string());
        QCOMPARE(r.toolCalls.size(), size_t(2));
        QCOMPARE(r.toolCalls[0].name, std::string("get_weather"));
        QCOMPARE(r.toolCalls[1].name, std::string("get_time"));
    }

    // Random text built from markers, JSON pieces, whole calls and random bytes, in random chunks:
    // never a crash, chunking never matters, and text is never lost.
    void fuzz() {
        const std::vector<std::string> pieces = {
            "<tool_call>", "</tool_call>", "<tool_", "<|python_tag|>", "<|action_start|>", "<|plugin|>", "<|action_end|>",
            "[TOOL_CALLS]", "[ARGS]", "<think>", "</think>", "<", "[", "]", "{", "}", "\"", "\\", ":", ",", ";", "\n", " ",
            "\"name\"", "\"arguments\"", "\"parameters\"", "\"f\"", "{}", "abc", "é", "東",
            kQwenCall1, "{\"name\": \"f\", \"parameters\": {\"a\": [1]}}", "get_time[ARGS]{\"x\": 2}",
            "<|plugin|>\n{\"name\": \"g\", \"arguments\": {}}<|action_end|>"};
        const std::vector<std::string> units = {
            kQwenCall1, kQwenCall2, "{\"name\": \"f\", \"parameters\": {\"a\": [1]}}", "; ", "<|python_tag|>",
            "[TOOL_CALLS] [{\"name\": \"m\", \"arguments\": {\"k\": \"v\"}}]", "[TOOL_CALLS]get_time[ARGS]{\"x\": 2}",
            "<|action_start|><|plugin|>\n{\"name\": \"g\", \"arguments\": {}}<|action_end|>", "<think>\n",
            "\n</think>\n\n", "Hello", " world", "\n", " "};
        std::vector<OutputParserOptions> configs;
        for (const char* tools : {"none", "qwen", "llama3", "internlm2", "mistral"})
            for (const char* reasoning : {"none", "think"})
                for (bool inside : {false, true})
                    if (std::string(reasoning) == "think" || !inside) configs.push_back(opts(tools, reasoning, inside));
        auto nonSpace = [](const std::string& s) {
            return std::count_if(s.begin(), s.end(), [](char c) { return c != ' ' && c != '\n' && c != '\t' && c != '\r'; });
        };
        std::mt19937 rng(20240611);
        int withCalls = 0, cases = 0;
        for (int iter = 0; iter < 400; ++iter) {
            // Half the texts are soup; half are whole calls and words with a few bytes mutated.
            std::string text;
            const int n = std::uniform_int_distribution<int>(0, 24)(rng);
            const bool soup = iter % 2 == 0;
            for (int i = 0; i < n; ++i) {
                if (soup && rng() % 6 == 0) text += char(rng() % 256);
                else if (soup) text += pieces[rng() % pieces.size()];
                else text += units[rng() % units.size()];
            }
            if (!soup)
                for (int m = int(rng() % 3); m > 0 && !text.empty(); --m) text[rng() % text.size()] = char(rng() % 256);
            for (const auto& o : configs) {
                const ParsedOutput whole = OutputParser::parse(text, o);
                ++cases;
                withCalls += !whole.toolCalls.empty();
                for (int k = 0; k < 3; ++k) {
                    ParsedOutput r;
                    const auto chunks = k == 0 ? splitAt(text, {}) : randomChunks(text, rng, k == 1 ? 1 : 7);
                    const std::string err = streamed(chunks, o, r);
                    QVERIFY2(err.empty(), (err + " on " + text).c_str());
                    QVERIFY2(same(r, whole), (describe(r) + " != " + describe(whole) + " on [" + text + "] " + o.toolCallParser +
                                              "/" + o.reasoningParser).c_str());
                }
                const bool noReasoning = o.reasoningParser == "none";
                if (whole.toolCalls.empty() && noReasoning) QCOMPARE(whole.content, text);
                if (whole.toolCalls.empty()) QVERIFY(nonSpace(whole.content + whole.reasoning) >= nonSpace(text) - 15);
                QVERIFY(nonSpace(whole.content + whole.reasoning) <= nonSpace(text));
                for (const auto& c : whole.toolCalls) {
                    const auto args = ojson::parse(c.arguments, nullptr, false);
                    QVERIFY2(args.is_object() && args.dump() == c.arguments, c.arguments.c_str());
                }
            }
        }
        QVERIFY2(withCalls > cases / 10, qPrintable(QString("%1 of %2 with calls").arg(withCalls).arg(cases)));  // the fuzz reaches the call paths, not just the content ones
    }
};

QTEST_APPLESS_MAIN(TestOutputParser)
#include "test_output_parser.moc"
