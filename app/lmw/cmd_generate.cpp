// `lmw generate` (one prompt, streamed to stdout) and `lmw chat` (interactive, multi-turn).
#include <unistd.h>

#include <cstdio>
#include <future>
#include <iostream>

#include "commands.h"
#include "engine_options.h"

namespace lmw::cli {

std::unique_ptr<engine::Engine> loadEngine(const engine::EngineConfig& c, bool verbose) {
    verbose = verbose && isatty(STDERR_FILENO);  // no carriage-return art in logs and pipes
    auto progress = [verbose](engine::LoadStage, double f, const std::string& what) {
        if (verbose) std::fprintf(stderr, "\r[%3d%%] %-60s", int(f * 100), what.c_str());
        return true;
    };
    auto r = engine::Engine::load(c, progress);
    if (verbose) std::fprintf(stderr, "\r%-70s\r", "");
    if (!r) throw r.error();
    return std::move(r.value());
}

namespace {

struct GenerateResult {
    engine::FinishReason finish = engine::FinishReason::None;
    std::string error;
    std::string text;
    engine::Usage usage;
    double seconds = 0, firstToken = 0;
};

// Streams one request to stdout and waits for its final event.
GenerateResult runAndStream(engine::Engine& e, engine::Request req, bool printIds) {
    std::promise<GenerateResult> done;
    GenerateResult acc;
    e.submit(std::move(req), [&](const engine::Event& ev) {
        std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
        std::fflush(stdout);
        acc.text += ev.text;
        if (printIds)
            for (int32_t t : ev.tokens) std::fprintf(stderr, "%d ", t);
        if (ev.final) {
            acc.finish = ev.finish;
            acc.error = ev.error;
            acc.usage = ev.usage;
            acc.seconds = ev.totalSeconds;
            acc.firstToken = ev.firstTokenSeconds;
            done.set_value(acc);
        }
    });
    return done.get_future().get();
}

void printStats(const GenerateResult& r) {
    const double decode = r.seconds - r.firstToken;
    std::fprintf(stderr, "\n[%s] prompt %d tokens, generated %d tokens, %.1f tok/s (first token %.0f ms)\n",
                 engine::finishReasonName(r.finish), r.usage.promptTokens, r.usage.completionTokens,
                 decode > 0 && r.usage.completionTokens > 1 ? (r.usage.completionTokens - 1) / decode : 0.0,
                 r.firstToken * 1000);
}

void setupGenerate(CLI::App& app) {
    auto* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt, streamed to stdout");
    static engine::EngineConfig config;
    static engine::Request req;
    static bool quiet = false, printIds = false, chatMode = false;
    static std::string templateKwargs;
    req.sampling.temperature = 0.7f;
    addEngineOptions(cmd, config);
    // The prompt is typed by the person at this terminal, often a raw prompt format: special-token
    // text in it ("<|im_start|>") is parsed. `lmw chat` keeps the engine default (text), since its
    // history also holds the model's own replies.
    req.specialTokens = engine::SpecialTokens::Parse;
    cmd->add_option("--prompt,-p", req.prompt, "prompt text (special-token text in it is parsed)")->required();
    cmd->add_flag("--chat", chatMode, "treat the prompt as a user message and apply the chat template");
    addTemplateKwargsOption(cmd, templateKwargs);
    addSamplingOptions(cmd, req.sampling);
    cmd->add_flag("--print-ids", printIds, "print generated token ids to stderr");
    cmd->add_flag("--quiet,-q", quiet, "no progress or statistics on stderr");
    cmd->callback([&] {
        req.templateKwargs = parseTemplateKwargs(templateKwargs);
        if (!templateKwargs.empty() && !chatMode)
            throw Error(ErrorCode::InvalidArgument, "--chat-template-kwargs applies to chat prompts: add --chat");
        config.maxBatchSize = std::min(config.maxBatchSize, 8);
        auto e = loadEngine(config, !quiet);
        if (chatMode) req.messages = {{"user", req.prompt}};
        const GenerateResult r = runAndStream(*e, req, printIds);
        std::printf("\n");
        if (r.finish == engine::FinishReason::Error) {
            std::fprintf(stderr, "error: %s\n", r.error.c_str());
            exitCode() = 1;
            return;
        }
        if (!quiet) printStats(r);
    });
}

void setupChat(CLI::App& app) {
    auto* cmd = app.add_subcommand("chat", "Chat with a model in the terminal (multi-turn)");
    static engine::EngineConfig config;
    static engine::SamplingParams sampling;
    static std::string system, templateKwargs;
    sampling.temperature = 0.7f;
    addEngineOptions(cmd, config);
    addSamplingOptions(cmd, sampling);
    cmd->add_option("--system", system, "system prompt");
    addTemplateKwargsOption(cmd, templateKwargs);
    cmd->callback([&] {
        const nlohmann::ordered_json kwargs = parseTemplateKwargs(templateKwargs);
        config.maxBatchSize = std::min(config.maxBatchSize, 8);
        auto e = loadEngine(config, true);
        std::fprintf(stderr, "%s loaded (%s, template %s). Empty line or Ctrl-D quits; /reset starts over.\n",
                     e->info().name.c_str(), e->stats().backend.c_str(), e->chatTemplate().name().c_str());
        std::vector<engine::ChatMessage> history;
        if (!system.empty()) history.push_back({"system", system});
        std::string line;
        for (;;) {
            std::fprintf(stderr, "\n> ");
            if (!std::getline(std::cin, line) || line.empty()) break;
            if (line == "/reset") {
                history.resize(system.empty() ? 0 : 1);
                continue;
            }
            history.push_back({"user", line});
            engine::Request req;
            req.messages = history;
            req.sampling = sampling;
            req.templateKwargs = kwargs;
            const GenerateResult r = runAndStream(*e, req, false);
            if (r.finish == engine::FinishReason::Error) {
                std::fprintf(stderr, "\nerror: %s\n", r.error.c_str());
                history.pop_back();
                continue;
            }
            history.push_back({"assistant", r.text});
            printStats(r);
        }
    });
}

const bool registered = registerCommand("generate", 20, setupGenerate) && registerCommand("chat", 30, setupChat);

}  // namespace
}  // namespace lmw::cli
