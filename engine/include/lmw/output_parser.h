#pragma once
// Output parsers: split a model's generated text into content, reasoning and tool calls while it
// streams. Plain text in, events out; no tokenizer, no HTTP. The server maps the events onto
// OpenAI's chat.completion(.chunk) shapes.
//
// Guarantees (all formats):
// - Chunking never matters: feeding a text in any split and reassembling the events gives exactly
//   what OutputParser::parse gives for the whole text. Every decision is made on the text seen so
//   far and never revised, so the held-back part is only what is still undecided: a tail that may
//   be the start of a marker, a tool call whose end has not arrived (held until it ends or finish()
//   gives it up as content), whitespace that may turn out to be next to a call.
// - Model output is never an error. A would-be call that is not one (unterminated at finish, body
//   that is not JSON, no string "name", arguments that are not an object) is returned as content,
//   byte for byte; parsing resumes right after its opening marker. So with no tool call found, the
//   content is the input exactly (for the tool parsers; the reasoning parser strips newlines, below).
// - Whitespace runs next to a recognised call (before it, between calls, after the last one) are
//   dropped: they are layout, not an answer. Content elsewhere keeps its whitespace, which is why
//   trailing whitespace of content is held back until the next non-space or a call decides it.
// - A call is emitted whole once its text is complete: ToolCallStart (index, id, name) and then one
//   ToolCallArguments with the complete compact arguments JSON (the parsed object re-serialized,
//   keys in the model's order, UTF-8 kept). Buffering keeps malformed JSON recoverable as content
//   and makes the streamed arguments equal the non-streamed ones.
//
// Tool call formats (OutputParserOptions::toolCallParser, LMDeploy's --tool-call-parser names):
//   "qwen"      Qwen2.5 / Qwen3 / Hermes: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>,
//               any number, anywhere in the reply.
//   "llama3"    Llama 3.1+: the reply is {"name": ..., "parameters": {...}}, optionally after
//               <|python_tag|>, several separated by ';'. Only when the reply starts with '{' or the
//               tag (after whitespace); anything else is content. Text after the calls is content.
//   "internlm2" InternLM2.5: <|action_start|><|plugin|>\n{"name": ..., "parameters": {...}}<|action_end|>
//               (<|interpreter|> actions are code, not function calls: content).
//   "mistral"   [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...] (the whole array is calls or
//               content), and the newer [TOOL_CALLS]name[ARGS]{...}.
// Every format accepts "arguments" or "parameters" (arguments wins when both), a missing or null one
// as {}, a string holding a JSON object (re-serialized), and {"function": {"name", ...}} wrapping.
//
// Reasoning (OutputParserOptions::reasoningParser):
//   "think"     Qwen3, DeepSeek-R1 distills: <think>...</think>. Recognised only as the first
//               non-whitespace of the reply (whitespace before it is dropped); a <think> later in the
//               text is content, as is everything after </think>. Stripped: the one '\n' right after
//               <think> (or at the start when startsInReasoning), the one '\n' right before </think>,
//               and every '\n' right after </think> (Qwen3 writes "\n\n"; its template lstrips them
//               the same way). A reply that ends inside the block (max tokens) is all reasoning.
//   Qwen3's generation prompt does not open the block when thinking is on (the model writes
//   <think>), and holds an empty closed block when enable_thinking is false (the model writes only
//   content), so startsInReasoning=false serves both. Templates that end the prompt with an open
//   <think> need startsInReasoning=true: promptOpensReasoning(prompt) tells.
// Reasoning is split off first; tool calls are parsed in the content that remains.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lmw::engine {

struct ToolCall {
    std::string id;         // "call_" + 24 alphanumerics; a function of OutputParserOptions::idSeed and the index
    std::string name;
    std::string arguments;  // compact JSON object text, as OpenAI's function.arguments
};

struct OutputEvent {
    enum class Kind { Content, Reasoning, ToolCallStart, ToolCallArguments };
    Kind kind = Kind::Content;
    std::string text = {};      // Content, Reasoning, ToolCallArguments: the piece to append
    int toolIndex = -1;    // ToolCallStart, ToolCallArguments: 0, 1, ... in order of the calls
    std::string toolId = {};    // ToolCallStart
    std::string toolName = {};  // ToolCallStart
};

struct ParsedOutput {
    std::string content;
    std::string reasoning;
    std::vector<ToolCall> toolCalls;
};

