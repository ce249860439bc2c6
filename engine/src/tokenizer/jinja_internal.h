#pragma once
// Internals of the small Jinja2 renderer used for chat templates: tokens, syntax tree, and the
// three stages (lex -> parse -> evaluate). Values are nlohmann::ordered_json (Python dicts keep
// insertion order, and tojson prints it); "undefined" is the json `discarded` value, so
// `is defined` and printing undefined as "" work like Jinja.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace lmw::engine::jinja {

using Value = nlohmann::ordered_json;

// ---- tokens ----
enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
    Tok type;
    std::string text;  // Text content, name, decoded string literal, number spelling or operator
    size_t pos;        // byte offset in the source, for error messages
};

// Splits a template into tokens, applying {%- -%} whitespace control and Hugging Face's
// trim_blocks / lstrip_blocks settings. Throws lmw::Error naming the position.
std::vector<Token> lex(const std::string& source);

// "line L, column C" of a byte offset.
std::string describePosition(const std::string& source, size_t pos);

// ---- syntax tree ----
struct Expr;
using ExprPtr = std::shared_ptr<Expr>;

struct Expr {
    enum Kind { Literal, Name, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Cond, List, Dict, Tuple };
    Kind kind;
    size_t pos = 0;
    Value literal;                 // Literal
    std::string name;              // Name, Attr (attribute), Filter/Test (name), Unary/Binary (operator)
    ExprPtr a, b, c;               // operands: Attr/Index/Call/Filter/Test/Unary target in a; Slice a[b:c]
    ExprPtr step;                  // Slice step
    std::vector<ExprPtr> args;     // Call/Filter/Test arguments, List/Tuple items, Dict keys
    std::vector<ExprPtr> values;   // Dict values
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    bool negate = false;           // Test: "is not"
};

struct Node;
using NodePtr = std::shared_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
    enum Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue };
    Kind kind;
    size_t pos = 0;
    std::string text;                               // Text
    ExprPtr expr;                                   // Output, For (iterable), Set (value)
    std::vector<std::pair<ExprPtr, Body>> branches; // If: (condition, body) for if / elif
    Body body, elseBody;                            // For body / else, If else, SetBlock and Macro body
    std::vector<std::string> targets;               // For / Set names; Macro: name then parameters
    std::string attr;                               // Set ns.attr = ...
    ExprPtr filter;                                 // For ... if filter
    std::vector<ExprPtr> defaults;                  // Macro parameter defaults (null when none)
};

struct Template {
    std::string source;
    Body body;
};

// Parses a whole template. Throws lmw::Error naming the position of a syntax error.
std::shared_ptr<const Template> parse(const std::string& source);

// Renders a parsed template with `context` as the global variables.
std::string render(const Template& tmpl, const Value& context);

// ---- value helpers (jinja_value.cpp) ----
inline Value undefined() { return Value(Value::value_t::discarded); }
inline bool isUndefined(const Value& v) { return v.is_discarded(); }
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
std::string toString(const Value& v);  // what {{ v }} prints (Python str())
std::string repr(const Value& v);      // Python repr(), used inside lists and dicts
// Python json.dumps(v, ensure_ascii=False, indent=..., separators=..., sort_keys=...): indent
// null for one line, else the string put before each level (an int n means n spaces).
struct JsonFormat {
    std::optional<std::string> indent;
    std::string itemSeparator = ", ";  // "," when indent is set
    std::string keySeparator = ": ";
    bool sortKeys = false;
    bool ensureAscii = false;  // \uXXXX for everything outside printable ASCII
};
std::string toJson(const Value& v, const JsonFormat& format = {});
std::string typeName(const Value& v);
// UTF-8 code point helpers: Python strings index and measure code points, not bytes.
std::vector<size_t> codepointOffsets(const std::string& s);  // start offsets plus s.size() at the end
size_t codepointCount(const std::string& s);

// ---- filters, tests and methods (jinja_builtins.cpp) ----
using Kwargs = std::vector<std::pair<std::string, Value>>;
// Each throws lmw::Error(InvalidArgument) for an unknown name or bad arguments.
Value applyFilter(const std::string& name, const Value& v, const std::vector<Value>& args, const Kwargs& kwargs);
bool applyTest(const std::string& name, const Value& v, const std::vector<Value>& args);
Value callMethod(const Value& obj, const std::string& name, const std::vector<Value>& args, const Kwargs& kwargs);
// Python's str.strip([chars]) family; which: 'l', 'r' or 'b'(oth).
std::string stripChars(const std::string& s, const Value& chars, char which);

}  // namespace lmw::engine::jinja
