// The filters, tests and Python methods that chat templates use (Hugging Face runs them on
// Python, so string methods like .strip() and .startswith() appear alongside Jinja filters).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "lmw/error.h"
#include "tokenizer/jinja_internal.h"

namespace lmw::engine::jinja {

namespace {

// int(x) of a float: out of int64's range (or NaN) the cast is undefined; clamp as a safe choice.
Value truncToInt(double d) {
    if (std::isnan(d)) return int64_t(0);
    if (d >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
    if (d <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
    return int64_t(std::trunc(d));
}

[[noreturn]] void fail(const std::string& what) { throw Error(ErrorCode::InvalidArgument, what); }

const Value* kwarg(const Kwargs& kw, const char* name) {
    for (auto& [k, v] : kw)
        if (k == name) return &v;
    return nullptr;
}

// Positional argument i, else keyword `name`, else nullptr.
const Value* arg(const std::vector<Value>& args, size_t i, const Kwargs& kw, const char* name) {
    if (i < args.size()) return &args[i];
    return kwarg(kw, name);
}

const std::string& needString(const Value& v, const std::string& what) {
    if (!v.is_string()) fail(what + " expects a string, got " + typeName(v));
    return v.get_ref<const std::string&>();
}

std::string asciiUpper(std::string s) {
    for (auto& c : s) c = char(std::toupper((unsigned char)c));
    return s;
}
std::string asciiLower(std::string s) {
    for (auto& c : s) c = char(std::tolower((unsigned char)c));
    return s;
}
std::string capitalize(const std::string& s) {
    std::string out = asciiLower(s);
    if (!out.empty()) out[0] = char(std::toupper((unsigned char)out[0]));
    return out;
}
std::string title(const std::string& s) {
    std::string out = s;
    bool start = true;
    for (auto& c : out) {
        if (std::isalpha((unsigned char)c)) {
            c = start ? char(std::toupper((unsigned char)c)) : char(std::tolower((unsigned char)c));
            start = false;
        } else {
            start = true;
        }
    }
    return out;
}

std::string replaceAll(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    if (from.empty()) return s;
    std::string out;
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        size_t hit = s.find(from, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out += to;
        pos = hit + from.size();
        ++done;
    }
    out.append(s, pos);
    return out;
}

Value split(const std::string& s, const Value* sep, int64_t maxsplit) {
    Value out = Value::array();
    if (!sep || sep->is_null()) {
        // Python's split(): runs of whitespace, no empty strings.
        size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
            if (i >= s.size()) break;
            if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
                size_t end = s.size();
                while (end > i && std::isspace((unsigned char)s[end - 1])) --end;
                out.push_back(s.substr(i, end - i));
                break;
            }
            size_t j = i;
            while (j < s.size() && !std::isspace((unsigned char)s[j])) ++j;
            out.push_back(s.substr(i, j - i));
            i = j;
        }
        return out;
    }
    const std::string& d = needString(*sep, "split");
    if (d.empty()) fail("split: empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
        size_t hit = s.find(d, pos);
        if (hit == std::string::npos) break;
        out.push_back(s.substr(pos, hit - pos));
        pos = hit + d.size();
    }
    out.push_back(s.substr(pos));
    return out;
}

Value toList(const Value& v) {
    if (v.is_array()) return v;
    Value out = Value::array();
    if (v.is_object()) {
        for (auto it = v.begin(); it != v.end(); ++it) out.push_back(it.key());
    } else if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        auto offs = codepointOffsets(s);
        for (size_t i = 0; i + 1 < offs.size(); ++i) out.push_back(s.substr(offs[i], offs[i + 1] - offs[i]));
    } else if (!isUndefined(v) && !v.is_null()) {
        fail("'" + typeName(v) + "' object is not iterable");
    }
    return out;
}

Value items(const Value& v) {
    Value out = Value::array();
    if (isUndefined(v) || v.is_null()) return out;
    if (!v.is_object()) fail("items expects a mapping, got " + typeName(v));
    for (auto it = v.begin(); it != v.end(); ++it) out.push_back(Value::array({it.key(), it.value()}));
    return out;
}

// Attribute lookup used by map/selectattr/sort: "a.b" walks nested mappings.
Value attribute(const Value& v, const std::string& path) {
    Value cur = v;
    size_t pos = 0;
    while (pos <= path.size()) {
        size_t dot = path.find('.', pos);
        std::string key = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        if (cur.is_object() && cur.contains(key)) cur = cur[key];
        else if (cur.is_array() && !key.empty() && std::all_of(key.begin(), key.end(), ::isdigit) &&
                 key.size() < 10 && std::stoul(key) < cur.size())  // longer would overflow stoul
            cur = cur[std::stoul(key)];
        else return undefined();
        if (dot == std::string::npos) break;
        pos = dot + 1;
    }
    return cur;
}

bool lessThan(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) return a.get<double>() < b.get<double>();
    if (a.is_string() && b.is_string()) return a.get_ref<const std::string&>() < b.get_ref<const std::string&>();
    fail("cannot compare " + typeName(a) + " and " + typeName(b));
}

