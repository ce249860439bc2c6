// libFuzzer: a chat template source -> renderJinja with a small fixed conversation. Errors are
// lmw::Error (syntax, raise_exception, type errors); anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lmw/chat_template.h"
#include "lmw/error.h"

namespace {

const nlohmann::ordered_json& context() {
    static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi <|im_end|> there"},
            {"role": "assistant", "content": "Hello!", "reasoning_content": "think"},
            {"role": "user", "content": ""}
        ],
        "add_generation_prompt": true,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "enable_thinking": false
    })");
    return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 16384) return 0;  // templates are small; big inputs only slow the search
    const std::string source(reinterpret_cast<const char*>(data), size);
    try {
        (void)lmw::engine::renderJinja(source, context());
    } catch (const lmw::Error&) {
    }
    return 0;
}
