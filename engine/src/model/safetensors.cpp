// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then the data. Files are mapped read-only; nothing is copied. Every check names file and tensor.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "lmw/error.h"
#include "nlohmann/json.hpp"

namespace lmw::engine {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorRef::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string TensorRef::shapeString() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// A read-only POSIX mapping of one file.
class MappedFile {
public:
    explicit MappedFile(const std::string& path) : m_path(path) {
        m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (m_fd < 0) throw Error(ErrorCode::Io, path + ": cannot open (" + std::strerror(errno) + ")");
        struct stat st {};
        if (::fstat(m_fd, &st) != 0) {
            ::close(m_fd);
            throw Error(ErrorCode::Io, path + ": cannot stat (" + std::strerror(errno) + ")");
        }
        m_size = size_t(st.st_size);
        if (m_size > 0) {
            void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, m_fd, 0);
            if (p == MAP_FAILED) {
                ::close(m_fd);
                throw Error(ErrorCode::Io, path + ": cannot map (" + std::strerror(errno) + ")");
            }
            m_data = static_cast<const uint8_t*>(p);
        }
    }
    ~MappedFile() {
        if (m_data) ::munmap(const_cast<uint8_t*>(m_data), m_size);
        if (m_fd >= 0) ::close(m_fd);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return m_data; }
    size_t size() const { return m_size; }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
    int m_fd = -1;
    const uint8_t* m_data = nullptr;
    size_t m_size = 0;
};

namespace {

// Offsets of one tensor relative to the start of the data section.
struct HeaderEntry {
    TensorRef ref;
    uint64_t begin = 0;
};

uint64_t readLe64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

Error invalid(const std::string& file, const std::string& what) { return Error(ErrorCode::InvalidModel, file + ": " + what); }

// Parses and validates a header. `head` holds at least the first 8 bytes; `headerJson` is the JSON
// text; fileSize is the whole file's size.
std::vector<HeaderEntry> parseHeader(const std::string& file, const std::string& headerJson, uint64_t headerLen,
                                     uint64_t fileSize) {
    json h;
    try {
        h = json::parse(headerJson);
    } catch (const json::exception& e) {
        throw invalid(file, std::string("safetensors header is not valid JSON (") + e.what() + ")");
    }
    if (!h.is_object()) throw invalid(file, "safetensors header is not a JSON object");
    const uint64_t dataSize = fileSize - 8 - headerLen;
    std::vector<HeaderEntry> out;
    for (auto it = h.begin(); it != h.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        const std::string where = "tensor '" + it.key() + "'";
        const json& t = it.value();
        if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets") ||
            !t["dtype"].is_string() || !t["shape"].is_array() || !t["data_offsets"].is_array() ||
            t["data_offsets"].size() != 2)
            throw invalid(file, where + ": header entry needs dtype, shape and data_offsets [begin, end]");
        HeaderEntry e;
        e.ref.name = it.key();
        e.ref.file = file;
        const std::string dt = t["dtype"].get<std::string>();
        if (!dtypeFromName(dt, e.ref.dtype)) throw invalid(file, where + ": unknown dtype \"" + dt + "\"");
        for (const auto& d : t["shape"]) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0) throw invalid(file, where + ": bad shape entry");
            e.ref.shape.push_back(d.get<int64_t>());
        }
        const json& off = t["data_offsets"];
        if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            throw invalid(file, where + ": data_offsets must be non-negative integers");
        const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
        if (begin > end)
            throw invalid(file, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                    "] begin > end");
        if (end > dataSize)
            throw invalid(file, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                    "] run past the end of the file (data section is " + std::to_string(dataSize) +
                                    " bytes): truncated or corrupt");
        const uint64_t expect = uint64_t(e.ref.numel()) * dtypeSize(e.ref.dtype);
        if (end - begin != expect)
            throw invalid(file, where + ": " + std::to_string(end - begin) + " bytes for shape " +
                                    e.ref.shapeString() + " of " + dt + " (needs " + std::to_string(expect) + ")");
        e.begin = begin;
        e.ref.bytes = size_t(end - begin);
        out.push_back(std::move(e));
    }
    return out;
}

// Checks the 8-byte length prefix against the file size; returns the header length.
uint64_t checkHeaderLength(const std::string& file, const uint8_t* first8, uint64_t fileSize) {
    if (fileSize < 8)
        throw invalid(file, "truncated: " + std::to_string(fileSize) + " bytes, a safetensors file needs at least 8");
    const uint64_t n = readLe64(first8);
    if (n > fileSize - 8)
        throw invalid(file, "truncated: header length " + std::to_string(n) + " runs past the end of the file (" +
                                std::to_string(fileSize) + " bytes)");
    return n;
}

