// The engine thread: admit -> schedule -> forward the batch -> sample -> emit.
#include "lmw/engine.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "backend/backend.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "runtime/chat_prompt.h"
#include "runtime/scheduler.h"

namespace lmw::engine {

const char* finishReasonName(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
        case FinishReason::None: break;
    }
    return "";
}

const char* contextOverflowName(ContextOverflow p) {
    switch (p) {
        case ContextOverflow::Stop: return "stop";
        case ContextOverflow::TruncateMiddle: return "truncate-middle";
        case ContextOverflow::RollingWindow: return "rolling-window";
    }
    return "";
}

bool parseContextOverflow(const std::string& name, ContextOverflow& out) {
    for (ContextOverflow p : {ContextOverflow::Stop, ContextOverflow::TruncateMiddle, ContextOverflow::RollingWindow})
        if (name == contextOverflowName(p)) {
            out = p;
            return true;
        }
    return false;
}

const char* poolingName(Pooling p) { return p == Pooling::Last ? "last" : "mean"; }

bool parsePooling(const std::string& name, Pooling& out) {
    for (Pooling p : {Pooling::Mean, Pooling::Last})
        if (name == poolingName(p)) {
            out = p;
            return true;
        }
    return false;
}

namespace {
constexpr int kBlockSize = kKvBlockSize;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// v / |v| in f32. A mean is a sum divided by its count, which the normalization takes off anyway.
std::vector<float> unitVector(const std::vector<double>& v) {
    double norm = 0;
    for (double x : v) norm += x * x;
    norm = std::sqrt(norm);
    std::vector<float> out(v.size(), 0.0f);
    if (norm > 0)
        for (size_t i = 0; i < v.size(); ++i) out[i] = float(v[i] / norm);
    return out;
}
}  // namespace

struct Engine::Impl {
    EngineConfig config;
    ModelInfo info;
    std::unique_ptr<Tokenizer> tokenizer;
    std::shared_ptr<ChatTemplate> chatTemplate;
    std::unique_ptr<Backend> backend;
    ModelSources sources;
    std::unique_ptr<Transformer> model;
    std::unique_ptr<BlockManager> blocks;
    std::unique_ptr<Scheduler> scheduler;
    int sessionLen = 0;
    std::vector<int32_t> eosIds;
    std::vector<int32_t> templateStopIds;
    std::vector<std::string> templateStopStrings;

    // Shared with other threads.
    mutable std::mutex mutex;
    std::condition_variable wake;
    std::vector<std::unique_ptr<Sequence>> inbox;
    std::vector<std::pair<std::unique_ptr<Sequence>, Error>> rejectedInbox;  // delivered on the engine thread
    std::unordered_set<RequestId> cancels;
    bool stopping = false;
    EngineStats stats;
    std::atomic<RequestId> nextId{1};
    std::thread thread;

    // The tokenizer's byte strings for grammar masks: built by the first request with a grammar.
    std::once_flag vocabularyOnce;
    std::shared_ptr<const TokenVocabulary> vocabulary;

    // Engine thread only.
    std::vector<float> logits;
    double tokensPerSecond = 0;
    double decodeStepMs = 0, decodeEnqueueMs = 0;  // recent decode steps (one token per sequence)

    void load(const ProgressFn& progress);
    void reserveActivations(const KvCacheShape& shape);
    void sampleOrReadBack(Tensor logits, const std::vector<Sequence*>& sampled, const std::vector<uint64_t>& uniforms,
                        std::vector<DeviceSampleResult>& onDevice);
    std::unique_ptr<Sequence> prepare(Request& req, RequestId id, Sink sink);
    Engine::FittedChat fitChat(const Request& req) const;
    void run();
    void step();
    void emit(Sequence& s, Event& ev) {
        ev.id = s.id;
        try {
            if (s.sink) s.sink(ev);
        } catch (...) {  // a sink must not throw; if one does, the engine still goes on
        }
    }
    void finish(Sequence* s, FinishReason reason, const std::string& error = {}, ErrorCode code = ErrorCode::Internal);
    void fail(std::unique_ptr<Sequence> s, const Error& e);
    void updateStats();
};

// ---------------------------------------------------------------- loading

