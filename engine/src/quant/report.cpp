// Quantization report: text for the CLI / GUI and JSON saved next to the weights.
#include <cstdio>
#include <sstream>

#include "lmw/model_info.h"
#include "lmw/quantize.h"
#include "nlohmann/json.hpp"

namespace lmw::engine {

const char* quantizeStageName(QuantizeStage s) {
    switch (s) {
        case QuantizeStage::Preparing: return "preparing";
        case QuantizeStage::Sampling: return "sampling";
        case QuantizeStage::Layer: return "layer";
        case QuantizeStage::Finishing: return "finishing";
        case QuantizeStage::Done: return "done";
    }
    return "?";
}

namespace {
std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}
}  // namespace

std::string formatQuantizeReport(const QuantizeReport& r) {
    std::ostringstream s;
    s << "Quantized (" << r.method << ", W" << r.bits << "A16, group " << r.groupSize << ") into " << r.outDir << "\n";
    s << "  size: " << formatBytes(r.sizeBefore) << " -> " << formatBytes(r.sizeAfter);
    if (r.sizeBefore) s << " (" << fmt("%.1f", 100.0 * double(r.sizeAfter) / double(r.sizeBefore)) << "%)";
    s << "\n  linear weights: " << formatParameters(r.quantizedParams) << " int4, " << formatParameters(r.keptParams)
      << " kept 16-bit\n";
    s << "  calibration: " << r.calibration;
    if (!r.backend.empty()) s << " (backend " << r.backend << ")";
    s << "\n  time: " << fmt("%.1f", r.seconds) << " s\n";
    if (r.pplBefore > 0 && r.pplAfter > 0)
        s << "  perplexity: " << fmt("%.4f", r.pplBefore) << " (16-bit source) -> " << fmt("%.4f", r.pplAfter) << " ("
          << fmt("%+.2f", 100.0 * (r.pplAfter / r.pplBefore - 1)) << "%)\n";
    const bool haveErrors = r.method == "awq";
    if (haveErrors) {
        s << "  per layer: relative output error on calibration tokens, plain RTN -> with AWQ scales (alpha, scale range);\n"
             "  qkv judged at the attention block output, o and down at their own output\n";
        for (const auto& l : r.layers) {
            s << "    layer " << l.layer << " (" << fmt("%.1f", l.seconds) << " s, calibration " << fmt("%.1f", l.calibrationSeconds)
              << " s):";
            for (const auto& lin : l.linears) {
                const std::string shortName = lin.name.substr(lin.name.rfind('.') + 1);
                if (!lin.quantized) {
                    s << "  " << shortName << " 16-bit";
                    continue;
                }
                s << "  " << shortName << " " << fmt("%.2e", lin.errorRtn) << " -> " << fmt("%.2e", lin.errorFinal) << " (a "
                  << fmt("%.2f", lin.alpha) << ", s " << fmt("%.2f", lin.scaleMin) << ".." << fmt("%.2f", lin.scaleMax) << ")";
            }
            s << "\n";
        }
    }
    for (const auto& n : r.notes) s << "  note: " << n << "\n";
    return s.str();
}

std::string quantizeReportJson(const QuantizeReport& r) {
    nlohmann::ordered_json j;
    j["out_dir"] = r.outDir;
    j["method"] = r.method;
    j["bits"] = r.bits;
    j["group_size"] = r.groupSize;
    j["calibration"] = r.calibration;
    j["backend"] = r.backend;
    j["size_before"] = r.sizeBefore;
    j["size_after"] = r.sizeAfter;
    j["quantized_params"] = r.quantizedParams;
    j["kept_params"] = r.keptParams;
    j["seconds"] = r.seconds;
    j["ppl_before"] = r.pplBefore;
    j["ppl_after"] = r.pplAfter;
    j["notes"] = r.notes;
    j["layers"] = nlohmann::ordered_json::array();
    for (const auto& l : r.layers) {
        nlohmann::ordered_json jl;
        jl["layer"] = l.layer;
        jl["seconds"] = l.seconds;
        jl["calibration_seconds"] = l.calibrationSeconds;
        jl["linears"] = nlohmann::ordered_json::array();
        for (const auto& lin : l.linears)
            jl["linears"].push_back({{"name", lin.name},
                                     {"tensors", lin.tensors},
                                     {"quantized", lin.quantized},
                                     {"group_size", lin.groupSize},
                                     {"kept_reason", lin.keptReason},
                                     {"error_rtn", lin.errorRtn},
                                     {"error_final", lin.errorFinal},
                                     {"alpha", lin.alpha},
                                     {"scale_min", lin.scaleMin},
                                     {"scale_max", lin.scaleMax}});
        j["layers"].push_back(jl);
    }
    return j.dump(2) + "\n";
}

}  // namespace lmw::engine
