#pragma once
// One tokenizer interface with two implementations, chosen by what the model folder has (as
// Hugging Face's fast tokenizers do): tokenizer.json (the `tokenizers` library format, BPE) first,
// else tokenizer.model (sentencepiece). Both read tokenizer_config.json for the special tokens,
// add_bos_token and the chat template. The streaming detokenizer never emits half a character.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmw::engine {

// What encode() does with special-token text (e.g. "<|im_end|>", "</s>") written in its input:
// Parse makes it the special id; AsText encodes it as ordinary text, as OpenAI does with client
// text (transformers' split_special_tokens). Added tokens that are not special are matched either way.
enum class SpecialTokens { Parse, AsText };

// A byte range [begin, end) of a text.
struct TextSpan {
    size_t begin = 0, end = 0;
};

// Where a decode is in its text: the leading-space rules of a tokenizer depend on what came before.
struct DecodeState {
    bool atStart = true;  // no text decoded yet (sentencepiece: since the last special token)
    int64_t tokens = 0;   // tokens decoded so far, skipped special tokens not counted
    int stripped = 0;     // leading characters removed so far by a "strip the start" rule
};

class Tokenizer {
public:
    // Loads <dir>/tokenizer.json if present, else <dir>/tokenizer.model, with
    // <dir>/tokenizer_config.json. Throws lmw::Error naming the missing or broken file and field.
    static std::unique_ptr<Tokenizer> load(const std::string& dir);
    // The file load() reads in <dir> ("tokenizer.json" or "tokenizer.model"); empty when neither is there.
    static std::string fileIn(const std::string& dir);
    virtual ~Tokenizer();

    // Which file and model the tokenizer is, for the model card and `lmw info`,
    // e.g. "tokenizer.json (byte-level BPE)" or "tokenizer.model (sentencepiece)".
    virtual std::string kind() const = 0;

    // Text -> ids. Added tokens written in the text become their ids; special ones only with Parse.
    // addBos: add the tokens the tokenizer puts around a text (sentencepiece: BOS; tokenizer.json:
    // its post-processor template, e.g. <|begin_of_text|>); nullopt = the tokenizer's default.
    std::vector<int32_t> encode(const std::string& text, std::optional<bool> addBos = std::nullopt,
                                SpecialTokens special = SpecialTokens::Parse) const;
    // encode() with Parse, except that a special token overlapping one of `plain` (sorted, disjoint
    // byte ranges of text) is encoded as text: a rendered chat prompt whose message contents are plain.
    virtual std::vector<int32_t> encodeWithPlainSpans(const std::string& text, std::optional<bool> addBos,
                                                      const std::vector<TextSpan>& plain) const = 0;
    // The texts of the special tokens encode() parses ("<|im_end|>", "</s>", ...), longest first.
    virtual std::vector<std::string> specialTokenTexts() const = 0;
    // Ids -> text (special tokens dropped when skipSpecial; unknown ids ignored).
    std::string decode(const std::vector<int32_t>& ids, bool skipSpecial = true) const;

    virtual int vocabSize() const = 0;  // largest id + 1, added tokens included
    int32_t bosId() const { return m_bosId; }
    int32_t eosId() const { return m_eosId; }
    bool addBos() const { return m_addBos; }  // encode() puts BOS first by default
    const std::string& bosToken() const { return m_bosToken; }
    const std::string& eosToken() const { return m_eosToken; }
    virtual bool isSpecial(int32_t id) const = 0;  // control / added special tokens
    virtual std::optional<int32_t> tokenId(const std::string& token) const = 0;  // exact piece or added token
    virtual std::string idToPiece(int32_t id) const = 0;  // the vocabulary's spelling ("▁Once", "Ġthe")
    // Raw bytes a token contributes when decoded after other tokens (a byte token gives its byte,
    // "▁" / "Ġ" become a space). Per-token text for logprobs.
    virtual std::string tokenBytes(int32_t id) const = 0;
    // chat_template from tokenizer_config.json (or chat_template.jinja), empty if none.
    const std::string& chatTemplateSource() const { return m_chatTemplate; }

    // The detokenizer step that decode() and StreamDecoder share, so streaming and one-shot
    // decoding agree by construction: append the raw bytes of token `id` ...
    virtual void appendDecoded(int32_t id, bool skipSpecial, DecodeState& state, std::string& bytes) const = 0;
    // ... and turn complete raw bytes into text (invalid UTF-8 becomes U+FFFD by this tokenizer's rule).
    virtual std::string finishDecoded(std::string_view bytes) const = 0;

protected:
    Tokenizer() = default;
    int32_t m_bosId = -1, m_eosId = -1;
    bool m_addBos = false;
    std::string m_bosToken, m_eosToken, m_chatTemplate;
};

// Incremental decode: push ids one at a time, get the text that is now final.
// Holds back incomplete UTF-8 sequences; push()* + flush() == Tokenizer::decode(ids).
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
    DecodeState m_state;
    std::string m_pending;  // decoded bytes not yet returned (an incomplete UTF-8 sequence)
};

// Length of the longest prefix of s that is complete UTF-8 (a trailing partial sequence is excluded).
size_t completeUtf8Prefix(const std::string& s);

}  // namespace lmw::engine
