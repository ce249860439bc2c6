// A Hugging Face tokenizer.json, run the way the `tokenizers` library runs it:
//   added tokens are cut out of the raw text -> each piece between them is normalized -> added
//   tokens written in normalized form are cut out of that -> the pre-tokenizer splits the rest into
//   words -> BPE encodes each word (through a word cache) -> the post-processor adds its tokens.
// Special tokens, add_bos_token and the chat template come from tokenizer_config.json as in
// transformers 5: add_bos_token / add_eos_token there replace the file's post-processor.
#include <algorithm>
#include <mutex>

#include "tokenizer/bpe.h"
#include "tokenizer/hf_added_tokens.h"
#include "tokenizer/hf_decoder.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/hf_normalizer.h"
#include "tokenizer/hf_pre_tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace lmw::engine {

namespace {

// What one encode call works in; pooled so that the word cache stays warm between calls.
struct EncodeState {
    WordCache cache;
    std::string normalized;
    PreTokenizeScratch pre;
};

class HfTokenizer final : public Tokenizer {
public:
    HfTokenizer(const std::string& path, const TokenizerConfig& cfg);

    std::string kind() const override { return m_kind; }
    std::vector<int32_t> encodeWithPlainSpans(const std::string& text, std::optional<bool> addBos,
                                              const std::vector<TextSpan>& plain) const override;
    std::vector<std::string> specialTokenTexts() const override { return m_added.specialTexts(); }
    int vocabSize() const override { return m_vocabSize; }
    bool isSpecial(int32_t id) const override {
        const AddedToken* t = m_added.byId(id);
        return t && t->special;
    }
    std::optional<int32_t> tokenId(const std::string& token) const override {
        if (const AddedToken* t = m_added.byContent(token)) return t->id;
        return m_model->tokenId(token);
    }
    std::string idToPiece(int32_t id) const override {
        if (const AddedToken* t = m_added.byId(id)) return t->content;
        return m_model->piece(id);
    }
    std::string tokenBytes(int32_t id) const override;
    void appendDecoded(int32_t id, bool skipSpecial, DecodeState& state, std::string& bytes) const override;
    std::string finishDecoded(std::string_view bytes) const override { return utf8::sanitize(bytes, m_decoder->lossy()); }

private:
    void loadAddedTokens(const Json& root, const JsonAt& at, const TokenizerConfig& cfg);
    void addProcessor(const Json& j, const JsonAt& at);
    int32_t specialId(const Json& ids, const JsonAt& at) const;

    std::unique_ptr<EncodeState> takeState() const;
    void giveBack(std::unique_ptr<EncodeState> s) const;

    std::string m_path;
    std::unique_ptr<BpeModel> m_model;
    std::unique_ptr<Normalizer> m_normalizer;
    std::unique_ptr<PreTokenizer> m_preTokenizer;
    std::unique_ptr<HfDecoder> m_decoder;
    AddedTokens m_added;
    std::vector<int32_t> m_prefix, m_suffix;  // what the post-processor puts around one text
    int m_vocabSize = 0;
    std::string m_kind;
    mutable std::mutex m_poolMutex;
    mutable std::vector<std::unique_ptr<EncodeState>> m_pool;
};

HfTokenizer::HfTokenizer(const std::string& path, const TokenizerConfig& cfg) : m_path(path) {
    Json root;
    try {
        root = Json::parse(readTextFile(path));
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::InvalidModel, "cannot parse " + path + ": " + e.what());
    }
    const JsonAt at(m_path);
    if (!root.is_object()) at.fail("is not a JSON object");

    const Json& model = requireField(root, at, "model");
    const JsonAt modelAt = at / "model";
    if (!model.is_object()) modelAt.fail("must be an object");
    // Old files leave out the type; a BPE model is the one with merges.
    const std::string type = stringField(model, modelAt, "type", model.contains("merges") ? "BPE" : "");
    if (type.empty()) (modelAt / "type").fail("is missing");
    if (type != "BPE") (modelAt / "type").unsupported("model '" + type + "' (only BPE tokenizer.json files are read)");
    m_model = std::make_unique<BpeModel>(model, modelAt);