void Engine::Impl::load(const ProgressFn& progress) {
    auto report = [&](LoadStage st, double f, const std::string& what) {
        if (progress && !progress(st, f, what)) throw Error(ErrorCode::Cancelled, "loading cancelled");
    };
    report(LoadStage::Reading, 0, "reading " + config.modelDir);
    auto infoResult = readModelInfo(config.modelDir);
    if (!infoResult) throw infoResult.error();
    info = infoResult.value();
    const ModelConfig& cfg = info.config;
    tokenizer = Tokenizer::load(config.modelDir);
    chatTemplate = ChatTemplate::select(config.chatTemplate, tokenizer->chatTemplateSource(), cfg.family, cfg.vocabSize);

    if (config.quantPolicy != 0 && config.quantPolicy != 4 && config.quantPolicy != 8)
        throw Error(ErrorCode::InvalidArgument, "quant_policy must be 0, 4 or 8");
    sessionLen = config.sessionLen > 0 ? config.sessionLen : cfg.maxPositionEmbeddings;
    if (sessionLen <= 1) throw Error(ErrorCode::InvalidArgument, "session length must be at least 2");

    backend = createBackend(config.backend, config.threads);
    sources = loadModelSources(config.modelDir, cfg);
    model = std::make_unique<Transformer>(*backend, sources, [&](LoadStage st, double f, const std::string& w) {
        return !progress || progress(st, f, w);
    });

    report(LoadStage::Cache, 0, "allocating the KV cache");
    const KvCacheShape shape{cfg.numLayers, cfg.numKvHeads, cfg.headDim, kBlockSize, config.quantPolicy};
    const uint64_t blockBytes = backend->kvBlockBytes(shape);
    if (backend->deviceInfo().backend != "cpu") reserveActivations(shape);
    const DeviceInfo dev = backend->deviceInfo();
    int64_t numBlocks = config.cacheBlocks;
    if (numBlocks <= 0 && config.cacheBytes > 0) numBlocks = int64_t(config.cacheBytes / blockBytes);
    else if (numBlocks <= 0) {
        numBlocks = int64_t(double(dev.freeBytes) * std::clamp(config.cacheMaxEntryCount, 0.0, 1.0) / double(blockBytes));
        // On the CPU, memory is shared with everything else: never take more than every running
        // sequence can use at full session length.
        const int64_t useful = kvBlocksFor(sessionLen, config.maxBatchSize);
        if (dev.backend == "cpu") numBlocks = std::min(numBlocks, useful);
    }
    if (numBlocks < 1)
        throw Error(ErrorCode::OutOfMemory, "no memory left for the KV cache after the weights (" +
                                                formatBytes(dev.freeBytes) + " free on " + dev.name + ")");
    backend->allocKvCache(shape, numBlocks);
    if (config.quantPolicy != 0) model->calibrateKvKeyOffsets(*tokenizer, numBlocks * kBlockSize);
    blocks = std::make_unique<BlockManager>(numBlocks, kBlockSize, config.enablePrefixCaching);
    scheduler = std::make_unique<Scheduler>(*blocks, config.maxBatchSize, config.maxPrefillTokenNum);
    logits.resize(size_t(cfg.vocabSize) * size_t(std::max(1, config.maxBatchSize)));

    for (int id : cfg.eosTokenIds) eosIds.push_back(id);
    if (tokenizer->eosId() >= 0) eosIds.push_back(tokenizer->eosId());
    for (const auto& w : chatTemplate->stopWords()) {
        auto id = tokenizer->tokenId(w);
        if (id && tokenizer->isSpecial(*id)) templateStopIds.push_back(*id);
        else templateStopStrings.push_back(w);
    }

    stats.backend = dev.backend;
    stats.device = dev.name;
    stats.kvBlocksTotal = numBlocks;
    stats.kvBlockSize = kBlockSize;
    stats.kvTokenCapacity = numBlocks * kBlockSize;
    stats.deviceMemoryTotal = dev.totalBytes;
    report(LoadStage::Ready, 1, "ready");
}

