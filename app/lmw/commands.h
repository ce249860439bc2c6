#pragma once
// Each `lmw` subcommand lives in its own cmd_*.cpp and registers itself here at static-init time.
#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace lmw::cli {

struct Command {
    std::string name;
    int order;                                      // position in --help
    std::function<void(CLI::App& app)> setup;       // adds the subcommand, its options and callback
};

std::vector<Command>& commandRegistry();

inline bool registerCommand(std::string name, int order, std::function<void(CLI::App&)> setup) {
    commandRegistry().push_back({std::move(name), order, std::move(setup)});
    return true;
}

// Exit code a subcommand callback sets (callbacks cannot return one).
int& exitCode();

}  // namespace lmw::cli
