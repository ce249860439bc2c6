#pragma once
// sentencepiece tokenizer with the special tokens of tokenizer_config.json, and a streaming
// detokenizer that never emits half a UTF-8 character.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lmw::engine {

class Tokenizer {
public:
    // Loads <dir>/tokenizer.model and <dir>/tokenizer_config.json (special/added tokens, add_bos_token,
    // bos/eos token strings). Throws lmw::Error naming the missing or broken file.
    static std::unique_ptr<Tokenizer> load(const std::string& dir);
    ~Tokenizer();

    // Text -> ids. Special tokens written in the text (e.g. "<|im_start|>") become their ids;
    // the rest is encoded as Hugging Face's (slow, legacy) LlamaTokenizer does with this model.
    // addBos follows tokenizer_config's add_bos_token when nullopt.
    std::vector<int32_t> encode(const std::string& text, std::optional<bool> addBos = std::nullopt) const;
    // Ids -> text (special tokens dropped when skipSpecial).
    std::string decode(const std::vector<int32_t>& ids, bool skipSpecial = true) const;

    int vocabSize() const;
    int32_t bosId() const;
    int32_t eosId() const;
    bool addBos() const;
    std::string bosToken() const;
    std::string eosToken() const;
    bool isSpecial(int32_t id) const;          // control / added special tokens
    std::optional<int32_t> tokenId(const std::string& token) const;  // exact piece or special token
    std::string idToPiece(int32_t id) const;
    // Raw bytes a token contributes when decoded after other tokens (byte-fallback tokens give one byte,
    // "▁" becomes a space). Used by the streaming decoder.
    std::string tokenBytes(int32_t id) const;
    // chat_template from tokenizer_config.json, empty if none.
    const std::string& chatTemplateSource() const;

private:
    Tokenizer();
    struct Impl;
    std::unique_ptr<Impl> m;
};

// Incremental decode: push ids one at a time, get the text that is now final.
// Holds back incomplete UTF-8 sequences and the leading-space rule of the first token.
class StreamDecoder {
public:
    // afterText: the ids continue text that is already there (a completion after its prompt), so
    // the first token keeps its leading space instead of having it dropped as at the start of a text.
    explicit StreamDecoder(const Tokenizer& tok, bool skipSpecial = true, bool afterText = false);
    std::string push(int32_t id);
    std::string flush();  // whatever is held back (invalid bytes become U+FFFD)

private:
    const Tokenizer& m_tok;
    bool m_skipSpecial;
    std::vector<int32_t> m_ids;
    size_t m_emitted = 0;  // bytes of decode(m_ids) already returned
    std::string m_pending;  // decoded bytes not yet returned (an incomplete UTF-8 sequence)
    bool m_atStart = true;  // the next piece's leading "▁" is dropped (sentencepiece's first-token rule)
};

// Length of the longest prefix of s that is complete UTF-8 (a trailing partial sequence is excluded).
size_t completeUtf8Prefix(const std::string& s);

}  // namespace lmw::engine
