// Jinja evaluator: walks the syntax tree with a stack of scopes. A for-loop body gets its own
// scope (so "set" inside a loop does not leak out, as in Jinja); namespace() objects are the way
// templates carry state out of a loop, so "set ns.x = ..." updates the scope that owns ns.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <unordered_map>

#include "lmw/error.h"
#include "tokenizer/jinja_internal.h"

namespace lmw::engine {

namespace jinja {

namespace {
// The longest string `str * n` may build (a template that asks for more is broken or hostile).
constexpr uint64_t kMaxRepeatBytes = uint64_t(16) << 20;

enum class Flow { Normal, Break, Continue };

class Renderer {
public:
    Renderer(const Template& t, const Value& context) : m_t(t) {
        if (!context.is_object() && !context.is_null())
            throw Error(ErrorCode::InvalidArgument, "chat template context must be a JSON object");
        m_scopes.push_back(context.is_object() ? context : Value::object());
    }

    std::string run() {
        std::string out;
        exec(m_t.body, out);
        return out;
    }

private:
    const Template& m_t;
    std::vector<Value> m_scopes;
    std::unordered_map<std::string, const Node*> m_macros;
    int m_depth = 0;

    [[noreturn]] void fail(size_t pos, const std::string& what) const {
        throw Error(ErrorCode::InvalidArgument, "chat template error at " + describePosition(m_t.source, pos) + ": " + what);
    }

    // ---- scopes ----
    const Value* lookup(const std::string& name) const {
        for (auto it = m_scopes.rbegin(); it != m_scopes.rend(); ++it)
            if (auto f = it->find(name); f != it->end()) return &*f;
        return nullptr;
    }
    Value* lookupMutable(const std::string& name) {
        for (auto it = m_scopes.rbegin(); it != m_scopes.rend(); ++it)
            if (auto f = it->find(name); f != it->end()) return &*f;
        return nullptr;
    }
    void assign(const std::vector<std::string>& targets, const Value& v, size_t pos) {
        Value& scope = m_scopes.back();
        if (targets.size() == 1) {
            scope[targets[0]] = v;
            return;
        }
        if (!v.is_array() || v.size() != targets.size())
            fail(pos, "cannot unpack " + typeName(v) + " into " + std::to_string(targets.size()) + " names");
        for (size_t i = 0; i < targets.size(); ++i) scope[targets[i]] = v[i];
    }

