// lmw: the headless face of LM Workbench (info, generate, chat, bench, serve, quantize, ppl).
#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "lmw/error.h"
#include "lmw/version.h"

namespace lmw::cli {
std::vector<Command>& commandRegistry() {
    static std::vector<Command> registry;
    return registry;
}
int& exitCode() {
    static int code = 0;
    return code;
}
}  // namespace lmw::cli

int main(int argc, char** argv) {
    CLI::App app{"LM Workbench command line: run, serve, quantize and measure local LLMs", "lmw"};
    app.set_version_flag("--version", [] { return lmw::versionText("lmw"); });
    app.require_subcommand(1);
    auto& commands = lmw::cli::commandRegistry();
    std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    for (auto& c : commands) c.setup(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const lmw::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return lmw::cli::exitCode();
}
