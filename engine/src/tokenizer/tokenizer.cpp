// Tokenizer: sentencepiece plus the added/special tokens of tokenizer_config.json, encoding the way
// Hugging Face's slow LlamaTokenizer (legacy=true) does: the text is split on added tokens and each
// remaining segment is encoded by sentencepiece on its own (so each gets the dummy-prefix "▁").
#include "lmw/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "lmw/error.h"
#include "nlohmann/json.hpp"
#include "tokenizer/detokenize.h"

namespace lmw::engine {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁", sentencepiece's whitespace symbol

struct AddedToken {
    std::string content;
    bool special = true;
    bool lstrip = false;
    bool rstrip = false;
};

// bos_token and friends are either a string or an AddedToken object {"content": ...}.
std::string tokenString(const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return {};
}

bool isSpaceChar(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string readText(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ErrorCode::Io, "cannot read " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

struct Tokenizer::Impl {
    sentencepiece::SentencePieceProcessor sp;
    int spSize = 0;
    int vocab = 0;
    std::vector<std::string> pieces;  // sp id -> piece
    std::vector<int> byteValue;       // sp id -> byte for <0xAB> pieces, else -1
    std::vector<char> spSpecial;      // sp id -> control or unknown
    std::unordered_map<int32_t, AddedToken> added;
    std::unordered_map<std::string, int32_t> addedByContent;
    std::vector<std::pair<std::string, int32_t>> splitTokens;  // longest first
    bool startsToken[256] = {};  // first bytes of splitTokens: most positions are skipped at once
    bool addBos = true;
    int32_t bosId = -1, eosId = -1;
    std::string bosToken, eosToken;
    std::string chatTemplate;

    std::optional<int32_t> pieceId(const std::string& piece) const {
        if (auto it = addedByContent.find(piece); it != addedByContent.end()) return it->second;
        int id = sp.PieceToId(piece);
        if (id < 0 || id >= spSize) return std::nullopt;
        if (pieces[id] != piece) return std::nullopt;  // PieceToId answers unk for unknown pieces
        return id;
    }

    void addToken(int32_t id, AddedToken t) {
        if (id < 0 || t.content.empty()) return;
        addedByContent[t.content] = id;
        added[id] = std::move(t);
    }

    // A special token named in the config (bos/eos/unk/pad) that is not in added_tokens_decoder.
    void addNamedSpecial(const std::string& content) {
        if (content.empty() || addedByContent.count(content)) return;
        if (auto id = pieceId(content)) addToken(*id, AddedToken{content, true, false, false});
    }
};

Tokenizer::Tokenizer() : m(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& dir) {
    namespace fs = std::filesystem;
    const std::string modelPath = dir + "/tokenizer.model";
    if (!fs::exists(modelPath)) throw Error(ErrorCode::NotFound, "tokenizer file not found: " + modelPath);

    std::unique_ptr<Tokenizer> tok(new Tokenizer());
    Impl& m = *tok->m;
    auto status = m.sp.Load(modelPath);
    if (!status.ok() || m.sp.GetPieceSize() <= 0)
        throw Error(ErrorCode::InvalidModel, "cannot load sentencepiece model " + modelPath + ": " + status.ToString());

    m.spSize = m.sp.GetPieceSize();
    m.pieces.resize(m.spSize);
    m.byteValue.assign(m.spSize, -1);
    m.spSpecial.assign(m.spSize, 0);
    for (int i = 0; i < m.spSize; ++i) {
        m.pieces[i] = m.sp.IdToPiece(i);
        m.spSpecial[i] = m.sp.IsControl(i) || m.sp.IsUnknown(i);
        if (m.sp.IsByte(i)) {
            // Byte-fallback pieces are spelled "<0xAB>".
            const std::string& p = m.pieces[i];
            if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>')
                m.byteValue[i] = std::stoi(p.substr(3, 2), nullptr, 16);
        }
    }
    m.bosId = m.sp.bos_id();
    m.eosId = m.sp.eos_id();
    if (m.bosId >= 0) m.bosToken = m.pieces[m.bosId];
    if (m.eosId >= 0) m.eosToken = m.pieces[m.eosId];
    m.addBos = m.bosId >= 0;

    const std::string configPath = dir + "/tokenizer_config.json";
    if (fs::exists(configPath)) {
        nlohmann::json cfg;
        try {
            cfg = nlohmann::json::parse(readText(configPath));
        } catch (const nlohmann::json::exception& e) {
            throw Error(ErrorCode::InvalidModel, "cannot parse " + configPath + ": " + e.what());
        }
        if (!cfg.is_object()) throw Error(ErrorCode::InvalidModel, configPath + " is not a JSON object");

        if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && it->is_object()) {
            for (auto& [key, val] : it->items()) {
                int32_t id;
                try {
                    id = std::stoi(key);
                } catch (...) {
                    throw Error(ErrorCode::InvalidModel, configPath + ": added_tokens_decoder key '" + key + "' is not an id");
                }
                AddedToken t;
                t.content = tokenString(val);
                if (val.is_object()) {
                    t.special = val.value("special", false);
                    t.lstrip = val.value("lstrip", false);
                    t.rstrip = val.value("rstrip", false);
                }
                m.addToken(id, std::move(t));
            }
        }
        for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
            if (auto it = cfg.find(key); it != cfg.end()) m.addNamedSpecial(tokenString(*it));
        if (auto it = cfg.find("additional_special_tokens"); it != cfg.end() && it->is_array())
            for (auto& v : *it) m.addNamedSpecial(tokenString(v));

        if (auto it = cfg.find("bos_token"); it != cfg.end()) {
            if (it->is_null()) {
                m.bosToken.clear();
                m.bosId = -1;
            } else if (auto s = tokenString(*it); !s.empty()) {
                if (auto id = m.pieceId(s)) {
                    m.bosToken = s;
                    m.bosId = *id;
                }
            }
        }
        if (auto it = cfg.find("eos_token"); it != cfg.end()) {
            if (auto s = tokenString(*it); !s.empty()) {
                if (auto id = m.pieceId(s)) {
                    m.eosToken = s;
                    m.eosId = *id;
                }
            }
        }
        if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean()) m.addBos = it->get<bool>();
        if (m.bosId < 0) m.addBos = false;

        if (auto it = cfg.find("chat_template"); it != cfg.end()) {
            if (it->is_string()) {
                m.chatTemplate = it->get<std::string>();
            } else if (it->is_array()) {
                // Several named templates: "default" is the chat one ("tool_use", "rag" are others).
                for (auto& t : *it) {
                    if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) continue;
                    if (m.chatTemplate.empty() || t.value("name", "") == "default")
                        m.chatTemplate = t["template"].get<std::string>();
                    if (t.value("name", "") == "default") break;
                }
            }
        }
    }

