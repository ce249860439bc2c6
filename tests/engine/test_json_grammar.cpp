// JSON-schema constrained decoding: random walks over the real qwen3-tiny (151,936 tokens) and
// stories260K (sentencepiece) vocabularies always end in JSON that parses and validates (checked by
// an independent validator below), masks agree with accept(), and unsupported keywords are named.
#include <QtTest>

#include <random>

#include "lmw/error.h"
#include "lmw/grammar.h"
#include "lmw/tokenizer.h"
#include "test_util.h"

using namespace lmw::engine;
using nlohmann::json;

namespace {

size_t utf8Chars(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// An independent validator for the subset (written from the JSON Schema spec, not from the grammar).
bool valid(const json& v, const json& s, const json& root, std::string& why) {
    if (s.is_boolean()) return s.get<bool>() || (why = "false schema", false);
    if (s.contains("$ref")) {
        std::string ref = s["$ref"];
        const json& target = ref == "#" ? root : root.at(json::json_pointer(ref.substr(1)));
        if (!valid(v, target, root, why)) return false;
    }
    auto countValid = [&](const json& list) {
        int n = 0;
        for (const auto& sub : list) {
            std::string w;
            n += valid(v, sub, root, w);
        }
        return n;
    };
    if (s.contains("anyOf") && countValid(s["anyOf"]) == 0) return why = "anyOf", false;
    if (s.contains("oneOf") && countValid(s["oneOf"]) != 1) return why = "oneOf", false;
    if (s.contains("allOf") && countValid(s["allOf"]) != int(s["allOf"].size())) return why = "allOf", false;
    if (s.contains("const") && v != s["const"]) return why = "const", false;
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
        return why = "enum", false;
    if (s.contains("type")) {
        std::vector<std::string> types;
        if (s["type"].is_string()) types.push_back(s["type"]);
        else
            for (const auto& t : s["type"]) types.push_back(t);
        bool ok = false;
        for (const auto& t : types) {
            ok |= (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
                  (t == "string" && v.is_string()) || (t == "boolean" && v.is_boolean()) ||
                  (t == "null" && v.is_null()) || (t == "number" && v.is_number()) ||
                  (t == "integer" && v.is_number_integer());
        }
        if (!ok) return why = "type " + s["type"].dump() + " vs " + v.dump(), false;
    }
    if (v.is_object()) {
        const json props = s.value("properties", json::object());
        for (const auto& r : s.value("required", json::array()))
            if (!v.contains(r.get<std::string>())) return why = "required " + r.dump(), false;
        for (const auto& [k, x] : v.items()) {
            if (props.contains(k)) {
                if (!valid(x, props[k], root, why)) return why = k + ": " + why, false;
            } else if (s.contains("additionalProperties") && !valid(x, s["additionalProperties"], root, why)) {
                return why = "additional " + k + ": " + why, false;
            }
        }
    }
    if (v.is_array()) {
        const json prefix = s.value("prefixItems", json::array());
        for (size_t i = 0; i < v.size(); ++i) {
            if (i < prefix.size()) {
                if (!valid(v[i], prefix[i], root, why)) return false;
            } else if (s.contains("items") && !valid(v[i], s["items"], root, why)) {
                return false;
            }
        }
        if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return why = "minItems", false;
        if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return why = "maxItems", false;
    }
    if (v.is_string()) {
        size_t n = utf8Chars(v.get<std::string>());
        if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return why = "minLength", false;
        if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return why = "maxLength", false;
    }
    return true;
}

const char* kSchemas[] = {
    // 0 nested objects
    R"({"type":"object","properties":{"name":{"type":"string"},"address":{"type":"object","properties":{
        "street":{"type":"string"},"zip":{"type":"integer"}},"required":["street","zip"],"additionalProperties":false}},
        "required":["name","address"],"additionalProperties":false})",
    // 1 array with limits
    R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":4})",
    // 2 enum
    R"({"type":"object","properties":{"color":{"enum":["red","green","blue",null,3,"é\\u0022x"]}},"required":["color"]})",
    // 3 const
    R"({"type":"object","properties":{"kind":{"const":"point"},"v":{"const":{"x":1,"y":[true,null]}}},"required":["kind","v"]})",
    // 4 anyOf
    R"({"anyOf":[{"type":"string","maxLength":5},{"type":"integer"},
        {"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"],"additionalProperties":false}]})",
    // 5 recursive $ref / $defs
    R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},"children":{"type":"array",
        "items":{"$ref":"#/$defs/node"},"maxItems":3}},"required":["value"],"additionalProperties":false}},
        "$ref":"#/$defs/node"})",
    // 6 definitions + oneOf with disjoint branches
    R"({"definitions":{"cat":{"type":"object","properties":{"type":{"const":"cat"},"lives":{"type":"integer"}},
        "required":["type","lives"],"additionalProperties":false},"dog":{"type":"object","properties":{
        "type":{"const":"dog"},"good":{"type":"boolean"}},"required":["type"],"additionalProperties":false}},
        "type":"object","properties":{"pet":{"oneOf":[{"$ref":"#/definitions/cat"},{"$ref":"#/definitions/dog"}]}},
        "required":["pet"],"additionalProperties":false})",
    // 7 string lengths
    R"({"type":"object","properties":{"code":{"type":"string","minLength":3,"maxLength":3},
        "note":{"type":"string","maxLength":10},"long":{"type":"string","minLength":40}},"required":["code","note","long"]})",
    // 8 integer vs number
    R"({"type":"object","properties":{"i":{"type":"integer"},"n":{"type":"number"},
        "ns":{"type":"array","items":{"type":"number"},"maxItems":5}},"required":["i","n","ns"]})",
    // 9 type lists
    R"({"type":"object","properties":{"x":{"type":["integer","null"]},"y":{"type":["string","boolean","array"],
        "items":{"type":"null"},"maxItems":2}},"required":["x","y"]})",
    // 10 additionalProperties false with optional properties
    R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string","maxLength":4},"c":{"type":"boolean"}},
        "required":["b"],"additionalProperties":false})",
    // 11 additionalProperties schema, no properties
    R"({"type":"object","additionalProperties":{"type":"integer"}})",
    // 12 prefixItems + items
    R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":{"type":"boolean"},
        "minItems":1,"maxItems":4})",
    // 13 the empty schema: any JSON value
    R"({})",
    // 14 pydantic-style Optional with annotations
    R"({"$schema":"https://json-schema.org/draft/2020-12/schema","title":"M","type":"object","properties":{
        "title":{"title":"T","description":"d","anyOf":[{"type":"string"},{"type":"null"}],"default":null},
        "tags":{"type":"array","items":{"type":"string","maxLength":8},"examples":[["a"]]}},
        "required":["title","tags"]})",
    // 15 required names that are not listed (additionalProperties absent = any value)
    R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a","extra"]})",
    // 16 recursive through the root
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":6},"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},
        "required":["name","next"],"additionalProperties":false})",
};