// Which files hold the weights: the index's shards, model.safetensors, or every *.safetensors.
// `expected` gets the index's weight_map (empty without an index).
std::vector<std::string> weightFiles(const std::string& dir, std::map<std::string, std::string>& expected) {
    if (!fs::is_directory(dir)) throw Error(ErrorCode::NotFound, dir + ": not a directory");
    const std::string index = dir + "/model.safetensors.index.json";
    std::vector<std::string> files;
    if (fs::exists(index)) {
        std::ifstream f(index, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        json j;
        try {
            j = json::parse(ss.str());
        } catch (const json::exception& e) {
            throw invalid(index, std::string("not valid JSON (") + e.what() + ")");
        }
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw invalid(index, "missing field \"weight_map\"");
        std::set<std::string> shardNames;
        for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
            if (!it.value().is_string()) throw invalid(index, "weight_map entry '" + it.key() + "' is not a file name");
            const std::string shard = it.value().get<std::string>();
            if (shard.find('/') != std::string::npos || shard == "..")
                throw invalid(index, "weight_map entry '" + it.key() + "' names a file outside the folder");
            expected[it.key()] = dir + "/" + shard;
            shardNames.insert(shard);
        }
        for (const auto& s : shardNames) {
            const std::string p = dir + "/" + s;
            if (!fs::exists(p)) throw Error(ErrorCode::NotFound, p + ": not found (named in " + index + ")");
            files.push_back(p);
        }
        return files;
    }
    if (fs::exists(dir + "/model.safetensors")) return {dir + "/model.safetensors"};
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors" && fs::is_regular_file(e.path())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error(ErrorCode::NotFound, dir + ": no *.safetensors files");
    return files;
}

// Adds one file's tensors to `all`, rejecting duplicates and (with an index) tensors in the wrong shard.
void addTensors(std::map<std::string, TensorRef>& all, std::vector<HeaderEntry>&& entries,
                const std::map<std::string, std::string>& expected, const uint8_t* dataBase) {
    for (auto& e : entries) {
        if (!expected.empty()) {
            auto it = expected.find(e.ref.name);
            if (it == expected.end() || it->second != e.ref.file) continue;  // the index is authoritative
        }
        if (all.count(e.ref.name))
            throw invalid(e.ref.file, "tensor '" + e.ref.name + "' also appears in " + all[e.ref.name].file);
        if (dataBase) e.ref.data = dataBase + e.begin;
        all.emplace(e.ref.name, std::move(e.ref));
    }
}

void checkIndexComplete(const std::map<std::string, TensorRef>& all, const std::map<std::string, std::string>& expected) {
    for (const auto& [name, file] : expected)
        if (!all.count(name))
            throw invalid(file, "tensor '" + name + "' is listed in model.safetensors.index.json but not in this file");
}

}  // namespace

std::unique_ptr<TensorStore> TensorStore::open(const std::string& dir) {
    std::unique_ptr<TensorStore> store(new TensorStore());
    std::map<std::string, std::string> expected;
    for (const auto& path : weightFiles(dir, expected)) {
        auto mf = std::make_unique<MappedFile>(path);
        const uint64_t n = checkHeaderLength(path, mf->data(), mf->size());
        std::string text(reinterpret_cast<const char*>(mf->data()) + 8, size_t(n));
        auto entries = parseHeader(path, text, n, mf->size());
        addTensors(store->m_tensors, std::move(entries), expected, mf->data() + 8 + n);
        store->m_files.push_back(std::move(mf));
    }
    checkIndexComplete(store->m_tensors, expected);
    return store;
}

TensorStore::~TensorStore() = default;

const TensorRef* TensorStore::find(const std::string& name) const {
    auto it = m_tensors.find(name);
    return it == m_tensors.end() ? nullptr : &it->second;
}

const TensorRef& TensorStore::get(const std::string& name) const {
    const TensorRef* t = find(name);
    if (!t) {
        std::string where = m_files.empty() ? std::string("model") : m_files.front()->path();
        if (m_files.size() > 1) where = fs::path(where).parent_path().string() + " (" + std::to_string(m_files.size()) + " shards)";
        throw Error(ErrorCode::NotFound, where + ": tensor '" + name + "' not found");
    }
    return *t;
}