    m.vocab = m.spSize;
    for (auto& [id, t] : m.added) {
        m.vocab = std::max(m.vocab, id + 1);
        m.splitTokens.emplace_back(t.content, id);
        m.startsToken[static_cast<unsigned char>(t.content[0])] = true;
    }
    std::sort(m.splitTokens.begin(), m.splitTokens.end(), [](const auto& a, const auto& b) {
        return a.first.size() != b.first.size() ? a.first.size() > b.first.size() : a.first < b.first;
    });
    return tok;
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, std::optional<bool> addBos) const {
    std::vector<int32_t> ids;
    if (addBos.value_or(m->addBos) && m->bosId >= 0) ids.push_back(m->bosId);

    std::vector<int> pieceIds;
    auto encodeSegment = [&](std::string_view seg) {
        if (seg.empty()) return;
        pieceIds.clear();
        m->sp.Encode(seg, &pieceIds);
        ids.insert(ids.end(), pieceIds.begin(), pieceIds.end());
    };

    // Leftmost match first; at one position the longest token wins (like Hugging Face's trie).
    size_t segStart = 0, pos = 0;
    bool stripNextLeading = false;
    while (pos < text.size()) {
        if (!m->startsToken[static_cast<unsigned char>(text[pos])]) {
            ++pos;
            continue;
        }
        const std::pair<std::string, int32_t>* hit = nullptr;
        for (const auto& st : m->splitTokens) {
            if (text.compare(pos, st.first.size(), st.first) == 0) {
                hit = &st;
                break;
            }
        }
        if (!hit) {
            ++pos;
            continue;
        }
        const AddedToken& t = m->added.at(hit->second);
        size_t segBegin = segStart, segEnd = pos;
        if (stripNextLeading)
            while (segBegin < segEnd && isSpaceChar(text[segBegin])) ++segBegin;
        if (t.lstrip)
            while (segEnd > segBegin && isSpaceChar(text[segEnd - 1])) --segEnd;
        encodeSegment(std::string_view(text).substr(segBegin, segEnd - segBegin));
        ids.push_back(hit->second);
        pos += hit->first.size();
        segStart = pos;
        stripNextLeading = t.rstrip;
    }
    size_t segBegin = segStart;
    if (stripNextLeading)
        while (segBegin < text.size() && isSpaceChar(text[segBegin])) ++segBegin;
    encodeSegment(std::string_view(text).substr(segBegin));
    return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skipSpecial) const {
    std::string raw;
    bool atStart = true;
    for (int32_t id : ids) appendTokenText(*this, id, skipSpecial, atStart, raw);
    return sanitizeUtf8(raw);
}

int Tokenizer::vocabSize() const { return m->vocab; }
int32_t Tokenizer::bosId() const { return m->bosId; }
int32_t Tokenizer::eosId() const { return m->eosId; }
bool Tokenizer::addBos() const { return m->addBos; }
std::string Tokenizer::bosToken() const { return m->bosToken; }
std::string Tokenizer::eosToken() const { return m->eosToken; }
const std::string& Tokenizer::chatTemplateSource() const { return m->chatTemplate; }

bool Tokenizer::isSpecial(int32_t id) const {
    if (auto it = m->added.find(id); it != m->added.end()) return it->second.special;
    return id >= 0 && id < m->spSize && m->spSpecial[id];
}

std::optional<int32_t> Tokenizer::tokenId(const std::string& token) const { return m->pieceId(token); }

std::string Tokenizer::idToPiece(int32_t id) const {
    if (auto it = m->added.find(id); it != m->added.end()) return it->second.content;
    if (id >= 0 && id < m->spSize) return m->pieces[id];
    return {};
}

std::string Tokenizer::tokenBytes(int32_t id) const {
    if (auto it = m->added.find(id); it != m->added.end()) return it->second.content;
    if (id < 0 || id >= m->spSize) return {};
    if (m->byteValue[id] >= 0) return std::string(1, static_cast<char>(m->byteValue[id]));
    if (m->spSpecial[id]) return m->pieces[id];
    const std::string& p = m->pieces[id];
    std::string out;
    out.reserve(p.size());
    for (size_t i = 0; i < p.size();) {
        if (p.compare(i, kSpace.size(), kSpace) == 0) {
            out += ' ';
            i += kSpace.size();
        } else {
            out += p[i++];
        }
    }
    return out;
}

}  // namespace lmw::engine