    // ---- statements ----
    Flow exec(const Body& body, std::string& out) {
        for (const auto& n : body) {
            Flow f = execNode(*n, out);
            if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
    }

    Flow execNode(const Node& n, std::string& out) {
        switch (n.kind) {
            case Node::Text: out += n.text; return Flow::Normal;
            case Node::Output: out += toString(eval(*n.expr)); return Flow::Normal;
            case Node::If:
                for (const auto& [cond, body] : n.branches)
                    if (truthy(eval(*cond))) return exec(body, out);
                return exec(n.elseBody, out);
            case Node::For: return execFor(n, out);
            case Node::Set: {
                Value v = eval(*n.expr);
                if (!n.attr.empty()) {
                    Value* target = lookupMutable(n.targets[0]);
                    if (!target || !target->is_object())
                        fail(n.pos, "cannot set attribute '" + n.attr + "' on '" + n.targets[0] + "' (not a namespace)");
                    (*target)[n.attr] = std::move(v);
                } else {
                    assign(n.targets, v, n.pos);
                }
                return Flow::Normal;
            }
            case Node::SetBlock: {
                std::string captured;
                exec(n.body, captured);
                m_scopes.back()[n.targets[0]] = captured;
                return Flow::Normal;
            }
            case Node::Macro: m_macros[n.targets[0]] = &n; return Flow::Normal;
            case Node::Break: return Flow::Break;
            case Node::Continue: return Flow::Continue;
        }
        return Flow::Normal;
    }

    Value iterable(const Value& v, size_t pos) {
        if (v.is_array()) return v;
        if (isUndefined(v) || v.is_null()) return Value::array();
        if (v.is_object() || v.is_string()) return applyFilter("list", v, {}, {});
        fail(pos, "'" + typeName(v) + "' object is not iterable");
    }

    Flow execFor(const Node& n, std::string& out) {
        Value seq = iterable(eval(*n.expr), n.expr->pos);
        if (n.filter) {
            Value kept = Value::array();
            for (const auto& item : seq) {
                m_scopes.push_back(Value::object());
                assign(n.targets, item, n.pos);
                const bool keep = truthy(eval(*n.filter));
                m_scopes.pop_back();
                if (keep) kept.push_back(item);
            }
            seq = std::move(kept);
        }
        const size_t len = seq.size();
        for (size_t i = 0; i < len; ++i) {
            m_scopes.push_back(Value::object());
            assign(n.targets, seq[i], n.pos);
            Value loop = {{"index", i + 1}, {"index0", i}, {"revindex", len - i}, {"revindex0", len - i - 1},
                          {"first", i == 0}, {"last", i + 1 == len}, {"length", len}, {"depth", 1}, {"depth0", 0}};
            if (i > 0) loop["previtem"] = seq[i - 1];
            if (i + 1 < len) loop["nextitem"] = seq[i + 1];
            m_scopes.back()["loop"] = std::move(loop);
            Flow f = exec(n.body, out);
            m_scopes.pop_back();
            if (f == Flow::Break) break;
        }
        if (len == 0) return exec(n.elseBody, out);
        return Flow::Normal;
    }

    // ---- expressions ----
    static bool isInt(const Value& v) { return v.is_number_integer(); }

    Value getAttr(const Value& obj, const std::string& name) const {
        if (obj.is_object()) {
            auto f = obj.find(name);
            return f != obj.end() ? *f : undefined();
        }
        if (obj.is_array() && !name.empty() && name.size() < 10 && std::all_of(name.begin(), name.end(), ::isdigit)) {
            size_t i = std::stoul(name);
            return i < obj.size() ? obj[i] : undefined();
        }
        return undefined();
    }

    Value getIndex(const Value& obj, const Value& key) const {
        if (obj.is_object()) {
            if (!key.is_string()) return undefined();
            auto f = obj.find(key.get<std::string>());
            return f != obj.end() ? *f : undefined();
        }
        if ((obj.is_array() || obj.is_string()) && isInt(key)) {
            std::vector<size_t> offs;
            int64_t n;
            if (obj.is_string()) {
                offs = codepointOffsets(obj.get_ref<const std::string&>());
                n = int64_t(offs.size()) - 1;
            } else {
                n = int64_t(obj.size());
            }
            int64_t i = key.get<int64_t>();
            if (i < 0) i += n;
            if (i < 0 || i >= n) return undefined();
            if (obj.is_array()) return obj[size_t(i)];
            return obj.get_ref<const std::string&>().substr(offs[i], offs[i + 1] - offs[i]);
        }
        return undefined();
    }

    Value slice(const Value& obj, const Expr& e) {
        auto intOr = [&](const ExprPtr& x, std::optional<int64_t> def) -> std::optional<int64_t> {
            if (!x) return def;
            Value v = eval(*x);
            if (v.is_null() || isUndefined(v)) return def;
            if (!isInt(v)) fail(x->pos, "slice indices must be integers");
            return v.get<int64_t>();
        };
        const int64_t step = intOr(e.step, 1).value();
        if (step == 0) fail(e.pos, "slice step cannot be zero");
        std::vector<size_t> offs;
        int64_t n;
        if (obj.is_string()) {
            offs = codepointOffsets(obj.get_ref<const std::string&>());
            n = int64_t(offs.size()) - 1;
        } else if (obj.is_array()) {
            n = int64_t(obj.size());
        } else if (isUndefined(obj) || obj.is_null()) {
            return undefined();
        } else {
            fail(e.pos, "'" + typeName(obj) + "' object is not subscriptable");
        }
        // Python's slice.indices()
        auto clampIdx = [&](std::optional<int64_t> v, int64_t def, int64_t lo, int64_t hi) {
            if (!v) return def;
            int64_t x = *v < 0 ? *v + n : *v;
            return std::clamp(x, lo, hi);
        };
        int64_t start, stop;
        if (step > 0) {
            start = clampIdx(intOr(e.b, std::nullopt), 0, 0, n);
            stop = clampIdx(intOr(e.c, std::nullopt), n, 0, n);
        } else {
            start = clampIdx(intOr(e.b, std::nullopt), n - 1, -1, n - 1);
            stop = clampIdx(intOr(e.c, std::nullopt), -1, -1, n - 1);
        }
        Value out = obj.is_string() ? Value("") : Value::array();
        std::string s;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (obj.is_array()) out.push_back(obj[size_t(i)]);
            else s.append(obj.get_ref<const std::string&>(), offs[i], offs[i + 1] - offs[i]);
        }
        if (obj.is_string()) out = s;
        return out;
    }

