// The "think" reasoning parser: <think>...</think> at the start of a reply is reasoning.
#include <algorithm>

#include "lmw/output_parser.h"

namespace lmw::engine {

namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";
// The newline before </think> is stripped, so a trailing '\n' is as undecided as a partial tag.
constexpr std::string_view kNewlineClose = "\n</think>";

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Length of the longest tail of text that is a proper prefix of marker: the part to hold back.
size_t partialMarkerTail(std::string_view text, std::string_view marker) {
    for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n)
        if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
    return 0;
}

void push(std::vector<OutputEvent>& out, OutputEvent::Kind kind, std::string_view text) {
    if (text.empty()) return;
    OutputEvent e;
    e.kind = kind;
    e.text = std::string(text);
    out.push_back(std::move(e));
}

}  // namespace

std::vector<std::string> reasoningParserNames() { return {"think"}; }

bool promptOpensReasoning(std::string_view prompt) {
    const size_t open = prompt.rfind(kOpen);
    if (open == std::string_view::npos) return false;
    const std::string_view rest = prompt.substr(open + kOpen.size());
    return std::all_of(rest.begin(), rest.end(), isSpace);
}

ReasoningParser::ReasoningParser(bool startsInReasoning)
    : m_state(startsInReasoning ? State::Inside : State::Start), m_stripOneNewline(startsInReasoning) {}

void ReasoningParser::feed(std::string_view text, std::vector<OutputEvent>& out) {
    m_pending.append(text);
    process(false, out);
}

void ReasoningParser::finish(std::vector<OutputEvent>& out) { process(true, out); }

void ReasoningParser::process(bool final, std::vector<OutputEvent>& out) {
    for (;;) {
        switch (m_state) {
        case State::Start: {
            // Only an opening tag that begins the reply counts; hold the leading whitespace and a
            // partial tag until that is decided.
            const size_t k = m_pending.find_first_not_of(" \t\r\n");
            if (k == std::string::npos) {
                if (!final) return;
                m_state = State::After;
                continue;
            }
            const std::string_view rest = std::string_view(m_pending).substr(k);
            if (rest.substr(0, kOpen.size()) == kOpen) {
                m_pending.erase(0, k + kOpen.size());
                m_state = State::Inside;
                m_stripOneNewline = true;
                continue;
            }
            if (!final && rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return;
            m_state = State::After;
            continue;
        }
        case State::Inside: {
            if (m_stripOneNewline) {
                if (m_pending.empty()) return;
                if (m_pending[0] == '\n') m_pending.erase(0, 1);
                m_stripOneNewline = false;
            }
            const size_t close = m_pending.find(kClose);
            if (close == std::string::npos) {
                const size_t hold =
                    final ? 0 : std::max(partialMarkerTail(m_pending, kClose), partialMarkerTail(m_pending, kNewlineClose));
                push(out, OutputEvent::Kind::Reasoning, std::string_view(m_pending).substr(0, m_pending.size() - hold));
                m_pending.erase(0, m_pending.size() - hold);
                return;
            }
            const size_t end = close > 0 && m_pending[close - 1] == '\n' ? close - 1 : close;
            push(out, OutputEvent::Kind::Reasoning, std::string_view(m_pending).substr(0, end));
            m_pending.erase(0, close + kClose.size());
            m_state = State::After;
            m_stripNewlines = true;
            continue;
        }
        case State::After:
            if (m_stripNewlines) {
                const size_t k = m_pending.find_first_not_of('\n');
                m_pending.erase(0, k == std::string::npos ? m_pending.size() : k);
                if (m_pending.empty()) return;
                m_stripNewlines = false;
            }
            push(out, OutputEvent::Kind::Content, m_pending);
            m_pending.clear();
            return;
        }
    }
}

}  // namespace lmw::engine
