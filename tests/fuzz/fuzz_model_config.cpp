// libFuzzer: config.json (+ generation_config.json) -> parseModelConfig, and a safetensors file ->
// readSafetensorsHeaders and TensorStore::open. The first byte picks which; broken input must end
// in lmw::Error.
//   0x00 <config.json>[\n#GENERATION#\n<generation_config.json>]
//   0x01 <model.safetensors>
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "fuzz_dir.h"
#include "lmw/error.h"
#include "lmw/model_info.h"
#include "model/safetensors.h"

using namespace lmw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        if (data[0] % 2 == 0) {
            static const std::string dir = fuzz::scratchDir("config");
            auto [config, generation] = fuzz::splitAt(in, "\n#GENERATION#\n");
            fuzz::writeFile(dir + "/config.json", config);
            std::filesystem::remove(dir + "/generation_config.json");
            if (!generation.empty()) fuzz::writeFile(dir + "/generation_config.json", generation);
            (void)engine::parseModelConfig(dir);
        } else {
            static const std::string dir = fuzz::scratchDir("safetensors");
            fuzz::writeFile(dir + "/model.safetensors", in);
            for (const auto& [name, t] : engine::readSafetensorsHeaders(dir)) (void)t.shapeString();
            auto store = engine::TensorStore::open(dir);
            unsigned sum = 0;
            for (const auto& [name, t] : store->tensors()) {
                (void)t.numel();
                if (t.bytes) sum += t.data[0] + t.data[t.bytes - 1];  // the ranges must be inside the file
            }
            (void)sum;
        }
    } catch (const Error&) {
    }
    return 0;
}
