// A kernel timeline for any CUDA program, without Nsight Systems (which the GPU machine lacks):
//   CUDA_INJECTION64_PATH=./libcupti_trace.so LMW_TRACE_OUT=trace.csv ./lmw bench ...
// CUDA loads this library at its initialization and calls InitializeInjection(); CUPTI then records
// every kernel (graph replays included: graph id and node id) with its GPU start and end times, and
// at exit the records go to LMW_TRACE_OUT as CSV: start_ns,end_ns,graph_id,graph_node,stream,name.
// bench/trace_summary.py turns them into the time per kernel of one replayed decode step.
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {
FILE* g_out = nullptr;
std::mutex g_mutex;
constexpr size_t kBufferBytes = size_t(8) << 20;

void CUPTIAPI bufferRequested(uint8_t** buffer, size_t* size, size_t* maxRecords) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
    *size = kBufferBytes;
    *maxRecords = 0;
}

void CUPTIAPI bufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t validSize) {
    std::lock_guard<std::mutex> lock(g_mutex);
    CUpti_Activity* rec = nullptr;
    while (cuptiActivityGetNextRecord(buffer, validSize, &rec) == CUPTI_SUCCESS) {
        if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || !g_out) continue;
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
        std::fprintf(g_out, "%llu,%llu,%u,%llu,%u,%s\n", (unsigned long long)k->start, (unsigned long long)k->end,
                     k->graphId, (unsigned long long)k->graphNodeId, k->streamId, k->name ? k->name : "?");
    }
    std::free(buffer);
}

void flushAtExit() {
    cuptiActivityFlushAll(1);
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_out) std::fclose(g_out);
    g_out = nullptr;
}
}  // namespace

extern "C" int InitializeInjection(void) {
    const char* path = std::getenv("LMW_TRACE_OUT");
    g_out = std::fopen(path ? path : "trace.csv", "w");
    if (!g_out) return 0;
    if (cuptiActivityRegisterCallbacks(bufferRequested, bufferCompleted) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
        std::fprintf(stderr, "cupti_trace: CUPTI activity tracing unavailable\n");
        return 0;
    }
    std::atexit(flushAtExit);
    return 1;
}
