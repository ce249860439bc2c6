// Sentencepiece tokenizer plus the added/special tokens of tokenizer_config.json, encoding the way
// Hugging Face's slow LlamaTokenizer (legacy=true) does: the text is split on added tokens and each
// remaining segment is encoded by sentencepiece on its own (so each gets the dummy-prefix "▁").
// The "▁" space rules of decoding live here too: they are sentencepiece's, not every tokenizer's.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <unordered_map>

#include "lmw/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁", sentencepiece's whitespace symbol

struct AddedToken {
    std::string content;
    bool special = true;
    bool lstrip = false;
    bool rstrip = false;
};

bool isSpaceChar(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class SpTokenizer final : public Tokenizer {
public:
    SpTokenizer(const std::string& modelPath, const TokenizerConfig& cfg);

    std::string kind() const override { return "tokenizer.model (sentencepiece)"; }
    std::vector<int32_t> encodeWithPlainSpans(const std::string& text, std::optional<bool> addBos,
                                              const std::vector<TextSpan>& plain) const override;
    std::vector<std::string> specialTokenTexts() const override;
    int vocabSize() const override { return m_vocab; }
    bool isSpecial(int32_t id) const override;
    std::optional<int32_t> tokenId(const std::string& token) const override { return pieceId(token); }
    std::string idToPiece(int32_t id) const override;
    std::string tokenBytes(int32_t id) const override;
    void appendDecoded(int32_t id, bool skipSpecial, DecodeState& state, std::string& bytes) const override;
    std::string finishDecoded(std::string_view bytes) const override {
        return utf8::sanitize(bytes, utf8::Lossy::PerByte);  // sentencepiece's rule for byte pieces
    }

private:
    std::optional<int32_t> pieceId(const std::string& piece) const;
    void addToken(int32_t id, AddedToken t);
    void addNamedSpecial(const std::string& content);

    sentencepiece::SentencePieceProcessor m_sp;
    int m_spSize = 0;
    int m_vocab = 0;
    std::vector<std::string> m_pieces;  // sp id -> piece
    std::vector<int> m_byteValue;       // sp id -> byte for <0xAB> pieces, else -1
    std::vector<char> m_spSpecial;      // sp id -> control or unknown
    std::unordered_map<int32_t, AddedToken> m_added;
    std::unordered_map<std::string, int32_t> m_addedByContent;
    std::vector<std::pair<std::string, int32_t>> m_splitTokens;  // longest first
    bool m_startsToken[256] = {};  // first bytes of m_splitTokens: most positions are skipped at once
};

SpTokenizer::SpTokenizer(const std::string& modelPath, const TokenizerConfig& cfg) {
    auto status = m_sp.Load(modelPath);
    if (!status.ok() || m_sp.GetPieceSize() <= 0)
        throw Error(ErrorCode::InvalidModel, "cannot load sentencepiece model " + modelPath + ": " + status.ToString());

    m_spSize = m_sp.GetPieceSize();
    m_pieces.resize(m_spSize);
    m_byteValue.assign(m_spSize, -1);
    m_spSpecial.assign(m_spSize, 0);
    for (int i = 0; i < m_spSize; ++i) {
        m_pieces[i] = m_sp.IdToPiece(i);
        m_spSpecial[i] = m_sp.IsControl(i) || m_sp.IsUnknown(i);
        if (m_sp.IsByte(i)) {
            // Byte-fallback pieces are spelled "<0xAB>".
            const std::string& p = m_pieces[i];
            if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>')
                m_byteValue[i] = std::stoi(p.substr(3, 2), nullptr, 16);
        }
    }
    m_bosId = m_sp.bos_id();
    m_eosId = m_sp.eos_id();
    if (m_bosId >= 0) m_bosToken = m_pieces[m_bosId];
    if (m_eosId >= 0) m_eosToken = m_pieces[m_eosId];
    m_addBos = m_bosId >= 0;

    for (const AddedTokenSpec& s : cfg.addedTokensDecoder)
        addToken(s.id, AddedToken{s.content, s.special, s.lstrip, s.rstrip});
    for (const NamedToken* t : {&cfg.bos, &cfg.eos, &cfg.unk, &cfg.pad}) addNamedSpecial(t->content);
    for (const std::string& s : cfg.additionalSpecial) addNamedSpecial(s);

    if (cfg.bos.present) {
        if (cfg.bos.content.empty()) {
            m_bosToken.clear();
            m_bosId = -1;
        } else if (auto id = pieceId(cfg.bos.content)) {
            m_bosToken = cfg.bos.content;
            m_bosId = *id;
        }
    }
    if (!cfg.eos.content.empty()) {
        if (auto id = pieceId(cfg.eos.content)) {
            m_eosToken = cfg.eos.content;
            m_eosId = *id;
        }
    }
    if (cfg.addBosToken) m_addBos = *cfg.addBosToken;
    if (m_bosId < 0) m_addBos = false;
    m_chatTemplate = cfg.chatTemplate;

    m_vocab = m_spSize;
    for (auto& [id, t] : m_added) {
        m_vocab = std::max(m_vocab, id + 1);
        m_splitTokens.emplace_back(t.content, id);
        m_startsToken[static_cast<unsigned char>(t.content[0])] = true;
    }
    std::sort(m_splitTokens.begin(), m_splitTokens.end(), [](const auto& a, const auto& b) {
        return a.first.size() != b.first.size() ? a.first.size() > b.first.size() : a.first < b.first;
    });
}

std::optional<int32_t> SpTokenizer::pieceId(const std::string& piece) const {
    if (auto it = m_addedByContent.find(piece); it != m_addedByContent.end()) return it->second;
    int id = m_sp.PieceToId(piece);
    if (id < 0 || id >= m_spSize) return std::nullopt;
    if (m_pieces[id] != piece) return std::nullopt;  // PieceToId answers unk for unknown pieces
    return id;
}

void SpTokenizer::addToken(int32_t id, AddedToken t) {
    if (id < 0 || t.content.empty()) return;
    m_addedByContent[t.content] = id;
    m_added[id] = std::move(t);
}

// A special token named in the config (bos/eos/unk/pad) that is not in added_tokens_decoder.
void SpTokenizer::addNamedSpecial(const std::string& content) {
    if (content.empty() || m_addedByContent.count(content)) return;
    if (auto id = pieceId(content)) addToken(*id, AddedToken{content, true, false, false});
}

std::vector<std::string> SpTokenizer::specialTokenTexts() const {
    std::vector<std::string> out;
    for (const auto& [content, id] : m_splitTokens)
        if (m_added.at(id).special) out.push_back(content);
    return out;  // sentencepiece itself never reads control pieces (<s>, </s>) from text
}

std::vector<int32_t> SpTokenizer::encodeWithPlainSpans(const std::string& text, std::optional<bool> addBos,
                                                       const std::vector<TextSpan>& plain) const {
    std::vector<int32_t> ids;
    if (addBos.value_or(m_addBos) && m_bosId >= 0) ids.push_back(m_bosId);

    std::vector<int> pieceIds;
    auto encodeSegment = [&](std::string_view seg) {
        if (seg.empty()) return;
        pieceIds.clear();
        m_sp.Encode(seg, &pieceIds);
        ids.insert(ids.end(), pieceIds.begin(), pieceIds.end());
    };

    // Leftmost match first; at one position the longest token wins (like Hugging Face's trie).
    size_t segStart = 0, pos = 0;
    bool stripNextLeading = false;
    while (pos < text.size()) {
        if (!m_startsToken[static_cast<unsigned char>(text[pos])]) {
            ++pos;
            continue;
        }
        const std::pair<std::string, int32_t>* hit = nullptr;
        for (const auto& st : m_splitTokens) {
            if (text.compare(pos, st.first.size(), st.first) == 0 &&
                !(m_added.at(st.second).special && overlapsAny(plain, pos, pos + st.first.size()))) {
                hit = &st;
                break;
            }
        }
        if (!hit) {
            ++pos;
            continue;
        }
        const AddedToken& t = m_added.at(hit->second);
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

bool SpTokenizer::isSpecial(int32_t id) const {
    if (auto it = m_added.find(id); it != m_added.end()) return it->second.special;
    return id >= 0 && id < m_spSize && m_spSpecial[id];
}

std::string SpTokenizer::idToPiece(int32_t id) const {
    if (auto it = m_added.find(id); it != m_added.end()) return it->second.content;
    if (id >= 0 && id < m_spSize) return m_pieces[id];
    return {};
}

std::string SpTokenizer::tokenBytes(int32_t id) const {
    if (auto it = m_added.find(id); it != m_added.end()) return it->second.content;
    if (id < 0 || id >= m_spSize) return {};
    if (m_byteValue[id] >= 0) return std::string(1, static_cast<char>(m_byteValue[id]));
    if (m_spSpecial[id]) return m_pieces[id];
    const std::string& p = m_pieces[id];
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

// Sentencepiece drops the leading "▁" of the first piece; an emitted special token starts a new
// segment (Hugging Face decodes the text between special tokens separately, so each segment drops
// its leading space).
void SpTokenizer::appendDecoded(int32_t id, bool skipSpecial, DecodeState& state, std::string& bytes) const {
    if (id < 0 || id >= m_vocab) return;
    if (isSpecial(id)) {
        if (skipSpecial) return;
        bytes += idToPiece(id);
        state.atStart = true;
        ++state.tokens;
        return;
    }
    std::string piece = tokenBytes(id);
    if (state.atStart && !piece.empty() && piece[0] == ' ' && idToPiece(id).compare(0, kSpace.size(), kSpace) == 0)
        piece.erase(0, 1);
    state.atStart = false;
    ++state.tokens;
    bytes += piece;
}

}  // namespace

std::unique_ptr<Tokenizer> loadSentencePieceTokenizer(const std::string& modelPath, const TokenizerConfig& config) {
    return std::make_unique<SpTokenizer>(modelPath, config);
}

}  // namespace lmw::engine