const TensorRef& TensorStore::get(const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorRef& t = get(name);
    if (t.shape != shape) {
        TensorRef want;
        want.shape = shape;
        throw Error(ErrorCode::InvalidModel, t.file + ": tensor '" + name + "' has shape " + t.shapeString() +
                                                 ", expected " + want.shapeString() + " from config.json");
    }
    return t;
}

uint64_t TensorStore::totalBytes() const {
    uint64_t n = 0;
    for (const auto& [_, t] : m_tensors) n += t.bytes;
    return n;
}

std::map<std::string, TensorRef> readSafetensorsHeaders(const std::string& dir) {
    std::map<std::string, TensorRef> all;
    std::map<std::string, std::string> expected;
    for (const auto& path : weightFiles(dir, expected)) {
        std::ifstream f(path, std::ios::binary);
        if (!f) throw Error(ErrorCode::Io, path + ": cannot open");
        const uint64_t size = fs::file_size(path);
        uint8_t first8[8] = {};
        f.read(reinterpret_cast<char*>(first8), 8);
        const uint64_t n = checkHeaderLength(path, first8, size);
        std::string text(size_t(n), '\0');
        f.read(text.data(), std::streamsize(n));
        if (!f) throw Error(ErrorCode::Io, path + ": read failed");
        addTensors(all, parseHeader(path, text, n, size), expected, nullptr);
    }
    checkIndexComplete(all, expected);
    return all;
}

// ---- writing ----

struct SafetensorsWriter::Impl {
    std::string path;
    std::ofstream out;
    uint64_t total = 0;    // data bytes declared
    uint64_t written = 0;  // data bytes written so far
    bool finished = false;
};

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<Entry>& entries,
                                     const std::map<std::string, std::string>& metadata)
    : m_impl(std::make_unique<Impl>()) {
    m_impl->path = path;
    nlohmann::ordered_json h;
    if (!metadata.empty()) {
        nlohmann::ordered_json md = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) md[k] = v;
        h["__metadata__"] = md;
    }
    std::set<std::string> seen;
    uint64_t off = 0;
    for (const auto& e : entries) {
        if (!seen.insert(e.name).second)
            throw Error(ErrorCode::InvalidArgument, path + ": tensor '" + e.name + "' written twice");
        uint64_t n = dtypeSize(e.dtype);
        for (int64_t d : e.shape) n *= uint64_t(d);
        nlohmann::ordered_json t;
        t["dtype"] = dtypeName(e.dtype);
        t["shape"] = e.shape;
        t["data_offsets"] = {off, off + n};
        h[e.name] = t;
        off += n;
    }
    m_impl->total = off;
    std::string text = h.dump();
    // Pad with spaces (allowed by the format) so the data section starts 8-byte aligned in the file.
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    m_impl->out.open(path, std::ios::binary | std::ios::trunc);
    if (!m_impl->out) throw Error(ErrorCode::Io, path + ": cannot create");
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    m_impl->out.write(reinterpret_cast<const char*>(len), 8);
    m_impl->out.write(text.data(), std::streamsize(text.size()));
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const void* data, size_t bytes) {
    if (m_impl->written + bytes > m_impl->total)
        throw Error(ErrorCode::InvalidArgument, m_impl->path + ": more tensor bytes written than declared");
    m_impl->out.write(static_cast<const char*>(data), std::streamsize(bytes));
    if (!m_impl->out) throw Error(ErrorCode::Io, m_impl->path + ": write failed");
    m_impl->written += bytes;
}

void SafetensorsWriter::finish() {
    if (m_impl->finished) return;
    if (m_impl->written != m_impl->total)
        throw Error(ErrorCode::InvalidArgument, m_impl->path + ": " + std::to_string(m_impl->written) + " of " +
                                                    std::to_string(m_impl->total) + " tensor bytes written");
    m_impl->out.close();
    if (!m_impl->out) throw Error(ErrorCode::Io, m_impl->path + ": write failed");
    m_impl->finished = true;
}

void writeSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    std::vector<SafetensorsWriter::Entry> entries;
    for (const auto& t : tensors) {
        uint64_t n = dtypeSize(t.dtype);
        for (int64_t d : t.shape) n *= uint64_t(d);
        if (n != t.bytes)
            throw Error(ErrorCode::InvalidArgument, path + ": tensor '" + t.name + "' has " + std::to_string(t.bytes) +
                                                        " bytes, its shape needs " + std::to_string(n));
        entries.push_back({t.name, t.dtype, t.shape});
    }
    SafetensorsWriter w(path, entries, metadata);
    for (const auto& t : tensors) w.write(t.data, t.bytes);
    w.finish();
}

}  // namespace lmw::engine
