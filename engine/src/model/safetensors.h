#pragma once
// Memory-mapped safetensors files (single or sharded with model.safetensors.index.json).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmw/dtype.h"

namespace lmw::engine {

struct TensorRef {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    // Into the mapping. Aligned only to 1 byte: safetensors places tensors back to back after a
    // header of any length, so readers must memcpy (or copy the tensor) rather than cast to
    // float*/uint16_t* and dereference.
    const uint8_t* data = nullptr;
    size_t bytes = 0;
    std::string file;  // for messages
    int64_t numel() const;
    int64_t dim(int i) const { return shape.at(size_t(i)); }
    std::string shapeString() const;  // "[64, 172]"
};

class MappedFile;

// All tensors of a model folder. Throws lmw::Error (InvalidModel/NotFound) naming the file and
// tensor on: no safetensors, truncated file, header not JSON, offsets past the end, dtype/shape
// that disagree with the byte size.
class TensorStore {
public:
    static std::unique_ptr<TensorStore> open(const std::string& dir);
    ~TensorStore();

    const TensorRef* find(const std::string& name) const;
    // The tensor, or lmw::Error naming it when missing or when its shape differs from `shape`.
    const TensorRef& get(const std::string& name, const std::vector<int64_t>& shape) const;
    const TensorRef& get(const std::string& name) const;
    const std::map<std::string, TensorRef>& tensors() const { return m_tensors; }
    uint64_t totalBytes() const;

private:
    TensorStore() = default;
    std::vector<std::unique_ptr<MappedFile>> m_files;
    std::map<std::string, TensorRef> m_tensors;
};

// Reads only the headers (for ModelInfo): name -> (dtype, shape). Same checks as open().
std::map<std::string, TensorRef> readSafetensorsHeaders(const std::string& dir);

// Writes one safetensors file. Tensors are written in the given order.
struct TensorToWrite {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
    size_t bytes;
};
void writeSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Streaming writer for files too big to hold twice: declare every tensor (name, dtype, shape) up
// front, then hand over each tensor's bytes in declaration order, in one or more pieces.
class SafetensorsWriter {
public:
    struct Entry {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
    };
    SafetensorsWriter(const std::string& path, const std::vector<Entry>& entries,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
    ~SafetensorsWriter();
    void write(const void* data, size_t bytes);  // next bytes of the current tensor(s)
    void finish();                               // checks every declared byte was written
private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace lmw::engine
