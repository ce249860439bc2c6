#pragma once
// The one place where failures become OpenAI-style error answers:
// {"error": {"message", "type", "param", "code"}} with the matching HTTP status.
#include <string>

#include "lmw/error.h"
#include "nlohmann/json.hpp"

namespace lmw::server {

struct ApiError {
    int status = 500;
    std::string message;
    std::string type = "server_error";  // invalid_request_error, authentication_error, ...
    std::string param;                  // empty -> null
    std::string code;                   // empty -> null

    nlohmann::json toJson() const;
    std::string body() const;  // toJson() dumped, invalid UTF-8 replaced
};

// Thrown by request parsing; handlers catch it and send it.
struct ApiException {
    ApiError error;
};

ApiError badRequest(const std::string& message, const std::string& param = {}, const std::string& code = {});
ApiError invalidJson(const std::string& detail);
ApiError unauthorized();
ApiError modelNotFound(const std::string& model);
ApiError pathNotFound(const std::string& method, const std::string& path);
ApiError methodNotAllowed(const std::string& method, const std::string& path);
ApiError payloadTooLarge(size_t limit);
ApiError serviceUnavailable(const std::string& status);
ApiError contextLengthExceeded(int promptTokens, int sessionLen);
// max_tokens asked for more than the context leaves after the prompt (OpenAI: 400, not clamped).
ApiError maxTokensTooLarge(int promptTokens, int maxTokens, int sessionLen);
// The prompt's bytes alone prove it cannot fit (see promptByteBound), checked before tokenizing.
ApiError promptTooLong(size_t bytes, size_t boundBytes, int sessionLen, const std::string& param);
ApiError responseTooLarge(size_t bound, size_t limit, const std::string& param);
ApiError tooManyInFlight(size_t used, size_t limit);  // 429
ApiError shuttingDown();
ApiError serverBusy();
ApiError hostNotAllowed(const std::string& host);
// An engine failure (final Error event or a thrown lmw::Error).
ApiError fromEngine(ErrorCode code, const std::string& message);
// A status the transport answers by itself (400 malformed, 408, 413, 414, 431, 503 ...), when no
// handler ran. detail: what was wrong, when there is more to say than the status.
ApiError fromHttpStatus(int status, const std::string& method, const std::string& path, size_t bodyLimit,
                        const std::string& detail = {});

// Anthropic's error shape, {"type": "error", "error": {"type", "message"}}, its type from the status
// (invalid_request_error, authentication_error, permission_error, not_found_error, rate_limit_error,
// overloaded_error, api_error).
nlohmann::json anthropicErrorJson(const ApiError& e);
// True for the Messages API's paths, whose errors are in Anthropic's shape.
bool isAnthropicPath(const std::string& path);
// The error body for a request path: Anthropic's shape on its paths, OpenAI's elsewhere.
std::string errorBodyFor(const std::string& path, const ApiError& e);

[[noreturn]] inline void fail(ApiError e) { throw ApiException{std::move(e)}; }

// nlohmann dump that never throws on invalid UTF-8 (replaces it with U+FFFD).
std::string dumpJson(const nlohmann::json& j);

}  // namespace lmw::server
