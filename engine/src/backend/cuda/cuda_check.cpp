#include "backend/cuda/cuda_check.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "lmw/error.h"

namespace lmw::engine::cuda {

namespace {
std::string where(const char* expr, const char* file, int line) {
    std::string f = file;
    const auto slash = f.find("engine/src/");
    if (slash != std::string::npos) f = f.substr(slash);
    return f + ":" + std::to_string(line) + ": " + expr;
}

const char* cublasName(int s) {
    switch (s) {
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "cuBLAS error";
    }
}
}  // namespace

void throwCudaError(int code, const char* expr, const char* file, int line) {
    cudaGetLastError();  // clear a non-sticky error so the engine can go on serving
    const auto err = cudaError_t(code);
    const ErrorCode ec = err == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Cuda;
    throw Error(ec, "CUDA error " + std::to_string(code) + " (" + cudaGetErrorName(err) + ": " +
                        cudaGetErrorString(err) + ") at " + where(expr, file, line));
}

void throwCublasError(int status, const char* expr, const char* file, int line) {
    const ErrorCode ec = status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::OutOfMemory : ErrorCode::Cuda;
    throw Error(ec, std::string("cuBLAS error ") + std::to_string(status) + " (" + cublasName(status) + ") at " +
                        where(expr, file, line));
}

}  // namespace lmw::engine::cuda
