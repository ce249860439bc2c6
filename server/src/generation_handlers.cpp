// POST /v1/chat/completions and POST /v1/completions: validate, check the limits, build prompts,
// then hand one engine request per choice to a GenerationJob (one JSON body or an SSE stream).
#include <algorithm>
#include <memory>
#include <random>

#include "chat_plan.h"
#include "generation.h"
#include "server_impl.h"

namespace lmw::server {

using nlohmann::json;

constexpr int kDefaultCompletionTokens = 16;

namespace {

Shape shapeFor(Server::Impl& server, const engine::Engine& engine, bool chat, const GenerationFields& gen,
               bool logprobs) {
    Shape s;
    s.chat = chat;
    s.stream = gen.stream;
    s.id = newCompletionId(chat ? "chatcmpl-" : "cmpl-");
    s.created = unixNow();
    s.model = server.modelName();
    s.includeUsage = gen.includeUsage;
    s.logprobs = logprobs;
    const engine::Tokenizer* tok = &engine.tokenizer();
    s.tokenText = [tok](int32_t id) { return tok->tokenBytes(id); };
    return s;
}

// n (times the prompts) and top_logprobs within the server's limits.
void checkChoiceLimits(const ServerOptions& o, int choices, bool completions, int topLogprobs, const char* topParam) {
    if (choices > o.maxChoices)
        fail(badRequest("Invalid value for 'n': " + std::string(completions ? "prompts x n" : "n") + " must be at most " +
                            std::to_string(o.maxChoices) + " on this server.",
                        "n", "invalid_value"));
    if (topLogprobs > o.maxTopLogprobs)
        fail(badRequest("Invalid value for '" + std::string(topParam) + "': must be at most " +
                            std::to_string(o.maxTopLogprobs) + " on this server.",
                        topParam, "invalid_value"));
}

// The prompt may have at most this many bytes: more proves it has no room for even one token of
// answer. (Whether max_tokens fits is checked on the token count, with its own error.)
size_t promptBytesAllowed(const TokenFacts& facts, int sessionLen) { return promptByteBound(facts, sessionLen - 1); }

// Upper bound of the answer's bytes (response_budget.h), from its real envelope.
size_t answerBound(const Shape& s, const std::vector<engine::Request>& requests, const std::vector<ChoiceState>& choices,
                   int topLogprobs, const TokenFacts& facts) {
    AnswerShape a;
    a.chat = s.chat;
    a.stream = s.stream;
    a.choices = static_cast<int>(requests.size());
    for (const auto& q : requests) a.tokens += q.sampling.maxNewTokens;
    a.logprobs = s.logprobs;
    a.topLogprobs = topLogprobs;
    const int index = a.choices;  // as many digits as the largest index
    const json reason = "length";
    if (s.stream) {
        const json chunk = s.chat ? chatChunk(s.id, s.created, s.model, index, {{"content", ""}}, nullptr, reason, s.includeUsage)
                                  : textChunk(s.id, s.created, s.model, index, "", nullptr, reason, s.includeUsage);
        a.envelope = 16 + sseEvent(chunk).size();  // + the chunked coding's size line
        a.fixed = 256 + s.id.size() + s.model.size();  // the usage chunk, [DONE]
    } else {
        const UsageCounts big{1 << 30, 1 << 30};
        auto body = [&](std::vector<ChoiceResult> rs) {
            return dumpJson(s.chat ? chatCompletion(s.id, s.created, s.model, rs, big, s.logprobs, s.tokenText)
                                   : textCompletion(s.id, s.created, s.model, rs, big, s.logprobs, s.tokenText))
                .size();
        };
        a.fixed = body({});
        a.envelope = body({{index, "", "length", {}}}) - a.fixed + 1;
    }
    for (const auto& c : choices) a.fixed += 6 * c.echo.size();
    if (s.parse) {
        // A parsed reply's token may end several deltas at once (reasoning, content, a call's start
        // and arguments), and each call costs its envelope (id, type, name: well under 256 bytes)
        // once; a call takes more than a few tokens.
        a.envelope *= 4;
        a.fixed += size_t(a.tokens) * 64;
    }
    const size_t factor = s.format ? s.format->boundFactor() : 1;
    return responseBytesBound(a, facts) * factor;
}

// Reserves the answer's bytes (400 over the per-request limit, 429 when the budget is spent) and
// hands the request to a GenerationJob, which answers through the exchange.
void run(Server::Impl& server, HttpResponse& res, const std::shared_ptr<CallLog>& call,
         const std::shared_ptr<engine::Engine>& engine, const Shape& shape, int topLogprobs, const TokenFacts& facts,
         std::vector<engine::Request> requests, std::vector<ChoiceState> choices) {
    call->entry.stream = shape.stream;
    const size_t bound = answerBound(shape, requests, choices, topLogprobs, facts);
    if (bound > server.opts.maxResponseBytes)
        fail(responseTooLarge(bound, server.opts.maxResponseBytes, requests.size() > 1 ? "n" : "max_tokens"));
    // A whole answer holds all of its bytes at once. A stream holds only what its client has not
    // read yet, charged to the budget as it waits (connection.cpp); admitting it takes a little, so
    // that a spent budget turns new streams away too.
    const size_t reserve = shape.stream ? std::min<size_t>(bound, 64u << 10) : bound;
    if (!server.budget->reserve(reserve)) fail(tooManyInFlight(server.budget->used(), server.budget->limit()));
    auto job = std::make_shared<GenerationJob>(server, engine, call, res.exchange, shape, res.headers, reserve);
    call->deferred = true;
    res.deferred = true;
    job->start(std::move(requests), std::move(choices));
}

// The request's tools go to the chat template as its `tools` variable (not with tool_choice
// "none": the model is not told about them then, as vLLM does by default).
void applyTools(ChatRequest& r, const engine::Engine& engine) {
    if (r.tools.empty() || r.toolChoice.mode == ToolChoice::None) return;
    if (!engine.chatTemplate().supportsTools())
        fail(badRequest("This model's chat template has no tool format, so it cannot be given 'tools'.", "tools",
                        "unsupported_parameter"));
    if (r.templateKwargs.is_null()) r.templateKwargs = nlohmann::ordered_json::object();
    if (r.templateKwargs.contains("tools"))
        fail(badRequest("'tools' is given both as a parameter and in 'chat_template_kwargs'.", "chat_template_kwargs",
                        "invalid_value"));
    r.templateKwargs["tools"] = r.tools;
}

// nlohmann::json keeps keys sorted; a schema's property order is the order the reply writes them in
// and the tools' order is what the template shows the model, so both are taken from the body again,
// in the client's order (the body was checked already).
void keepClientKeyOrder(ChatRequest& r, const std::string& body) {
    if (r.tools.empty() && r.responseFormat.kind != ResponseFormat::JsonSchema) return;
    const auto ordered = nlohmann::ordered_json::parse(body);
    if (!r.tools.empty()) {
        const auto& tools = ordered.at("tools");
        for (size_t i = 0; i < r.tools.size(); ++i)
            for (const char* key : {"description", "parameters"})
                if (r.tools[i]["function"].contains(key)) r.tools[i]["function"][key] = tools[i].at("function").at(key);
    }
    if (r.responseFormat.kind == ResponseFormat::JsonSchema && r.responseFormat.schema.is_object())
        r.responseFormat.schema = ordered.at("response_format").at("json_schema").at("schema");
}

// The grammar a reply must follow: response_format's JSON, or the calls a tool_choice forces
// (OpenAI's "required": an array of {"name", "parameters"}; a named function: its arguments).
std::shared_ptr<const engine::Grammar> replyGrammar(const ChatRequest& r) {
    using ojson = nlohmann::ordered_json;
    auto parameters = [](const ojson& tool) {
        const ojson& f = tool.at("function");
        return f.contains("parameters") ? f.at("parameters") : ojson{{"type", "object"}};
    };
    auto compile = [](const ojson& schema, const std::string& param) {
        try {
            return engine::Grammar::fromJsonSchema(schema);
        } catch (const Error& e) {
            fail(badRequest(std::string("Invalid value for '") + param + "': " + e.what() + ".", param, "invalid_value"));
        }
    };
    switch (r.toolChoice.mode) {
    case ToolChoice::Required: {
        ojson calls = ojson::array();
        for (const auto& t : r.tools)
            calls.push_back({{"type", "object"},
                             {"properties", {{"name", {{"const", t["function"]["name"]}}}, {"parameters", parameters(t)}}},
                             {"required", {"name", "parameters"}},
                             {"additionalProperties", false}});
        ojson schema = {{"type", "array"}, {"minItems", 1}, {"items", {{"anyOf", calls}}}};
        if (!r.parallelToolCalls) schema["maxItems"] = 1;
        return compile(schema, "tools");
    }
    case ToolChoice::Function:
        for (const auto& t : r.tools)
            if (t["function"]["name"] == r.toolChoice.function) return compile(parameters(t), "tools");
        return nullptr;
    default: break;
    }
    if (r.responseFormat.kind == ResponseFormat::JsonObject) return engine::Grammar::anyJsonObject();
    if (r.responseFormat.kind == ResponseFormat::JsonSchema)
        return compile(r.responseFormat.schema, "response_format.json_schema.schema");
    return nullptr;
}

// The tool call format a model family's templates teach (LMDeploy's --tool-call-parser names).
std::string toolCallParserFor(engine::ModelFamily f) {
    switch (f) {
    case engine::ModelFamily::Qwen2:
    case engine::ModelFamily::Qwen3: return "qwen";
    case engine::ModelFamily::InternLM2: return "internlm2";
    case engine::ModelFamily::Mistral: return "mistral";
    case engine::ModelFamily::Llama: return "llama3";
    }
    return "none";
}

// How the reply is split: tool calls when the request gave tools, reasoning when the template thinks.
engine::OutputParserOptions outputParsing(const ChatRequest& r, const engine::Engine& engine, const ServerOptions& o,
                                          const std::string& prompt, bool constrained) {
    engine::OutputParserOptions p;
    p.forcedCalls = r.toolChoice.mode == ToolChoice::Required || r.toolChoice.mode == ToolChoice::Function;
    if (r.toolChoice.mode == ToolChoice::Function) p.forcedFunction = r.toolChoice.function;
    if (!r.tools.empty() && r.toolChoice.mode == ToolChoice::Auto && o.toolCallParser != "none")
        p.toolCallParser = o.toolCallParser == "auto" ? toolCallParserFor(engine.info().config.family) : o.toolCallParser;
    if (constrained) {
        // A grammar's reply is its document from the first token: no reasoning block in it.
    } else if (o.reasoningParser == "auto") {
        if (engine.chatTemplate().source().find("<think>") != std::string::npos) p.reasoningParser = "think";
    } else if (o.reasoningParser != "none") {
        p.reasoningParser = o.reasoningParser;
    }
    p.startsInReasoning = !p.reasoningParser.empty() && engine::promptOpensReasoning(prompt);
    // Seeded requests get the same call ids every time (and streamed = whole); the prompt goes in
    // too, so the next turn of a conversation (its earlier calls in the prompt) gets new ones.
    p.idSeed = (r.gen.sampling.seed ? *r.gen.sampling.seed : std::random_device{}()) ^ std::hash<std::string>{}(prompt);
    return p;
}

}  // namespace

// A chat body (OpenAI's chat completions shape; the Responses and Messages APIs translate theirs
// into it) parsed, checked, templated and fitted: everything up to the engine requests.
ChatPlan planChat(Server::Impl& server, const std::string& body) {
    ChatPlan p;
    p.engine = server.requireEngine();
    const engine::Engine& engine = *p.engine;
    ChatRequest& r = p.r;
    r = parseChatRequest(parseBody(body));
    keepClientKeyOrder(r, body);
    server.checkModel(r.gen.model);
    checkChoiceLimits(server.opts, r.gen.n, false, r.logprobs ? r.topLogprobs : 0, "top_logprobs");
    applyTools(r, engine);
    p.facts = server.tokenFactsOf(p.engine);
    p.prompt = chatPrompt(engine, r.messages, r.addGenerationPrompt, r.templateKwargs, server.specialTokens(),
                          promptBytesAllowed(p.facts, engine.sessionLen()));
    // The context overflow policy cuts the conversation here, so that the checks below, usage and the
    // engine see the prompt that runs (the engine then has nothing more to cut).
    p.messages = r.messages;
    if (server.opts.contextOverflow != engine::ContextOverflow::Stop) {
        engine::Request fit;
        fit.messages = r.messages;
        fit.addGenerationPrompt = r.addGenerationPrompt;
        fit.templateKwargs = r.templateKwargs;
        fit.specialTokens = server.specialTokens();
        fit.contextOverflow = server.opts.contextOverflow;
        if (r.gen.maxTokens) fit.sampling.maxNewTokens = *r.gen.maxTokens;
        engine::Engine::FittedChat f = p.engine->fitChat(fit);
        p.messages = std::move(f.messages);
        p.prompt.ids = std::move(f.ids);
    }
    p.sampling = finalSampling(r.gen, static_cast<int>(p.prompt.ids.size()), engine.sessionLen(), "messages", 0,
                               engine.tokenizer().vocabSize());
    p.grammar = replyGrammar(r);
    p.parsing = outputParsing(r, engine, server.opts, p.prompt.text, p.grammar != nullptr);
    // Some formats' markers are special tokens (<|python_tag|>, <|action_start|>, [TOOL_CALLS]).
    if (!p.parsing.toolCallParser.empty()) p.sampling.skipSpecialTokens = false;
    return p;
}

void runChat(Server::Impl& server, ChatPlan p, HttpResponse& res, const std::shared_ptr<CallLog>& call,
             std::shared_ptr<AnswerFormat> format, const std::string& idPrefix) {
    const ChatRequest& r = p.r;
    const std::vector<engine::ChatMessage>& messages = p.messages;
    const engine::SamplingParams& sampling = p.sampling;
    const std::shared_ptr<const engine::Grammar>& grammar = p.grammar;
    const engine::OutputParserOptions& parsing = p.parsing;
    const BuiltPrompt& prompt = p.prompt;
    const auto specialTokens = server.specialTokens();

    std::vector<engine::Request> requests;
    std::vector<ChoiceState> choices;
    for (int k = 0; k < r.gen.n; ++k) {
        engine::Request q;
        q.messages = messages;
        q.addGenerationPrompt = r.addGenerationPrompt;
        q.templateKwargs = r.templateKwargs;
        q.specialTokens = specialTokens;
        q.sampling = sampling;
        if (sampling.seed) q.sampling.seed = *sampling.seed + static_cast<uint64_t>(k);
        q.topLogprobs = r.logprobs ? r.topLogprobs : -1;
        q.grammar = grammar;
        requests.push_back(std::move(q));
        ChoiceState c;
        c.index = k;
        c.promptTokens = static_cast<int>(prompt.ids.size());
        choices.push_back(std::move(c));
    }
    Shape shape = shapeFor(server, *p.engine, true, r.gen, r.logprobs);
    if (format) {
        // The Responses and Messages APIs always write the reply as typed blocks.
        shape.id = newCompletionId(idPrefix);
        shape.parse = true;
        shape.stops = r.gen.sampling.stop;
        shape.format = std::move(format);
    } else {
        shape.parse = parsing.forcedCalls || !parsing.toolCallParser.empty() || !parsing.reasoningParser.empty();
    }
    shape.parsing = parsing;
    call->entry.tools = !r.tools.empty();
    call->entry.structured = grammar != nullptr;
    run(server, res, call, p.engine, shape, r.logprobs ? r.topLogprobs : 0, p.facts, std::move(requests),
        std::move(choices));
}

void Server::Impl::handleChat(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    runChat(*this, planChat(*this, req.body), res, call, nullptr, "chatcmpl-");
}

void Server::Impl::handleCompletions(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    auto engine = requireEngine();
    CompletionRequest r = parseCompletionRequest(parseBody(req.body));
    checkModel(r.gen.model);
    checkChoiceLimits(opts, static_cast<int>(r.prompts.size()) * r.gen.n, r.prompts.size() > 1, std::max(r.logprobs, 0),
                      "logprobs");
    const TokenFacts facts = tokenFactsOf(engine);
    std::vector<engine::Request> requests;
    std::vector<ChoiceState> choices;
    for (size_t p = 0; p < r.prompts.size(); ++p) {
        BuiltPrompt prompt =
            textPrompt(*engine, r.prompts[p], specialTokens(), promptBytesAllowed(facts, engine->sessionLen()));
        // Without max_tokens a completion is 16 tokens long, as OpenAI's legacy endpoint has it.
        engine::SamplingParams sampling = finalSampling(r.gen, static_cast<int>(prompt.ids.size()), engine->sessionLen(),
                                                        "prompt", kDefaultCompletionTokens, engine->tokenizer().vocabSize());
        for (int k = 0; k < r.gen.n; ++k) {
            engine::Request q;
            if (r.prompts[p].isIds) q.promptIds = r.prompts[p].ids;
            else q.prompt = r.prompts[p].text;
            q.specialTokens = specialTokens();
            q.sampling = sampling;
            if (sampling.seed) q.sampling.seed = *sampling.seed + static_cast<uint64_t>(k);
            q.topLogprobs = r.logprobs;
            requests.push_back(std::move(q));
            ChoiceState c;
            c.index = static_cast<int>(p) * r.gen.n + k;
            c.promptIndex = static_cast<int>(p);
            c.promptTokens = static_cast<int>(prompt.ids.size());
            if (r.echo) c.echo = prompt.text;
            choices.push_back(std::move(c));
        }
    }
    Shape shape = shapeFor(*this, *engine, false, r.gen, r.logprobs >= 0);
    run(*this, res, call, engine, shape, std::max(r.logprobs, 0), facts, std::move(requests), std::move(choices));
}

}  // namespace lmw::server