struct OutputParserOptions {
    std::string toolCallParser;      // "" or "none": no tool calls; else one of toolCallParserNames()
    std::string reasoningParser;     // "" or "none": no reasoning; else one of reasoningParserNames()
    bool startsInReasoning = false;  // the prompt opened the reasoning block (see promptOpensReasoning)
    // tool_choice "required" or a named function: the reply is JSON a grammar forced (ToolCallParser::
    // forced); toolCallParser is then ignored.
    bool forcedCalls = false;
    std::string forcedFunction;
    std::uint64_t idSeed = 0;        // tool call ids are deterministic given this
};

std::vector<std::string> toolCallParserNames();   // "qwen", "llama3", "internlm2", "mistral"
std::vector<std::string> reasoningParserNames();  // "think"

// True when a rendered prompt ends inside an open <think> block (only whitespace after the last
// <think>, no </think> after it): the generated text then starts in the reasoning.
bool promptOpensReasoning(std::string_view renderedPrompt);

// The reasoning stage alone: emits Content and Reasoning events.
class ReasoningParser {
public:
    explicit ReasoningParser(bool startsInReasoning);
    void feed(std::string_view text, std::vector<OutputEvent>& out);
    void finish(std::vector<OutputEvent>& out);

private:
    void process(bool final, std::vector<OutputEvent>& out);

    enum class State { Start, Inside, After };
    State m_state;
    bool m_stripOneNewline;
    bool m_stripNewlines = false;
    std::string m_pending;
};

// The tool call stage alone: a format turns content text into Content, ToolCallStart and
// ToolCallArguments events. The base class owns what all formats share: ids, indices, and the
// whitespace next to calls.
class ToolCallParser {
public:
    // Throws lmw::Error(InvalidArgument) for a name not in toolCallParserNames().
    static std::unique_ptr<ToolCallParser> create(const std::string& name, std::uint64_t idSeed = 0);
    // Calls written as plain JSON under a grammar (OutputParserOptions::forcedCalls): the reply is an
    // array of {"name", "parameters"} objects, or, with `function`, that function's arguments. Decided
    // at finish(): a reply that is not such JSON (cut short) is content.
    static std::unique_ptr<ToolCallParser> forced(const std::string& function, std::uint64_t idSeed = 0);
    virtual ~ToolCallParser() = default;
    virtual void feed(std::string_view text, std::vector<OutputEvent>& out) = 0;
    virtual void finish(std::vector<OutputEvent>& out) = 0;

protected:
    explicit ToolCallParser(std::uint64_t idSeed) : m_idSeed(idSeed) {}
    // Emits the content of `pending` before `marker` and drops it with the marker: true. Without the
    // marker, emits all but a tail that may be its start (everything when final): false.
    bool takeThroughMarker(std::string& pending, std::string_view marker, bool final, std::vector<OutputEvent>& out);
    void emitContent(std::string_view text, std::vector<OutputEvent>& out);
    void emitCall(const std::string& name, const std::string& arguments, std::vector<OutputEvent>& out);
    void finishContent(std::vector<OutputEvent>& out);
    int callCount() const { return m_calls; }

private:
    std::uint64_t m_idSeed;
    int m_calls = 0;
    bool m_afterCall = false;
    std::string m_heldSpace;  // trailing whitespace of the content so far, not yet decided
};

// Both stages, as configured. Not thread-safe; one per request.
class OutputParser {
public:
    // Throws lmw::Error(InvalidArgument) for an unknown parser name.
    explicit OutputParser(const OutputParserOptions& options);
    ~OutputParser();
    OutputParser(const OutputParser&) = delete;
    OutputParser& operator=(const OutputParser&) = delete;

    // The events the new text decides, adjacent Content (and Reasoning) pieces merged; never an
    // event with empty text. Throws lmw::Error(InvalidArgument) after finish().
    std::vector<OutputEvent> feed(std::string_view text);
    // End of the stream: decides and emits everything held back. Throws after a second call.
    std::vector<OutputEvent> finish();
    // Everything emitted so far, assembled.
    const ParsedOutput& result() const { return m_result; }

    // Non-streaming: feed(text) then finish().
    static ParsedOutput parse(std::string_view text, const OutputParserOptions& options);

private:
    void route(std::vector<OutputEvent>& stage, std::vector<OutputEvent>& out);
    std::vector<OutputEvent> collect(std::vector<OutputEvent>& out);

    std::unique_ptr<ReasoningParser> m_reasoning;
    std::unique_ptr<ToolCallParser> m_tools;
    ParsedOutput m_result;
    bool m_finished = false;
};

}  // namespace lmw::engine
