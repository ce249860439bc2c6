#pragma once
// Request-log text from clients (paths, model names, error messages quoting them) may hold CR/LF
// or terminal escape sequences; written raw they forge log lines or drive the terminal.
#include <string>
#include <string_view>

namespace lmw::server {

// Control characters (C0, DEL, and the C1 range U+0080..U+009F) and bytes that are not UTF-8
// become \n, \r, \t or \xNN; a backslash becomes \\ so that the escaping cannot be faked.
std::string escapeForLog(std::string_view s);

}  // namespace lmw::server
