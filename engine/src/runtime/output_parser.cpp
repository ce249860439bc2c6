// OutputParser: the reasoning stage, then the tool call stage on the content it leaves.
#include "lmw/output_parser.h"

#include "lmw/error.h"

namespace lmw::engine {

OutputParser::OutputParser(const OutputParserOptions& options) {
    const std::string& reasoning = options.reasoningParser;
    if (reasoning == "think") m_reasoning = std::make_unique<ReasoningParser>(options.startsInReasoning);
    else if (!reasoning.empty() && reasoning != "none")
        throw Error(ErrorCode::InvalidArgument, "unknown reasoning parser '" + reasoning + "' (expected think or none)");
    const std::string& tools = options.toolCallParser;
    if (options.forcedCalls) m_tools = ToolCallParser::forced(options.forcedFunction, options.idSeed);
    else if (!tools.empty() && tools != "none") m_tools = ToolCallParser::create(tools, options.idSeed);
}

OutputParser::~OutputParser() = default;

std::vector<OutputEvent> OutputParser::feed(std::string_view text) {
    if (m_finished) throw Error(ErrorCode::InvalidArgument, "OutputParser::feed after finish");
    std::vector<OutputEvent> stage, out;
    if (m_reasoning) {
        m_reasoning->feed(text, stage);
    } else if (!text.empty()) {
        stage.push_back(OutputEvent{OutputEvent::Kind::Content, std::string(text)});
    }
    route(stage, out);
    return collect(out);
}

std::vector<OutputEvent> OutputParser::finish() {
    if (m_finished) throw Error(ErrorCode::InvalidArgument, "OutputParser::finish called twice");
    m_finished = true;
    std::vector<OutputEvent> stage, out;
    if (m_reasoning) m_reasoning->finish(stage);
    route(stage, out);
    if (m_tools) m_tools->finish(out);
    return collect(out);
}

void OutputParser::route(std::vector<OutputEvent>& stage, std::vector<OutputEvent>& out) {
    for (auto& e : stage) {
        if (e.kind == OutputEvent::Kind::Content && m_tools) m_tools->feed(e.text, out);
        else out.push_back(std::move(e));
    }
}

// Merges adjacent text pieces of one kind and records everything in m_result.
std::vector<OutputEvent> OutputParser::collect(std::vector<OutputEvent>& out) {
    std::vector<OutputEvent> merged;
    for (auto& e : out) {
        const bool text = e.kind == OutputEvent::Kind::Content || e.kind == OutputEvent::Kind::Reasoning;
        if (text && e.text.empty()) continue;
        if (text) (e.kind == OutputEvent::Kind::Content ? m_result.content : m_result.reasoning) += e.text;
        if (e.kind == OutputEvent::Kind::ToolCallStart) m_result.toolCalls.push_back({e.toolId, e.toolName, ""});
        if (e.kind == OutputEvent::Kind::ToolCallArguments) m_result.toolCalls.at(e.toolIndex).arguments += e.text;
        if (text && !merged.empty() && merged.back().kind == e.kind) merged.back().text += e.text;
        else merged.push_back(std::move(e));
    }
    return merged;
}

ParsedOutput OutputParser::parse(std::string_view text, const OutputParserOptions& options) {
    OutputParser parser(options);
    parser.feed(text);
    parser.finish();
    return parser.result();
}

}  // namespace lmw::engine