    static const Json null;
    auto component = [&](const char* key) -> const Json& {
        auto it = root.find(key);
        return it == root.end() ? null : *it;
    };
    m_normalizer = Normalizer::fromJson(component("normalizer"), at / "normalizer");
    m_preTokenizer = PreTokenizer::fromJson(component("pre_tokenizer"), at / "pre_tokenizer");
    m_decoder = std::make_unique<HfDecoder>(component("decoder"), at / "decoder");
    // Byte-level words go to BPE as raw bytes: no spelling out in the alphabet and back.
    if (m_preTokenizer && m_preTokenizer->endsWithByteLevel() && m_model->canTakeRawBytes()) {
        m_preTokenizer->setRawByteOutput(true);
        m_model->setRawByteInput(true);
    }

    loadAddedTokens(root, at, cfg);
    m_vocabSize = std::max(m_model->maxId(), m_added.maxId()) + 1;

    if (cfg.bos.present && !cfg.bos.content.empty())
        if (auto id = tokenId(cfg.bos.content)) {
            m_bosToken = cfg.bos.content;
            m_bosId = *id;
        }
    if (cfg.eos.present && !cfg.eos.content.empty())
        if (auto id = tokenId(cfg.eos.content)) {
            m_eosToken = cfg.eos.content;
            m_eosId = *id;
        }

    const Json& post = component("post_processor");
    if (cfg.addBosToken || cfg.addEosToken || post.is_null()) {
        // transformers rebuilds the template from the config: [bos] $A [eos].
        if (cfg.addBosToken.value_or(false) && m_bosId >= 0) m_prefix.push_back(m_bosId);
        if (cfg.addEosToken.value_or(false) && m_eosId >= 0) m_suffix.push_back(m_eosId);
    } else {
        addProcessor(post, at / "post_processor");
    }
    m_addBos = m_bosId >= 0 && !m_prefix.empty() && m_prefix.front() == m_bosId;
    m_chatTemplate = cfg.chatTemplate;

    const bool byteLevel = m_preTokenizer && m_preTokenizer->byteLevel();
    m_kind = byteLevel ? "tokenizer.json (byte-level BPE)"
                       : m_model->byteFallback() ? "tokenizer.json (BPE with byte fallback)" : "tokenizer.json (BPE)";
}

void HfTokenizer::loadAddedTokens(const Json& root, const JsonAt& at, const TokenizerConfig& cfg) {
    if (const Json* list = optionalField(root, "added_tokens")) {
        if (!list->is_array()) (at / "added_tokens").fail("must be an array");
        for (size_t i = 0; i < list->size(); ++i) {
            const Json& e = (*list)[i];
            const JsonAt eat = (at / "added_tokens")[i];
            AddedToken t;
            t.content = stringField(e, eat, "content");
            if (t.content.empty()) continue;  // the library ignores these
            const int64_t id = intField(e, eat, "id", -1);
            if (id < 0 || id >= (1 << 26)) (eat / "id").fail(optionalField(e, "id") ? "must be an id from 0 to 2^26" : "is missing");
            t.id = static_cast<int32_t>(id);
            t.special = boolField(e, eat, "special", false);
            t.lstrip = boolField(e, eat, "lstrip", false);
            t.rstrip = boolField(e, eat, "rstrip", false);
            t.singleWord = boolField(e, eat, "single_word", false);
            t.normalized = boolField(e, eat, "normalized", !t.special);
            const std::string name = "'" + t.content + "' (id " + std::to_string(t.id) + ")";
            if (auto vocabId = m_model->tokenId(t.content); vocabId && *vocabId != t.id)
                eat.fail(name + " has id " + std::to_string(*vocabId) + " in model.vocab");
            if (const std::string& piece = m_model->piece(t.id); !piece.empty() && piece != t.content)
                eat.fail(name + " clashes with model.vocab token '" + piece + "' of the same id");
            if (const AddedToken* other = m_added.byId(t.id); other && other->content != t.content)
                eat.fail(name + " clashes with added token '" + other->content + "' of the same id");
            if (const AddedToken* other = m_added.byContent(t.content); other && other->id != t.id)
                eat.fail(name + " is also added with id " + std::to_string(other->id));
            m_added.add(std::move(t));
        }
    }

    // tokenizer_config.json's added_tokens_decoder: its properties win for tokens already there;
    // new ones take their id from the vocabulary, else the id the config gives.
    for (const AddedTokenSpec& s : cfg.addedTokensDecoder) {
        AddedToken t{s.id, s.content, {}, s.special, s.lstrip, s.rstrip, s.singleWord, s.normalized};
        if (const AddedToken* old = m_added.byContent(s.content)) {
            t.id = old->id;
        } else if (auto vocabId = m_model->tokenId(s.content)) {
            t.id = *vocabId;
        } else {
            const std::string& piece = m_model->piece(s.id);
            const AddedToken* other = m_added.byId(s.id);
            if (!piece.empty() || other)
                throw Error(ErrorCode::InvalidModel, cfg.path + ": added_tokens_decoder[\"" + std::to_string(s.id) + "\"] '" +
                                                         s.content + "' clashes with '" + (other ? other->content : piece) +
                                                         "' of the same id in " + m_path);
        }
        m_added.add(std::move(t));
    }
    // Named special tokens the tokenizer has in its vocabulary become special added tokens.
    std::vector<std::string> named = cfg.additionalSpecial;
    for (const NamedToken* n : {&cfg.bos, &cfg.eos, &cfg.unk, &cfg.pad}) named.push_back(n->content);
    for (const std::string& content : named) {
        if (content.empty() || m_added.byContent(content)) continue;
        if (auto id = m_model->tokenId(content)) m_added.add(AddedToken{*id, content, {}, true, false, false, false, false});
    }

    std::string buffer;
    m_added.build(
        [&](const std::string& s) { return m_normalizer ? std::string(m_normalizer->apply(s, buffer)) : s; },
        cfg.splitSpecialTokens);
}

