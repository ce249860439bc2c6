#pragma once
// Request bodies of the OpenAI API, parsed and validated into plain structs. Every failure throws
// ApiException with a 400 naming the field, so handlers never see a half-valid request.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmw/chat_template.h"
#include "lmw/sampling.h"
#include "nlohmann/json.hpp"

namespace lmw::server {

constexpr int kMaxJsonDepth = 64;  // deeper bodies are refused before parsing
constexpr int kMaxChoices = 64;    // n
constexpr int kMaxStops = 16;
constexpr int kMaxTopLogprobs = 20;
constexpr int kMaxLogitBias = 1024;  // logit_bias entries
constexpr int kMaxTools = 128;       // OpenAI's limit on tools per request

// The 400 for a field of the wrong type ("Invalid type for 'param': expected ..., but got an array."),
// for every API's parser.
[[noreturn]] void failWrongType(const std::string& param, const char* expected, nlohmann::json::value_t got);

// Parses a request body into a JSON object (400 on broken JSON, invalid UTF-8, too deep nesting,
// or anything but an object at the top).
nlohmann::json parseBody(const std::string& body);

// Fields chat and completions share.
struct GenerationFields {
    std::string model;                 // as sent; empty when absent
    engine::SamplingParams sampling;   // maxNewTokens left at 0 when max_tokens is absent
    std::optional<int> maxTokens;
    int n = 1;
    bool stream = false;
    bool includeUsage = false;         // stream_options.include_usage
};

// tool_choice: "auto" (the model decides), "none", "required" (at least one call), or one named function.
struct ToolChoice {
    enum Mode { Auto, None, Required, Function } mode = Auto;
    std::string function;  // Function: its name
};

// response_format: plain text, any JSON object, or JSON that validates against a schema.
struct ResponseFormat {
    enum Kind { Text, JsonObject, JsonSchema } kind = Text;
    std::string name;     // json_schema.name
    nlohmann::ordered_json schema;  // json_schema.schema (an object, or true)
    bool strict = false;
};

struct ChatRequest {
    GenerationFields gen;
    std::vector<engine::ChatMessage> messages;
    bool addGenerationPrompt = true;
    nlohmann::ordered_json templateKwargs;  // chat_template_kwargs: null or an object
    bool logprobs = false;
    int topLogprobs = 0;
    // The functions the model may call ([{"type": "function", "function": {"name", "description",
    // "parameters"}}], checked), as the chat template's `tools` reads them; empty when none.
    nlohmann::ordered_json tools = nlohmann::ordered_json::array();
    ToolChoice toolChoice;
    bool parallelToolCalls = true;
    ResponseFormat responseFormat;
};

struct PromptInput {
    std::string text;
    std::vector<int32_t> ids;  // used when isIds
    bool isIds = false;
};

// A completion's prompt / an embedding's input: a string, an array of strings or of token ids, or
// one array of token ids; `name` is the field, for messages ("prompt", "input[2]").
std::vector<PromptInput> parsePromptInputs(const nlohmann::json& value, const std::string& name);

struct CompletionRequest {
    GenerationFields gen;
    std::vector<PromptInput> prompts;  // one or more
    bool echo = false;
    int logprobs = -1;                 // -1: none
};

struct EncodeRequest {
    std::vector<std::string> inputs;
    bool batch = false;          // input was a list
    bool doPreprocess = false;   // apply the chat template to each input as one user message
    bool addBos = true;
};

// POST /v1/embeddings.
constexpr int kMaxEmbeddingInputs = 2048;  // OpenAI's limit on inputs per request
struct EmbeddingRequest {
    std::string model;
    std::vector<PromptInput> inputs;  // one or more, none an empty text
    bool base64 = false;              // encoding_format "base64": little-endian float32 bytes
};

// POST /tokenize and /detokenize, as llama-server takes them.
struct TokenizeRequest {
    std::string content;
    bool addSpecial = false;          // add_special: the tokens the tokenizer puts around a text (BOS)
    std::optional<bool> parseSpecial; // parse_special: special-token text becomes special ids (default: the server's rule)
    bool withPieces = false;          // with_pieces: each id with its piece
};
struct DetokenizeRequest {
    std::vector<int32_t> tokens;
};

ChatRequest parseChatRequest(const nlohmann::json& body);
TokenizeRequest parseTokenizeRequest(const nlohmann::json& body);
// vocabSize: ids must be below it.
DetokenizeRequest parseDetokenizeRequest(const nlohmann::json& body, int vocabSize);
CompletionRequest parseCompletionRequest(const nlohmann::json& body);
EncodeRequest parseEncodeRequest(const nlohmann::json& body);
EmbeddingRequest parseEmbeddingRequest(const nlohmann::json& body);

// Maximum nesting depth of a JSON text, counting only brackets outside strings. Stops counting
// (returns > limit) as soon as limit is passed.
int jsonDepth(const std::string& text, int limit);

}  // namespace lmw::server
