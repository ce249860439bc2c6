// Tool call parsers: the formats models are trained to write calls in, back into calls.
// Each format keeps the undecided text in m_pending and re-examines it on every feed; a decision
// depends only on the text seen so far, so any chunking gives the same events.
#include <algorithm>
#include <optional>

#include "lmw/error.h"
#include "lmw/output_parser.h"
#include "nlohmann/json.hpp"

namespace lmw::engine {

namespace {

using ojson = nlohmann::ordered_json;

constexpr const char* kSpaces = " \t\r\n";
// Deeper JSON than any real call is refused before parsing (the serializer recurses).
constexpr int kMaxDepth = 128;

size_t partialMarkerTail(std::string_view text, std::string_view marker) {
    for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n)
        if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
    return 0;
}

bool startsWith(std::string_view s, size_t at, std::string_view prefix) { return s.substr(at, prefix.size()) == prefix; }

// Finds where a JSON object or array that starts at the first character fed ends, without parsing
// it: brackets outside strings. Mismatched brackets are left for the parser to reject.
class JsonExtent {
public:
    // True when c closes the value.
    bool push(char c) {
        if (m_inString) {
            if (m_escape) m_escape = false;
            else if (c == '\\') m_escape = true;
            else if (c == '"') m_inString = false;
            return false;
        }
        if (c == '"') m_inString = true;
        else if (c == '{' || c == '[') m_maxDepth = std::max(m_maxDepth, ++m_depth);
        else if (c == '}' || c == ']') return --m_depth == 0;
        return false;
    }
    int maxDepth() const { return m_maxDepth; }

private:
    int m_depth = 0;
    int m_maxDepth = 0;
    bool m_inString = false;
    bool m_escape = false;
};

std::optional<ojson> parseJson(std::string_view text) {
    JsonExtent depth;
    for (char c : text) depth.push(c);
    if (depth.maxDepth() > kMaxDepth) return std::nullopt;
    try {
        ojson j = ojson::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) return std::nullopt;
        return j;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string compact(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

struct Call {
    std::string name;
    std::string arguments;
};

// The arguments value as OpenAI's arguments string, or nothing when it is not an object.
std::optional<std::string> argumentsText(const ojson* args) {
    if (!args || args->is_null()) return std::string("{}");
    if (args->is_object()) return compact(*args);
    if (args->is_string()) {
        auto inner = parseJson(args->get<std::string>());
        if (inner && inner->is_object()) return compact(*inner);
    }
    return std::nullopt;
}

std::optional<Call> callFromObject(const ojson& obj) {
    if (!obj.is_object()) return std::nullopt;
    const ojson* o = &obj;
    if (!o->contains("name") && o->contains("function") && o->at("function").is_object()) o = &o->at("function");
    auto name = o->find("name");
    if (name == o->end() || !name->is_string() || name->get<std::string>().empty()) return std::nullopt;
    const ojson* args = nullptr;
    if (auto a = o->find("arguments"); a != o->end()) args = &*a;
    else if (auto p = o->find("parameters"); p != o->end()) args = &*p;
    auto text = argumentsText(args);
    if (!text) return std::nullopt;
    return Call{name->get<std::string>(), *text};
}

std::optional<Call> callFromJson(std::string_view text) {
    auto j = parseJson(text);
    if (!j) return std::nullopt;
    return callFromObject(*j);
}

std::uint64_t splitMix(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::string callId(std::uint64_t seed, int index) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::uint64_t state = seed ^ (0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(index + 1));
    std::string id = "call_";
    for (int i = 0; i < 24; ++i) id += kAlphabet[splitMix(state) % 62];
    return id;
}

// What the formats share: the undecided text (Mistral's: in a body, the text after [TOOL_CALLS]),
// re-examined on every feed and decided at the end (final).
class PendingTextParser : public ToolCallParser {
public:
    explicit PendingTextParser(std::uint64_t seed) : ToolCallParser(seed) {}
    void feed(std::string_view text, std::vector<OutputEvent>& out) override {
        m_pending.append(text);
        process(false, out);
    }
    void finish(std::vector<OutputEvent>& out) override {
        process(true, out);
        finishContent(out);
    }

protected:
    virtual void process(bool final, std::vector<OutputEvent>& out) = 0;
    std::string m_pending;
};

// A call between an opening and a closing marker, its body one JSON object ("qwen", "internlm2").
class TaggedJsonParser : public PendingTextParser {
public:
    TaggedJsonParser(std::string open, std::string close, std::uint64_t seed)
        : PendingTextParser(seed), m_open(std::move(open)), m_close(std::move(close)) {}

private:
    void process(bool final, std::vector<OutputEvent>& out) override {
        for (;;) {
            if (!m_inBody) {
                if (!takeThroughMarker(m_pending, m_open, final, out)) return;
                m_inBody = true;
                m_searchFrom = 0;
                continue;
            }
            // A body that does not start with '{' is no call: give the marker up at once rather
            // than hold the rest of the reply.
            const size_t first = m_pending.find_first_not_of(kSpaces);
            if (first != std::string::npos && m_pending[first] != '{') {
                giveUp(out);
                continue;
            }
            const size_t close = m_pending.find(m_close, m_searchFrom);
            if (close == std::string::npos) {
                if (final) {
                    giveUp(out);
                    continue;
                }
                m_searchFrom = m_pending.size() >= m_close.size() ? m_pending.size() - m_close.size() + 1 : 0;
                return;
            }
            auto call = callFromJson(std::string_view(m_pending).substr(0, close));
            if (!call) {
                giveUp(out);
                continue;
            }
            emitCall(call->name, call->arguments, out);
            m_pending.erase(0, close + m_close.size());
            m_inBody = false;
        }
    }

    // The opening marker was text after all; what followed it is scanned again as content.
    void giveUp(std::vector<OutputEvent>& out) {
        emitContent(m_open, out);
        m_inBody = false;
    }

    std::string m_open, m_close;
    bool m_inBody = false;
    size_t m_searchFrom = 0;
};

// "mistral": [TOOL_CALLS] then a JSON array of calls (or one call object), or name[ARGS]{...}.
// There is no closing marker: the call ends where its JSON does.
class MistralParser : public PendingTextParser {
public:
    explicit MistralParser(std::uint64_t seed) : PendingTextParser(seed) {}

private:
    static constexpr std::string_view kOpen = "[TOOL_CALLS]";
    static constexpr std::string_view kArgs = "[ARGS]";

    static bool isNameChar(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.';
    }

    void process(bool final, std::vector<OutputEvent>& out) override {
        for (;;) {
            if (!m_inBody) {
                if (!takeThroughMarker(m_pending, kOpen, final, out)) return;
                enterBody();
                continue;
            }
            const size_t first = m_pending.find_first_not_of(kSpaces);
            if (first == std::string::npos) {
                if (!final) return;
                giveUp(out);
                continue;
            }
            const Step step = m_pending[first] == '[' || m_pending[first] == '{' ? jsonForm(first, out) : namedForm(first, out);
            if (step == Step::Wait) {
                if (!final) return;
                giveUp(out);
            }
        }
    }

    enum class Step { Done, Wait };

    // Scans m_pending from `from` (a '{' or '['), remembering how far it got; the end index or npos.
    size_t scanValue(size_t from) {
        if (m_scanPos < from) {
            m_scanPos = from;
            m_extent = JsonExtent();
        }
        for (; m_scanPos < m_pending.size(); ++m_scanPos)
            if (m_extent.push(m_pending[m_scanPos])) return m_scanPos++;
        return std::string::npos;
    }

    Step jsonForm(size_t first, std::vector<OutputEvent>& out) {
        const size_t end = scanValue(first);
        if (end == std::string::npos) return Step::Wait;
        const auto j = parseJson(std::string_view(m_pending).substr(first, end + 1 - first));
        std::vector<Call> calls;
        if (j && j->is_array()) {
            for (const auto& element : *j) {
                auto call = callFromObject(element);
                if (!call) {
                    calls.clear();
                    break;
                }
                calls.push_back(std::move(*call));
            }
            if (calls.size() != j->size()) calls.clear();
        } else if (j) {
            if (auto call = callFromObject(*j)) calls.push_back(std::move(*call));
        }
        if (calls.empty()) {
            giveUp(out);
            return Step::Done;
        }
        for (const auto& call : calls) emitCall(call.name, call.arguments, out);
        m_pending.erase(0, end + 1);
        m_inBody = false;
        return Step::Done;
    }

    Step namedForm(size_t first, std::vector<OutputEvent>& out) {
        const size_t args = m_pending.find(kArgs, first);
        const size_t nameEnd = args != std::string::npos ? args : m_pending.size() - partialMarkerTail(m_pending, kArgs);
        const std::string_view name = std::string_view(m_pending).substr(first, nameEnd - first);
        if (!std::all_of(name.begin(), name.end(), isNameChar) || (args != std::string::npos && name.empty())) {
            giveUp(out);
            return Step::Done;
        }
        if (args == std::string::npos) return Step::Wait;
        const size_t value = m_pending.find_first_not_of(kSpaces, args + kArgs.size());
        if (value == std::string::npos) return Step::Wait;
        if (m_pending[value] != '{') {
            giveUp(out);
            return Step::Done;
        }
        const size_t end = scanValue(value);
        if (end == std::string::npos) return Step::Wait;
        const auto j = parseJson(std::string_view(m_pending).substr(value, end + 1 - value));
        const auto arguments = j ? argumentsText(&*j) : std::nullopt;
        if (!arguments) {
            giveUp(out);
            return Step::Done;
        }
        emitCall(std::string(name), *arguments, out);
        m_pending.erase(0, end + 1);
        m_inBody = false;
        return Step::Done;
    }

    void enterBody() {
        m_inBody = true;
        m_scanPos = 0;
        m_extent = JsonExtent();
    }
    void giveUp(std::vector<OutputEvent>& out) {
        emitContent(kOpen, out);
        m_inBody = false;
    }

    bool m_inBody = false;
    size_t m_scanPos = 0;
    JsonExtent m_extent;
};

// "llama3": the reply itself is the call(s). m_consumed keeps the markup taken so far (leading
// whitespace, <|python_tag|>, ';') so a reply that turns out not to be calls is returned whole.
class Llama3Parser : public PendingTextParser {
public:
    explicit Llama3Parser(std::uint64_t seed) : PendingTextParser(seed) {}

    void feed(std::string_view text, std::vector<OutputEvent>& out) override {
        if (m_state == State::Content) return emitContent(text, out);  // no call can follow any more
        PendingTextParser::feed(text, out);
    }

private:
    static constexpr std::string_view kTag = "<|python_tag|>";
    enum class State { Slot, AfterCall, Content };

    void process(bool final, std::vector<OutputEvent>& out) override {
        for (;;) {
            switch (m_state) {
            case State::Content:
                emitContent(m_consumed + m_pending, out);
                m_consumed.clear();
                m_pending.clear();
                return;
            case State::AfterCall: {
                const size_t k = m_pending.find_first_not_of(kSpaces);
                if (k == std::string::npos) {
                    if (!final) return;
                    m_consumed.clear();  // trailing whitespace after the last call
                    m_pending.clear();
                    return;
                }
                if (m_pending[k] == ';') {
                    m_consumed.append(m_pending, 0, k + 1);
                    m_pending.erase(0, k + 1);
                    m_state = State::Slot;
                    m_scanPos = 0;
                    m_extent = JsonExtent();
                    continue;
                }
                m_state = State::Content;  // text after the calls
                continue;
            }
            case State::Slot: {
                const size_t k = m_pending.find_first_not_of(kSpaces);
                if (k == std::string::npos) {
                    if (!final) return;
                    if (callCount() > 0) {  // a dangling ';' after the last call is a separator
                        m_consumed.clear();
                        m_pending.clear();
                        return;
                    }
                    m_state = State::Content;
                    continue;
                }
                if (startsWith(m_pending, k, kTag)) {
                    m_consumed.append(m_pending, 0, k + kTag.size());
                    m_pending.erase(0, k + kTag.size());
                    continue;
                }
                if (m_pending[k] != '{') {
                    const std::string_view rest = std::string_view(m_pending).substr(k);
                    if (!final && rest.size() < kTag.size() && kTag.substr(0, rest.size()) == rest) return;
                    m_state = State::Content;
                    continue;
                }
                if (m_scanPos < k) {
                    m_scanPos = k;
                    m_extent = JsonExtent();
                }
                size_t end = std::string::npos;
                for (; m_scanPos < m_pending.size(); ++m_scanPos)
                    if (m_extent.push(m_pending[m_scanPos])) {
                        end = m_scanPos++;
                        break;
                    }
                if (end == std::string::npos) {
                    if (!final) return;
                    m_state = State::Content;
                    continue;
                }
                auto call = callFromJson(std::string_view(m_pending).substr(k, end + 1 - k));
                if (!call) {
                    m_state = State::Content;
                    continue;
                }
                emitContent(std::string_view(m_pending).substr(0, k), out);  // whitespace: dropped by emitCall
                emitCall(call->name, call->arguments, out);
                m_consumed.clear();
                m_pending.erase(0, end + 1);
                m_state = State::AfterCall;
                continue;
            }
            }
        }
    }

    State m_state = State::Slot;
    std::string m_consumed;
    size_t m_scanPos = 0;
    JsonExtent m_extent;
};

// Calls a grammar made the model write as plain JSON (tool_choice "required" or a named function):
// the whole reply is an array of {"name", "parameters"} objects, or the named function's arguments.
// Held until the end: only then is it known to be whole (a reply cut by max tokens is content).
class ForcedCallsParser : public ToolCallParser {
public:
    ForcedCallsParser(std::string function, std::uint64_t seed) : ToolCallParser(seed), m_function(std::move(function)) {}

    void feed(std::string_view text, std::vector<OutputEvent>&) override { m_text.append(text); }
    void finish(std::vector<OutputEvent>& out) override {
        std::vector<Call> calls;
        if (const auto j = parseJson(m_text)) {
            if (!m_function.empty()) {
                if (auto args = j->is_object() ? argumentsText(&*j) : std::nullopt) calls.push_back({m_function, *args});
            } else if (j->is_array()) {
                for (const auto& element : *j)
                    if (auto call = callFromObject(element)) calls.push_back(std::move(*call));
                if (calls.size() != j->size()) calls.clear();
            } else if (auto call = callFromObject(*j)) {
                calls.push_back(std::move(*call));
            }
        }
        if (calls.empty()) emitContent(m_text, out);
        for (const auto& call : calls) emitCall(call.name, call.arguments, out);
        finishContent(out);
    }

private:
    std::string m_function;
    std::string m_text;
};

}  // namespace

std::unique_ptr<ToolCallParser> ToolCallParser::forced(const std::string& function, std::uint64_t idSeed) {
    return std::make_unique<ForcedCallsParser>(function, idSeed);
}

std::vector<std::string> toolCallParserNames() { return {"qwen", "llama3", "internlm2", "mistral"}; }

std::unique_ptr<ToolCallParser> ToolCallParser::create(const std::string& name, std::uint64_t idSeed) {
    if (name == "qwen") return std::make_unique<TaggedJsonParser>("<tool_call>", "</tool_call>", idSeed);
    if (name == "internlm2")
        return std::make_unique<TaggedJsonParser>("<|action_start|><|plugin|>", "<|action_end|>", idSeed);
    if (name == "llama3") return std::make_unique<Llama3Parser>(idSeed);
    if (name == "mistral") return std::make_unique<MistralParser>(idSeed);
    throw Error(ErrorCode::InvalidArgument,
                "unknown tool call parser '" + name + "' (expected qwen, llama3, internlm2, mistral or none)");
}

bool ToolCallParser::takeThroughMarker(std::string& pending, std::string_view marker, bool final,
                                       std::vector<OutputEvent>& out) {
    const size_t at = pending.find(marker);
    if (at == std::string::npos) {
        const size_t keep = final ? 0 : partialMarkerTail(pending, marker);
        emitContent(std::string_view(pending).substr(0, pending.size() - keep), out);
        pending.erase(0, pending.size() - keep);
        return false;
    }
    emitContent(std::string_view(pending).substr(0, at), out);
    pending.erase(0, at + marker.size());
    return true;
}

void ToolCallParser::emitContent(std::string_view text, std::vector<OutputEvent>& out) {
    if (text.empty()) return;
    std::string s = std::move(m_heldSpace);
    m_heldSpace.clear();
    s.append(text);
    const size_t last = s.find_last_not_of(kSpaces);
    if (last == std::string::npos) {
        m_heldSpace = std::move(s);
        return;
    }
    const size_t begin = m_afterCall ? s.find_first_not_of(kSpaces) : 0;
    m_afterCall = false;
    OutputEvent e;
    e.kind = OutputEvent::Kind::Content;
    e.text = s.substr(begin, last + 1 - begin);
    out.push_back(std::move(e));
    m_heldSpace = s.substr(last + 1);
}

void ToolCallParser::emitCall(const std::string& name, const std::string& arguments, std::vector<OutputEvent>& out) {
    m_heldSpace.clear();
    m_afterCall = true;
    const int index = m_calls++;
    OutputEvent start;
    start.kind = OutputEvent::Kind::ToolCallStart;
    start.toolIndex = index;
    start.toolId = callId(m_idSeed, index);
    start.toolName = name;
    out.push_back(std::move(start));
    OutputEvent args;
    args.kind = OutputEvent::Kind::ToolCallArguments;
    args.toolIndex = index;
    args.text = arguments;
    out.push_back(std::move(args));
}

void ToolCallParser::finishContent(std::vector<OutputEvent>& out) {
    if (!m_afterCall && !m_heldSpace.empty()) {
        OutputEvent e;
        e.kind = OutputEvent::Kind::Content;
        e.text = std::move(m_heldSpace);
        out.push_back(std::move(e));
    }
    m_heldSpace.clear();
}

}  // namespace lmw::engine
