#include "api_formats.h"

namespace lmw::server {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

std::string dumpOrdered(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// "event: <type>\ndata: <json>\n\n"
std::string namedEvent(const ojson& j) { return "event: " + j.at("type").get<std::string>() + "\ndata: " + dumpOrdered(j) + "\n\n"; }

// An item / block id: prefix + the random part of a generated id.
std::string idLike(const std::string& prefix) { return newCompletionId(prefix); }

// A reply's parts in the order they came: reasoning, text, tool calls.
struct Part {
    enum Kind : int { Reasoning, Text, Call } kind;  // int: the formats' kNone (-1) is a valid value
    std::string text;  // reasoning, text, or the call's arguments
    std::string callId, name;
};

std::vector<Part> partsOf(const engine::ParsedOutput& p) {
    std::vector<Part> parts;
    if (!p.reasoning.empty()) parts.push_back({Part::Reasoning, p.reasoning, {}, {}});
    if (!p.content.empty()) parts.push_back({Part::Text, p.content, {}, {}});
    for (const auto& c : p.toolCalls) parts.push_back({Part::Call, c.arguments, c.id, c.name});
    return parts;
}

// ---- Responses API ----

class ResponsesFormat : public AnswerFormat {
public:
    explicit ResponsesFormat(ojson echo) : m_echo(std::move(echo)) {}

    std::string streamStart(const Shape& s, std::vector<ChoiceState>&) override {
        ojson r = response(s, "in_progress", ojson::array(), nullptr, nullptr);
        std::string out = event({{"type", "response.created"}, {"response", r}});
        return out + event({{"type", "response.in_progress"}, {"response", r}});
    }

    std::string streamEvent(const Shape& s, ChoiceState& c, const engine::Event& e) override {
        std::string out;
        for (const auto& ev : parseEvent(s, c, e)) {
            using K = engine::OutputEvent::Kind;
            switch (ev.kind) {
            case K::Reasoning:
                if (m_open != Part::Reasoning) out += open(Part::Reasoning, {}, {});
                m_openText += ev.text;
                out += event({{"type", "response.reasoning_text.delta"}, {"item_id", m_openId}, {"output_index", index()},
                              {"content_index", 0}, {"delta", ev.text}});
                break;
            case K::Content:
                if (m_open != Part::Text) out += open(Part::Text, {}, {});
                m_openText += ev.text;
                out += event({{"type", "response.output_text.delta"}, {"item_id", m_openId}, {"output_index", index()},
                              {"content_index", 0}, {"delta", ev.text}, {"logprobs", ojson::array()}});
                break;
            case K::ToolCallStart: out += open(Part::Call, ev.toolId, ev.toolName); break;
            case K::ToolCallArguments:
                m_openText += ev.text;
                out += event({{"type", "response.function_call_arguments.delta"}, {"item_id", m_openId},
                              {"output_index", index()}, {"delta", ev.text}});
                break;
            }
        }
        return out;
    }

    std::string streamEnd(const Shape& s, const std::vector<ChoiceState>& choices, const UsageCounts& u) override {
        std::string out = close();
        const ChoiceState& c = choices.front();
        const bool calls = c.parser && !c.parser->result().toolCalls.empty();
        if (!m_sawText && !calls) out += open(Part::Text, {}, {}) + close();  // as a whole answer has it
        const std::string reason = finishReasonText(c.finish, calls);
        ojson r = response(s, status(reason), m_items, incomplete(reason), usage(u));
        return out + event({{"type", reason == "length" ? "response.incomplete" : "response.completed"}, {"response", r}});
    }

    std::string wholeBody(const Shape& s, std::vector<ChoiceState>& choices, const UsageCounts& u) override {
        const ChoiceState& c = choices.front();
        const engine::ParsedOutput p = engine::OutputParser::parse(c.text, choiceParsing(s, c));
        ojson items = ojson::array();
        for (const Part& part : partsOf(p)) items.push_back(item(part, idLike(prefix(part.kind)), "completed"));
        if (p.content.empty() && p.toolCalls.empty()) items.push_back(item({Part::Text, "", {}, {}}, idLike("msg_"), "completed"));
        const std::string reason = finishReasonText(c.finish, !p.toolCalls.empty());
        return dumpOrdered(response(s, status(reason), std::move(items), incomplete(reason), usage(u)));
    }

    size_t boundFactor() const override { return 6; }  // the text again in each closing event and the Response

private:
    static const char* prefix(Part::Kind k) { return k == Part::Reasoning ? "rs_" : k == Part::Text ? "msg_" : "fc_"; }
    static std::string status(const std::string& reason) { return reason == "length" ? "incomplete" : "completed"; }
    static ojson incomplete(const std::string& reason) {
        return reason == "length" ? ojson{{"reason", "max_output_tokens"}} : ojson(nullptr);
    }
    static ojson usage(const UsageCounts& u) {
        return {{"input_tokens", u.prompt},
                {"input_tokens_details", {{"cached_tokens", 0}}},
                {"output_tokens", u.completion},
                {"output_tokens_details", {{"reasoning_tokens", 0}}},
                {"total_tokens", int64_t{u.prompt} + u.completion}};
    }

    static ojson item(const Part& p, const std::string& id, const char* st) {
        switch (p.kind) {
        case Part::Reasoning:
            return {{"type", "reasoning"}, {"id", id}, {"summary", ojson::array()},
                    {"content", ojson::array({{{"type", "reasoning_text"}, {"text", p.text}}})}, {"status", st}};
        case Part::Text:
            return {{"type", "message"}, {"id", id}, {"status", st}, {"role", "assistant"},
                    {"content", ojson::array({textPart(p.text)})}};
        case Part::Call:
            return {{"type", "function_call"}, {"id", id}, {"call_id", p.callId}, {"name", p.name},
                    {"arguments", p.text}, {"status", st}};
        }
        return {};
    }
    static ojson textPart(const std::string& text) {
        return {{"type", "output_text"}, {"text", text}, {"annotations", ojson::array()}, {"logprobs", ojson::array()}};
    }

    ojson response(const Shape& s, const std::string& st, ojson output, ojson incompleteDetails, ojson usage) const {
        ojson r = {{"id", s.id}, {"object", "response"}, {"created_at", s.created}, {"status", st},
                   {"error", nullptr}, {"incomplete_details", std::move(incompleteDetails)}, {"model", s.model},
                   {"output", std::move(output)}, {"previous_response_id", nullptr},
                   {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}}, {"store", false},
                   {"truncation", "disabled"}, {"usage", std::move(usage)}};
        for (const auto& [k, v] : m_echo.items()) r[k] = v;
        return r;
    }

    std::string event(ojson j) {
        j["sequence_number"] = m_seq++;
        return namedEvent(j);
    }
    int index() const { return static_cast<int>(m_items.size()); }

    std::string open(Part::Kind k, const std::string& callId, const std::string& name) {
        std::string out = close();
        m_open = k;
        m_openId = idLike(prefix(k));
        m_openText.clear();
        m_callId = callId;
        m_name = name;
        ojson added = item({k, "", callId, name}, m_openId, "in_progress");
        if (k == Part::Text) added["content"] = ojson::array();
        if (k == Part::Reasoning) added["content"] = ojson::array();
        out += event({{"type", "response.output_item.added"}, {"output_index", index()}, {"item", added}});
        if (k == Part::Text) {
            m_sawText = true;
            out += event({{"type", "response.content_part.added"}, {"item_id", m_openId}, {"output_index", index()},
                          {"content_index", 0}, {"part", textPart("")}});
        }
        return out;
    }

    std::string close() {
        if (m_open == kNone) return {};
        std::string out;
        const Part part{m_open, m_openText, m_callId, m_name};
        const ojson base = {{"item_id", m_openId}, {"output_index", index()}};
        auto with = [&](ojson j) {
            ojson e = {{"type", j["type"]}};
            for (const auto& [k, v] : base.items()) e[k] = v;
            for (const auto& [k, v] : j.items()) if (k != "type") e[k] = v;
            return event(std::move(e));
        };
        if (m_open == Part::Text) {
            out += with({{"type", "response.output_text.done"}, {"content_index", 0}, {"text", m_openText}, {"logprobs", ojson::array()}});
            out += with({{"type", "response.content_part.done"}, {"content_index", 0}, {"part", textPart(m_openText)}});
        } else if (m_open == Part::Reasoning) {
            out += with({{"type", "response.reasoning_text.done"}, {"content_index", 0}, {"text", m_openText}});
        } else {
            out += with({{"type", "response.function_call_arguments.done"}, {"name", m_name}, {"arguments", m_openText}});
        }
        ojson done = item(part, m_openId, "completed");
        out += event({{"type", "response.output_item.done"}, {"output_index", index()}, {"item", done}});
        m_items.push_back(std::move(done));
        m_open = kNone;
        return out;
    }

    static constexpr Part::Kind kNone = static_cast<Part::Kind>(-1);
    ojson m_echo;
    ojson m_items = ojson::array();  // the output items closed so far
    int m_seq = 0;
    Part::Kind m_open = kNone;
    std::string m_openId, m_openText, m_callId, m_name;
    bool m_sawText = false;
};

// ---- Anthropic Messages API ----

class MessagesFormat : public AnswerFormat {
public:
    std::string streamStart(const Shape& s, std::vector<ChoiceState>& choices) override {
        ojson m = message(s, ojson::array(), nullptr, nullptr, {choices.front().promptTokens, 0});
        return namedEvent({{"type", "message_start"}, {"message", m}}) + namedEvent({{"type", "ping"}});
    }

