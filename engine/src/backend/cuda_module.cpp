// Loads liblmw_cuda.so (cuda_module.h): the one place that knows the CUDA backend is a module.
#include "backend/cuda_module.h"

#include <cstdlib>

#ifdef LMW_HAVE_CUDA
#include <dlfcn.h>

#include <filesystem>
#include <system_error>
#endif

namespace lmw::engine {
namespace {

struct Loaded {
    const CudaModule* module = nullptr;
    std::string why;
};

#ifdef LMW_HAVE_CUDA
// <prefix>/LMW_PRIVATE_LIBDIR/liblmw_cuda.so, where <prefix> is the folder above the running
// program's own (bin/ when installed; build/app, build/tests/... in the build tree, whose
// build/lib/lmworkbench is laid out the same way). LMW_CUDA_MODULE names another file.
std::string modulePath() {
    if (const char* env = std::getenv("LMW_CUDA_MODULE"); env && *env) return env;
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    const auto prefix = ec ? std::filesystem::path("/usr") : exe.parent_path().parent_path();
    return (prefix / LMW_PRIVATE_LIBDIR / "liblmw_cuda.so").string();
}

Loaded load() {
    Loaded l;
    const std::string path = modulePath();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* e = dlerror();
        l.why = "the CUDA backend did not load: " + std::string(e ? e : path);
        return l;
    }
    using Entry = const CudaModule* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, kCudaModuleSymbol));
    const CudaModule* m = entry ? entry() : nullptr;
    if (!m || m->abi != kCudaModuleAbi) {
        l.why = path + " is not this build's CUDA module (" + (entry ? "ABI mismatch" : "no " + std::string(kCudaModuleSymbol)) + ")";
        return l;  // the handle stays open: unloading a half-checked module buys nothing
    }
    l.module = m;
    return l;
}
#endif

}  // namespace

const CudaModule* cudaModule(std::string* why) {
    static const Loaded loaded = [] {
#ifdef LMW_HAVE_CUDA
        return load();
#else
        return Loaded{nullptr, "this build has no CUDA backend"};
#endif
    }();
    if (!loaded.module && why) *why = loaded.why;
    return loaded.module;
}

}  // namespace lmw::engine
