// libFuzzer: bytes a client sends -> Beast's request parser fed the way Connection feeds it (head
// under headerLimit, in pieces), the framing checks (checkRequestHead), the routed path, the body,
// and pipelined requests after it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "connection.h"
#include "http_head.h"
#include "transport.h"

using namespace lmw::server;
namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t piece = 1 + data[0] % 64;  // how the bytes arrive: 1..64 per read
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    const TransportOptions opts;
    size_t pos = 0;
    for (int request = 0; request < 8 && pos < in.size(); ++request) {
        RequestParser parser;
        parser.header_limit(static_cast<std::uint32_t>(opts.headerLimit));
        parser.body_limit(opts.bodyLimit);
        bool headChecked = false;
        boost::beast::error_code ec;
        std::string pending;  // bytes read, not yet taken by the parser
        while (!parser.is_done()) {
            if (pos < in.size()) {
                const size_t n = std::min(piece, in.size() - pos);
                pending.append(in.substr(pos, n));
                pos += n;
            }
            const size_t used = parser.put(boost::asio::buffer(pending), ec);
            pending.erase(0, used);
            if (ec == http::error::need_more) {
                ec = {};
                if (pos >= in.size()) break;  // the client stopped mid-message
                continue;
            }
            if (ec) break;
            if (parser.is_header_done() && !headChecked) {
                headChecked = true;
                HeadVerdict v = checkRequestHead(parser, opts.bodyLimit);
                (void)requestPath(parser.get().target());
                (void)saneRequestId(std::string(parser.get()["X-Request-Id"]));
                if (v.status) return 0;  // refused: the connection closes
            }
            if (used == 0 && pos >= in.size() && !parser.is_done()) break;
        }
        if (ec || !parser.is_done()) return 0;
        (void)parser.keep_alive();
        auto msg = parser.release();
        for (const auto& f : msg) (void)f.name_string();
        // What the parser did not take belongs to the next (pipelined) request.
        pos -= std::min(pos, pending.size());
    }
    return 0;
}
