#pragma once
// A real `lmw serve` inside a server test: a model loaded on the CPU and a server on a free loopback
// port. The test fails at once (qFatal) when either does not start.
#include <QtGlobal>

#include <memory>
#include <string>

#include "lmw/engine.h"
#include "lmw/server.h"
#include "test_util.h"

namespace lmw::test {

struct Served {
    std::shared_ptr<engine::Engine> engine;
    std::unique_ptr<server::Server> server;
    int port = 0;
};

// `model` under the test models folder, served under its own name.
inline Served serve(const std::string& model, server::ServerOptions o = {}, int sessionLen = 256) {
    engine::EngineConfig c;
    c.modelDir = modelDir(model);
    c.backend = "cpu";
    c.threads = 2;
    c.sessionLen = sessionLen;
    auto e = engine::Engine::load(c);
    if (!e) qFatal("load %s: %s", model.c_str(), e.error().what());
    Served s;
    s.engine = std::move(e.value());
    s.server = std::make_unique<server::Server>();
    s.server->setEngine(s.engine);
    o.modelName = model;
    auto r = s.server->start("127.0.0.1", 0, o);
    if (!r) qFatal("start: %s", r.error().what());
    s.port = r.value();
    return s;
}

}  // namespace lmw::test
