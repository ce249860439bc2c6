#pragma once
// An output model folder that appears all at once: everything is written into a hidden sibling
// ("<parent>/.<name>.partial-<pid>") and renamed at commit(); destroyed uncommitted, the sibling is
// removed. So a cancel, an error or a full disk never leaves a half-written model behind.
#include <string>

namespace lmw::engine::quant {

class OutputFolder {
public:
    // Throws lmw::Error: InvalidArgument when `dir` exists and is not an empty folder (unless
    // overwrite), Io naming the folder and the system's reason when the location cannot be written.
    OutputFolder(const std::string& dir, bool overwrite);
    ~OutputFolder();
    OutputFolder(const OutputFolder&) = delete;
    OutputFolder& operator=(const OutputFolder&) = delete;

    const std::string& path() const { return m_temp; }  // where to write now
    const std::string& finalPath() const { return m_final; }
    void commit();

private:
    std::string m_final, m_temp;
    bool m_overwrite = false;
    bool m_committed = false;
};

// Bytes of all regular files in a folder (not recursive).
unsigned long long folderBytes(const std::string& dir, const std::string& extension = "");

}  // namespace lmw::engine::quant