// A GPU's memory is sized once: one step at the full token budget first makes the backend take
// its peak activation memory, so the KV cache gets only what is left after it (as vLLM profiles).
void Engine::Impl::reserveActivations(const KvCacheShape& shape) {
    // The scheduler fills a step with up to maxPrefillTokenNum tokens, from several prompts when the
    // session is shorter. One sequence of that many tokens needs at least the memory of any such mix
    // (the activations depend on the tokens, attention's workspace grows with the context).
    const int tokens = int(std::max<int64_t>(
        1, std::min<int64_t>(config.maxPrefillTokenNum, int64_t(sessionLen) * std::max(1, config.maxBatchSize))));
    backend->allocKvCache(shape, (tokens + kBlockSize - 1) / kBlockSize);
    const std::vector<int32_t> zeros(static_cast<size_t>(tokens), 0);
    StepBatch b = sequenceBatch(info.config, tokens, zeros.data());
    for (int i = 0; i < std::min(tokens, std::max(1, config.maxBatchSize)); ++i) b.logitRows.push_back(tokens - 1 - i);
    logits.resize(b.logitRows.size() * size_t(info.config.vocabSize));
    const Tensor out = model->forwardLogits(b);
    // The device sampler's workspaces at their largest (every row with a logit bias) come first too.
    const SamplingParams biased = [] {
        SamplingParams p;
        p.temperature = 0;
        p.logitBias = {{0, 1.0f}};
        return p;
    }();
    std::vector<DeviceSampleRow> rows;
    for (size_t i = 0; i < b.logitRows.size(); ++i) rows.push_back({int32_t(i), &biased, nullptr, 0, 0, -1});
    std::vector<DeviceSampleResult> unused;
    backend->sampleOnDevice(out, rows, unused);
    backend->readF32(out, logits.data());
}

// The one place that decides where a row is sampled: on the device when the backend can and the
// request asks for nothing the device sampler lacks, else on the host from logits read back (into
// `logits`, at the row's index). onDevice[i].token is -1 for the host's rows.
void Engine::Impl::sampleOrReadBack(Tensor out, const std::vector<Sequence*>& sampled, const std::vector<uint64_t>& uniforms,
                                  std::vector<DeviceSampleResult>& onDevice) {
    onDevice.assign(sampled.size(), DeviceSampleResult{});
    for (auto& d : onDevice) d.token = -1;
    if (sampled.empty()) return;
    std::vector<DeviceSampleRow> rows;
    std::vector<size_t> index;
    for (size_t i = 0; i < sampled.size(); ++i) {
        const Sequence& s = *sampled[i];
        if (s.topLogprobs > kMaxDeviceTopLogprobs) continue;
        rows.push_back({int32_t(i), &s.sampling, &s.tokens, s.promptLen, uniforms[i], s.topLogprobs,
                        s.grammar ? s.allowed.data() : nullptr});
        index.push_back(i);
    }
    std::vector<DeviceSampleResult> results;
    if (rows.empty() || !backend->sampleOnDevice(out, rows, results)) {
        backend->readF32(out, logits.data());
        return;
    }
    for (size_t k = 0; k < index.size(); ++k) onDevice[index[k]] = std::move(results[k]);
    const int64_t vocab = out.cols;
    for (size_t i = 0; i < sampled.size(); ++i)
        if (onDevice[i].token < 0) {
            Tensor row = out;
            row.data = static_cast<uint8_t*>(out.data) + int64_t(i) * out.stride * out.elemBytes;
            row.rows = 1;
            backend->readF32(row, logits.data() + int64_t(i) * vocab);
        }
}

// ---------------------------------------------------------------- requests

