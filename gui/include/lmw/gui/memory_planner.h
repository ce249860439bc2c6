#pragma once
// The memory planner of the model card: weights + KV cache for a session length and KV precision,
// against the free memory of the device the model will run on.
#include <QList>
#include <QString>
#include <cstdint>

#include "lmw/model_info.h"

namespace lmw::gui {

struct DeviceMemory {
    QString kind;  // "cuda" or "cpu"
    QString name;  // "NVIDIA H100 80GB HBM3", "CPU (16 threads)"
    uint64_t totalBytes = 0;
    uint64_t freeBytes = 0;
};

// CPU memory from /proc/meminfo and CUDA devices from nvidia-smi (when installed). Can take a
// second: call it off the GUI thread.
QList<DeviceMemory> probeDevices();

struct MemoryPlan {
    uint64_t weights = 0;
    uint64_t kvCache = 0;
    uint64_t overhead = 0;   // activations and workspace estimate
    uint64_t total = 0;
    uint64_t available = 0;  // free memory of the device
    bool fits = true;
    QString warning;         // plain words when it does not fit (or only just fits)
};

// kvCache is what the engine allocates for `batch` sequences of `sessionLen` tokens on the
// device's backend (on a GPU, the least: it gives the cache a share of the free memory).
MemoryPlan planMemory(const lmw::engine::ModelInfo& info, int sessionLen, int quantPolicy, int batch,
                      const DeviceMemory& device);

// "16-bit" ("32-bit" on the CPU), "int8", "int4"
QString kvPrecisionName(int quantPolicy, const QString& deviceKind = QStringLiteral("cuda"));

}  // namespace lmw::gui