const char* kUnsatisfiable[] = {R"({"type":"string","minLength":5,"maxLength":2})", R"({"enum":[]})", R"(false)",
                              R"({"type":"array","minItems":3,"maxItems":1})",
                              R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["b"],"additionalProperties":false})",
                              R"({"$defs":{"n":{"type":"object","properties":{"n":{"$ref":"#/$defs/n"}},"required":["n"]}},"$ref":"#/$defs/n"})"};

struct Vocab {
    std::string name;
    std::unique_ptr<Tokenizer> tok;
    std::shared_ptr<const TokenVocabulary> vocab;
    std::vector<char> closing;  // token bytes hold '"', ']' or '}': the walk's way out of a value
    int32_t eos = -1;
};

int32_t findToken(const TokenVocabulary& v, const std::string& bytes) {
    for (int32_t i = 0; i < v.vocabSize(); ++i)
        if (v.tokenBytes(i) == bytes) return i;
    return -1;
}

std::vector<int32_t> allowedIds(const std::vector<uint32_t>& mask) {
    std::vector<int32_t> ids;
    for (size_t w = 0; w < mask.size(); ++w)
        for (uint32_t m = mask[w]; m; m &= m - 1) ids.push_back(int32_t(w * 32 + size_t(__builtin_ctz(m))));
    return ids;
}

