// renderJinja: the public entry of the small Jinja renderer (lexer, parser and evaluator live in
// jinja_lexer.cpp, jinja_parser.cpp, jinja_eval.cpp; filters and methods in jinja_builtins.cpp).
#include "lmw/chat_template.h"
#include "nlohmann/json.hpp"
#include "tokenizer/jinja_internal.h"

namespace lmw::engine {

std::string renderJinja(const std::string& source, const nlohmann::ordered_json& context) {
    return jinja::render(*jinja::parse(source), context);
}

}  // namespace lmw::engine