Engine::FittedChat Engine::Impl::fitChat(const Request& req) const {
    ChatTemplate::checkKwargs(req.templateKwargs);
    const bool asText = req.specialTokens == SpecialTokens::AsText;
    auto encode = [&](const std::vector<ChatMessage>& messages) {
        std::vector<TextSpan> plain;
        const std::string rendered = renderChatPrompt(*chatTemplate, *tokenizer, messages, req.addGenerationPrompt,
                                                      req.templateKwargs, asText ? &plain : nullptr);
        return lmw::engine::encodeChat(*tokenizer, rendered, plain);
    };
    Engine::FittedChat f{req.messages, encode(req.messages), 0};
    // The fewest left-out turns for which prompt + reply budget fit (each turn left out shortens the
    // prompt, so bisection: a few renders, not one per turn).
    const int budget = std::min(req.sampling.maxNewTokens, sessionLen / 2);
    auto fits = [&](const std::vector<int32_t>& t) { return int(t.size()) + budget <= sessionLen; };
    const int most = droppableTurns(req.messages, req.contextOverflow);
    if (most == 0 || fits(f.ids)) return f;
    std::vector<int32_t> best = encode(withoutTurns(req.messages, req.contextOverflow, most));
    if (!fits(best)) return f;  // not even then: the request is refused as it is
    int lo = 0, hi = most;      // lo turns left out do not fit, hi do (best holds its ids)
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        std::vector<int32_t> t = encode(withoutTurns(req.messages, req.contextOverflow, mid));
        if (fits(t)) {
            hi = mid;
            best = std::move(t);
        } else {
            lo = mid;
        }
    }
    f.messages = withoutTurns(req.messages, req.contextOverflow, hi);
    f.ids = std::move(best);
    f.droppedMessages = int(req.messages.size() - f.messages.size());
    return f;
}

std::unique_ptr<Sequence> Engine::Impl::prepare(Request& req, RequestId id, Sink sink) {
    auto s = std::make_unique<Sequence>();
    s->id = id;
    s->sink = std::move(sink);
    s->submitted = Clock::now();
    s->sampling = req.sampling;
    s->topLogprobs = req.topLogprobs;

    const std::string invalid = validate(req.sampling);
    if (!invalid.empty()) throw Error(ErrorCode::InvalidArgument, invalid);
    bool chat = !req.messages.empty();
    if (chat) {
        Engine::FittedChat f = fitChat(req);
        s->tokens = std::move(f.ids);
        s->droppedMessages = f.droppedMessages;
    } else if (!req.promptIds.empty()) {
        for (int32_t t : req.promptIds)
            if (t < 0 || t >= info.config.vocabSize)
                throw Error(ErrorCode::InvalidArgument, "prompt token id " + std::to_string(t) + " is out of the vocabulary");
        s->tokens = req.promptIds;
    } else if (!req.prompt.empty()) {
        s->tokens = tokenizer->encode(req.prompt, std::nullopt, req.specialTokens);
    }
    if (s->tokens.empty()) throw Error(ErrorCode::InvalidArgument, "the prompt is empty");
    s->promptLen = s->tokens.size();
    if (req.output == RequestOutput::Embedding) {
        if (req.grammar || req.topLogprobs >= 0)
            throw Error(ErrorCode::InvalidArgument, "an embedding request generates no tokens: it takes no grammar or logprobs");
        if (int(s->promptLen) > sessionLen)
            throw Error(ErrorCode::ContextLengthExceeded, "the input has " + std::to_string(s->promptLen) +
                                                              " tokens; the session length is " + std::to_string(sessionLen));
        s->embedding = true;
        s->pooling = req.pooling;
        s->pooled.assign(size_t(info.config.hiddenSize), 0.0);
    } else if (int(s->promptLen) >= sessionLen)
        throw Error(ErrorCode::ContextLengthExceeded,
                    "the prompt has " + std::to_string(s->promptLen) + " tokens; the session length is " +
                        std::to_string(sessionLen) + " (prompt and at least one new token must fit)");
    s->maxNewTokens = s->embedding ? 0 : std::min(req.sampling.maxNewTokens, sessionLen - int(s->promptLen));

    if (!req.sampling.ignoreEos) s->stopIds = eosIds;
    s->stopIds.insert(s->stopIds.end(), req.sampling.stopIds.begin(), req.sampling.stopIds.end());
    std::vector<std::string> stops = req.sampling.stop;
    if (chat) {
        s->stopIds.insert(s->stopIds.end(), templateStopIds.begin(), templateStopIds.end());
        stops.insert(stops.end(), templateStopStrings.begin(), templateStopStrings.end());
    }
    if (req.grammar) {
        std::call_once(vocabularyOnce, [&] { vocabulary = TokenVocabulary::fromTokenizer(*tokenizer, info.config.vocabSize); });
        s->grammar = std::make_unique<GrammarMatcher>(req.grammar, vocabulary, s->stopIds);
        s->allowed.resize(size_t(vocabulary->maskWords()));
    }
    s->sampler = std::make_unique<Sampler>(req.sampling, info.config.vocabSize);
    // A chat reply is a text of its own (no leading space); a completion continues its prompt.
    s->output = std::make_unique<OutputStream>(*tokenizer, req.sampling.skipSpecialTokens, !chat, std::move(stops));
    return s;
}

