// Chat templates: built-ins against exact strings, real models' Jinja templates (fixtures in
// tests/data/templates) against the built-ins, the Qwen3 and Llama 3.2 templates against
// transformers' renders (reference.json), template kwargs, selection, and the Jinja features.
#include <QtTest>

#include <ctime>
#include <map>

#include "lmw/chat_template.h"
#include "lmw/error.h"
#include "lmw/tokenizer.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

const std::vector<ChatMessage> kSystemUser = {{"system", "Be brief."}, {"user", "Hi!"}};
const std::vector<ChatMessage> kUser = {{"user", "Hi!"}};
const std::vector<ChatMessage> kMulti = {
    {"system", "Be brief."}, {"user", "Hi!"}, {"assistant", "Hello."}, {"user", "How are you?"}};
const std::vector<ChatMessage> kMultiNoSystem = {{"user", "Hi!"}, {"assistant", "Hello."}, {"user", "How are you?"}};

const std::string kInternLMSystem =
    "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
    "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the user such as "
    "English and 中文.";

std::shared_ptr<ChatTemplate> fixture(const std::string& file) {
    const std::string src = lmw::test::readFile(lmw::test::testData("templates/" + file));
    if (src.empty()) throw std::runtime_error("missing fixture " + file);
    return ChatTemplate::fromJinja(src, file);
}

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return std::string(e.code() == ErrorCode::InvalidArgument ? "InvalidArgument" : errorCodeName(e.code())) + ": " + e.what();
    }
    return "no error";
}

std::string jinjaError(const std::string& src, const json& ctx = json::object()) {
    try {
        renderJinja(src, ctx);
    } catch (const Error& e) {
        if (e.code() != ErrorCode::InvalidArgument) return "wrong code";
        return e.what();
    }
    return "no error";
}

// Key order matters (tojson prints it), so reference files are read as ordered_json.
ojson readOrdered(const std::string& path) { return ojson::parse(lmw::test::readFile(path)); }

// tokenizer_config.json's bos_token / eos_token: a string, an AddedToken object, or null.
std::string specialToken(const ojson& config, const char* key) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return "";
    return it->is_object() ? it->at("content").get<std::string>() : it->get<std::string>();
}

// A reference.json chat case as apply_chat_template got it: the kwargs plus tools.
ojson caseKwargs(const ojson& c) {
    ojson kwargs = c.at("kwargs");
    kwargs["tools"] = c.at("tools");
    return kwargs;
}

std::vector<ChatMessage> caseMessages(const ojson& c) {
    std::vector<ChatMessage> messages;
    for (const auto& m : c.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    return messages;
}

const char* const kReferenceModels[] = {"qwen3-tiny", "llama3-tiny"};

}  // namespace

class TestChatTemplate : public QObject {
    Q_OBJECT

private slots:
    void builtinNames() {
        QCOMPARE(ChatTemplate::builtinNames(),
                 std::vector<std::string>({"internlm2", "chatml", "llama2", "llama3", "mistral", "base"}));
        for (const auto& n : ChatTemplate::builtinNames()) QCOMPARE(ChatTemplate::builtin(n)->name(), n);
    }

