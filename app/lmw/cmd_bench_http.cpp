// `lmw bench-http --url URL`: load test of a running OpenAI-compatible server (N concurrent streams).
#ifdef LMW_HAVE_SERVER
#include <cstdio>

#include "commands.h"
#include "lmw/http_bench.h"

namespace lmw::cli {
namespace {

void setupBenchHttp(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench-http", "Benchmark a running OpenAI-compatible server over HTTP");
    static server::HttpBenchOptions o;
    static bool asJson = false;
    static std::vector<std::string> prompts;
    cmd->add_option("--url", o.url, "server base URL")->capture_default_str();
    cmd->add_option("--api-key", o.apiKey, "Bearer key");
    cmd->add_option("--model", o.model, "model id (default: the first of GET /v1/models)");
    cmd->add_option("--endpoint", o.endpoint, "chat or completions")->check(CLI::IsMember({"chat", "completions"}))->capture_default_str();
    cmd->add_option("--concurrency,-c", o.concurrency, "streams in flight at once")->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_option("--requests,-n", o.requests, "total requests")->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_option("--max-tokens", o.maxTokens, "output tokens per request")->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_option("--temperature", o.temperature)->capture_default_str();
    cmd->add_option("--ignore-eos", o.ignoreEos, "generate exactly --max-tokens (true/false)")->capture_default_str();
    cmd->add_option("--prompt", prompts, "prompt (repeatable; used round-robin)");
    cmd->add_flag("--json", asJson, "print the result as JSON");
    cmd->callback([&] {
        if (!prompts.empty()) o.prompts = prompts;
        auto r = server::runHttpBench(o, [](int done, int total) {
            std::fprintf(stderr, "\r%d/%d requests", done, total);
        });
        std::fprintf(stderr, "\n");
        if (!r) throw r.error();
        std::printf("%s\n", asJson ? r->toJson().c_str() : r->toText().c_str());
        std::printf("(%s, concurrency %d, %d requests, %d max tokens, %s)\n", o.url.c_str(), o.concurrency, o.requests,
                    o.maxTokens, o.endpoint.c_str());
        if (r->failed > 0) exitCode() = 1;
    });
}

const bool registered = registerCommand("bench-http", 75, setupBenchHttp);

}  // namespace
}  // namespace lmw::cli
#endif