// Printable form of bytes for a failure message (tokens may be partial UTF-8).
std::string show(const std::string& bytes) { return json(bytes).dump(-1, ' ', false, json::error_handler_t::replace); }

bool bit(const std::vector<uint32_t>& mask, int32_t id) { return (mask[size_t(id) >> 5] >> (id & 31)) & 1; }

}  // namespace

// One random walk: random allowed tokens (more and more often one that closes something) until
// an end token; checks the mask against accept() on copies along the way.
void walk(const Vocab& v, const std::shared_ptr<const Grammar>& g, uint32_t seed, int budget, std::string& text,
          bool& finished) {
    std::mt19937 rng(seed);
    GrammarMatcher m(g, v.vocab, {v.eos});
    std::vector<uint32_t> mask(size_t(v.vocab->maskWords()));
    text.clear();
    finished = false;
    for (int step = 0; step < budget; ++step) {
        m.fillNextTokenMask(mask.data());
        std::vector<int32_t> ids = allowedIds(mask);
        QVERIFY2(!ids.empty(), ("dead end after: " + text).c_str());
        QCOMPARE(bit(mask, v.eos), m.isComplete());
        // The mask is exactly what accept() takes: probe random tokens and random allowed ones.
        if (step % 3 == 0) {
            for (int k = 0; k < 12; ++k) {
                int32_t t = k % 2 ? ids[rng() % ids.size()] : int32_t(rng() % uint32_t(v.vocab->vocabSize()));
                GrammarMatcher copy = m;
                QVERIFY2(copy.accept(t) == bit(mask, t),
                         ("mask/accept disagree on " + show(v.vocab->tokenBytes(t)) + " after " + text).c_str());
                if (t != v.eos && v.tok->isSpecial(t)) QVERIFY(!bit(mask, t));
            }
        }
        int32_t pick;
        if (m.isComplete() && rng() % 4 != 0) {
            pick = v.eos;
        } else {
            std::vector<int32_t> closing;
            for (int32_t t : ids)
                if (v.closing[size_t(t)]) closing.push_back(t);
            const double pClose = 0.25 + 0.7 * step / budget;
            std::uniform_real_distribution<double> u(0, 1);
            pick = !closing.empty() && u(rng) < pClose ? closing[rng() % closing.size()] : ids[rng() % ids.size()];
        }
        QVERIFY(m.accept(pick));
        if (pick == v.eos) {
            finished = true;
            QVERIFY(m.isTerminated());
            return;
        }
        text += v.vocab->tokenBytes(pick);
    }
}

void walkSchema(std::vector<Vocab>& vocabs, const json& schema, const std::shared_ptr<const Grammar>& g, int seeds) {
    for (auto& v : vocabs) {
        int finishedRuns = 0;
        for (int seed = 0; seed < seeds; ++seed) {
            std::string text;
            bool finished = false;
            walk(v, g, uint32_t(seed * 7919 + 1), v.name == "qwen3-tiny" ? 1500 : 3000, text, finished);
            if (QTest::currentTestFailed()) return;
            QVERIFY2(finished, (v.name + ": no end within the budget: " + text.substr(0, 300)).c_str());
            json doc;
            try {
                doc = json::parse(text);
            } catch (const std::exception& e) {
                QFAIL((v.name + ": does not parse: " + text + " (" + e.what() + ")").c_str());
            }
            std::string why;
            QVERIFY2(valid(doc, schema, schema, why), (v.name + ": " + text + " invalid: " + why).c_str());
            if (seed == 0) qInfo("%s: %s", v.name.c_str(), show(text.substr(0, 200)).c_str());
            ++finishedRuns;
        }
        QCOMPARE(finishedRuns, seeds);
    }
}


class TestJsonGrammar : public QObject {
    Q_OBJECT

    std::vector<Vocab> m_vocabs;

