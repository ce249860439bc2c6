#include "quant/output_folder.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "lmw/error.h"

namespace lmw::engine::quant {

namespace fs = std::filesystem;

OutputFolder::OutputFolder(const std::string& dir, bool overwrite) : m_overwrite(overwrite) {
    if (dir.empty()) throw Error(ErrorCode::InvalidArgument, "no output folder given (--work-dir)");
    std::error_code ec;
    const fs::path target = fs::absolute(fs::path(dir)).lexically_normal();
    const fs::path clean = target.has_filename() ? target : target.parent_path();
    m_final = clean.string();
    if (fs::exists(clean, ec)) {
        if (!fs::is_directory(clean, ec))
            throw Error(ErrorCode::InvalidArgument, m_final + ": exists and is not a folder");
        if (!fs::is_empty(clean, ec) && !overwrite)
            throw Error(ErrorCode::InvalidArgument,
                        m_final + ": folder exists and is not empty (choose another output folder or overwrite it)");
    }
    const fs::path parent = clean.parent_path();
    if (!fs::exists(parent, ec)) {
        fs::create_directories(parent, ec);
        if (ec) throw Error(ErrorCode::Io, parent.string() + ": cannot create the output location (" + ec.message() + ")");
    }
    const fs::path temp = parent / ("." + clean.filename().string() + ".partial-" + std::to_string(getpid()));
    fs::remove_all(temp, ec);
    if (!fs::create_directory(temp, ec) || ec)
        throw Error(ErrorCode::Io, m_final + ": cannot write the output folder there (" +
                                       (ec ? ec.message() : std::string("cannot create ") + temp.string()) + ")");
    m_temp = temp.string();
}

OutputFolder::~OutputFolder() {
    if (m_committed) return;
    std::error_code ec;
    fs::remove_all(m_temp, ec);
}

void OutputFolder::commit() {
    std::error_code ec;
    const fs::path target(m_final);
    fs::path old;
    if (fs::exists(target, ec)) {
        if (fs::is_empty(target, ec)) {
            fs::remove(target, ec);
        } else {
            if (!m_overwrite) throw Error(ErrorCode::InvalidArgument, m_final + ": appeared while quantizing; not replaced");
            old = target.parent_path() / ("." + target.filename().string() + ".old-" + std::to_string(getpid()));
            fs::rename(target, old, ec);
            if (ec) throw Error(ErrorCode::Io, m_final + ": cannot move the old folder away (" + ec.message() + ")");
        }
    }
    fs::rename(m_temp, target, ec);
    if (ec) {
        if (!old.empty()) fs::rename(old, target, ec);
        throw Error(ErrorCode::Io, m_final + ": cannot rename the finished folder into place (" + ec.message() + ")");
    }
    m_committed = true;
    if (!old.empty()) fs::remove_all(old, ec);
}

unsigned long long folderBytes(const std::string& dir, const std::string& extension) {
    unsigned long long total = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && (extension.empty() || e.path().extension() == extension)) total += e.file_size();
    return total;
}

}  // namespace lmw::engine::quant