void Engine::Impl::finish(Sequence* s, FinishReason reason, const std::string& error, ErrorCode code) {
    Event ev;
    ev.final = true;
    ev.finish = reason;
    ev.error = error;
    ev.errorCode = code;
    // Text held back for a stop string that never completed belongs to the reply, whatever ended it.
    if (reason != FinishReason::Error) ev.text = s->output->finish();
    ev.usage = {int(s->promptLen), s->generated(), s->droppedMessages};
    ev.firstTokenSeconds = s->hasFirstToken ? std::chrono::duration<double>(s->firstToken - s->submitted).count() : 0;
    ev.totalSeconds = secondsSince(s->submitted);
    if (s->embedding && reason == FinishReason::Stop) ev.embedding = unitVector(s->pooled);
    std::unique_ptr<Sequence> owned = scheduler->remove(s);
    {
        std::lock_guard lock(mutex);
        ++stats.requestsFinished;
        stats.promptTokens += s->promptLen;
        stats.generatedTokens += uint64_t(s->generated());
    }
    emit(*s, ev);
}

void Engine::Impl::fail(std::unique_ptr<Sequence> s, const Error& e) {
    Event ev;
    ev.final = true;
    ev.finish = FinishReason::Error;
    ev.error = e.what();
    ev.errorCode = e.code();
    ev.usage = {int(s->promptLen), 0};
    ev.totalSeconds = secondsSince(s->submitted);
    emit(*s, ev);
}

// ---------------------------------------------------------------- the loop

void Engine::Impl::run() {
    for (;;) {
        std::vector<std::unique_ptr<Sequence>> arrived;
        std::vector<std::pair<std::unique_ptr<Sequence>, Error>> rejected;
        std::unordered_set<RequestId> cancelled;
        {
            std::unique_lock lock(mutex);
            wake.wait(lock, [&] {
                return stopping || !inbox.empty() || !rejectedInbox.empty() || !cancels.empty() ||
                       !scheduler->running().empty() || !scheduler->waiting().empty();
            });
            if (stopping) break;
            arrived.swap(inbox);
            rejected.swap(rejectedInbox);
            cancelled.swap(cancels);
        }
        for (auto& [s, e] : rejected) fail(std::move(s), e);
        for (auto& s : arrived) scheduler->add(std::move(s));
        if (!cancelled.empty())
            for (Sequence* s : scheduler->all())
                if (cancelled.count(s->id)) finish(s, FinishReason::Cancelled);
        if (!scheduler->running().empty() || !scheduler->waiting().empty()) step();
        updateStats();
    }
    // Shutting down: every request still known gets its final event, the refused ones too.
    for (Sequence* s : scheduler->all()) finish(s, FinishReason::Cancelled);
    std::vector<std::pair<std::unique_ptr<Sequence>, Error>> refused;
    {
        std::lock_guard lock(mutex);
        refused.swap(rejectedInbox);
    }
    for (auto& [s, e] : refused) fail(std::move(s), e);
    std::lock_guard lock(mutex);
    for (auto& s : inbox) {
        Event ev;
        ev.final = true;
        ev.finish = FinishReason::Cancelled;
        emit(*s, ev);
    }
    inbox.clear();
}