double toNumber(const Value& v, const std::string& what) {
    if (v.is_number()) return v.get<double>();
    if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
    fail(what + " expects a number, got " + typeName(v));
}

// select / reject / selectattr / rejectattr share this: keep items whose test result == keep.
Value filterBy(const Value& seq, const std::string* attr, const std::vector<Value>& args, size_t testArg, bool keep) {
    Value out = Value::array();
    std::string test;
    std::vector<Value> testArgs;
    if (args.size() > testArg) {
        test = needString(args[testArg], "select test name");
        testArgs.assign(args.begin() + testArg + 1, args.end());
    }
    for (const auto& item : toList(seq)) {
        Value x = attr ? attribute(item, *attr) : item;
        const bool pass = test.empty() ? truthy(x) : applyTest(test, x, testArgs);
        if (pass == keep) out.push_back(item);
    }
    return out;
}

// transformers replaces Jinja's tojson with tojson(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False) -> json.dumps(...): its positional order, its defaults.
JsonFormat tojsonFormat(const std::vector<Value>& args, const Kwargs& kw) {
    JsonFormat f;
    if (const Value* a = arg(args, 0, kw, "ensure_ascii")) f.ensureAscii = truthy(*a);
    if (const Value* ind = arg(args, 1, kw, "indent"); ind && !ind->is_null()) {
        if (ind->is_string()) f.indent = ind->get<std::string>();
        else if (ind->is_number_integer()) f.indent = std::string(size_t(std::max<int64_t>(0, ind->get<int64_t>())), ' ');
        else fail("tojson: indent must be an integer or a string, got " + typeName(*ind));
        f.itemSeparator = ",";
    }
    if (const Value* sep = arg(args, 2, kw, "separators"); sep && !sep->is_null()) {
        if (!sep->is_array() || sep->size() != 2 || !(*sep)[0].is_string() || !(*sep)[1].is_string())
            fail("tojson: separators must be a pair of strings");
        f.itemSeparator = (*sep)[0].get<std::string>();
        f.keySeparator = (*sep)[1].get<std::string>();
    }
    if (const Value* sk = arg(args, 3, kw, "sort_keys")) f.sortKeys = truthy(*sk);
    return f;
}

}  // namespace

std::string stripChars(const std::string& s, const Value& chars, char which) {
    auto strip = [&](unsigned char c) {
        if (chars.is_string()) return chars.get_ref<const std::string&>().find(char(c)) != std::string::npos;
        return bool(std::isspace(c));
    };
    size_t b = 0, e = s.size();
    if (which != 'r')
        while (b < e && strip(s[b])) ++b;
    if (which != 'l')
        while (e > b && strip(s[e - 1])) --e;
    return s.substr(b, e - b);
}

