#include "lmw/version.h"

#include "backend/cuda_module.h"

namespace lmw {

std::vector<std::pair<std::string, std::string>> versionFacts() {
    std::vector<std::pair<std::string, std::string>> facts{{"LM Workbench", LMW_VERSION}};
    std::string why;
    if (const engine::CudaModule* cuda = engine::cudaModule(&why)) {
        const engine::CudaFacts f = cuda->facts();
        facts.emplace_back("CUDA runtime", f.runtime);
        facts.emplace_back("CUDA driver", f.driver);
        facts.emplace_back("CUDA device", f.device);
    } else {
        facts.emplace_back("CUDA backend", "not available (" + why + "); the CPU backend is used");
    }
    return facts;
}

std::string versionText(const std::string& program, std::vector<std::pair<std::string, std::string>> extra) {
    auto facts = versionFacts();
    facts.insert(facts.begin() + 1, extra.begin(), extra.end());
    std::string text = program + " " + facts.front().second;
    for (size_t i = 1; i < facts.size(); ++i) text += "\n" + facts[i].first + ": " + facts[i].second;
    return text;
}

}  // namespace lmw