    Vocab& qwen() { return m_vocabs[0]; }
    void walkSchema(const json& schema, const std::shared_ptr<const Grammar>& g, int seeds) {
        ::walkSchema(m_vocabs, schema, g, seeds);
    }

private slots:
    void initTestCase() {
        for (const char* name : {"qwen3-tiny", "stories260K"}) {
            Vocab v;
            v.name = name;
            v.tok = Tokenizer::load(lmw::test::modelPath(name));
            v.vocab = TokenVocabulary::fromTokenizer(*v.tok);
            v.eos = v.tok->eosId();
            QVERIFY(v.eos >= 0);
            v.closing.resize(size_t(v.vocab->vocabSize()));
            for (int32_t i = 0; i < v.vocab->vocabSize(); ++i)
                v.closing[size_t(i)] = v.vocab->tokenBytes(i).find_first_of("\"]}") != std::string::npos;
            m_vocabs.push_back(std::move(v));
        }
        QVERIFY(qwen().vocab->vocabSize() > 150000);
    }

    void schemaWalks_data() {
        QTest::addColumn<int>("index");
        for (size_t i = 0; i < std::size(kSchemas); ++i) QTest::newRow(("schema " + std::to_string(i)).c_str()) << int(i);
    }

    void schemaWalks() {
        QFETCH(int, index);
        const json schema = json::parse(kSchemas[index]);
        walkSchema(schema, Grammar::fromJsonSchema(schema), 12);
    }

    void jsonObjectMode() {
        const json schema = json::parse(R"({"type":"object"})");
        walkSchema(schema, Grammar::anyJsonObject(), 12);
    }

    void compactWhitespaceOption() {
        GrammarOptions o;
        o.maxWhitespace = 0;
        const json schema = json::parse(kSchemas[0]);
        auto g = Grammar::fromJsonSchema(nlohmann::ordered_json::parse(kSchemas[0]), o);  // document order
        GrammarMatcher m(g, qwen().vocab, {qwen().eos});
        QVERIFY(!m.acceptBytes("{ "));
        QVERIFY(m.acceptBytes("{\"name\":\"x\",\"address\":{\"street\":\"s\",\"zip\":12}}"));
        QVERIFY(m.isComplete());
        GrammarMatcher sorted(Grammar::fromJsonSchema(schema, o), qwen().vocab, {qwen().eos});  // a json is a std::map
        QVERIFY(!GrammarMatcher(sorted).acceptBytes("{\"name\""));
        QVERIFY(sorted.acceptBytes("{\"address\":{\"street\":\"s\",\"zip\":12},\"name\":\"x\"}"));
        walkSchema(schema, g, 4);
    }

    void whitespaceIsBounded() {
        GrammarOptions o;
        o.maxWhitespace = 2;
        auto g = Grammar::fromJsonSchema(json::parse(R"({"type":"array","items":{"type":"integer"}})"), o);
        GrammarMatcher m(g, qwen().vocab, {qwen().eos});
        QVERIFY(m.acceptBytes("[  "));
        QVERIFY(!m.acceptBytes(" "));
        QVERIFY(m.acceptBytes("1\n\t,  2]"));
        QVERIFY(m.isComplete());
        QVERIFY(!m.acceptBytes(" "));  // nothing after the value
    }

    void unsupportedKeywordsAreNamed_data() {
        QTest::addColumn<QString>("schema");
        QTest::addColumn<QString>("keyword");
        QTest::addColumn<QString>("where");
        QTest::newRow("minimum") << R"({"type":"object","properties":{"age":{"type":"integer","minimum":0}}})"
                                 << "'minimum'" << " at /properties/age";
        QTest::newRow("pattern") << R"({"type":"string","pattern":"a+"})" << "'pattern'" << " at /";
        QTest::newRow("format") << R"({"properties":{"d":{"type":"string","format":"date"}}})" << "'format'"
                                << " at /properties/d";
        QTest::newRow("multipleOf") << R"({"type":"array","items":{"type":"number","multipleOf":2}})" << "'multipleOf'"
                                    << " at /items";
        QTest::newRow("uniqueItems") << R"({"type":"array","uniqueItems":true})" << "'uniqueItems'" << " at /";
        QTest::newRow("patternProperties") << R"({"type":"object","patternProperties":{"^a":{}}})"
                                           << "'patternProperties'" << " at /";
        QTest::newRow("not") << R"({"anyOf":[{"type":"null"},{"not":{"type":"string"}}]})" << "'not'" << " at /anyOf/1";
        QTest::newRow("if") << R"({"if":{"type":"string"}})" << "'if'" << " at /";
        QTest::newRow("remote ref") << R"({"$ref":"https://example.com/s.json"})" << "'$ref'" << " at /$ref";
        QTest::newRow("in $defs") << R"({"$defs":{"x":{"type":"integer","maximum":3}},"$ref":"#/$defs/x"})"
                                  << "'maximum'" << " at /$defs/x";
        QTest::newRow("escaped key") << R"({"properties":{"a/b":{"type":"string","minProperties":1}}})"
                                     << "'minProperties'" << " at /properties/a~1b";
    }

