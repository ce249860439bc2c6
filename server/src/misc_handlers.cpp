// GET /v1/models, POST /v1/encode, GET /health, GET /metrics, GET /openapi.json and the docs page.
#include "docs_assets.h"
#include "format.h"
#include "prompt.h"
#include "protocol.h"
#include "server_impl.h"

namespace lmw::server {

using nlohmann::json;

void Server::Impl::handleModels(const httplib::Request& req, httplib::Response& res, CallLog&) {
    auto engine = requireEngine();
    json model = {{"id", modelName()},
                  {"object", "model"},
                  {"created", unixNow()},
                  {"owned_by", "lmworkbench"},
                  {"root", engine->info().name},
                  {"parent", nullptr},
                  {"max_model_len", engine->sessionLen()},
                  {"permission", json::array()}};
    if (req.matches.size() > 1) {  // GET /v1/models/{model}
        std::string wanted = req.matches[1].str();
        if (wanted != modelName() && wanted != engine->info().name) fail(modelNotFound(wanted));
        res.set_content(dumpJson(model), "application/json");
        return;
    }
    res.set_content(dumpJson({{"object", "list"}, {"data", json::array({model})}}), "application/json");
}

void Server::Impl::handleEncode(const httplib::Request& req, httplib::Response& res, CallLog& call) {
    auto engine = requireEngine();
    EncodeRequest r = parseEncodeRequest(parseBody(req.body));
    json ids = json::array(), lengths = json::array();
    for (const auto& text : r.inputs) {
        std::vector<int32_t> tokens;
        if (r.doPreprocess) tokens = chatPrompt(*engine, {{"user", text}}, true).ids;
        else tokens = engine->tokenizer().encode(text, r.addBos);
        lengths.push_back(tokens.size());
        ids.push_back(tokens);
        call.entry.promptTokens += static_cast<int>(tokens.size());
    }
    json body = r.batch ? json{{"input_ids", ids}, {"length", lengths}}
                        : json{{"input_ids", ids[0]}, {"length", lengths[0]}};
    res.set_content(dumpJson(body), "application/json");
}

void Server::Impl::handleHealth(const httplib::Request&, httplib::Response& res, CallLog&) {
    // Healthy means "answers and has a model": load balancers should not route to a loading server.
    auto engine = currentEngine();
    if (!engine || stopping) {
        std::lock_guard lock(engineMutex);
        res.status = 503;
        res.set_content(dumpJson({{"status", stopping ? "stopping" : "loading"}, {"detail", loadingStatus}}),
                        "application/json");
        return;
    }
    res.set_content(dumpJson({{"status", "ok"}, {"model", modelName()}}), "application/json");
}

void Server::Impl::handleMetrics(const httplib::Request&, httplib::Response& res, CallLog&) {
    auto engine = currentEngine();
    std::string text;
    if (engine) {
        engine::EngineStats stats = engine->stats();
        text = metrics.render(&stats, modelName());
    } else {
        text = metrics.render(nullptr, modelName());
    }
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
}

void Server::Impl::handleDocs(const httplib::Request& req, httplib::Response& res, CallLog&) {
    std::string path = req.path == "/docs" ? "/" : req.path;
    const Asset* a = findAsset(path);
    if (!a) fail(pathNotFound(req.method, req.path));
    res.set_content(std::string(a->data), std::string(a->contentType));
    if (path != "/" && path != "/openapi.json") res.set_header("Cache-Control", "public, max-age=86400");
}

}  // namespace lmw::server
