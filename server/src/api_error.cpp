#include "api_error.h"

namespace lmw::server {

nlohmann::json ApiError::toJson() const {
    nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return {{"error", e}};
}

std::string ApiError::body() const { return dumpJson(toJson()); }

std::string dumpJson(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json anthropicErrorJson(const ApiError& e) {
    const char* type = "api_error";
    switch (e.status) {
    case 401: type = "authentication_error"; break;
    case 403: type = "permission_error"; break;
    case 404: type = "not_found_error"; break;
    case 413: type = "request_too_large"; break;
    case 429: type = "rate_limit_error"; break;
    case 503:
    case 529: type = "overloaded_error"; break;
    default:
        if (e.status >= 400 && e.status < 500) type = "invalid_request_error";
    }
    return {{"type", "error"}, {"error", {{"type", type}, {"message", e.message}}}};
}

bool isAnthropicPath(const std::string& path) { return path == "/v1/messages" || path.rfind("/v1/messages/", 0) == 0; }

std::string errorBodyFor(const std::string& path, const ApiError& e) {
    return isAnthropicPath(path) ? dumpJson(anthropicErrorJson(e)) : e.body();
}

ApiError badRequest(const std::string& message, const std::string& param, const std::string& code) {
    return {400, message, "invalid_request_error", param, code};
}

ApiError invalidJson(const std::string& detail) {
    return {400, "We could not parse the JSON body of your request: " + detail, "invalid_request_error", "",
            "invalid_json"};
}

ApiError unauthorized() {
    return {401, "Incorrect API key provided. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
            "invalid_request_error", "", "invalid_api_key"};
}

ApiError modelNotFound(const std::string& model) {
    return {404, "The model '" + model + "' does not exist. GET /v1/models lists the served model.",
            "invalid_request_error", "model", "model_not_found"};
}

ApiError pathNotFound(const std::string& method, const std::string& path) {
    return {404, "Unknown request URL: " + method + " " + path + ".", "invalid_request_error", "",
            "unknown_url"};
}

ApiError methodNotAllowed(const std::string& method, const std::string& path) {
    return {405, "Method " + method + " is not allowed for " + path + ".", "invalid_request_error", "",
            "method_not_allowed"};
}

ApiError payloadTooLarge(size_t limit) {
    return {413, "Request body is larger than the limit of " + std::to_string(limit) + " bytes.",
            "invalid_request_error", "", "payload_too_large"};
}

ApiError serviceUnavailable(const std::string& status) {
    return {503, "The model is not ready yet" + (status.empty() ? std::string() : " (" + status + ")") +
                     "; retry in a moment.",
            "server_error", "", "model_loading"};
}

ApiError contextLengthExceeded(int promptTokens, int sessionLen) {
    return badRequest("This model's maximum context length is " + std::to_string(sessionLen) +
                          " tokens. However, your prompt is " + std::to_string(promptTokens) +
                          " tokens, which leaves no room for an answer. Please shorten the prompt.",
                      "messages", "context_length_exceeded");
}

ApiError maxTokensTooLarge(int promptTokens, int maxTokens, int sessionLen) {
    return badRequest("This model's maximum context length is " + std::to_string(sessionLen) +
                          " tokens. However, you requested " + std::to_string(promptTokens + maxTokens) + " tokens (" +
                          std::to_string(promptTokens) + " in the prompt, " + std::to_string(maxTokens) +
                          " in the completion). Please reduce the prompt or max_tokens.",
                      "max_tokens", "context_length_exceeded");
}

ApiError promptTooLong(size_t bytes, size_t boundBytes, int sessionLen, const std::string& param) {
    return badRequest("This model's maximum context length is " + std::to_string(sessionLen) +
                          " tokens. However, your prompt is " + std::to_string(bytes) +
                          " bytes, more than such a context can hold (" + std::to_string(boundBytes) +
                          " bytes at most for this tokenizer). Please shorten the prompt.",
                      param, "context_length_exceeded");
}

ApiError responseTooLarge(size_t bound, size_t limit, const std::string& param) {
    return badRequest("This request could produce a response of up to " + std::to_string(bound) +
                          " bytes; the limit is " + std::to_string(limit) +
                          " bytes. Lower n, max_tokens or top_logprobs.",
                      param, "response_too_large");
}

ApiError tooManyInFlight(size_t used, size_t limit) {
    return {429, "Too many large responses in flight (" + std::to_string(used) + " of " + std::to_string(limit) +
                     " bytes reserved); retry later.",
            "requests", "", "rate_limit_exceeded"};
}

ApiError shuttingDown() { return {503, "The server is shutting down.", "server_error", "", "shutting_down"}; }

ApiError serverBusy() { return {503, "The server is busy; retry in a moment.", "server_error", "", "server_busy"}; }

ApiError hostNotAllowed(const std::string& host) {
    return {403, "Host '" + host + "' is not served: this server listens on loopback and answers only loopback names "
                 "(localhost, 127.0.0.1, [::1]). Start it with --server-name 0.0.0.0 to serve the network, or name "
                 "the host with --allowed-hosts.",
            "invalid_request_error", "", "host_not_allowed"};
}

ApiError fromEngine(ErrorCode code, const std::string& message) {
    switch (code) {
    case ErrorCode::InvalidArgument:
        return badRequest(message);
    case ErrorCode::ContextLengthExceeded:
        return badRequest(message, "", "context_length_exceeded");
    case ErrorCode::Unsupported:
        return badRequest(message, "", "unsupported");
    case ErrorCode::OutOfMemory:
        return {503, "The server is out of memory for this request: " + message, "server_error", "",
                "out_of_memory"};
    case ErrorCode::Cancelled:
        return {503, "The request was cancelled: " + message, "server_error", "", "cancelled"};
    default:
        return {500, "Internal error: " + message, "server_error", "", "internal_error"};
    }
}

ApiError fromHttpStatus(int status, const std::string& method, const std::string& path, size_t bodyLimit,
                        const std::string& detail) {
    switch (status) {
    case 404:
        return pathNotFound(method, path);
    case 405:
        return methodNotAllowed(method, path);
    case 408:
        return {408, "The request was not received in time.", "invalid_request_error", "", "request_timeout"};
    case 413:
        return payloadTooLarge(bodyLimit);
    case 414:
        return {414, "Request URI is too long.", "invalid_request_error", "", "uri_too_long"};
    case 431:
        return {431, "Request headers are too large.", "invalid_request_error", "", "headers_too_large"};
    case 400:
        return badRequest(detail.empty() ? "Malformed HTTP request." : detail, "", "bad_request");
    case 503:
        if (!detail.empty()) return {503, detail, "server_error", "", "server_busy"};
        return shuttingDown();
    default:
        if (status >= 500) return {status, "Internal server error.", "server_error", "", ""};
        return {status, "HTTP error " + std::to_string(status) + ".", "invalid_request_error", "", ""};
    }
}

}  // namespace lmw::server
