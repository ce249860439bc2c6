#pragma once
// tokenizer.json "decoder", compiled into what a streaming decoder can run token by token: each
// token's string goes through the per-token steps (Replace, ByteFallback, ByteLevel, Metaspace,
// Strip) and the bytes are appended; after a Fuse, a Strip of the start of the whole text remains.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmw/tokenizer.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

class Regex;

class HfDecoder {
public:
    // j may be null: the library then joins the tokens with spaces.
    HfDecoder(const Json& j, const JsonAt& at);
    ~HfDecoder();
    HfDecoder(HfDecoder&&) noexcept;

    // Appends the bytes token string `token` gives at this point of the text.
    void append(std::string_view token, DecodeState& state, std::string& out) const;
    // How invalid bytes are replaced: ByteLevel decodes with from_utf8_lossy (one U+FFFD per broken
    // sequence); byte-fallback tokens give one U+FFFD per byte.
    utf8::Lossy lossy() const { return m_byteLevel ? utf8::Lossy::PerSubpart : utf8::Lossy::PerByte; }

private:
    struct Step;
    void add(const Json& j, const JsonAt& at);
    std::vector<Step> m_steps;
    bool m_join = false;        // no decoder
    bool m_fused = false;       // a Fuse was seen: later steps act on the whole text
    bool m_byteLevel = false;
    uint32_t m_stripChar = 0;   // after Fuse: strip up to m_stripStart of these at the start of the text
    int m_stripStart = 0;
};

}  // namespace lmw::engine