    void evalArgs(const Expr& e, std::vector<Value>& args, Kwargs& kwargs) {
        for (const auto& a : e.args) args.push_back(eval(*a));
        for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v));
    }

    // The globals transformers' environment has: Jinja's own and raise_exception, strftime_now.
    bool isFunction(const std::string& name) const {
        static const char* const kGlobals[] = {"raise_exception", "strftime_now", "namespace", "dict", "range"};
        if (m_macros.count(name)) return true;
        return std::any_of(std::begin(kGlobals), std::end(kGlobals), [&](const char* g) { return name == g; });
    }

    Value callFunction(const Expr& e, const std::string& name) {
        std::vector<Value> args;
        Kwargs kwargs;
        evalArgs(e, args, kwargs);
        if (auto m = m_macros.find(name); m != m_macros.end()) return callMacro(*m->second, args, kwargs, e.pos);
        if (name == "raise_exception") {
            // The template's own message, as Hugging Face's TemplateError shows it.
            throw Error(ErrorCode::InvalidArgument, args.empty() ? "chat template raised an exception" : toString(args[0]));
        }
        if (name == "namespace" || name == "dict") {
            Value obj = Value::object();
            for (const auto& a : args)
                if (a.is_object()) obj.update(a);
            for (const auto& [k, v] : kwargs) obj[k] = v;
            return obj;
        }
        if (name == "range") {
            int64_t start = 0, stop = 0, step = 1;
            for (const auto& a : args)
                if (!isInt(a)) fail(e.pos, "range expects integers");
            if (args.size() == 1) stop = args[0].get<int64_t>();
            else if (args.size() >= 2) {
                start = args[0].get<int64_t>();
                stop = args[1].get<int64_t>();
                if (args.size() >= 3) step = args[2].get<int64_t>();
            }
            if (step == 0) fail(e.pos, "range step cannot be zero");
            Value out = Value::array();
            for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
                out.push_back(i);
                if (out.size() > 1000000) fail(e.pos, "range too large");
                if (__builtin_add_overflow(i, step, &i)) break;  // past the 64-bit range: past stop too
            }
            return out;
        }
        if (name == "strftime_now") {
            // Llama 3.1 style templates print today's date.
            const std::time_t now = std::time(nullptr);
            std::tm tm{};
            localtime_r(&now, &tm);
            char buf[256];
            const std::string fmt = args.empty() ? "%Y-%m-%d" : toString(args[0]);
            size_t len = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
            return std::string(buf, len);
        }
        fail(e.pos, "unknown function '" + name + "'");
    }

    Value callMacro(const Node& m, const std::vector<Value>& args, const Kwargs& kwargs, size_t pos) {
        if (++m_depth > 64) fail(pos, "macro recursion too deep");
        Value scope = Value::object();
        for (size_t i = 1; i < m.targets.size(); ++i) {
            const std::string& param = m.targets[i];
            Value v = undefined();
            if (i - 1 < args.size()) v = args[i - 1];
            else if (m.defaults[i - 1]) v = eval(*m.defaults[i - 1]);
            for (const auto& [k, x] : kwargs)
                if (k == param) v = x;
            scope[param] = v;
        }
        m_scopes.push_back(std::move(scope));
        std::string out;
        exec(m.body, out);
        m_scopes.pop_back();
        --m_depth;
        return out;
    }

