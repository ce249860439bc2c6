// How Jinja (running on Python) prints, compares and serializes values: str(), repr(), truthiness
// and json.dumps as Hugging Face's tojson calls it.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_internal.h"

namespace lmw::engine::jinja {

namespace {

// Python repr() of a float: shortest round-trip digits, always with a '.' or exponent.
std::string floatString(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
    std::string s(buf, end);
    // Python switches to exponent form at 1e16; to_chars shortest may pick either; normalize.
    const double a = std::fabs(d);
    if (a != 0.0 && (a >= 1e16 || a < 1e-4)) {
        auto [e2, ec2] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
        s.assign(buf, e2);
        // "1e+16" style: Python writes at least two exponent digits, which to_chars also does.
        return s;
    }
    auto [e3, ec3] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
    s.assign(buf, e3);
    if (s.find('.') == std::string::npos) s += ".0";
    return s;
}

void hexEscape(uint32_t unit, std::string& out) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\u%04x", unit);
    out += buf;
}

// json.dumps escapes '"', '\\' and the C0 controls; with ensure_ascii also DEL and every non-ASCII
// code point (as UTF-16 units).
void jsonString(const std::string& s, bool ensureAscii, std::string& out) {
    out += '"';
    for (size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = s[i];
        if (ensureAscii && c >= 0x7F) {
            const int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            uint32_t cp = len == 1 ? c : c & (0x3F >> (len - 1));
            for (int k = 1; k < len && i + 1 < s.size(); ++k) cp = (cp << 6) | (s[++i] & 0x3F);
            if (cp >= 0x10000) {
                hexEscape(0xD800 + ((cp - 0x10000) >> 10), out);
                hexEscape(0xDC00 + ((cp - 0x10000) & 0x3FF), out);
            } else {
                hexEscape(cp, out);
            }
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    hexEscape(c, out);
                } else {
                    out += char(c);
                }
        }
    }
    out += '"';
}

void dumpJson(const Value& v, const JsonFormat& f, int depth, std::string& out) {
    auto newline = [&](int d) {
        if (!f.indent) return;
        out += '\n';
        for (int i = 0; i < d; ++i) out += *f.indent;
    };
    switch (v.type()) {
        case Value::value_t::null:
        case Value::value_t::discarded: out += "null"; break;
        case Value::value_t::boolean: out += v.get<bool>() ? "true" : "false"; break;
        case Value::value_t::number_integer: out += std::to_string(v.get<int64_t>()); break;
        case Value::value_t::number_unsigned: out += std::to_string(v.get<uint64_t>()); break;
        case Value::value_t::number_float: {
            const double d = v.get<double>();
            out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : floatString(d);
            break;
        }
        case Value::value_t::string: jsonString(v.get_ref<const std::string&>(), f.ensureAscii, out); break;
        case Value::value_t::array: {
            if (v.empty()) {
                out += "[]";
                break;
            }
            out += '[';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += f.itemSeparator;
                newline(depth + 1);
                dumpJson(v[i], f, depth + 1, out);
            }
            newline(depth);
            out += ']';
            break;
        }
        case Value::value_t::object: {
            if (v.empty()) {
                out += "{}";
                break;
            }
            std::vector<std::pair<const std::string*, const Value*>> members;
            for (auto it = v.begin(); it != v.end(); ++it) members.emplace_back(&it.key(), &it.value());
            if (f.sortKeys)
                std::stable_sort(members.begin(), members.end(), [](auto& a, auto& b) { return *a.first < *b.first; });
            out += '{';
            for (size_t i = 0; i < members.size(); ++i) {
                if (i) out += f.itemSeparator;
                newline(depth + 1);
                jsonString(*members[i].first, f.ensureAscii, out);
                out += f.keySeparator;
                dumpJson(*members[i].second, f, depth + 1, out);
            }
            newline(depth);
            out += '}';
            break;
        }
        case Value::value_t::binary: out += "null"; break;
    }
}

