#pragma once
// The engine: one thread owns the model, the KV cache and the backend; everyone else posts
// requests with submit() and receives events through a sink called on the engine thread.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmw/chat_template.h"
#include "lmw/grammar.h"
#include "lmw/error.h"
#include "lmw/model_info.h"
#include "lmw/sampling.h"
#include "lmw/tokenizer.h"

namespace lmw::engine {

struct EngineConfig {
    std::string modelDir;
    std::string backend = "auto";   // "auto" (CUDA when a device is there), "cpu", "cuda"
    int quantPolicy = 0;            // KV cache: 0 = 16-bit, 8 = int8, 4 = int4
    double cacheMaxEntryCount = 0.8;  // fraction of free memory after weights given to the KV cache
    int64_t cacheBlocks = 0;        // > 0: exactly this many KV blocks (overrides the fraction)
    uint64_t cacheBytes = 0;        // > 0: as many KV blocks as fit in these bytes (overrides the fraction)
    int sessionLen = 0;             // max tokens of one sequence (prompt + output); 0 = model context
    int maxBatchSize = 64;          // running sequences at most
    int maxPrefillTokenNum = 8192;  // token budget of one step
    bool enablePrefixCaching = false;
    std::string chatTemplate;       // built-in name or Jinja file; empty = model's own / by family
    int threads = 0;                // CPU backend threads; 0 = all cores
};

enum class LoadStage { Reading, Weights, Cache, Ready };
// Progress of a long job; return false to cancel.
using ProgressFn = std::function<bool(LoadStage stage, double fraction, const std::string& what)>;

using RequestId = uint64_t;

// What a chat request does when its rendered prompt plus the reply's budget (max new tokens, at most
// half the session) does not fit the session: Stop refuses it (ContextLengthExceeded), as always for
// a prompt that fills the session; TruncateMiddle keeps the system prompt, the first turn and the
// latest turns and leaves out whole turns (a user message and what follows it) from the middle;
// RollingWindow leaves out the oldest turns after the system prompt. The current turn (the last user
// message and what follows it) always stays. Prompt-text and token-id requests always Stop.
enum class ContextOverflow { Stop, TruncateMiddle, RollingWindow };
const char* contextOverflowName(ContextOverflow p);  // "stop", "truncate-middle", "rolling-window"
// The policy of a name contextOverflowName gives; false for any other text.
bool parseContextOverflow(const std::string& name, ContextOverflow& out);

// What a request produces. Generate: tokens and text. Embedding: one vector and no tokens: the prompt
// is prefilled (in the same steps as everyone's generation) and its final hidden states — the output
// of the model's final RMSNorm, what the LM head reads, as llama-server and sentence-transformers-style
// LLM embedders take them — are pooled over the prompt's tokens in f32 (Mean: their mean; Last: the
// last token's) and L2-normalized; the final event carries it in Event::embedding.
enum class RequestOutput { Generate, Embedding };
enum class Pooling { Mean, Last };
const char* poolingName(Pooling p);  // "mean", "last"
// The pooling of a name poolingName gives; false for any other text.
bool parsePooling(const std::string& name, Pooling& out);

struct Request {
    // Exactly one of these is the input: chat messages (rendered with the chat template),
    // prompt text (encoded as is, BOS per tokenizer_config), or prompt token ids.
    std::vector<ChatMessage> messages;
    std::string prompt;
    std::vector<int32_t> promptIds;
    bool addGenerationPrompt = true;   // chat only
    // chat only: extra chat template variables (Hugging Face's chat_template_kwargs, e.g.
    // {"enable_thinking": false}); null or an object, see ChatTemplate::checkKwargs.
    nlohmann::ordered_json templateKwargs;
    // Special-token text in the prompt text or message contents: AsText (client text, as OpenAI
    // does) or Parse. The chat template's own markup always gives the real special tokens.
    SpecialTokens specialTokens = SpecialTokens::AsText;
    ContextOverflow contextOverflow = ContextOverflow::Stop;  // chat only
    SamplingParams sampling;
    int topLogprobs = -1;              // -1: no logprobs; >= 0: chosen token's logprob + that many alternatives
    // Structured output (lmw/grammar.h, e.g. a JSON schema's): each token is drawn from those the
    // grammar allows, and the reply ends once its document is complete. Null: free text.
    std::shared_ptr<const Grammar> grammar;
    // Embedding: the prompt may fill the whole session (no new token); sampling is not used, and a
    // grammar or logprobs are refused. Mean pooling needs every token's hidden state, so such a
    // request does not reuse cached prefix blocks (Last does).
    RequestOutput output = RequestOutput::Generate;
    Pooling pooling = Pooling::Mean;
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finishReasonName(FinishReason r);  // "stop", "length", "cancelled", "error"

struct Usage {
    int promptTokens = 0;
    int completionTokens = 0;
    int droppedMessages = 0;  // messages the context overflow policy left out of the prompt
};

struct TokenLogprob {
    int32_t id;
    std::string text;
    float logprob;
    std::vector<TokenChoice> top;
};

// One call of a sink. Non-final events carry new text/tokens; the final one carries the finish
// reason and usage (and may carry the last text too).
struct Event {
    RequestId id = 0;
    std::string text;              // UTF-8 delta, never half a character
    std::vector<int32_t> tokens;   // ids generated since the last event
    std::vector<TokenLogprob> logprobs;
    bool final = false;
    FinishReason finish = FinishReason::None;
    std::string error;             // with FinishReason::Error
    ErrorCode errorCode = ErrorCode::Internal;
    Usage usage;
    double firstTokenSeconds = 0;  // final: time from submit to the first token
    double totalSeconds = 0;       // final: time from submit to the end
    std::vector<float> embedding;  // final, RequestOutput::Embedding ending in Stop: [hidden], unit length
};

// Called on the engine thread: copy out and return at once; never block, never throw.
using Sink = std::function<void(const Event&)>;

struct EngineStats {
    int running = 0;
    int waiting = 0;
    int64_t kvBlocksTotal = 0;
    int64_t kvBlocksUsed = 0;
    int kvBlockSize = 64;
    int64_t kvTokenCapacity = 0;       // tokens that fit in the KV cache
    int64_t prefixCacheHitBlocks = 0;  // cumulative
    int64_t preemptions = 0;           // cumulative
    uint64_t requestsFinished = 0;     // cumulative
    uint64_t promptTokens = 0;         // cumulative
    uint64_t generatedTokens = 0;      // cumulative
    double decodeTokensPerSecond = 0;  // recent, all sequences together
    double decodeStepMs = 0;           // recent decode step (one token per sequence), wall time
    double decodeEnqueueMs = 0;        // of it, host time spent enqueueing the forward pass
    std::string backend;               // "cpu" / "cuda"
    std::string device;                // e.g. "NVIDIA H100 80GB HBM3" or CPU model name
    uint64_t deviceMemoryUsed = 0;
    uint64_t deviceMemoryTotal = 0;
};

class Engine {
public:
    // Loads the model and starts the engine thread. Cancel through progress returning false
    // (result: ErrorCode::Cancelled).
    static Result<std::unique_ptr<Engine>> load(const EngineConfig& config, const ProgressFn& progress = {});
    ~Engine();  // cancels what runs, joins the engine thread