    Value arith(const std::string& op, const Value& a, const Value& b, size_t pos) {
        auto bad = [&]() -> Value {
            fail(pos, "unsupported operand types for " + op + ": '" + typeName(a) + "' and '" + typeName(b) + "'");
        };
        if (op == "+") {
            if (a.is_string() && b.is_string()) return a.get<std::string>() + b.get<std::string>();
            if (a.is_array() && b.is_array()) {
                Value out = a;
                for (const auto& x : b) out.push_back(x);
                return out;
            }
        }
        if (op == "*") {
            const Value* s = a.is_string() ? &a : b.is_string() ? &b : nullptr;
            const Value* k = a.is_string() ? &b : &a;
            if (s && isInt(*k)) {
                const std::string& unit = s->get_ref<const std::string&>();
                const int64_t times = k->get<int64_t>();
                if (times > 0 && unit.size() > kMaxRepeatBytes / uint64_t(times)) fail(pos, "string repetition too large");
                std::string out;
                for (int64_t i = 0; i < times; ++i) out += unit;
                return out;
            }
        }
        if (!(a.is_number() || a.is_boolean()) || !(b.is_number() || b.is_boolean())) return bad();
        auto num = [](const Value& v) { return v.is_boolean() ? double(v.get<bool>()) : v.get<double>(); };
        auto ival = [](const Value& v) { return v.is_boolean() ? int64_t(v.get<bool>()) : v.get<int64_t>(); };
        const bool ints = (isInt(a) || a.is_boolean()) && (isInt(b) || b.is_boolean());
        if (op == "/") {
            if (num(b) == 0) fail(pos, "division by zero");
            return num(a) / num(b);
        }
        if (op == "**") {
            if (ints && ival(b) >= 0) return int64_t(std::llround(std::pow(num(a), num(b))));
            return std::pow(num(a), num(b));
        }
        if (ints) {
            // Python's integers do not overflow; past 64 bits the result is the float Python's would
            // convert to (a template never needs such numbers, but must not misbehave on them).
            const int64_t x = ival(a), y = ival(b);
            int64_t r64 = 0;
            if (op == "+") return __builtin_add_overflow(x, y, &r64) ? Value(double(x) + double(y)) : Value(r64);
            if (op == "-") return __builtin_sub_overflow(x, y, &r64) ? Value(double(x) - double(y)) : Value(r64);
            if (op == "*") return __builtin_mul_overflow(x, y, &r64) ? Value(double(x) * double(y)) : Value(r64);
            if (y == 0) fail(pos, "division by zero");
            if (y == -1 && x == std::numeric_limits<int64_t>::min())
                return op == "//" ? Value(-double(x)) : Value(int64_t(0));
            // Python floors (the sign follows the divisor).
            int64_t q = x / y, r = x % y;
            if (r != 0 && ((r < 0) != (y < 0))) {
                --q;
                r += y;
            }
            return op == "//" ? Value(q) : Value(r);
        }
        const double x = num(a), y = num(b);
        if (op == "+") return x + y;
        if (op == "-") return x - y;
        if (op == "*") return x * y;
        if (y == 0) fail(pos, "division by zero");
        if (op == "//") return std::floor(x / y);
        return x - std::floor(x / y) * y;
    }

    bool less(const Value& a, const Value& b, size_t pos) {
        if ((a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean())) {
            auto num = [](const Value& v) { return v.is_boolean() ? double(v.get<bool>()) : v.get<double>(); };
            return num(a) < num(b);
        }
        if (a.is_string() && b.is_string()) return a.get_ref<const std::string&>() < b.get_ref<const std::string&>();
        fail(pos, "cannot compare '" + typeName(a) + "' and '" + typeName(b) + "'");
    }

    template <class F>
    Value withPosition(size_t pos, F&& f) {
        try {
            return f();
        } catch (const Error& err) {
            throw Error(err.code(), std::string(err.what()) + " (" + describePosition(m_t.source, pos) + ")");
        }
    }