Value applyFilter(const std::string& name, const Value& v, const std::vector<Value>& args, const Kwargs& kw) {
    if (name == "trim") return stripChars(toString(v), args.empty() ? Value() : args[0], 'b');  // str(value).strip()
    if (name == "length" || name == "count") {
        if (v.is_string()) return codepointCount(v.get_ref<const std::string&>());
        if (v.is_array() || v.is_object()) return v.size();
        if (isUndefined(v) || v.is_null()) return 0;
        fail("object of type '" + typeName(v) + "' has no len()");
    }
    if (name == "tojson") return toJson(v, tojsonFormat(args, kw));
    if (name == "upper") return asciiUpper(toString(v));
    if (name == "lower") return asciiLower(toString(v));
    if (name == "capitalize") return capitalize(toString(v));
    if (name == "title") return title(toString(v));
    if (name == "string") return toString(v);
    if (name == "safe" || name == "e" || name == "escape") return v;  // no HTML in chat templates
    if (name == "default" || name == "d") {
        const Value* def = arg(args, 0, kw, "default_value");
        const Value* boolean = arg(args, 1, kw, "boolean");
        const bool useDefault = isUndefined(v) || (boolean && truthy(*boolean) && !truthy(v));
        return useDefault ? (def ? *def : Value("")) : v;
    }
    if (name == "first" || name == "last") {
        Value list = toList(v);
        if (list.empty()) return undefined();
        return name == "first" ? list.front() : list.back();
    }
    if (name == "items") return items(v);
    if (name == "list") return toList(v);
    if (name == "reverse") {
        if (v.is_string()) {
            Value chars = toList(v);
            std::string out;
            for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->get<std::string>();
            return out;
        }
        Value list = toList(v);
        std::reverse(list.begin(), list.end());
        return list;
    }
    if (name == "join") {
        const Value* sep = arg(args, 0, kw, "d");
        const Value* attr = arg(args, 1, kw, "attribute");
        std::string out;
        bool first = true;
        for (const auto& x : toList(v)) {
            if (!first && sep) out += toString(*sep);
            first = false;
            out += toString(attr ? attribute(x, toString(*attr)) : x);
        }
        return out;
    }
    if (name == "int") {
        const Value* def = arg(args, 0, kw, "default");
        if (v.is_number_integer() || v.is_number_unsigned()) return v;
        if (v.is_number_float()) return truncToInt(v.get<double>());
        if (v.is_boolean()) return int64_t(v.get<bool>());
        if (v.is_string()) {
            try {
                size_t used = 0;
                const std::string s = stripChars(v.get<std::string>(), Value(), 'b');
                double d = std::stod(s, &used);
                if (used == s.size()) return truncToInt(d);
            } catch (...) {
            }
        }
        return def ? *def : Value(0);
    }
    if (name == "float") {
        const Value* def = arg(args, 0, kw, "default");
        if (v.is_number()) return v.get<double>();
        if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
        if (v.is_string()) {
            try {
                size_t used = 0;
                const std::string s = stripChars(v.get<std::string>(), Value(), 'b');
                double d = std::stod(s, &used);
                if (used == s.size()) return d;
            } catch (...) {
            }
        }
        return def ? *def : Value(0.0);
    }
    if (name == "abs") {
        if (v.is_number_integer()) return std::llabs(v.get<int64_t>());
        return std::fabs(toNumber(v, "abs"));
    }
    if (name == "round") {
        const Value* prec = arg(args, 0, kw, "precision");
        const double scale = std::pow(10.0, prec ? toNumber(*prec, "round") : 0.0);
        return std::round(toNumber(v, "round") * scale) / scale;
    }
    if (name == "replace") {
        if (args.size() < 2) fail("replace expects two arguments");
        const Value* count = arg(args, 2, kw, "count");
        return replaceAll(toString(v), toString(args[0]), toString(args[1]),
                          count && count->is_number() ? count->get<int64_t>() : -1);
    }
    if (name == "unique") {
        Value out = Value::array();
        for (const auto& x : toList(v))
            if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equals(x, y); })) out.push_back(x);
        return out;
    }
    if (name == "map") {
        Value out = Value::array();
        if (const Value* attr = kwarg(kw, "attribute")) {
            const Value* def = kwarg(kw, "default");
            for (const auto& x : toList(v)) {
                Value a = attribute(x, toString(*attr));
                out.push_back(isUndefined(a) && def ? *def : a);
            }
            return out;
        }
        if (args.empty()) fail("map expects a filter name or attribute=");
        const std::string f = needString(args[0], "map");
        std::vector<Value> rest(args.begin() + 1, args.end());
        for (const auto& x : toList(v)) out.push_back(applyFilter(f, x, rest, {}));
        return out;
    }
    if (name == "select") return filterBy(v, nullptr, args, 0, true);
    if (name == "reject") return filterBy(v, nullptr, args, 0, false);
    if (name == "selectattr" || name == "rejectattr") {
        if (args.empty()) fail(name + " expects an attribute name");
        const std::string attr = toString(args[0]);
        return filterBy(v, &attr, args, 1, name == "selectattr");
    }
    if (name == "sort" || name == "dictsort") {
        // sort(reverse=False, case_sensitive=False, attribute=None);
        // dictsort(case_sensitive=False, by='key', reverse=False). Python's sorted() is stable
        // in both directions.
        const bool dict = name == "dictsort";
        const Value* rev = arg(args, dict ? 2 : 0, kw, "reverse");
        const Value* cs = arg(args, dict ? 0 : 1, kw, "case_sensitive");
        const Value* attr = dict ? nullptr : arg(args, 2, kw, "attribute");
        const Value* by = dict ? arg(args, 1, kw, "by") : nullptr;
        const bool reverse = rev && truthy(*rev), caseSensitive = cs && truthy(*cs);
        const size_t field = by && toString(*by) == "value" ? 1 : 0;
        auto key = [&](const Value& x) {
            Value k = dict ? x[field] : attr ? attribute(x, toString(*attr)) : x;
            return !caseSensitive && k.is_string() ? Value(asciiLower(k.get<std::string>())) : k;
        };
        Value list = dict ? items(v) : toList(v);
        std::stable_sort(list.begin(), list.end(), [&](const Value& a, const Value& b) {
            return reverse ? lessThan(key(b), key(a)) : lessThan(key(a), key(b));
        });
        return list;
    }
    if (name == "indent") {
        const Value* width = arg(args, 0, kw, "width");
        const Value* firstLine = arg(args, 1, kw, "first");
        const std::string pad(width && width->is_number() ? size_t(width->get<int64_t>()) : 4, ' ');
        std::string s = toString(v), out = firstLine && truthy(*firstLine) ? pad : "";
        for (char c : s) {
            out += c;
            if (c == '\n') out += pad;
        }
        return out;
    }
    fail("unknown filter '" + name + "'");
}