    void unsupportedKeywordsAreNamed() {
        QFETCH(QString, schema);
        QFETCH(QString, keyword);
        QFETCH(QString, where);
        try {
            Grammar::fromJsonSchema(json::parse(schema.toStdString()));
            QFAIL("no error");
        } catch (const lmw::Error& e) {
            QCOMPARE(e.code(), lmw::ErrorCode::InvalidArgument);
            const QString msg = QString::fromStdString(e.what());
            QVERIFY2(msg.contains(keyword) && msg.endsWith(where), qPrintable(msg));
        }
    }

    void unsatisfiableSchemasAreErrors() {
        for (const char* s : kUnsatisfiable) {
            bool threw = false;
            try {
                Grammar::fromJsonSchema(json::parse(s));
            } catch (const lmw::Error& e) {
                threw = e.code() == lmw::ErrorCode::InvalidArgument;
            }
            QVERIFY2(threw, s);
        }
    }

    void annotationsAreIgnored() {
        auto g = Grammar::fromJsonSchema(json::parse(
            R"({"$schema":"x","$id":"y","title":"t","description":"d","default":1,"examples":[1],"strict":true,"type":"integer"})"));
        GrammarMatcher m(g, qwen().vocab, {qwen().eos});
        QVERIFY(m.acceptBytes("-12"));
        QVERIFY(m.isComplete());
        QVERIFY(!m.acceptBytes("."));  // an integer takes no fraction
    }