int32_t HfTokenizer::specialId(const Json& ids, const JsonAt& at) const {
    if (!ids.is_number_integer() || ids.get<int64_t>() < 0 || ids.get<int64_t>() >= std::max(m_model->maxId(), m_added.maxId()) + 1)
        at.fail("must be a token id of this tokenizer");
    return ids.get<int32_t>();
}

void HfTokenizer::addProcessor(const Json& j, const JsonAt& at) {
    const std::string type = typeField(j, at);
    if (type == "ByteLevel") return;  // it only trims offsets
    if (type == "Sequence") {
        const Json& list = requireField(j, at, "processors");
        if (!list.is_array()) (at / "processors").fail("must be an array");
        for (size_t i = 0; i < list.size(); ++i) addProcessor(list[i], (at / "processors")[i]);
        return;
    }
    std::vector<int32_t> before, after;  // wrap what earlier processors produced
    if (type == "TemplateProcessing") {
        const Json& single = requireField(j, at, "single");
        const Json& specials = requireField(j, at, "special_tokens");
        if (!single.is_array()) (at / "single").fail("must be an array");
        bool seenSequence = false;
        for (size_t i = 0; i < single.size(); ++i) {
            const JsonAt iat = (at / "single")[i];
            if (optionalField(single[i], "Sequence")) {
                if (seenSequence) iat.fail("is a second sequence in a single-text template");
                seenSequence = true;
                continue;
            }
            const Json* tok = optionalField(single[i], "SpecialToken");
            if (!tok) iat.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
            const std::string name = stringField(*tok, iat / "SpecialToken", "id");
            const Json* entry = optionalField(specials, name.c_str());
            if (!entry) (at / "special_tokens").fail("has no entry for '" + name + "'");
            const JsonAt eat = at / "special_tokens" / name;
            const Json& ids = requireField(*entry, eat, "ids");
            if (!ids.is_array()) (eat / "ids").fail("must be an array");
            for (size_t k = 0; k < ids.size(); ++k) (seenSequence ? after : before).push_back(specialId(ids[k], (eat / "ids")[k]));
        }
        if (!seenSequence) (at / "single").fail("has no {\"Sequence\": ...}");
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
        for (const char* key : {"cls", "sep"}) {
            const Json& pair = requireField(j, at, key);
            if (!pair.is_array() || pair.size() != 2) (at / key).fail("must be [token, id]");
            (std::string(key) == "cls" ? before : after).push_back(specialId(pair[1], (at / key)[1]));
        }
    } else {
        (at / "type").unsupported("post-processor '" + type + "'");
    }
    m_prefix.insert(m_prefix.begin(), before.begin(), before.end());
    m_suffix.insert(m_suffix.end(), after.begin(), after.end());
}