    std::string streamEvent(const Shape& s, ChoiceState& c, const engine::Event& e) override {
        std::string out;
        for (const auto& ev : parseEvent(s, c, e)) {
            using K = engine::OutputEvent::Kind;
            switch (ev.kind) {
            case K::Reasoning:
                if (m_open != Part::Reasoning) out += open({Part::Reasoning, "", {}, {}});
                out += delta({{"type", "thinking_delta"}, {"thinking", ev.text}});
                break;
            case K::Content:
                if (m_open != Part::Text) out += open({Part::Text, "", {}, {}});
                out += delta({{"type", "text_delta"}, {"text", ev.text}});
                break;
            case K::ToolCallStart: out += open({Part::Call, "", ev.toolId, ev.toolName}); break;
            case K::ToolCallArguments: out += delta({{"type", "input_json_delta"}, {"partial_json", ev.text}}); break;
            }
        }
        return out;
    }

    std::string streamEnd(const Shape& s, const std::vector<ChoiceState>& choices, const UsageCounts& u) override {
        std::string out = close();
        const ChoiceState& c = choices.front();
        const auto [reason, stop] = stopReason(s, c, c.parser && !c.parser->result().toolCalls.empty());
        out += namedEvent({{"type", "message_delta"},
                           {"delta", {{"stop_reason", reason}, {"stop_sequence", stop}}},
                           {"usage", {{"input_tokens", u.prompt}, {"output_tokens", u.completion}}}});
        return out + namedEvent({{"type", "message_stop"}});
    }