    void maskOfHandMadeState() {
        const Vocab& v = qwen();
        auto g = Grammar::fromJsonSchema(
            json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})"));
        GrammarMatcher m(g, v.vocab, {v.eos});
        QVERIFY(m.acceptBytes("{\"a\": "));
        std::vector<uint32_t> mask(size_t(v.vocab->maskWords()));
        m.fillNextTokenMask(mask.data());
        const auto ids = allowedIds(mask);
        QVERIFY(ids.size() > 10);
        for (int32_t t : ids) {
            const std::string& b = v.vocab->tokenBytes(t);
            QVERIFY2(std::string("-0123456789 \t\n\r").find(b[0]) != std::string::npos, b.c_str());
        }
        QVERIFY(bit(mask, findToken(*v.vocab, "1")));
        QVERIFY(bit(mask, findToken(*v.vocab, "-")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "\"")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "}")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "true")));
        QVERIFY(!bit(mask, v.eos));

        // A rejected token leaves the state as it was.
        for (const char* bad : {"}", "\"", "true", "a"}) {
            int32_t t = findToken(*v.vocab, bad);
            QVERIFY(t >= 0);
            QVERIFY(!m.accept(t));
            std::vector<uint32_t> again(mask.size());
            m.fillNextTokenMask(again.data());
            QCOMPARE(again, mask);
        }
        QVERIFY(!m.accept(v.eos));
        QVERIFY(m.accept(findToken(*v.vocab, "4")));
        QVERIFY(m.accept(findToken(*v.vocab, "2")));
        QVERIFY(m.accept(findToken(*v.vocab, "}")));
        QVERIFY(m.isComplete());
        m.fillNextTokenMask(mask.data());
        QCOMPARE(allowedIds(mask), std::vector<int32_t>{v.eos});  // complete: only the end token
        QVERIFY(m.accept(v.eos));
        m.fillNextTokenMask(mask.data());
        QVERIFY(allowedIds(mask).empty());
    }

    void utf8AndEscapesInStrings() {
        const Vocab& v = qwen();
        auto g = Grammar::fromJsonSchema(json::parse(R"({"type":"string"})"));
        GrammarMatcher m(g, v.vocab, {v.eos});
        std::vector<uint32_t> mask(size_t(v.vocab->maskWords()));
        const int32_t c3 = findToken(*v.vocab, "\xC3"), a9 = findToken(*v.vocab, "\xA9");
        QVERIFY(c3 >= 0 && a9 >= 0);
        QVERIFY(m.acceptBytes("\""));
        m.fillNextTokenMask(mask.data());
        QVERIFY(bit(mask, c3));
        QVERIFY(!bit(mask, a9));  // a continuation byte cannot start a character
        QVERIFY(m.accept(c3));
        m.fillNextTokenMask(mask.data());
        QVERIFY(bit(mask, a9));  // "é" split across two tokens
        QVERIFY(!bit(mask, findToken(*v.vocab, "a")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "\"")));
        for (int32_t t : allowedIds(mask)) QVERIFY(uint8_t(v.vocab->tokenBytes(t)[0]) >= 0x80);
        QVERIFY(m.accept(a9));
        m.fillNextTokenMask(mask.data());
        QVERIFY(bit(mask, findToken(*v.vocab, "a")));
        QVERIFY(bit(mask, findToken(*v.vocab, " the")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "\n")));  // raw control characters are not JSON
        QVERIFY(!bit(mask, findToken(*v.vocab, "\t")));
        QVERIFY(!m.acceptBytes("\x01"));
        QVERIFY(!m.acceptBytes("\xC0\x80"));      // overlong
        QVERIFY(!m.acceptBytes("\xED\xA0\x80"));  // a surrogate
        QVERIFY(!m.acceptBytes("\\x"));
        QVERIFY(!m.acceptBytes("\\ud800\""));  // a lone surrogate escape
        QVERIFY(m.acceptBytes("\\n\\\"\\\\\\u00e9\\ud83d\\ude00\xF0\x9F\x98\x80"));
        QVERIFY(m.acceptBytes("\""));
        QVERIFY(m.isComplete());
    }

    void stringLengthsAreExact() {
        const Vocab& v = qwen();
        auto g = Grammar::fromJsonSchema(json::parse(R"({"type":"string","minLength":2,"maxLength":3})"));
        GrammarMatcher m(g, v.vocab, {v.eos});
        std::vector<uint32_t> mask(size_t(v.vocab->maskWords()));
        QVERIFY(m.acceptBytes("\"a"));
        m.fillNextTokenMask(mask.data());
        QVERIFY(!bit(mask, findToken(*v.vocab, "\"")));  // minLength 2
        QVERIFY(bit(mask, findToken(*v.vocab, "bc")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "bcd")));
        QVERIFY(bit(mask, findToken(*v.vocab, "é")));  // one character, two bytes
        QVERIFY(m.acceptBytes("b"));
        m.fillNextTokenMask(mask.data());
        QVERIFY(bit(mask, findToken(*v.vocab, "\"")));
        QVERIFY(bit(mask, findToken(*v.vocab, "c")));
        QVERIFY(!bit(mask, findToken(*v.vocab, "cd")));
        QVERIFY(m.acceptBytes("c"));
        m.fillNextTokenMask(mask.data());
        for (int32_t t : allowedIds(mask)) QCOMPARE(v.vocab->tokenBytes(t)[0], '"');
    }

    void matcherCopiesAreIndependent() {
        const Vocab& v = qwen();
        auto g = Grammar::fromJsonSchema(nlohmann::ordered_json::parse(kSchemas[5]));
        GrammarMatcher a(g, v.vocab, {v.eos});
        QVERIFY(a.acceptBytes("{\"value\": 1, \"children\": [{\"value\": 2}"));
        GrammarMatcher b = a;
        QVERIFY(b.acceptBytes("]}"));
        QVERIFY(b.isComplete());
        QVERIFY(!a.isComplete());
        QVERIFY(a.acceptBytes(", {\"value\": 3, \"children\": []}, {\"value\": 4}]}"));
        QVERIFY(a.isComplete());
        GrammarMatcher c(g, v.vocab, {v.eos});
        QVERIFY(!c.acceptBytes("{\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3}, {\"value\": 4}, {"));  // maxItems 3
    }
};

QTEST_GUILESS_MAIN(TestJsonGrammar)
#include "test_json_grammar.moc"
