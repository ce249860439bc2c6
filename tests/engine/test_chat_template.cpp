// Chat templates: built-ins against exact strings, real models' Jinja templates (fixtures in
// tests/data/templates) against the built-ins, template selection, and the Jinja features.
#include <QtTest>

#include "lmw/chat_template.h"
#include "lmw/error.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
using json = nlohmann::json;

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

    // ---- selection ----
    void select() {
        QCOMPARE(ChatTemplate::select("llama3", "{{ 'model' }}", "internlm2", 1000)->name(), std::string("llama3"));
        const std::string file = lmw::test::testData("templates/internlm2_5-7b-chat.jinja");
        auto fromFile = ChatTemplate::select(file, "", "llama", 32000);
        QCOMPARE(fromFile->name(), file);
        QCOMPARE(fromFile->render(kUser, false, "<s>", "</s>"), std::string("<s><|im_start|>user\nHi!<|im_end|>\n"));
        auto model = ChatTemplate::select("", "{{ messages[0].content }}!", "llama", 32000);
        QCOMPARE(model->name(), std::string("model"));
        QCOMPARE(model->render(kUser, false, "", ""), std::string("Hi!!"));
        QCOMPARE(ChatTemplate::select("", "", "internlm2", 92544)->name(), std::string("internlm2"));
        QCOMPARE(ChatTemplate::select("", "", "qwen2", 152064)->name(), std::string("chatml"));
        QCOMPARE(ChatTemplate::select("", "", "llama", 32000)->name(), std::string("llama2"));
        QCOMPARE(ChatTemplate::select("", "", "llama", 128256)->name(), std::string("llama3"));
        QCOMPARE(ChatTemplate::select("", "", "gpt2", 50257)->name(), std::string("base"));
        QCOMPARE(errorOf([] { ChatTemplate::select("/no/such/file.jinja", "", "llama", 32000); }),
                 std::string("InvalidArgument: unknown chat template '/no/such/file.jinja': not a file and not a "
                             "built-in (internlm2, chatml, llama2, llama3, mistral, base)"));
        // a syntax error in the model's template is reported, not hidden
        QVERIFY(errorOf([] { ChatTemplate::select("", "{% if x %}", "llama", 32000); }).find("syntax error") !=
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
        const std::string got = renderJinja(src.toStdString(), json::parse(ctx.toStdString()));
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

    void jinjaRuntimeErrors() {
        QCOMPARE(jinjaError("{{ x | nosuch }}", {{"x", 1}}), std::string("unknown filter 'nosuch' (line 1, column 8)"));
        QCOMPARE(jinjaError("\n{{ 'a' + 1 }}"),
                 std::string("chat template error at line 2, column 8: unsupported operand types for +: 'str' and 'int'"));
        QCOMPARE(jinjaError("{{ nosuch(1) }}"), std::string("chat template error at line 1, column 10: unknown function 'nosuch'"));
    }
};

QTEST_GUILESS_MAIN(TestChatTemplate)
#include "test_chat_template.moc"