void Engine::Impl::step() {
    std::vector<std::unique_ptr<Sequence>> rejected;
    const std::vector<ScheduledSeq> plan = scheduler->schedule(rejected);
    for (auto& s : rejected)
        fail(std::move(s), Error(ErrorCode::OutOfMemory, "the request needs more KV cache blocks than the cache has (" +
                                                             std::to_string(blocks->numBlocks()) + " blocks of " +
                                                             std::to_string(kBlockSize) + " tokens)"));
    if (plan.empty()) return;

    // Build the batch: each sequence's next tokens, positions, block table and rope table.
    const ModelConfig& cfg = info.config;
    StepBatch batch;
    size_t maxBlocks = 1;
    for (const auto& p : plan) maxBlocks = std::max(maxBlocks, p.seq->blocks.size());
    batch.maxBlocks = int32_t(maxBlocks);
    batch.seqStart.push_back(0);
    std::vector<Sequence*> sampled;  // sequences whose logits come back this step, in logitRows order
    // Embedding requests: rows of the step whose final hidden states each adds to its sum, and those
    // whose prompt is complete after this step.
    struct PooledRows {
        Sequence* seq;
        int32_t begin, end;
    };
    std::vector<PooledRows> pooledRows;
    std::vector<Sequence*> embedded;
    for (const auto& p : plan) {
        Sequence& s = *p.seq;
        const int32_t first = int32_t(batch.tokens.size());
        for (int i = 0; i < p.numTokens; ++i) {
            batch.tokens.push_back(s.tokens[s.numComputed + size_t(i)]);
            batch.positions.push_back(int32_t(s.numComputed) + i);
        }
        batch.seqStart.push_back(int32_t(batch.tokens.size()));
        const int ctx = int(s.numComputed) + p.numTokens;
        batch.contextLen.push_back(ctx);
        for (size_t b = 0; b < maxBlocks; ++b) batch.blockTable.push_back(b < s.blocks.size() ? s.blocks[b] : -1);
        const size_t f = batch.invFreq.size();
        batch.invFreq.resize(f + size_t(cfg.headDim / 2));
        ropeInvFreq(cfg, ctx, batch.invFreq.data() + f);
        const bool complete = size_t(ctx) == s.tokens.size();
        if (s.embedding) {
            // A prefill that starts over (the first chunk, or after a preemption) starts a new sum.
            if (s.numComputed == 0) s.pooled.assign(s.pooled.size(), 0.0);
            if (s.pooling == Pooling::Mean) pooledRows.push_back({&s, first, batch.seqStart.back()});
            else if (complete) pooledRows.push_back({&s, batch.seqStart.back() - 1, batch.seqStart.back()});
            if (complete) embedded.push_back(&s);
        } else if (complete) {
            batch.logitRows.push_back(batch.seqStart.back() - 1);
            sampled.push_back(&s);
        }
    }
    if (logits.size() < sampled.size() * size_t(cfg.vocabSize)) logits.resize(sampled.size() * size_t(cfg.vocabSize));

    // One uniform per sampled token (none when greedy), drawn whichever path samples the row, so a
    // seeded request gives the same tokens on the device and on the host.
    std::vector<uint64_t> uniforms(sampled.size(), 0);
    for (size_t i = 0; i < sampled.size(); ++i)
        if (sampled[i]->sampler->needsUniform()) uniforms[i] = sampled[i]->sampler->drawUniform();
    std::vector<DeviceSampleResult> onDevice;  // per sampled row; token -1: sampled on the host

    const auto t0 = Clock::now();
    try {
        Tensor hidden;
        const Tensor out = model->forwardLogits(batch, pooledRows.empty() ? nullptr : &hidden);
        // Grammar masks are host work; on CUDA the step above is only enqueued, so they are made
        // while the device computes it.
        for (Sequence* s : sampled)
            if (s->grammar) {
                s->grammar->fillNextTokenMask(s->allowed.data());
                // A complete document that may not end (ignore_eos, so no end token) allows nothing
                // more; it is done.
                s->documentDone = std::none_of(s->allowed.begin(), s->allowed.end(), [](uint32_t w) { return w != 0; });
                if (s->documentDone) s->allowed.assign(s->allowed.size(), ~0u);  // sampled, then dropped
            }
        sampleOrReadBack(out, sampled, uniforms, onDevice);
        for (const PooledRows& r : pooledRows)
            backend->addColumnSums(rowRange(hidden, r.begin, r.end), r.seq->pooled.data());
    } catch (const std::exception& ex) {
        // The step failed as a whole (e.g. out of device memory): its requests end with the error,
        // the engine goes on serving the others.
        const Error* e = dynamic_cast<const Error*>(&ex);
        const ErrorCode code = e ? e->code() : (dynamic_cast<const std::bad_alloc*>(&ex) ? ErrorCode::OutOfMemory : ErrorCode::Internal);
        for (const auto& p : plan) finish(p.seq, FinishReason::Error, ex.what(), code);
        return;
    }
    for (const auto& p : plan) {
        p.seq->numComputed += size_t(p.numTokens);
        scheduler->publishFullBlocks(*p.seq);
    }
    for (Sequence* s : embedded) finish(s, FinishReason::Stop);

    // Sample, emit, finish.
    for (size_t i = 0; i < sampled.size(); ++i) {
        Sequence& s = *sampled[i];
        float* row = logits.data() + i * size_t(cfg.vocabSize);
        if (s.documentDone) {
            finish(&s, FinishReason::Stop);
            continue;
        }
        Event ev;
        // Logprobs are taken from the raw row before this, as with a logit bias.
        auto maskRow = [&] {
            if (!s.grammar) return;
            for (int t = 0; t < cfg.vocabSize; ++t)
                if (!(s.allowed[size_t(t) >> 5] >> (t & 31) & 1u)) row[t] = -std::numeric_limits<float>::infinity();
        };
        if (onDevice[i].token >= 0) {
            const DeviceSampleResult& d = onDevice[i];
            if (s.topLogprobs >= 0) ev.logprobs.push_back({d.token, tokenizer->tokenBytes(d.token), d.logprob, d.top});
            s.tokens.push_back(d.token);
        } else if (s.topLogprobs >= 0) {
            // Logprobs of the raw distribution, taken before the sampler changes the row in place.
            auto top = Sampler::topLogprobs(row, cfg.vocabSize, std::max(1, s.topLogprobs));
            std::vector<float> raw(row, row + cfg.vocabSize);
            maskRow();
            const int32_t tok = s.sampler->sample(row, s.tokens, s.promptLen, uniforms[i]);
            // The token's own bytes: decoding it alone would drop a sentencepiece leading space.
            TokenLogprob lp{tok, tokenizer->tokenBytes(tok), Sampler::logprobOf(raw.data(), cfg.vocabSize, tok), {}};
            if (s.topLogprobs > 0) lp.top.assign(top.begin(), top.begin() + std::min<size_t>(top.size(), size_t(s.topLogprobs)));
            ev.logprobs.push_back(std::move(lp));
            s.tokens.push_back(tok);
        } else {
            maskRow();
            s.tokens.push_back(s.sampler->sample(row, s.tokens, s.promptLen, uniforms[i]));
        }
        const int32_t tok = s.tokens.back();
        if (s.grammar && !s.grammar->accept(tok)) {  // a masked draw cannot do this: a bug, not the model
            finish(&s, FinishReason::Error, "the sampled token " + std::to_string(tok) + " is outside the request's grammar",
                   ErrorCode::Internal);
            continue;
        }
        if (!s.hasFirstToken) {
            s.hasFirstToken = true;
            s.firstToken = Clock::now();
        }
        ev.tokens.push_back(tok);
        const bool stopId = std::find(s.stopIds.begin(), s.stopIds.end(), tok) != s.stopIds.end();
        bool stopString = false;
        if (!stopId) ev.text = s.output->push(tok, stopString);
        FinishReason reason = FinishReason::None;
        if (stopId || stopString) reason = FinishReason::Stop;
        else if (s.generated() >= s.maxNewTokens || int(s.tokens.size()) >= sessionLen) reason = FinishReason::Length;
        if (reason == FinishReason::None) {
            emit(s, ev);
        } else {
            if (!ev.text.empty() || !ev.tokens.empty()) emit(s, ev);  // the last token's text before the final event
            finish(&s, reason);
        }
    }
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt > 0) tokensPerSecond = 0.8 * tokensPerSecond + 0.2 * (double(sampled.size()) / dt);
    if (batch.numTokens() == batch.numSeqs()) {
        decodeStepMs = decodeStepMs == 0 ? 1e3 * dt : 0.8 * decodeStepMs + 0.2 * 1e3 * dt;
        const double enqueue = 1e3 * model->lastEnqueueSeconds();
        decodeEnqueueMs = decodeEnqueueMs == 0 ? enqueue : 0.8 * decodeEnqueueMs + 0.2 * enqueue;
    }
}

