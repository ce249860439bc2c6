// libFuzzer: a request body -> parseBody and the request parsers handlers call. Bad input
// must end in ApiException (a 400), never anything else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api_error.h"
#include "lmw/chat_template.h"
#include "lmw/error.h"
#include "protocol.h"

using namespace lmw::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string body(reinterpret_cast<const char*>(data), size);
    nlohmann::json j;
    try {
        (void)jsonDepth(body, kMaxJsonDepth);
        j = parseBody(body);
    } catch (const ApiException&) {
        return 0;
    }
    try {
        ChatRequest r = parseChatRequest(j);
        lmw::engine::ChatTemplate::checkKwargs(r.templateKwargs);
    } catch (const ApiException&) {
    } catch (const lmw::Error&) {
    }
    try {
        (void)parseCompletionRequest(j);
    } catch (const ApiException&) {
    }
    try {
        (void)parseEncodeRequest(j);
    } catch (const ApiException&) {
    }
    try {
        (void)parseEmbeddingRequest(j);
    } catch (const ApiException&) {
    }
    return 0;
}
