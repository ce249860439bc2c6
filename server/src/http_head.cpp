#include "http_head.h"

#include "http_message.h"

namespace lmw::server {

namespace http = boost::beast::http;

namespace {

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

}  // namespace

HeadVerdict checkRequestHead(const RequestParser& parser, uint64_t bodyLimit) {
    // Anything but these rules could be read differently by a proxy in front (request smuggling).
    int lengths = 0, codings = 0;
    std::string firstLength;
    for (const auto& f : parser.get()) {
        if (f.name() == http::field::content_length) {
            ++lengths;
            if (lengths == 1) firstLength = trim(f.value());
            else if (trim(f.value()) != firstLength) return {400, "Two different Content-Length headers."};
        } else if (f.name() == http::field::transfer_encoding) {
            ++codings;
            if (!sameText(trim(f.value()), "chunked"))
                return {400, "Transfer-Encoding '" + std::string(f.value()) + "' is not supported; only 'chunked' is."};
        }
    }
    if (codings > 1) return {400, "More than one Transfer-Encoding header."};
    if (codings && lengths) return {400, "Both Content-Length and Transfer-Encoding are present."};
    if (auto len = parser.content_length(); len && *len > bodyLimit) return {413, ""};
    return {};
}

std::string requestPath(std::string_view target) {
    std::string t(target);
    if (t.rfind("http://", 0) == 0 || t.rfind("https://", 0) == 0) {  // absolute form
        size_t slash = t.find('/', t.find("//") + 2);
        t = slash == std::string::npos ? "/" : t.substr(slash);
    }
    return decodePath(t.substr(0, t.find('?')));
}

std::string decodePath(std::string_view s) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace lmw::server