    void internlm2() {
        auto t = ChatTemplate::builtin("internlm2");
        QCOMPARE(t->stopWords(), std::vector<std::string>({"<|im_end|>"}));
        const std::string su = "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n";
        QCOMPARE(t->render(kSystemUser, false, "<s>", "</s>"), su);
        QCOMPARE(t->render(kSystemUser, true, "<s>", "</s>"), su + "<|im_start|>assistant\n");
        QCOMPARE(t->render(kUser, true, "<s>", "</s>"),
                 "<s><|im_start|>system\n" + kInternLMSystem +
                     "<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
        const std::string multi = su + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n";
        QCOMPARE(t->render(kMulti, false, "<s>", "</s>"), multi);
        QCOMPARE(t->render(kMulti, true, "<s>", "</s>"), multi + "<|im_start|>assistant\n");
    }

    void chatml() {
        auto t = ChatTemplate::builtin("chatml");
        QCOMPARE(t->stopWords(), std::vector<std::string>({"<|im_end|>", "<|endoftext|>"}));
        const std::string su = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n";
        QCOMPARE(t->render(kSystemUser, false, "", "<|endoftext|>"), su);
        QCOMPARE(t->render(kSystemUser, true, "", "<|endoftext|>"), su + "<|im_start|>assistant\n");
        QCOMPARE(t->render(kUser, true, "", "<|endoftext|>"),
                 std::string("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                             "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"));
        QCOMPARE(t->render(kUser, false, "", "<|endoftext|>"),
                 std::string("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"));
        const std::string multi = su + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n";
        QCOMPARE(t->render(kMulti, true, "", "<|endoftext|>"), multi + "<|im_start|>assistant\n");
    }

    void llama2() {
        auto t = ChatTemplate::builtin("llama2");
        QCOMPARE(t->stopWords(), std::vector<std::string>({"</s>"}));
        const std::string su = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST]";
        QCOMPARE(t->render(kSystemUser, false, "<s>", "</s>"), su);
        QCOMPARE(t->render(kSystemUser, true, "<s>", "</s>"), su);  // the prompt already ends the user turn
        QCOMPARE(t->render(kUser, true, "<s>", "</s>"), std::string("<s>[INST] Hi! [/INST]"));
        QCOMPARE(t->render(kMulti, true, "<s>", "</s>"), su + " Hello. </s><s>[INST] How are you? [/INST]");
        QCOMPARE(t->render(kMulti, false, "<s>", "</s>"), su + " Hello. </s><s>[INST] How are you? [/INST]");
    }

    void llama3() {
        auto t = ChatTemplate::builtin("llama3");
        QCOMPARE(t->stopWords(), std::vector<std::string>({"<|eot_id|>"}));
        const std::string bos = "<|begin_of_text|>", eos = "<|eot_id|>";
        const std::string sys = "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>";
        const std::string user = "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>";
        const std::string gen = "<|start_header_id|>assistant<|end_header_id|>\n\n";
        QCOMPARE(t->render(kSystemUser, false, bos, eos), bos + sys + user);
        QCOMPARE(t->render(kSystemUser, true, bos, eos), bos + sys + user + gen);
        QCOMPARE(t->render(kUser, true, bos, eos), bos + user + gen);
        QCOMPARE(t->render(kMulti, true, bos, eos),
                 bos + sys + user + "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" +
                     "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>" + gen);
        // content is trimmed, as the model's template does
        QCOMPARE(t->render({{"user", "  Hi!\n"}}, false, bos, eos), bos + user);
    }

    void mistral() {
        auto t = ChatTemplate::builtin("mistral");
        QCOMPARE(t->stopWords(), std::vector<std::string>({"</s>"}));
        QCOMPARE(t->render(kSystemUser, true, "<s>", "</s>"), std::string("<s>[INST] Be brief.\n\nHi! [/INST]"));
        QCOMPARE(t->render(kUser, false, "<s>", "</s>"), std::string("<s>[INST] Hi! [/INST]"));
        QCOMPARE(t->render(kMulti, true, "<s>", "</s>"),
                 std::string("<s>[INST] Be brief.\n\nHi! [/INST]Hello.</s>[INST] How are you? [/INST]"));
    }

    void base() {
        auto t = ChatTemplate::builtin("base");
        QVERIFY(t->stopWords().empty());
        QCOMPARE(t->render(kSystemUser, true, "<s>", "</s>"), std::string("<s>Be brief.\nHi!"));
        QCOMPARE(t->render(kUser, false, "<s>", "</s>"), std::string("<s>Hi!"));
        QCOMPARE(t->render(kMulti, true, "<s>", "</s>"), std::string("<s>Be brief.\nHi!\nHello.\nHow are you?"));
    }

    void unknownBuiltin() {
        const std::string err = errorOf([] { ChatTemplate::builtin("vicuna"); });
        QCOMPARE(err, std::string("InvalidArgument: unknown chat template 'vicuna' (built-in templates: internlm2, "
                                  "chatml, llama2, llama3, mistral, base)"));
    }

    // ---- real models' templates ----
    void internlm25Jinja() {
        auto j = fixture("internlm2_5-7b-chat.jinja");
        auto b = ChatTemplate::builtin("internlm2");
        QCOMPARE(j->stopWords(), std::vector<std::string>({"<|im_end|>"}));
        for (bool gen : {false, true}) {
            QCOMPARE(j->render(kSystemUser, gen, "<s>", "</s>"), b->render(kSystemUser, gen, "<s>", "</s>"));
            QCOMPARE(j->render(kMulti, gen, "<s>", "</s>"), b->render(kMulti, gen, "<s>", "</s>"));
        }
        // the model's own template has no default system prompt
        QCOMPARE(j->render(kUser, true, "<s>", "</s>"),
                 std::string("<s><|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"));
    }

    void qwen25Jinja() {
        auto j = fixture("qwen2_5-7b-instruct.jinja");
        auto b = ChatTemplate::builtin("chatml");
        QCOMPARE(j->stopWords(), std::vector<std::string>({"<|im_end|>"}));
        for (bool gen : {false, true}) {
            QCOMPARE(j->render(kSystemUser, gen, "", "<|endoftext|>"), b->render(kSystemUser, gen, "", "<|endoftext|>"));
            QCOMPARE(j->render(kMulti, gen, "", "<|endoftext|>"), b->render(kMulti, gen, "", "<|endoftext|>"));
        }
        QCOMPARE(j->render(kUser, true, "", "<|endoftext|>"),
                 std::string("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                             "assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"));
    }

    void qwen25JinjaWithTools() {
        const std::string src = lmw::test::readFile(lmw::test::testData("templates/qwen2_5-7b-instruct.jinja"));
        json ctx = {
            {"messages", json::array({
                {{"role", "user"}, {"content", "Weather in Paris?"}},
                {{"role", "assistant"}, {"content", ""},
                 {"tool_calls", json::array({{{"type", "function"},
                                              {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}}})}},
                {{"role", "tool"}, {"content", "18C"}},
                {{"role", "tool"}, {"content", "sunny"}},
            })},
            {"tools", json::array({{{"type", "function"}, {"function", {{"name", "get_weather"}}}}})},
            {"add_generation_prompt", true},
        };
        const std::string want =
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
            "You may call one or more functions to assist with the user query.\n\nYou are provided with function "
            "signatures within <tools></tools> XML tags:\n<tools>\n"
            "{\"function\": {\"name\": \"get_weather\"}, \"type\": \"function\"}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n";
        QCOMPARE(renderJinja(src, ctx), want);
    }

    void llama3Jinja() {
        auto j = fixture("llama-3-8b-instruct.jinja");
        auto b = ChatTemplate::builtin("llama3");
        QCOMPARE(j->stopWords(), std::vector<std::string>({"<|eot_id|>"}));
        const std::vector<ChatMessage> padded = {{"user", "  Hi!\n"}, {"assistant", "\tHello. "}};
        for (bool gen : {false, true})
            for (const auto* conv : {&kSystemUser, &kUser, &kMulti, &padded})
                QCOMPARE(j->render(*conv, gen, "<|begin_of_text|>", "<|eot_id|>"),
                         b->render(*conv, gen, "<|begin_of_text|>", "<|eot_id|>"));
    }

    void llama2Jinja() {
        auto j = fixture("llama-2-7b-chat.jinja");
        auto b = ChatTemplate::builtin("llama2");
        const std::vector<ChatMessage> padded = {{"system", " sys "}, {"user", " Hi! "}, {"assistant", " Yo \n"}};
        for (bool gen : {false, true})
            for (const auto* conv : {&kSystemUser, &kUser, &kMulti, &kMultiNoSystem, &padded})
                QCOMPARE(j->render(*conv, gen, "<s>", "</s>"), b->render(*conv, gen, "<s>", "</s>"));
    }

    void mistralJinja() {
        auto j = fixture("mistral-7b-instruct-v0.2.jinja");
        auto b = ChatTemplate::builtin("mistral");
        QCOMPARE(j->stopWords(), std::vector<std::string>());
        for (bool gen : {false, true}) {
            QCOMPARE(j->render(kUser, gen, "<s>", "</s>"), b->render(kUser, gen, "<s>", "</s>"));
            QCOMPARE(j->render(kMultiNoSystem, gen, "<s>", "</s>"), b->render(kMultiNoSystem, gen, "<s>", "</s>"));
        }
        QCOMPARE(j->render(kMultiNoSystem, true, "<s>", "</s>"),
                 std::string("<s>[INST] Hi! [/INST]Hello.</s>[INST] How are you? [/INST]"));
        // the model's template refuses what it cannot express
        QCOMPARE(errorOf([&] { j->render({{"user", "a"}, {"user", "b"}}, true, "<s>", "</s>"); }),
                 std::string("InvalidArgument: Conversation roles must alternate user/assistant/user/assistant/..."));
        QCOMPARE(errorOf([&] { j->render({{"assistant", "a"}}, true, "<s>", "</s>"); }),
                 std::string("InvalidArgument: Conversation roles must alternate user/assistant/user/assistant/..."));
        QCOMPARE(errorOf([&] { j->render(kSystemUser, true, "<s>", "</s>"); }),
                 std::string("InvalidArgument: Conversation roles must alternate user/assistant/user/assistant/..."));
        QCOMPARE(errorOf([&] { j->render({{"user", "a"}, {"tool", "b"}}, true, "<s>", "</s>"); }),
                 std::string("InvalidArgument: Only user and assistant roles are supported!"));
    }

    // ---- the templates transformers renders (reference.json) ----
    void referenceChatCases_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("index");
        for (const char* model : kReferenceModels) {
            const ojson ref = readOrdered(lmw::test::modelDir(model) + "/reference.json");
            QVERIFY(ref.at("chat_cases").size() >= 6);
            for (size_t i = 0; i < ref.at("chat_cases").size(); ++i)
                QTest::addRow("%s #%zu", model, i) << QString(model) << int(i);
        }
    }

    void referenceChatCases() {
        QFETCH(QString, model);
        QFETCH(int, index);
        const std::string dir = lmw::test::modelDir(model.toStdString());
        const ojson config = readOrdered(dir + "/tokenizer_config.json");
        const ojson c = readOrdered(dir + "/reference.json").at("chat_cases").at(size_t(index));
        auto t = ChatTemplate::fromJinja(config.at("chat_template").get<std::string>(), "model");
        const std::string got = t->render(caseMessages(c), c.at("add_generation_prompt").get<bool>(),
                                          specialToken(config, "bos_token"), specialToken(config, "eos_token"),
                                          caseKwargs(c));
        QCOMPARE(QString::fromStdString(got), QString::fromStdString(c.at("rendered").get<std::string>()));
    }

    // The ids of each reference render, through the model's tokenizer.json.
    void referenceChatIds_data() { referenceChatCases_data(); }
    void referenceChatIds() {
        QFETCH(QString, model);
        QFETCH(int, index);
        const std::string dir = lmw::test::modelDir(model.toStdString());
        const ojson c = readOrdered(dir + "/reference.json").at("chat_cases").at(size_t(index));
        static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;  // one load per model
        auto& tok = loaded[dir];
        if (!tok) tok = Tokenizer::load(dir);
        // apply_chat_template(tokenize=True) encodes without adding special tokens: the template
        // already wrote them.
        QCOMPARE(tok->encode(c.at("rendered").get<std::string>(), false), c.at("ids").get<std::vector<int32_t>>());
    }

    // Things the reference cases do not reach: thinking history, tool turns, a missing date.
    void qwen3TemplateDetails() {
        const ojson config = readOrdered(lmw::test::modelDir("qwen3-tiny") + "/tokenizer_config.json");
        const std::string src = config.at("chat_template").get<std::string>();
        ojson ctx = {{"messages", ojson::array({
                          {{"role", "user"}, {"content", "Weather?"}},
                          {{"role", "assistant"}, {"content", "<think>\nlook it up\n</think>\n\nCalling."},
                           {"tool_calls", ojson::array({{{"type", "function"},
                                                         {"function", {{"name", "get_weather"},
                                                                       {"arguments", {{"city", "Paris"}, {"unit", "C"}}}}}}})}},
                          {{"role", "tool"}, {"content", "18"}},
                          {{"role", "assistant"}, {"content", "It is 18."}, {"reasoning_content", "easy"}},
                      })},
                     {"add_generation_prompt", false}};
        // The reasoning of turns after the last user query is kept; a tool reply is a user turn;
        // tool-call arguments keep their key order.
        QCOMPARE(QString::fromStdString(renderJinja(src, ctx)),
                 QString::fromStdString("<|im_start|>user\nWeather?<|im_end|>\n"
                                        "<|im_start|>assistant\n<think>\nlook it up\n</think>\n\nCalling.\n"
                                        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"C\"}}\n"
                                        "</tool_call><|im_end|>\n"
                                        "<|im_start|>user\n<tool_response>\n18\n</tool_response><|im_end|>\n"
                                        "<|im_start|>assistant\n<think>\neasy\n</think>\n\nIt is 18.<|im_end|>\n"));
        // Before the last user query the thinking is dropped.
        ctx["messages"] = ojson::array({{{"role", "user"}, {"content", "a"}},
                                        {{"role", "assistant"}, {"content", "<think>x</think>b"}},
                                        {{"role", "user"}, {"content", "c"}}});
        ctx["add_generation_prompt"] = true;
        QCOMPARE(renderJinja(src, ctx), std::string("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
                                                    "<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n"));
    }

    // ChatMessage's tool fields reach the template as the messages' tool_calls, tool_call_id and
    // name; only Jinja templates that read `tools` say they support them.
    void toolTurnsThroughRender() {
        const ojson config = readOrdered(lmw::test::modelDir("qwen3-tiny") + "/tokenizer_config.json");
        const std::string src = config.at("chat_template").get<std::string>();
        auto t = ChatTemplate::fromJinja(src, "model");
        QVERIFY(t->supportsTools());
        QVERIFY(!ChatTemplate::builtin("chatml")->supportsTools());
        QVERIFY(!ChatTemplate::fromJinja("{{ messages[0].content }}")->supportsTools());
        const ojson calls = ojson::array({{{"id", "call_1"}, {"type", "function"},
                                           {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}}});
        std::vector<ChatMessage> messages = {{"user", "Weather?"}, {"assistant", ""}, {"tool", "18"}};
        messages[1].toolCalls = calls;
        messages[2].toolCallId = "call_1";
        messages[2].name = "get_weather";
        const ojson tools = ojson::array({{{"type", "function"}, {"function", {{"name", "get_weather"}}}}});
        ojson ctx = {{"messages", ojson::array({{{"role", "user"}, {"content", "Weather?"}},
                                                {{"role", "assistant"}, {"content", ""}, {"tool_calls", calls}},
                                                {{"role", "tool"}, {"content", "18"}, {"tool_call_id", "call_1"}, {"name", "get_weather"}}})},
                     {"tools", tools},
                     {"add_generation_prompt", true},
                     {"bos_token", ""},
                     {"eos_token", ""}};
        const std::string got = t->render(messages, true, "", "", {{"tools", tools}});
        QCOMPARE(got, renderJinja(src, ctx));
        QVERIFY2(got.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>") !=
                     std::string::npos && got.find("<tool_response>\n18\n</tool_response>") != std::string::npos,
                 got.c_str());
    }

    void llama3TemplateDetails() {
        const ojson config = readOrdered(lmw::test::modelDir("llama3-tiny") + "/tokenizer_config.json");
        auto t = ChatTemplate::fromJinja(config.at("chat_template").get<std::string>(), "model");
        // Without date_string the template asks strftime_now for today's date.
        char today[32];
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        std::strftime(today, sizeof today, "%d %b %Y", &tm);
        const std::string got = t->render(kUser, true, "<|begin_of_text|>", "<|eot_id|>");
        QVERIFY2(got.find(std::string("Today Date: ") + today + "\n") != std::string::npos, got.c_str());
        // Tools but no user message: the template's own error.
        QCOMPARE(errorOf([&] { t->render({{"system", "s"}}, true, "", "", {{"tools", ojson::array({1})}}); }),
                 std::string("InvalidArgument: Cannot put tools in the first user message when there's no first user message!"));
        // Tool results are printed as JSON (a string is iterable, so it is quoted).
        ojson ctx = {{"messages", ojson::array({{{"role", "user"}, {"content", "q"}},
                                                {{"role", "assistant"}, {"content", ""},
                                                 {"tool_calls", ojson::array({{{"function", {{"name", "f"}, {"arguments", {{"b", 1}, {"a", 2}}}}}}})}},
                                                {{"role", "tool"}, {"content", "ok"}}})},
                     {"date_string", "1 Jan 2025"},
                     {"bos_token", ""}};
        const std::string r = renderJinja(config.at("chat_template").get<std::string>(), ctx);
        QVERIFY2(r.find("<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"f\", \"parameters\": {\"b\": 1, \"a\": 2}}<|eot_id|>"
                        "<|start_header_id|>ipython<|end_header_id|>\n\n\"ok\"<|eot_id|>") != std::string::npos,
                 r.c_str());
    }

    // ---- template kwargs ----
    void templateKwargs() {
        auto j = ChatTemplate::fromJinja("{{ messages[0].content }}{% if enable_thinking is defined and enable_thinking is false %}"
                                         "[no think]{% endif %}{{ tools | tojson }}{{ bos_token }}");
        QCOMPARE(j->render(kUser, true, "<s>", "</s>"), std::string("Hi!null<s>"));
        QCOMPARE(j->render(kUser, true, "<s>", "</s>", {{"enable_thinking", false}}), std::string("Hi![no think]null<s>"));
        QCOMPARE(j->render(kUser, true, "<s>", "</s>", {{"enable_thinking", true}}), std::string("Hi!null<s>"));
        QCOMPARE(j->render(kUser, true, "<s>", "</s>", nullptr), std::string("Hi!null<s>"));
        // tools and the special tokens may be given; key order is kept
        QCOMPARE(j->render(kUser, true, "<s>", "</s>", {{"tools", ojson::array({{{"z", 1}, {"a", 2}}})}, {"bos_token", "B"}}),
                 std::string("Hi![{\"z\": 1, \"a\": 2}]B"));
        // built-ins ignore them
        auto b = ChatTemplate::builtin("chatml");
        QCOMPARE(b->render(kUser, true, "", "", {{"enable_thinking", false}}), b->render(kUser, true, "", ""));
        // what is not an object, or sets the request's own fields, is refused
        QCOMPARE(errorOf([&] { j->render(kUser, true, "", "", ojson::array({1})); }),
                 std::string("InvalidArgument: chat template kwargs must be a JSON object, not array"));
        QCOMPARE(errorOf([&] { j->render(kUser, true, "", "", {{"messages", ojson::array()}}); }),
                 std::string("InvalidArgument: chat template kwargs cannot set 'messages' (it is part of the request)"));
        QCOMPARE(errorOf([] { ChatTemplate::checkKwargs({{"add_generation_prompt", false}}); }),
                 std::string("InvalidArgument: chat template kwargs cannot set 'add_generation_prompt' (it is part of the request)"));
        QCOMPARE(errorOf([] { ChatTemplate::checkKwargs({{"enable_thinking", false}}); }), std::string("no error"));
    }

    // ---- selection ----
    void select() {
        QCOMPARE(ChatTemplate::select("llama3", "{{ 'model' }}", ModelFamily::InternLM2, 1000)->name(), std::string("llama3"));
        const std::string file = lmw::test::testData("templates/internlm2_5-7b-chat.jinja");
        auto fromFile = ChatTemplate::select(file, "", ModelFamily::Llama, 32000);
        QCOMPARE(fromFile->name(), file);
        QCOMPARE(fromFile->render(kUser, false, "<s>", "</s>"), std::string("<s><|im_start|>user\nHi!<|im_end|>\n"));
        auto model = ChatTemplate::select("", "{{ messages[0].content }}!", ModelFamily::Llama, 32000);
        QCOMPARE(model->name(), std::string("model"));
        QCOMPARE(model->render(kUser, false, "", ""), std::string("Hi!!"));
        QCOMPARE(ChatTemplate::select("", "", ModelFamily::InternLM2, 92544)->name(), std::string("internlm2"));
        QCOMPARE(ChatTemplate::select("", "", ModelFamily::Qwen2, 152064)->name(), std::string("chatml"));
        QCOMPARE(ChatTemplate::select("", "", ModelFamily::Qwen3, 151936)->name(), std::string("chatml"));
        QCOMPARE(ChatTemplate::select("", "", ModelFamily::Llama, 32000)->name(), std::string("llama2"));
        QCOMPARE(ChatTemplate::select("", "", ModelFamily::Llama, 128256)->name(), std::string("llama3"));
        QCOMPARE(ChatTemplate::select("", "", ModelFamily::Mistral, 32768)->name(), std::string("mistral"));
        QCOMPARE(errorOf([] { ChatTemplate::select("/no/such/file.jinja", "", ModelFamily::Llama, 32000); }),
                 std::string("InvalidArgument: unknown chat template '/no/such/file.jinja': not a file and not a "
                             "built-in (internlm2, chatml, llama2, llama3, mistral, base)"));
        // a syntax error in the model's template is reported, not hidden
        QVERIFY(errorOf([] { ChatTemplate::select("", "{% if x %}", ModelFamily::Llama, 32000); }).find("syntax error") !=
                std::string::npos);
    }

    // ---- Jinja features ----
    void jinjaBasics_data() {
        QTest::addColumn<QString>("src");
        QTest::addColumn<QString>("ctx");
        QTest::addColumn<QString>("want");
        auto row = [](const char* name, const char* src, const char* ctx, const char* want) {
            QTest::newRow(name) << QString::fromUtf8(src) << QString::fromUtf8(ctx) << QString::fromUtf8(want);
        };
        row("text", "hello", "{}", "hello");
        row("var", "{{ x }}", R"({"x": "a"})", "a");
        row("int/float/bool/none", "{{ 1 }} {{ 2.5 }} {{ 3.0 }} {{ true }} {{ none }}", "{}", "1 2.5 3.0 True None");
        row("undefined prints nothing", "[{{ nope }}]", "{}", "[]");
        row("string escapes", "{{ 'a\\nb\\t\\'c\\'' }}{{ \"d\\\"e\\\\\" }}", "{}", "a\nb\t'c'd\"e\\");
        row("concat + ~", "{{ 'a' + 'b' ~ 1 ~ none }}", "{}", "ab1None");
        row("arith", "{{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 * 3 + 1 }}", "{}",
            "3 1 -4 3.5 1024 7");
        row("compare", "{{ 1 < 2 }}{{ 2 <= 1 }}{{ 'a' == 'a' }}{{ 'a' != 'b' }}{{ 3 > 2.5 }}{{ 1 >= 1 }}", "{}",
            "TrueFalseTrueTrueTrueTrue");
        row("and/or/not", "{{ true and false }}{{ false or 'x' }}{{ not 0 }}{{ 0 or '' or 'z' }}", "{}",
            "FalsexTruez");
        row("in / not in", "{{ 'b' in 'abc' }}{{ 2 in [1,2] }}{{ 'k' in d }}{{ 'q' not in d }}", R"({"d": {"k": 1}})",
            "TrueTrueTrueTrue");
        row("attr and index", "{{ m.role }}/{{ m['content'] }}/{{ xs[1] }}/{{ xs[-1] }}/{{ m.missing }}",
            R"({"m": {"role": "user", "content": "hi"}, "xs": [1,2,3]})", "user/hi/2/3/");
        row("slicing", "{{ xs[1:] }}{{ xs[:2] }}{{ xs[::-1] }}{{ 'hello'[1:3] }}{{ '日本語'[1:] }}", R"({"xs": [1,2,3]})",
            "[2, 3][1, 2][3, 2, 1]el本語");
        row("if/elif/else", "{% for v in [1,2,3] %}{% if v == 1 %}a{% elif v == 2 %}b{% else %}c{% endif %}{% endfor %}",
            "{}", "abc");
        row("for loop vars",
            "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
            R"({"xs": ["a","b"]})", "10TrueFalse2;21FalseTrue2;");
        row("for else / filter", "{% for x in xs if x > 1 %}{{ x }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
            R"({"xs": [1,2,3]})", "23|empty");
        row("for over dict items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", R"({"d": {"a": 1, "b": 2}})",
            "a=1;b=2;");
        row("break/continue", "{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
            "{}", "13");
        row("set and loop scope", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", "{}", "21");
        row("namespace", "{% set ns = namespace(found=false, n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}",
            "{}", "True 6");
        row("set tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", "{}", "12");
        row("set block", "{% set s %}x{{ 1 }}y{% endset %}[{{ s }}]", "{}", "[x1y]");
        row("whitespace control", "a  {{- 'b' -}}  c\n  {%- if true -%}\n  d  {%- endif %}", "{}", "abcd");
        row("trim_blocks/lstrip_blocks", "x\n  {% if true %}\n  y\n  {% endif %}\nz", "{}", "x\n  y\nz");
        row("comments", "a{# ignored {{ x }} #}b\n  {#- c -#}  d", "{}", "abd");
        row("is tests",
            "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ n is none }}{{ x is string }}{{ 3 is number }}{{ 4 is even }}{{ x is not none }}{{ d is mapping }}{{ 6 is divisibleby(3) }}",
            R"({"x": "s", "n": null, "d": {}})", "TrueFalseTrueTrueTrueTrueTrueTrueTrueTrue");
        row("filters 1", "{{ '  a b  ' | trim }}|{{ xs | length }}|{{ 'héllo' | length }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | capitalize }}",
            R"({"xs": [1,2,3]})", "a b|3|5|AB|ab|Hello world");
        row("filters 2", "{{ y | default('dflt') }}|{{ '' | default('e', true) }}|{{ xs | first }}|{{ xs | last }}|{{ xs | join(', ') }}|{{ 5 | string }}|{{ '42' | int + 1 }}|{{ 3.9 | int }}",
            R"({"xs": [1,2,3]})", "dflt|e|1|3|1, 2, 3|5|43|3");
        row("tojson", "{{ d | tojson }}|{{ 'é\"\n' | tojson }}|{{ [1, 2.5, none, true] | tojson }}",
            R"({"d": {"a": [1, "x"], "b": {"c": null}}})",
            "{\"a\": [1, \"x\"], \"b\": {\"c\": null}}|\"é\\\"\\n\"|[1, 2.5, null, true]");
        row("tojson indent", "{{ d | tojson(indent=2) }}", R"({"d": {"a": [1]}})", "{\n  \"a\": [\n    1\n  ]\n}");
        row("tojson keeps key order", "{{ d | tojson }}", R"({"d": {"z": 1, "a": {"y": 2, "b": 3}}})",
            "{\"z\": 1, \"a\": {\"y\": 2, \"b\": 3}}");
        row("tojson options",
            "{{ d | tojson(sort_keys=true) }}|{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(indent='\\t') }}|{{ [] | tojson(indent=2) }}",
            R"({"d": {"z": 1, "a": [2]}})",
            "{\"a\": [2], \"z\": 1}|{\"z\":1,\"a\":[2]}|{\n\t\"z\": 1,\n\t\"a\": [\n\t\t2\n\t]\n}|[]");
        // transformers' tojson takes ensure_ascii first: tojson(true) escapes, it does not indent
        row("tojson ensure_ascii", "{{ 'é😀\x7f' | tojson }}|{{ 'é😀\x7f' | tojson(true) }}|{{ '\x01' | tojson }}", "{}",
            "\"é😀\x7f\"|\"\\u00e9\\ud83d\\ude00\\u007f\"|\"\\u0001\"");
        row("dict equality ignores order", "{{ a == b }}{{ [a] == [b] }}{{ a == {'x': 1} }}",
            R"({"a": {"x": 1, "y": 2}, "b": {"y": 2, "x": 1}})", "TrueTrueFalse");
        row("sort and dictsort",
            "{{ ['b', 'B', 'a', 'C'] | sort }}{{ ['b', 'B', 'a', 'C'] | sort(case_sensitive=true) }}{{ [3, 1, 2] | sort(reverse=true) }}"
            "{% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}{% for k, v in d | dictsort(by='value', reverse=true) %}{{ k }}{% endfor %}",
            R"({"d": {"b": 1, "a": 2, "C": 3}})", "['a', 'b', 'B', 'C']['B', 'C', 'a', 'b'][3, 2, 1]a2b1C3Cab");
        row("functions are defined", "{{ strftime_now is defined }}{{ raise_exception is defined }}{{ namespace is not defined }}{{ nosuch is defined }}",
            "{}", "TrueTrueFalseFalse");
        row("reversed messages and string methods",
            "{% for m in ms[::-1] %}{{ loop.index0 }}{{ m.content.split('</think>')[-1].lstrip('\\n') }}{{ m.content.rstrip('x').endswith('a') }};{% endfor %}",
            R"({"ms": [{"content": "<think>t</think>\n\na"}, {"content": "bx"}]})", "0bxFalse;1aTrue;");
        row("items filter", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", R"({"d": {"x": 1, "y": 2}})", "x1y2");
        row("string methods",
            "{{ ' a '.strip() }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('x') }}|{{ 'a,b'.split(',') }}|{{ 'Hi'.upper() }}|{{ 'xay'.replace('a', 'b') }}|{{ 'xxhixx'.strip('x') }}",
            "{}", "a|True|False|['a', 'b']|HI|xby|hi");
        row("dict methods", "{{ d.get('a') }}{{ d.get('z', 'n') }}{{ d.keys() | list }}{{ d.values() | list }}",
            R"({"d": {"a": 1, "b": 2}})", "1n['a', 'b'][1, 2]");
        row("conditional expression", "{{ 'y' if x else 'n' }}{{ 'y' if not x else 'n' }}", R"({"x": 1})", "yn");
        row("list/dict literals", "{{ [1, 'a', [2]] }}{{ {'k': 'v'}['k'] }}{{ (1, 2)[0] }}", "{}", "[1, 'a', [2]]v1");
        row("filter precedence", "{{ 'a' + ' b ' | trim + 'c' }}", "{}", "abc");
        row("map/select", "{{ ms | map(attribute='role') | join(',') }}|{{ ms | selectattr('role', 'equalto', 'user') | list | length }}|{{ [1,2,3,4] | select('even') | list }}",
            R"({"ms": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}]})", "user,assistant,user|2|[2, 4]");
        row("range", "{% for i in range(3) %}{{ i }}{% endfor %}{{ range(1, 7, 2) | list }}", "{}", "012[1, 3, 5]");
        row("macro", "{% macro greet(name, p='!') %}Hi {{ name }}{{ p }}{% endmacro %}{{ greet('A') }} {{ greet('B', p='?') }}",
            "{}", "Hi A! Hi B?");
        row("raw", "{% raw %}{{ not evaluated }}{% endraw %}", "{}", "{{ not evaluated }}");
        row("loop over messages", "{% for m in messages %}{{ m.role[0] | upper }}:{{ m.content }} {% endfor %}",
            R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})", "U:a A:b ");
    }

    void jinjaBasics() {
        QFETCH(QString, src);
        QFETCH(QString, ctx);
        QFETCH(QString, want);
        const std::string got = renderJinja(src.toStdString(), ojson::parse(ctx.toStdString()));
        QCOMPARE(QString::fromStdString(got), want);
    }

    void jinjaRaiseException() {
        QCOMPARE(jinjaError("a{{ raise_exception('Bad role: ' + r) }}", {{"r", "tool"}}), std::string("Bad role: tool"));
    }

    void jinjaSyntaxErrors() {
        QCOMPARE(jinjaError("ab\n{% if x %}\nyes"),
                 std::string("chat template syntax error at line 3, column 4: unexpected end of template, expected "
                             "'elif' or 'else' or 'endif'"));
        QCOMPARE(jinjaError("{{ 'a' + }}"),
                 std::string("chat template syntax error at line 1, column 10: expected an expression, found '}}'"));
        QCOMPARE(jinjaError("x\n  {{ 'unterminated }}"),
                 std::string("chat template syntax error at line 2, column 6: unterminated string literal"));
        QCOMPARE(jinjaError("{% endfor %}"),
                 std::string("chat template syntax error at line 1, column 4: unknown or misplaced tag 'endfor'"));
        QCOMPARE(jinjaError("{{ x "), std::string("chat template syntax error at line 1, column 1: missing '}}'"));
        QCOMPARE(jinjaError("{% for x of y %}{% endfor %}"),
                 std::string("chat template syntax error at line 1, column 10: expected 'in', found 'of'"));
        QCOMPARE(jinjaError("{{ 1 $ 2 }}"),
                 std::string("chat template syntax error at line 1, column 6: unexpected character '$'"));
    }

    // Python's integers do not overflow: past 64 bits the arithmetic goes on in floating point (no
    // undefined behaviour, which UBSan and the fuzzer check), and a string repetition has a bound.
    void jinjaHugeIntegers() {
        QCOMPARE(renderJinja("{{ 9223372036854775807 * 2 > 9223372036854775807 }} {{ -9223372036854775807 - 10 < 0 }} "
                             "{{ 999999995 * 99999999999999 > 0 }} {{ 3 * 4 }}",
                             ojson::object()),
                 std::string("True True True 12"));
        QCOMPARE(renderJinja("{{ range(9223372036854775806, 9223372036854775807, 100) | list }}", ojson::object()),
                 std::string("[9223372036854775806]"));
        QCOMPARE(jinjaError("{{ 'ab' * 99999999999 }}"),
                 std::string("chat template error at line 1, column 9: string repetition too large"));
    }

    void jinjaRuntimeErrors() {
        QCOMPARE(jinjaError("{{ x | nosuch }}", {{"x", 1}}), std::string("unknown filter 'nosuch' (line 1, column 8)"));
        QCOMPARE(jinjaError("\n{{ 'a' + 1 }}"),
                 std::string("chat template error at line 2, column 8: unsupported operand types for +: 'str' and 'int'"));
        QCOMPARE(jinjaError("{{ nosuch(1) }}"), std::string("chat template error at line 1, column 10: unknown function 'nosuch'"));
    }
};

QTEST_GUILESS_MAIN(TestChatTemplate)
#include "test_chat_template.moc"
