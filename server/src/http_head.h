#pragma once
// The checks a request head must pass before its body is read, apart from any socket, so that the
// connection and the fuzz harness (tests/fuzz/fuzz_http_request.cpp) run the same code.
#include <utility>  // before Beast: Boost 1.74's headers use std::exchange without it

#include <boost/beast/http.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace lmw::server {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

struct HeadVerdict {
    int status = 0;  // 0: accepted; else the HTTP status to refuse it with
    std::string message;
};

// Framing (RFC 9112 section 6) of a parsed head: one Content-Length (repeats must agree); only
// "chunked" as a transfer coding, once, and not together with a Content-Length; a declared body
// within bodyLimit (413).
HeadVerdict checkRequestHead(const RequestParser& parser, uint64_t bodyLimit);

// The path a handler routes on: an absolute-form target ("http://host/x?q") loses scheme and
// host, the query goes, and percent escapes are decoded.
std::string requestPath(std::string_view target);

// Percent-decodes a path ("%20" -> " "); malformed escapes stay as they are.
std::string decodePath(std::string_view s);

}  // namespace lmw::server