void Engine::Impl::updateStats() {
    const DeviceInfo dev = backend->deviceInfo();
    std::lock_guard lock(mutex);
    stats.running = int(scheduler->running().size());
    stats.waiting = int(scheduler->waiting().size() + inbox.size());
    stats.kvBlocksUsed = blocks->used();
    stats.prefixCacheHitBlocks = blocks->hitBlocks();
    stats.preemptions = scheduler->preemptions();
    stats.decodeTokensPerSecond = (stats.running == 0 && stats.waiting == 0) ? 0 : tokensPerSecond;
    stats.decodeStepMs = decodeStepMs;
    stats.decodeEnqueueMs = decodeEnqueueMs;
    stats.deviceMemoryUsed = dev.totalBytes - dev.freeBytes;
}

// ---------------------------------------------------------------- public API

Engine::Engine(std::unique_ptr<Impl> impl) : m(std::move(impl)) {}

Engine::~Engine() {
    {
        std::lock_guard lock(m->mutex);
        m->stopping = true;
    }
    m->wake.notify_all();
    if (m->thread.joinable()) m->thread.join();
}

Result<std::unique_ptr<Engine>> Engine::load(const EngineConfig& config, const ProgressFn& progress) {
    return catchErrors([&]() -> std::unique_ptr<Engine> {
        auto impl = std::make_unique<Impl>();
        impl->config = config;
        impl->load(progress);
        Impl* raw = impl.get();
        std::unique_ptr<Engine> engine(new Engine(std::move(impl)));
        raw->thread = std::thread([raw] { raw->run(); });
        return engine;
    });
}