    std::string streamError(const ApiError& e) override {
        return "event: error\ndata: " + dumpJson(anthropicErrorJson(e)) + "\n\n";
    }

    std::string wholeBody(const Shape& s, std::vector<ChoiceState>& choices, const UsageCounts& u) override {
        const ChoiceState& c = choices.front();
        const engine::ParsedOutput p = engine::OutputParser::parse(c.text, choiceParsing(s, c));
        ojson content = ojson::array();
        for (const Part& part : partsOf(p)) content.push_back(block(part, true));
        const auto [reason, stop] = stopReason(s, c, !p.toolCalls.empty());
        return dumpOrdered(message(s, std::move(content), reason, stop, u));
    }

    std::string errorBody(const ApiError& e) const override { return dumpJson(anthropicErrorJson(e)); }
    size_t boundFactor() const override { return 2; }

private:
    // Anthropic's tool_use ids: toolu_ + the call id's random part.
    static std::string toolId(const std::string& callId) {
        return "toolu_" + (callId.rfind("call_", 0) == 0 ? callId.substr(5) : callId);
    }
    static ojson block(const Part& p, bool whole) {
        switch (p.kind) {
        case Part::Reasoning:
            // The signature proves to Anthropic's API that a block is its own; this server keeps no
            // state and checks none, so it is empty.
            return {{"type", "thinking"}, {"thinking", whole ? p.text : ""}, {"signature", ""}};
        case Part::Text: return {{"type", "text"}, {"text", whole ? p.text : ""}};
        case Part::Call: {
            ojson input = ojson::object();
            if (whole) {
                input = ojson::parse(p.text, nullptr, false);
                if (input.is_discarded() || !input.is_object()) input = ojson::object();
            }
            return {{"type", "tool_use"}, {"id", toolId(p.callId)}, {"name", p.name}, {"input", input}};
        }
        }
        return {};
    }
    // stop_reason and stop_sequence.
    static std::pair<std::string, ojson> stopReason(const Shape& s, const ChoiceState& c, bool calls) {
        const std::string r = finishReasonText(c.finish, calls);
        if (r == "tool_calls") return {"tool_use", nullptr};
        if (r == "length") return {"max_tokens", nullptr};
        if (std::string hit = stopStringHit(s, c); !hit.empty()) return {"stop_sequence", hit};
        return {"end_turn", nullptr};
    }
    static ojson message(const Shape& s, ojson content, ojson reason, ojson stop, const UsageCounts& u) {
        return {{"id", s.id}, {"type", "message"}, {"role", "assistant"}, {"model", s.model},
                {"content", std::move(content)}, {"stop_reason", std::move(reason)},
                {"stop_sequence", std::move(stop)},
                {"usage", {{"input_tokens", u.prompt}, {"output_tokens", u.completion}}}};
    }

    std::string open(const Part& p) {
        std::string out = close();
        m_open = p.kind;
        return out + namedEvent({{"type", "content_block_start"}, {"index", m_index}, {"content_block", block(p, false)}});
    }
    std::string delta(ojson d) { return namedEvent({{"type", "content_block_delta"}, {"index", m_index}, {"delta", std::move(d)}}); }
    std::string close() {
        if (m_open == kNone) return {};
        std::string out;
        if (m_open == Part::Reasoning) out += delta({{"type", "signature_delta"}, {"signature", ""}});
        out += namedEvent({{"type", "content_block_stop"}, {"index", m_index}});
        ++m_index;
        m_open = kNone;
        return out;
    }

    static constexpr Part::Kind kNone = static_cast<Part::Kind>(-1);
    Part::Kind m_open = kNone;
    int m_index = 0;
};

}  // namespace

std::shared_ptr<AnswerFormat> responsesFormat(ojson echo) { return std::make_shared<ResponsesFormat>(std::move(echo)); }
std::shared_ptr<AnswerFormat> messagesFormat() { return std::make_shared<MessagesFormat>(); }

}  // namespace lmw::server
