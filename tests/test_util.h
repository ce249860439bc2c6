#pragma once
// Paths and small helpers shared by the tests.
#include <QDir>
#include <QTemporaryDir>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"

namespace lmw::test {

inline std::string modelsDir() { return LMW_MODELS_DIR; }
inline std::string modelDir(const std::string& name = "stories260K") { return modelsDir() + "/" + name; }
// A model under LMW_MODELS_DIR from the environment when set (the GPU machine runs a bundle), else the build's.
inline std::string modelPath(const std::string& name) {
    const char* env = std::getenv("LMW_MODELS_DIR");
    return (env && *env ? std::string(env) : modelsDir()) + "/" + name;
}
inline std::string testData(const std::string& name) { return std::string(LMW_TESTDATA_DIR) + "/" + name; }
inline std::string lmwBinary() { return std::string(LMW_BINARY_DIR) + "/app/lmw"; }

inline std::string readFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline nlohmann::json readJson(const std::string& path) { return nlohmann::json::parse(readFile(path)); }

inline nlohmann::json reference(const std::string& model = "stories260K") {
    return readJson(modelDir(model) + "/reference.json");
}

}  // namespace lmw::test