bool applyTest(const std::string& name, const Value& v, const std::vector<Value>& args) {
    auto need1 = [&]() -> const Value& {
        if (args.empty()) fail("test '" + name + "' expects an argument");
        return args[0];
    };
    if (name == "defined") return !isUndefined(v);
    if (name == "undefined") return isUndefined(v);
    if (name == "none") return v.is_null();
    if (name == "true") return v.is_boolean() && v.get<bool>();
    if (name == "false") return v.is_boolean() && !v.get<bool>();
    if (name == "boolean") return v.is_boolean();
    if (name == "string") return v.is_string();
    if (name == "number") return v.is_number();
    if (name == "integer") return v.is_number_integer() || v.is_number_unsigned();
    if (name == "float") return v.is_number_float();
    if (name == "mapping") return v.is_object();
    if (name == "sequence") return v.is_array() || v.is_string();
    if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
    if (name == "callable") return false;
    if (name == "even" || name == "odd") {
        if (!v.is_number_integer()) return false;
        return (v.get<int64_t>() % 2 == 0) == (name == "even");
    }
    if (name == "divisibleby") {
        const int64_t d = need1().get<int64_t>();
        return d != 0 && v.is_number_integer() && v.get<int64_t>() % d == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") return equals(v, need1());
    if (name == "ne" || name == "!=") return !equals(v, need1());
    if (name == "lt" || name == "lessthan" || name == "<") return lessThan(v, need1());
    if (name == "gt" || name == "greaterthan" || name == ">") return lessThan(need1(), v);
    if (name == "le" || name == "<=") return !lessThan(need1(), v);
    if (name == "ge" || name == ">=") return !lessThan(v, need1());
    if (name == "in") {
        const Value& c = need1();
        if (c.is_string() && v.is_string())
            return c.get_ref<const std::string&>().find(v.get_ref<const std::string&>()) != std::string::npos;
        if (c.is_object() && v.is_string()) return c.contains(v.get<std::string>());
        if (c.is_array()) return std::any_of(c.begin(), c.end(), [&](const Value& x) { return equals(x, v); });
        return false;
    }
    if (name == "lower") return v.is_string() && asciiLower(v.get<std::string>()) == v.get<std::string>();
    if (name == "upper") return v.is_string() && asciiUpper(v.get<std::string>()) == v.get<std::string>();
    fail("unknown test '" + name + "'");
}

Value callMethod(const Value& obj, const std::string& name, const std::vector<Value>& args, const Kwargs& kw) {
    if (obj.is_string()) {
        const std::string& s = obj.get_ref<const std::string&>();
        const Value none;
        if (name == "strip") return stripChars(s, args.empty() ? none : args[0], 'b');
        if (name == "lstrip") return stripChars(s, args.empty() ? none : args[0], 'l');
        if (name == "rstrip") return stripChars(s, args.empty() ? none : args[0], 'r');
        if (name == "upper") return asciiUpper(s);
        if (name == "lower") return asciiLower(s);
        if (name == "title") return title(s);
        if (name == "capitalize") return capitalize(s);
        if (name == "startswith" || name == "endswith") {
            if (args.empty()) fail(name + " expects an argument");
            auto check = [&](const Value& p) {
                const std::string& x = needString(p, name);
                if (x.size() > s.size()) return false;
                return name == "startswith" ? s.compare(0, x.size(), x) == 0
                                            : s.compare(s.size() - x.size(), x.size(), x) == 0;
            };
            if (args[0].is_array()) return std::any_of(args[0].begin(), args[0].end(), check);
            return check(args[0]);
        }
        if (name == "split") {
            const Value* maxsplit = arg(args, 1, kw, "maxsplit");
            return split(s, arg(args, 0, kw, "sep"), maxsplit ? maxsplit->get<int64_t>() : -1);
        }
        if (name == "replace") {
            if (args.size() < 2) fail("replace expects two arguments");
            return replaceAll(s, needString(args[0], "replace"), needString(args[1], "replace"),
                              args.size() > 2 ? args[2].get<int64_t>() : -1);
        }
        if (name == "find") {
            if (args.empty()) fail("find expects an argument");
            size_t hit = s.find(needString(args[0], "find"));
            return hit == std::string::npos ? int64_t(-1) : int64_t(codepointCount(s.substr(0, hit)));
        }
        if (name == "count") {
            if (args.empty()) fail("count expects an argument");
            const std::string& x = needString(args[0], "count");
            if (x.empty()) return int64_t(codepointCount(s) + 1);
            int64_t n = 0;
            for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
            return n;
        }
        if (name == "join") {
            std::string out;
            bool first = true;
            for (const auto& x : toList(args.empty() ? Value::array() : args[0])) {
                if (!first) out += s;
                first = false;
                out += needString(x, "join");
            }
            return out;
        }
    }
    if (obj.is_object()) {
        if (name == "items") return items(obj);
        if (name == "keys") return toList(obj);
        if (name == "values") {
            Value out = Value::array();
            for (const auto& x : obj) out.push_back(x);
            return out;
        }
        if (name == "get") {
            if (args.empty()) fail("get expects a key");
            if (args[0].is_string() && obj.contains(args[0].get<std::string>())) return obj[args[0].get<std::string>()];
            return args.size() > 1 ? args[1] : Value();
        }
    }
    fail("'" + typeName(obj) + "' object has no method '" + name + "'");
}

}  // namespace lmw::engine::jinja
