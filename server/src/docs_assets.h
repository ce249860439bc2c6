#pragma once
// Files embedded into the binary at build time (see server/embed_docs.cmake): the OpenAPI
// document, the docs page, and swagger-ui-dist's bundle when npm could install it.
#include <cstddef>
#include <string_view>

namespace lmw::server {

struct Asset {
    std::string_view path;          // URL path, e.g. "/docs/swagger-ui.css"
    std::string_view contentType;
    std::string_view data;
};

// Null when there is no such asset.
const Asset* findAsset(std::string_view path);
// True when swagger-ui-dist was embedded (the docs page at / is Swagger UI, else a plain page).
bool haveSwaggerUi();

}  // namespace lmw::server