    // Thread-safe. Invalid requests (empty prompt, too long, bad sampling) end at once with a
    // final Error event delivered on the engine thread; submit itself never throws.
    RequestId submit(Request request, Sink sink);
    void cancel(RequestId id);
    EngineStats stats() const;

    const ModelInfo& info() const;
    const EngineConfig& config() const;
    const Tokenizer& tokenizer() const;
    const ChatTemplate& chatTemplate() const;
    int sessionLen() const;
    // plainSpans non-null: message contents are client text; where their special-token text landed
    // in the result is stored there (see runtime/chat_prompt.cpp), for encodeChat.
    std::string renderChat(const std::vector<ChatMessage>& messages, bool addGenerationPrompt = true,
                           const nlohmann::ordered_json& templateKwargs = nullptr,
                           std::vector<TextSpan>* plainSpans = nullptr) const;
    // A chat request's prompt as the engine runs it: its messages (messages, addGenerationPrompt,
    // templateKwargs, specialTokens) rendered and encoded, cut by its contextOverflow policy against
    // sampling.maxNewTokens (see ContextOverflow). Throws lmw::Error as submit() would report it.
    struct FittedChat {
        std::vector<ChatMessage> messages;  // what was rendered: the request's, less the turns left out
        std::vector<int32_t> ids;
        int droppedMessages = 0;
    };
    FittedChat fitChat(const Request& chatRequest) const;
    // Token ids of a rendered chat prompt, as a chat request is encoded: BOS per tokenizer_config
    // unless the template already printed the BOS text; special tokens in plainSpans are text.
    std::vector<int32_t> encodeChat(const std::string& rendered, const std::vector<TextSpan>& plainSpans = {}) const;

    struct Impl;

private:
    explicit Engine(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m;
};

}  // namespace lmw::engine
