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

ApiError badRequest(const std::string& message, const std::string& param, const std::string& code) {
    return {400, message, "invalid_request_error", param, code};
}

ApiError invalidJson(const std::string& detail) {
    return {400, "We could not parse the JSON body of your request: " + detail, "invalid_request_error", "",
            "invalid_json"};
}

ApiError unauthorized() {
    return {401, "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.",
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

ApiError fromHttpStatus(int status, const std::string& method, const std::string& path, size_t bodyLimit) {
    switch (status) {
    case 404:
        return pathNotFound(method, path);
    case 405:
        return methodNotAllowed(method, path);
    case 413:
        return payloadTooLarge(bodyLimit);
    case 414:
        return {414, "Request URI is too long.", "invalid_request_error", "", "uri_too_long"};
    case 400:
        return badRequest("Malformed HTTP request.");
    default:
        if (status >= 500) return {status, "Internal server error.", "server_error", "", ""};
        return {status, "HTTP error " + std::to_string(status) + ".", "invalid_request_error", "", ""};
    }
}

}  // namespace lmw::server
