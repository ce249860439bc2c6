// JSON Schema (the subset in lmw/grammar.h) -> byte grammar. Every rule built here can finish from
// any of its prefixes (bounded repetitions carry their counters; unproductive recursion is pruned
// by GrammarBuilder::finish), so a constrained model can never paint itself into a corner.
#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "lmw/error.h"
#include "lmw/grammar.h"
#include "runtime/grammar_impl.h"

namespace lmw::engine {

using namespace grammar;
// Ordered: properties are emitted in the order the schema lists them.
using json = nlohmann::ordered_json;

namespace {

constexpr int kMaxIntDigits = 15, kMaxFracDigits = 15, kMaxExpDigits = 2;

const std::set<std::string> kIgnored = {"title",   "description", "$schema",  "$id",       "default", "examples",
                                        "strict",  "$comment",    "deprecated", "readOnly", "writeOnly", "$defs",
                                        "definitions"};
const std::set<std::string> kSupported = {"type",      "properties", "required", "additionalProperties", "enum",
                                          "const",     "anyOf",      "oneOf",    "allOf",                "items",
                                          "prefixItems", "minItems", "maxItems", "minLength",            "maxLength",
                                          "$ref"};

std::string pointerEscape(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

[[noreturn]] void fail(const std::string& what, const std::string& path) {
    throw Error(ErrorCode::InvalidArgument, "JSON schema: " + what + " at " + (path.empty() ? "/" : path));
}

ByteSet range(int lo, int hi) {
    ByteSet s;
    s.setRange(lo, hi);
    return s;
}

class SchemaCompiler {
public:
    SchemaCompiler(const json& root, const GrammarOptions& options) : m_root(root), m_opt(options) {}

    GrammarBuilder& builder() { return m_b; }

    int32_t compile(const json& s, const std::string& path) {
        if (s.is_boolean()) {
            if (!s.get<bool>()) fail("schema 'false' admits no value", path);
            return anyValue();
        }
        if (!s.is_object()) fail("a schema must be an object or a boolean", path);
        for (const auto& [key, value] : s.items())
            if (!kIgnored.count(key) && !kSupported.count(key))
                fail("unsupported JSON Schema keyword '" + key + "'", path);

        // Combinators and references stand alone: their siblings would have to be intersected.
        for (const char* k : {"$ref", "anyOf", "oneOf", "allOf"}) {
            if (!s.contains(k)) continue;
            for (const auto& [key, value] : s.items())
                if (key != k && kSupported.count(key))
                    fail(std::string("keyword '") + key + "' next to '" + k + "' is not supported", path);
        }
        if (s.contains("$ref")) return ref(s["$ref"], path + "/$ref");
        for (const char* k : {"anyOf", "oneOf", "allOf"}) {
            if (!s.contains(k)) continue;
            const json& list = s[k];
            const std::string p = path + "/" + k;
            if (!list.is_array() || list.empty()) fail(std::string("'") + k + "' must be a non-empty array", p);
            if (std::string(k) == "allOf" && list.size() != 1)
                fail("unsupported JSON Schema keyword 'allOf' with more than one schema", p);
            int32_t r = m_b.newRule();
            for (size_t i = 0; i < list.size(); ++i)
                m_b.addAlt(r, {GrammarBuilder::rule(compile(list[i], p + "/" + std::to_string(i)))});
            return r;
        }
        if (s.contains("const")) return literalRule({s["const"]});
        if (s.contains("enum")) {
            const json& e = s["enum"];
            if (!e.is_array() || e.empty()) fail("'enum' must be a non-empty array", path + "/enum");
            return literalRule(std::vector<json>(e.begin(), e.end()));
        }

        std::vector<std::string> types;
        if (s.contains("type")) {
            const json& t = s["type"];
            if (t.is_string()) types.push_back(t.get<std::string>());
            else if (t.is_array() && !t.empty())
                for (const auto& x : t) {
                    if (!x.is_string()) fail("'type' must be a string or an array of strings", path + "/type");
                    types.push_back(x.get<std::string>());
                }
            else fail("'type' must be a string or an array of strings", path + "/type");
        } else {
            // No type: the keywords present say which kind of value was meant.
            for (const char* k : {"properties", "required", "additionalProperties"})
                if (s.contains(k)) types = {"object"};
            for (const char* k : {"items", "prefixItems", "minItems", "maxItems"})
                if (s.contains(k)) types = {"array"};
            for (const char* k : {"minLength", "maxLength"})
                if (s.contains(k)) types = {"string"};
            if (types.empty()) return anyValue();
        }
        int32_t r = m_b.newRule();
        for (const auto& t : types) {
            int32_t tr;
            if (t == "object") tr = object(s, path);
            else if (t == "array") tr = array(s, path);
            else if (t == "string") tr = string(count(s, "minLength", 0, path), count(s, "maxLength", kUnbounded, path), path);
            else if (t == "number") tr = number(false);
            else if (t == "integer") tr = number(true);
            else if (t == "boolean") tr = literalRule({json(true), json(false)});
            else if (t == "null") tr = literalRule({json(nullptr)});
            else fail("unknown type '" + t + "'", path + "/type");
            m_b.addAlt(r, {GrammarBuilder::rule(tr)});
        }
        return r;
    }

    int32_t anyValue() {
        if (m_any >= 0) return m_any;
        m_any = m_b.newRule();
        m_b.addAlt(m_any, {GrammarBuilder::rule(anyObject(m_any))});
        m_b.addAlt(m_any, {GrammarBuilder::rule(arrayOf({}, m_any, 0, kUnbounded))});
        m_b.addAlt(m_any, {GrammarBuilder::rule(string(0, kUnbounded, ""))});
        m_b.addAlt(m_any, {GrammarBuilder::rule(number(false))});
        m_b.addAlt(m_any, {GrammarBuilder::rule(literalRule({json(true), json(false), json(nullptr)}))});
        return m_any;
    }

    // '{' ws (key ws ':' ws value ws (',' ws key ws ':' ws value ws)*)? '}' with any string keys.
    int32_t anyObject(int32_t value) {
        auto memberItems = [&](bool comma) {
            std::vector<Item> m;
            if (comma) {
                m.push_back(m_b.byte(','));
                m.push_back(ws());
            }
            m.push_back(GrammarBuilder::rule(string(0, kUnbounded, "")));
            m.push_back(ws());
            m.push_back(m_b.byte(':'));
            m.push_back(ws());
            m.push_back(GrammarBuilder::rule(value));
            m.push_back(ws());
            return m;
        };
        int32_t more = m_b.ruleOf({memberItems(true)});
        std::vector<Item> members = memberItems(false);
        members.push_back(GrammarBuilder::repeat(more, 0, kUnbounded));
        int32_t body = m_b.ruleOf({members, {}});
        return m_b.ruleOf({{m_b.byte('{'), ws(), GrammarBuilder::rule(body), m_b.byte('}')}});
    }

private:
    int32_t epsilon() { return m_b.ruleOf(std::vector<std::vector<Item>>(1)); }

    Item ws() {
        if (m_wsChar < 0) {
            ByteSet s;
            for (int c : {' ', '\t', '\n', '\r'}) s.set(c);
            m_wsChar = m_b.ruleOf({{m_b.bytes(s)}});
        }
        return GrammarBuilder::repeat(m_wsChar, 0, m_opt.maxWhitespace);
    }

    int32_t count(const json& s, const char* key, int32_t dflt, const std::string& path) {
        if (!s.contains(key)) return dflt;
        const json& v = s[key];
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
            fail(std::string("'") + key + "' must be a non-negative integer", path + "/" + key);
        return int32_t(std::min<int64_t>(v.get<int64_t>(), kUnbounded - 1));
    }

    int32_t literalRule(const std::vector<json>& values) {
        int32_t r = m_b.newRule();
        std::set<std::string> seen;
        for (const auto& v : values) {
            std::string text = v.dump();
            if (!seen.insert(text).second) continue;
            std::vector<Item> seq;
            m_b.appendLiteral(seq, text);
            m_b.addAlt(r, std::move(seq));
        }
        return r;
    }

    int32_t ref(const json& target, const std::string& path) {
        if (!target.is_string()) fail("'$ref' must be a string", path);
        const std::string t = target.get<std::string>();
        if (t.empty() || t[0] != '#') fail("unsupported JSON Schema keyword '$ref' to '" + t + "' (only local '#/...' references)", path);
        if (auto it = m_refs.find(t); it != m_refs.end()) return it->second;
        const json* node = &m_root;
        if (t.size() > 1) {
            try {
                node = &m_root.at(json::json_pointer(t.substr(1)));
            } catch (const std::exception&) {
                fail("'$ref' target '" + t + "' does not exist", path);
            }
        }
        // Reserved before compiling so that a recursive reference finds it.
        int32_t r = m_b.newRule();
        m_refs[t] = r;
        m_b.addAlt(r, {GrammarBuilder::rule(compile(*node, t.substr(1)))});
        return r;
    }

    int32_t string(int32_t minLen, int32_t maxLen, const std::string& path) {
        if (minLen > maxLen) fail("minLength > maxLength", path);
        auto key = std::make_pair(minLen, maxLen);
        if (auto it = m_strings.find(key); it != m_strings.end()) return it->second;
        int32_t r = m_b.ruleOf({{m_b.byte('"'), GrammarBuilder::stringChars(minLen, maxLen), m_b.byte('"')}});
        m_strings[key] = r;
        return r;
    }

    int32_t number(bool integer) {
        int32_t& cached = integer ? m_integer : m_number;
        if (cached >= 0) return cached;
        int32_t digit = m_b.ruleOf({{m_b.bytes(range('0', '9'))}});
        int32_t intPart = m_b.ruleOf({{m_b.byte('0')},
                                      {m_b.bytes(range('1', '9')), GrammarBuilder::repeat(digit, 0, kMaxIntDigits - 1)}});
        int32_t sign = m_b.ruleOf({{m_b.byte('-')}, {}});
        std::vector<Item> seq = {GrammarBuilder::rule(sign), GrammarBuilder::rule(intPart)};
        if (!integer) {
            int32_t frac = m_b.ruleOf({{m_b.byte('.'), GrammarBuilder::repeat(digit, 1, kMaxFracDigits)}, {}});
            ByteSet e;
            e.set('e');
            e.set('E');
            ByteSet pm;
            pm.set('+');
            pm.set('-');
            int32_t expSign = m_b.ruleOf({{m_b.bytes(pm)}, {}});
            int32_t exp = m_b.ruleOf(
                {{m_b.bytes(e), GrammarBuilder::rule(expSign), GrammarBuilder::repeat(digit, 1, kMaxExpDigits)}, {}});
            seq.push_back(GrammarBuilder::rule(frac));
            seq.push_back(GrammarBuilder::rule(exp));
        }
        cached = m_b.ruleOf({seq});
        return cached;
    }

    int32_t object(const json& s, const std::string& path) {
        const json empty = json::object();
        const json& props = s.contains("properties") ? s["properties"] : empty;
        if (!props.is_object()) fail("'properties' must be an object", path + "/properties");
        std::vector<std::string> required;
        if (s.contains("required")) {
            if (!s["required"].is_array()) fail("'required' must be an array of strings", path + "/required");
            for (const auto& r : s["required"]) {
                if (!r.is_string()) fail("'required' must be an array of strings", path + "/required");
                required.push_back(r.get<std::string>());
            }
        }
        // Extra keys: false = none; true / absent = any value; a schema = values of that schema.
        bool extraAllowed = true;
        int32_t extraValue = -1;
        if (s.contains("additionalProperties")) {
            const json& ap = s["additionalProperties"];
            if (ap.is_boolean()) extraAllowed = ap.get<bool>();
            else extraValue = compile(ap, path + "/additionalProperties");
        }
        if (props.empty() && required.empty())
            return extraAllowed ? anyObject(extraValue >= 0 ? extraValue : anyValue())
                                : m_b.ruleOf({{m_b.byte('{'), ws(), m_b.byte('}')}});

        // The listed properties in order, then required names that are not listed (values of the
        // additionalProperties schema). Other extra keys are not generated (see grammar.h).
        struct Prop {
            std::string name;
            int32_t value;
            bool required;
        };
        std::vector<Prop> list;
        for (const auto& [name, sub] : props.items()) {
            bool req = std::find(required.begin(), required.end(), name) != required.end();
            list.push_back({name, compile(sub, path + "/properties/" + pointerEscape(name)), req});
        }
        for (const auto& name : required) {
            if (props.contains(name)) continue;
            if (!extraAllowed) fail("required property '" + name + "' is not allowed by additionalProperties: false", path + "/required");
            list.push_back({name, extraValue >= 0 ? extraValue : anyValue(), true});
        }
        // rest[i][comma]: members i.. of the list, `comma` = a member came before.
        const size_t n = list.size();
        std::vector<std::array<int32_t, 2>> rest(n + 1);
        rest[n] = {epsilon(), epsilon()};
        for (size_t i = n; i-- > 0;) {
            for (int comma = 0; comma < 2; ++comma) {
                std::vector<Item> member;
                if (comma) {
                    member.push_back(m_b.byte(','));
                    member.push_back(ws());
                }
                m_b.appendLiteral(member, json(list[i].name).dump());
                member.push_back(ws());
                member.push_back(m_b.byte(':'));
                member.push_back(ws());
                member.push_back(GrammarBuilder::rule(list[i].value));
                member.push_back(ws());
                member.push_back(GrammarBuilder::rule(rest[i + 1][1]));
                std::vector<std::vector<Item>> alts = {member};
                if (!list[i].required) alts.push_back({GrammarBuilder::rule(rest[i + 1][size_t(comma)])});
                rest[i][size_t(comma)] = m_b.ruleOf(std::move(alts));
            }
        }
        return m_b.ruleOf({{m_b.byte('{'), ws(), GrammarBuilder::rule(rest[0][0]), m_b.byte('}')}});
    }


    int32_t array(const json& s, const std::string& path) {
        std::vector<int32_t> prefix;
        const json* prefixList = nullptr;
        if (s.contains("prefixItems")) prefixList = &s["prefixItems"];
        else if (s.contains("items") && s["items"].is_array()) prefixList = &s["items"];  // draft-04 tuples
        if (prefixList) {
            if (!prefixList->is_array()) fail("'prefixItems' must be an array", path + "/prefixItems");
            const std::string p = path + (s.contains("prefixItems") ? "/prefixItems/" : "/items/");
            for (size_t i = 0; i < prefixList->size(); ++i) prefix.push_back(compile((*prefixList)[i], p + std::to_string(i)));
        }
        int32_t item = -1;  // -1: no items after the prefix
        if (s.contains("items") && !s["items"].is_array()) {
            const json& it = s["items"];
            if (!(it.is_boolean() && !it.get<bool>())) item = compile(it, path + "/items");
        } else if (!s.contains("items") || !prefixList) {
            item = anyValue();
        }
        const int32_t minItems = count(s, "minItems", 0, path), maxItems = count(s, "maxItems", kUnbounded, path);
        if (minItems > maxItems) fail("minItems > maxItems", path);
        if (item < 0 && minItems > int32_t(prefix.size())) fail("minItems exceeds the items allowed", path);
        return arrayOf(prefix, item, minItems, maxItems);
    }

    // '[' ws (value ws (',' ws value ws)*)? ']' with the first values from `prefix`.
    int32_t arrayOf(const std::vector<int32_t>& prefix, int32_t item, int32_t minItems, int32_t maxItems) {
        auto element = [&](int32_t value, bool comma) {
            std::vector<Item> e;
            if (comma) {
                e.push_back(m_b.byte(','));
                e.push_back(ws());
            }
            e.push_back(GrammarBuilder::rule(value));
            e.push_back(ws());
            return e;
        };
        // tail(i): elements i.. once the prefix is used up.
        auto tail = [&](int32_t i) -> int32_t {
            if (item < 0 || i >= maxItems) return epsilon();
            const int32_t lo = std::max(0, minItems - i);
            const int32_t hi = maxItems == kUnbounded ? kUnbounded : maxItems - i;
            if (i > 0) return m_b.ruleOf({{GrammarBuilder::repeat(m_b.ruleOf({element(item, true)}), lo, hi)}});
            std::vector<Item> first = element(item, false);
            first.push_back(GrammarBuilder::repeat(m_b.ruleOf({element(item, true)}), std::max(0, lo - 1),
                                                   hi == kUnbounded ? kUnbounded : hi - 1));
            std::vector<std::vector<Item>> alts = {first};
            if (lo == 0) alts.push_back({});
            return m_b.ruleOf(std::move(alts));
        };
        const int32_t k = std::min<int32_t>(int32_t(prefix.size()), maxItems);
        int32_t next = tail(k);
        for (int32_t i = k; i-- > 0;) {
            std::vector<Item> e = element(prefix[size_t(i)], i > 0);
            e.push_back(GrammarBuilder::rule(next));
            std::vector<std::vector<Item>> alts = {e};
            if (i >= minItems) alts.push_back({});
            next = m_b.ruleOf(std::move(alts));
        }
        return m_b.ruleOf({{m_b.byte('['), ws(), GrammarBuilder::rule(next), m_b.byte(']')}});
    }

    const json& m_root;
    GrammarOptions m_opt;
    GrammarBuilder m_b;
    std::map<std::string, int32_t> m_refs;
    std::map<std::pair<int32_t, int32_t>, int32_t> m_strings;
    int32_t m_any = -1, m_wsChar = -1, m_number = -1, m_integer = -1;
};

std::shared_ptr<const Grammar> finish(SchemaCompiler& c, int32_t root) {
    return std::make_shared<Grammar>(std::make_unique<GrammarData>(c.builder().finish(root)));
}

}  // namespace

std::shared_ptr<const Grammar> Grammar::fromJsonSchema(const nlohmann::json& schema, const GrammarOptions& options) {
    return fromJsonSchema(json::parse(schema.dump()), options);
}

std::shared_ptr<const Grammar> Grammar::fromJsonSchema(const json& schema, const GrammarOptions& options) {
    SchemaCompiler c(schema, options);
    int32_t root = c.compile(schema, "");
    return finish(c, root);
}

std::shared_ptr<const Grammar> Grammar::anyJsonObject(const GrammarOptions& options) {
    const json schema = json::object();
    SchemaCompiler c(schema, options);
    int32_t root = c.anyObject(c.anyValue());
    return finish(c, root);
}

std::shared_ptr<const Grammar> Grammar::anyJson(const GrammarOptions& options) {
    const json schema = json::object();
    SchemaCompiler c(schema, options);
    int32_t root = c.anyValue();
    return finish(c, root);
}

}  // namespace lmw::engine