    Value eval(const Expr& e) {
        switch (e.kind) {
            case Expr::Literal: return e.literal;
            case Expr::Name: {
                const Value* v = lookup(e.name);
                return v ? *v : undefined();
            }
            case Expr::Attr: return getAttr(eval(*e.a), e.name);
            case Expr::Index: return getIndex(eval(*e.a), eval(*e.b));
            case Expr::Slice: return slice(eval(*e.a), e);
            case Expr::Call: {
                if (e.a->kind == Expr::Name) return callFunction(e, e.a->name);
                if (e.a->kind == Expr::Attr) {
                    Value obj = eval(*e.a->a);
                    std::vector<Value> args;
                    Kwargs kwargs;
                    evalArgs(e, args, kwargs);
                    const std::string& method = e.a->name;
                    if (method == "cycle" && obj.is_object() && obj.contains("index0") && !args.empty())
                        return args[obj["index0"].get<size_t>() % args.size()];
                    return withPosition(e.pos, [&] { return callMethod(obj, method, args, kwargs); });
                }
                fail(e.pos, "this expression cannot be called");
            }
            case Expr::Filter: {
                Value v = eval(*e.a);
                std::vector<Value> args;
                Kwargs kwargs;
                evalArgs(e, args, kwargs);
                return withPosition(e.pos, [&] { return applyFilter(e.name, v, args, kwargs); });
            }
            case Expr::Test: {
                // Functions are not values here, yet templates ask "strftime_now is defined".
                if (e.a->kind == Expr::Name && !lookup(e.a->name) && isFunction(e.a->name) &&
                    (e.name == "defined" || e.name == "undefined" || e.name == "callable"))
                    return (e.name != "undefined") != e.negate;
                Value v = eval(*e.a);
                std::vector<Value> args;
                Kwargs kwargs;
                evalArgs(e, args, kwargs);
                bool r = withPosition(e.pos, [&] { return Value(applyTest(e.name, v, args)); }).get<bool>();
                return e.negate ? !r : r;
            }
            case Expr::Unary: {
                Value v = eval(*e.a);
                if (e.name == "not") return !truthy(v);
                if (e.name == "-") {
                    if (isInt(v)) return -v.get<int64_t>();
                    if (v.is_number()) return -v.get<double>();
                    fail(e.pos, "bad operand type for unary -: '" + typeName(v) + "'");
                }
                return v;
            }
            case Expr::Binary: {
                const std::string& op = e.name;
                if (op == "and") {
                    Value l = eval(*e.a);
                    return truthy(l) ? eval(*e.b) : l;
                }
                if (op == "or") {
                    Value l = eval(*e.a);
                    return truthy(l) ? l : eval(*e.b);
                }
                Value l = eval(*e.a), r = eval(*e.b);
                if (op == "~") return toString(l) + toString(r);
                if (op == "==") return equals(l, r);
                if (op == "!=") return !equals(l, r);
                if (op == "<") return less(l, r, e.pos);
                if (op == ">") return less(r, l, e.pos);
                if (op == "<=") return !less(r, l, e.pos);
                if (op == ">=") return !less(l, r, e.pos);
                if (op == "in" || op == "not in") {
                    if (!(r.is_array() || r.is_object() || r.is_string() || r.is_null() || isUndefined(r)))
                        fail(e.pos, "argument of type '" + typeName(r) + "' is not iterable");
                    if (r.is_string() && !l.is_string())
                        fail(e.pos, "'in <string>' requires string as left operand, not " + typeName(l));
                    const bool found = applyTest("in", l, {r});
                    return op == "in" ? found : !found;
                }
                return arith(op, l, r, e.pos);
            }
            case Expr::Cond: return truthy(eval(*e.a)) ? eval(*e.b) : (e.c ? eval(*e.c) : undefined());
            case Expr::List:
            case Expr::Tuple: {
                Value out = Value::array();
                for (const auto& x : e.args) out.push_back(eval(*x));
                return out;
            }
            case Expr::Dict: {
                Value out = Value::object();
                for (size_t i = 0; i < e.args.size(); ++i) out[toString(eval(*e.args[i]))] = eval(*e.values[i]);
                return out;
            }
        }
        return undefined();
    }
};

}  // namespace

std::string render(const Template& tmpl, const Value& context) { return Renderer(tmpl, context).run(); }

}  // namespace jinja
}  // namespace lmw::engine
