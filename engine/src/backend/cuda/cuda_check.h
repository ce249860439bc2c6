#pragma once
// Every CUDA / cuBLAS call and kernel launch goes through these: a failure becomes lmw::Error naming
// the call, file and line (ErrorCode::OutOfMemory for allocation failures, ErrorCode::Cuda otherwise).
namespace lmw::engine::cuda {

[[noreturn]] void throwCudaError(int code, const char* expr, const char* file, int line);
[[noreturn]] void throwCublasError(int status, const char* expr, const char* file, int line);

inline void checkCuda(int code, const char* expr, const char* file, int line) {
    if (code != 0) throwCudaError(code, expr, file, line);
}
inline void checkCublas(int status, const char* expr, const char* file, int line) {
    if (status != 0) throwCublasError(status, expr, file, line);
}

}  // namespace lmw::engine::cuda

// `expr` returns a cudaError_t or a kernel launcher's int status.
#define LMW_CUDA_CHECK(expr) ::lmw::engine::cuda::checkCuda(int(expr), #expr, __FILE__, __LINE__)
#define LMW_CUBLAS_CHECK(expr) ::lmw::engine::cuda::checkCublas(int(expr), #expr, __FILE__, __LINE__)