std::unique_ptr<EncodeState> HfTokenizer::takeState() const {
    {
        std::lock_guard<std::mutex> lock(m_poolMutex);
        if (!m_pool.empty()) {
            auto s = std::move(m_pool.back());
            m_pool.pop_back();
            return s;
        }
    }
    return std::make_unique<EncodeState>();
}

void HfTokenizer::giveBack(std::unique_ptr<EncodeState> s) const {
    constexpr size_t kMaxPooled = 16;  // more concurrent encodes than this keep no cache after
    std::lock_guard<std::mutex> lock(m_poolMutex);
    if (m_pool.size() < kMaxPooled) m_pool.push_back(std::move(s));
}

std::vector<int32_t> HfTokenizer::encodeWithPlainSpans(const std::string& input, std::optional<bool> addBos,
                                                       const std::vector<TextSpan>& plainSpans) const {
    // Text from outside may be broken UTF-8; the library only ever sees valid strings. Repairing
    // moves byte offsets, so then every special token is text wherever any span asks for it.
    std::string repaired;
    std::string_view text = input;
    std::vector<TextSpan> allPlain;
    const std::vector<TextSpan>* plain = &plainSpans;
    if (!utf8::isValid(text)) {
        repaired = utf8::sanitize(text, utf8::Lossy::PerSubpart);
        text = repaired;
        if (!plainSpans.empty()) plain = &(allPlain = {TextSpan{0, text.size()}});
    }
    // Offsets in a normalized segment are not the raw text's: a special token matched there is
    // text when its raw segment overlaps a plain span at all.
    auto rawAllows = [&](size_t s, size_t e) { return !overlapsAny(*plain, s, e); };
    std::unique_ptr<EncodeState> state = takeState();
    EncodeState& st = *state;
    const bool special = addBos.value_or(true);  // transformers' add_special_tokens=True

    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + m_prefix.size() + m_suffix.size() + 4);
    if (special) ids.insert(ids.end(), m_prefix.begin(), m_prefix.end());
    auto word = [&](std::string_view w, bool) { m_model->tokenize(w, st.cache, ids); };
    auto token = [&](int32_t id) { ids.push_back(id); };
    auto piece = [&](std::string_view p, bool atOrigin) {
        if (m_preTokenizer) m_preTokenizer->run(p, atOrigin, st.pre, word);
        else word(p, atOrigin);
    };
    auto segment = [&](size_t start, size_t end) {
        const bool atOrigin = start == 0;
        std::string_view seg = text.substr(start, end - start);
        if (m_normalizer) seg = m_normalizer->apply(seg, st.normalized);
        if (seg.empty()) return;
        const bool segAllows = rawAllows(start, end);
        m_added.split(seg, true, [&](size_t s, size_t e) { piece(seg.substr(s, e - s), atOrigin && s == 0); }, token,
                      [&](size_t, size_t) { return segAllows; });
    };
    try {
        m_added.split(text, false, segment, token, rawAllows);
    } catch (...) {
        giveBack(std::move(state));
        throw;
    }
    if (special) ids.insert(ids.end(), m_suffix.begin(), m_suffix.end());
    giveBack(std::move(state));
    return ids;
}

std::string HfTokenizer::tokenBytes(int32_t id) const {
    if (const AddedToken* t = m_added.byId(id)) return t->content;
    std::string out;
    DecodeState mid;
    mid.atStart = false;
    mid.tokens = 1;
    if (const std::string& p = m_model->piece(id); !p.empty()) m_decoder->append(p, mid, out);
    return out;
}

void HfTokenizer::appendDecoded(int32_t id, bool skipSpecial, DecodeState& state, std::string& bytes) const {
    if (const AddedToken* t = m_added.byId(id)) {
        if (t->special && skipSpecial) return;
        m_decoder->append(t->decodeAs, state, bytes);
        ++state.tokens;
        return;
    }
    const std::string& p = m_model->piece(id);
    if (p.empty()) return;  // not a token of this tokenizer: skipped, as the library does
    m_decoder->append(p, state, bytes);
    ++state.tokens;
}

}  // namespace

std::unique_ptr<Tokenizer> loadHfTokenizer(const std::string& jsonPath, const TokenizerConfig& config) {
    return std::make_unique<HfTokenizer>(jsonPath, config);
}

}  // namespace lmw::engine
