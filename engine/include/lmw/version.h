#pragma once
// What `lmw --version` and the app's About box report: one list, built in one place.
#include <string>
#include <utility>
#include <vector>

namespace lmw {

// (name, value) rows: "LM Workbench" (the CMake project version), then "CUDA runtime", "CUDA
// driver" and "CUDA device" when the CUDA backend's module loads, else "CUDA backend" with why not.
// Loads the CUDA module (a few ms; it is kept for the backend).
std::vector<std::pair<std::string, std::string>> versionFacts();

// "<program> <version>" (the first line help2man reads), then the other rows as "name: value"
// lines, `extra` rows (the GUI's Qt version) first among them.
std::string versionText(const std::string& program, std::vector<std::pair<std::string, std::string>> extra = {});

}  // namespace lmw
