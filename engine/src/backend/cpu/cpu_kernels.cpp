#include "backend/cpu/cpu_kernels.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "lmw/error.h"

namespace lmw::engine {

namespace {

// AMX: CPUID leaf 7 EDX bits 24 (tiles), 22 (bf16), 25 (int8); the OS must also offer the tile
// data state (Linux: ARCH_GET_XCOMP_SUPP lists XFEATURE_XTILEDATA, bit 18). Asking does not
// change the process; using AMX would need ARCH_REQ_XCOMP_PERM first.
struct Amx {
    bool present = false, usable = false;
};

Amx detectAmx() {
    Amx amx;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return amx;
    amx.present = (d >> 24 & 1) && (d >> 22 & 1) && (d >> 25 & 1);
#if defined(__linux__) && defined(SYS_arch_prctl)
    if (amx.present) {
        uint64_t features = 0;
        constexpr int kArchGetXcompSupp = 0x1021;
        amx.usable = syscall(SYS_arch_prctl, kArchGetXcompSupp, &features) == 0 && (features >> 18 & 1);
    }
#endif
    return amx;
}

// What -march=x86-64-v3 assumes beyond AVX2, FMA and BMI: F16C, MOVBE (CPUID 1 ECX bits 29, 22) and
// LZCNT (0x80000001 ECX bit 5), asked of CPUID: not every compiler's __builtin_cpu_supports knows them.
bool hasV3Extras() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 29 & 1) || !(c >> 22 & 1)) return false;
    return __get_cpuid(0x80000001, &a, &b, &c, &d) && (c >> 5 & 1);
}

}  // namespace

const char* cpuIsaName(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::Avx2: return "avx2";
        case CpuIsa::Avx512: return "avx512";
        default: return "generic";
    }
}

bool cpuIsaSupported(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::Generic: return true;
        case CpuIsa::Avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
                   __builtin_cpu_supports("bmi2") && hasV3Extras();
        case CpuIsa::Avx512:  // x86-64-v4 (F, BW, CD, DQ, VL) and VNNI
            return cpuIsaSupported(CpuIsa::Avx2) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512vnni");
    }
    return false;
}

const CpuKernels& cpuKernels(CpuIsa isa) {
    if (!cpuIsaSupported(isa))
        throw Error(ErrorCode::InvalidArgument, std::string("cpu kernels: this CPU lacks ") + cpuIsaName(isa));
    switch (isa) {
        case CpuIsa::Avx2: return cpuKernelsAvx2();
        case CpuIsa::Avx512: return cpuKernelsAvx512();
        default: return cpuKernelsGeneric();
    }
}

const CpuKernels& cpuKernels() {
    static const CpuKernels& chosen = [] () -> const CpuKernels& {
        CpuIsa best = CpuIsa::Generic;
        for (CpuIsa isa : {CpuIsa::Avx2, CpuIsa::Avx512})
            if (cpuIsaSupported(isa)) best = isa;
        if (const char* want = std::getenv("LMW_CPU_ISA"); want && *want) {
            for (CpuIsa isa : {CpuIsa::Generic, CpuIsa::Avx2, CpuIsa::Avx512})
                if (std::strcmp(want, cpuIsaName(isa)) == 0 && int(isa) < int(best)) best = isa;
        }
        return cpuKernels(best);
    }();
    return chosen;
}

std::string cpuKernelSummary() {
    std::string s = cpuKernels().name;
    s += " (CPU has:";
    if (cpuIsaSupported(CpuIsa::Avx2)) s += " AVX2+FMA+F16C";
    if (cpuIsaSupported(CpuIsa::Avx512)) s += " AVX-512 F/BW/DQ/VL+VNNI";
    if (__builtin_cpu_supports("avx512bf16")) s += " AVX512-BF16";
    const Amx amx = detectAmx();
    if (amx.present) s += amx.usable ? " AMX (unused)" : " AMX (not enabled by the OS)";
    if (!cpuIsaSupported(CpuIsa::Avx2)) s += " x86-64 baseline only";
    s += ")";
    return s;
}

}  // namespace lmw::engine