RequestId Engine::submit(Request request, Sink sink) {
    const RequestId id = m->nextId++;
    // Tokenizing here, on the caller's thread, keeps the engine thread on the GPU/CPU math.
    std::unique_ptr<Sequence> seq;
    std::optional<Error> error;
    try {
        seq = m->prepare(request, id, sink);
    } catch (const Error& e) {
        error = e;
    } catch (const std::exception& e) {
        error = Error(ErrorCode::Internal, e.what());
    }
    {
        std::lock_guard lock(m->mutex);
        if (error) {
            auto s = std::make_unique<Sequence>();
            s->id = id;
            s->sink = std::move(sink);
            s->submitted = Clock::now();
            m->rejectedInbox.emplace_back(std::move(s), *error);
        } else {
            m->inbox.push_back(std::move(seq));
        }
    }
    m->wake.notify_one();
    return id;
}

void Engine::cancel(RequestId id) {
    {
        std::lock_guard lock(m->mutex);
        m->cancels.insert(id);
    }
    m->wake.notify_one();
}

EngineStats Engine::stats() const {
    std::lock_guard lock(m->mutex);
    return m->stats;
}

const ModelInfo& Engine::info() const { return m->info; }
const EngineConfig& Engine::config() const { return m->config; }
const Tokenizer& Engine::tokenizer() const { return *m->tokenizer; }
const ChatTemplate& Engine::chatTemplate() const { return *m->chatTemplate; }
int Engine::sessionLen() const { return m->sessionLen; }

Engine::FittedChat Engine::fitChat(const Request& chatRequest) const { return m->fitChat(chatRequest); }

std::vector<int32_t> Engine::encodeChat(const std::string& rendered, const std::vector<TextSpan>& plainSpans) const {
    return lmw::engine::encodeChat(*m->tokenizer, rendered, plainSpans);
}

std::string Engine::renderChat(const std::vector<ChatMessage>& messages, bool addGenerationPrompt,
                               const nlohmann::ordered_json& templateKwargs, std::vector<TextSpan>* plainSpans) const {
    ChatTemplate::checkKwargs(templateKwargs);
    return renderChatPrompt(*m->chatTemplate, *m->tokenizer, messages, addGenerationPrompt, templateKwargs, plainSpans);
}

}  // namespace lmw::engine
