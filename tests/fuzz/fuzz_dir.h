#pragma once
// A private folder per fuzzing process: the model and tokenizer loaders read folders, not memory.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace lmw::fuzz {

inline std::string scratchDir(const std::string& name) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("lmw-fuzz-" + std::to_string(getpid())) / name;
    fs::create_directories(dir);
    return dir.string();
}

inline void writeFile(const std::string& path, std::string_view bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Splits "a<sep>b" into a and b (b empty when sep is absent).
inline std::pair<std::string_view, std::string_view> splitAt(std::string_view s, std::string_view sep) {
    size_t at = s.find(sep);
    if (at == std::string_view::npos) return {s, {}};
    return {s.substr(0, at), s.substr(at + sep.size())};
}

}  // namespace lmw::fuzz
