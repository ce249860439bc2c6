// GET /v1/models, POST /v1/encode, GET /health, GET /metrics, GET /openapi.json and the docs page.
#include "docs_assets.h"
#include "format.h"
#include "prompt.h"
#include "protocol.h"
#include "server_impl.h"

namespace lmw::server {

using nlohmann::json;

void Server::Impl::handleModels(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>&) {
    auto engine = requireEngine();
    json model = {{"id", modelName()},
                  {"object", "model"},
                  {"created", unixNow()},
                  {"owned_by", "lmworkbench"},
                  {"root", engine->info().name},
                  {"parent", nullptr},
                  {"max_model_len", engine->sessionLen()},
                  {"permission", json::array()}};
    if (!req.pathParam.empty()) {  // GET /v1/models/{model}
        const std::string& wanted = req.pathParam;
        if (wanted != modelName() && wanted != engine->info().name) fail(modelNotFound(wanted));
        res.setContent(dumpJson(model), "application/json");
        return;
    }
    res.setContent(dumpJson({{"object", "list"}, {"data", json::array({model})}}), "application/json");
}

void Server::Impl::handleEncode(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    auto engine = requireEngine();
    EncodeRequest r = parseEncodeRequest(parseBody(req.body));
    json ids = json::array(), lengths = json::array();
    for (const auto& text : r.inputs) {
        std::vector<int32_t> tokens;
        // Tokenized as a generation request would be, so counts agree with usage.prompt_tokens.
        if (r.doPreprocess) tokens = chatPrompt(*engine, {{"user", text}}, true, nullptr, specialTokens()).ids;
        else tokens = engine->tokenizer().encode(text, r.addBos, specialTokens());
        lengths.push_back(tokens.size());
        ids.push_back(tokens);
        call->entry.promptTokens += static_cast<int>(tokens.size());
    }
    json body = r.batch ? json{{"input_ids", ids}, {"length", lengths}}
                        : json{{"input_ids", ids[0]}, {"length", lengths[0]}};
    res.setContent(dumpJson(body), "application/json");
}

static bool isUtf8(const std::string& s) {
    try {
        (void)json(s).dump();  // strict: throws on invalid UTF-8
        return true;
    } catch (const json::type_error&) {
        return false;
    }
}

// llama-server's /tokenize: {"tokens": [ids]}, or with with_pieces [{"id", "piece"}] where a piece
// that is not whole UTF-8 (part of a character) is given as its bytes.
void Server::Impl::handleTokenize(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>& call) {
    auto engine = requireEngine();
    const TokenizeRequest r = parseTokenizeRequest(parseBody(req.body));
    const engine::SpecialTokens special =
        r.parseSpecial ? (*r.parseSpecial ? engine::SpecialTokens::Parse : engine::SpecialTokens::AsText) : specialTokens();
    const engine::Tokenizer& tok = engine->tokenizer();
    const std::vector<int32_t> ids = tok.encode(r.content, r.addSpecial, special);
    call->entry.promptTokens = static_cast<int>(ids.size());
    json tokens = json::array();
    for (int32_t id : ids) {
        if (!r.withPieces) {
            tokens.push_back(id);
            continue;
        }
        const std::string piece = tok.tokenBytes(id);
        if (isUtf8(piece)) tokens.push_back({{"id", id}, {"piece", piece}});
        else tokens.push_back({{"id", id}, {"piece", std::vector<uint8_t>(piece.begin(), piece.end())}});
    }
    res.setContent(dumpJson({{"tokens", tokens}}), "application/json");
}

void Server::Impl::handleDetokenize(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>&) {
    auto engine = requireEngine();
    const DetokenizeRequest r = parseDetokenizeRequest(parseBody(req.body), engine->tokenizer().vocabSize());
    res.setContent(dumpJson({{"content", engine->tokenizer().decode(r.tokens, false)}}), "application/json");
}

void Server::Impl::handleHealth(const HttpRequest&, HttpResponse& res, const std::shared_ptr<CallLog>&) {
    // Healthy means "answers and has a model": load balancers should not route to a loading server.
    auto engine = currentEngine();
    if (!engine || stopping) {
        std::lock_guard lock(engineMutex);
        res.status = 503;
        res.setContent(dumpJson({{"status", stopping ? "stopping" : "loading"}, {"detail", loadingStatus}}),
                        "application/json");
        return;
    }
    res.setContent(dumpJson({{"status", "ok"}, {"model", modelName()}}), "application/json");
}

void Server::Impl::handleMetrics(const HttpRequest&, HttpResponse& res, const std::shared_ptr<CallLog>&) {
    auto engine = currentEngine();
    std::string text;
    if (engine) {
        engine::EngineStats stats = engine->stats();
        text = metrics.render(&stats, modelName());
    } else {
        text = metrics.render(nullptr, modelName());
    }
    res.setContent(text, "text/plain; version=0.0.4; charset=utf-8");
}

void Server::Impl::handleDocs(const HttpRequest& req, HttpResponse& res, const std::shared_ptr<CallLog>&) {
    std::string path = req.path == "/docs" ? "/" : req.path;
    const Asset* a = findAsset(path);
    if (!a) fail(pathNotFound(req.method, req.path));
    res.setContent(std::string(a->data), std::string(a->contentType));
    if (path != "/" && path != "/openapi.json") res.setHeader("Cache-Control", "public, max-age=86400");
}

}  // namespace lmw::server