std::string reprString(const std::string& s) {
    const bool useDouble = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = useDouble ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == q) { out += '\\'; out += c; }
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else out += c;
    }
    out += q;
    return out;
}

}  // namespace

bool truthy(const Value& v) {
    switch (v.type()) {
        case Value::value_t::null:
        case Value::value_t::discarded: return false;
        case Value::value_t::boolean: return v.get<bool>();
        case Value::value_t::number_integer: return v.get<int64_t>() != 0;
        case Value::value_t::number_unsigned: return v.get<uint64_t>() != 0;
        case Value::value_t::number_float: return v.get<double>() != 0.0;
        case Value::value_t::string: return !v.get_ref<const std::string&>().empty();
        case Value::value_t::array:
        case Value::value_t::object: return !v.empty();
        default: return false;
    }
}

bool equals(const Value& a, const Value& b) {
    if (isUndefined(a) || isUndefined(b)) return isUndefined(a) && isUndefined(b);
    // Python: True == 1 and 1 == 1.0
    auto num = [](const Value& v, double& d) {
        if (v.is_boolean()) d = v.get<bool>() ? 1.0 : 0.0;
        else if (v.is_number()) d = v.get<double>();
        else return false;
        return true;
    };
    double x, y;
    if (num(a, x) && num(b, y)) return x == y;
    // Python dicts compare without regard to key order (ordered_json's == would not).
    if (a.is_object() && b.is_object()) {
        if (a.size() != b.size()) return false;
        for (auto it = a.begin(); it != a.end(); ++it) {
            auto f = b.find(it.key());
            if (f == b.end() || !equals(it.value(), *f)) return false;
        }
        return true;
    }
    if (a.is_array() && b.is_array()) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
            if (!equals(a[i], b[i])) return false;
        return true;
    }
    return a == b;
}

std::string toString(const Value& v) {
    switch (v.type()) {
        case Value::value_t::discarded: return "";
        case Value::value_t::null: return "None";
        case Value::value_t::boolean: return v.get<bool>() ? "True" : "False";
        case Value::value_t::number_integer: return std::to_string(v.get<int64_t>());
        case Value::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
        case Value::value_t::number_float: return floatString(v.get<double>());
        case Value::value_t::string: return v.get<std::string>();
        default: return repr(v);
    }
}

std::string repr(const Value& v) {
    switch (v.type()) {
        case Value::value_t::string: return reprString(v.get_ref<const std::string&>());
        case Value::value_t::array: {
            std::string out = "[";
            bool first = true;
            for (const auto& x : v) {
                if (!first) out += ", ";
                first = false;
                out += repr(x);
            }
            return out + "]";
        }
        case Value::value_t::object: {
            std::string out = "{";
            bool first = true;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (!first) out += ", ";
                first = false;
                out += reprString(it.key()) + ": " + repr(it.value());
            }
            return out + "}";
        }
        case Value::value_t::discarded: return "Undefined";
        default: return toString(v);
    }
}

std::string toJson(const Value& v, const JsonFormat& format) {
    std::string out;
    dumpJson(v, format, 0, out);
    return out;
}

std::string typeName(const Value& v) {
    switch (v.type()) {
        case Value::value_t::discarded: return "undefined";
        case Value::value_t::null: return "none";
        case Value::value_t::boolean: return "bool";
        case Value::value_t::number_integer:
        case Value::value_t::number_unsigned: return "int";
        case Value::value_t::number_float: return "float";
        case Value::value_t::string: return "str";
        case Value::value_t::array: return "list";
        case Value::value_t::object: return "dict";
        default: return "value";
    }
}

std::vector<size_t> codepointOffsets(const std::string& s) {
    std::vector<size_t> offs;
    offs.reserve(s.size() + 1);
    for (size_t i = 0; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offs.push_back(i);
    offs.push_back(s.size());
    return offs;
}

size_t codepointCount(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

}  // namespace lmw::engine::jinja
