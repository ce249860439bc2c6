// Tokenizer::load picks the implementation as Hugging Face's fast tokenizers do: tokenizer.json
// when the folder has one, tokenizer.model otherwise.
#include <filesystem>

#include "lmw/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace lmw::engine {

Tokenizer::~Tokenizer() = default;

std::string Tokenizer::fileIn(const std::string& dir) {
    namespace fs = std::filesystem;
    for (const char* name : {"tokenizer.json", "tokenizer.model"})
        if (fs::exists(dir + "/" + name)) return name;
    return {};
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& dir) {
    const std::string file = fileIn(dir);
    if (file.empty())
        throw Error(ErrorCode::NotFound, "tokenizer file not found: " + dir + "/tokenizer.json or " + dir + "/tokenizer.model");
    const TokenizerConfig config = readTokenizerConfig(dir);
    const std::string path = dir + "/" + file;
    return file == "tokenizer.json" ? loadHfTokenizer(path, config) : loadSentencePieceTokenizer(path, config);
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, std::optional<bool> addBos, SpecialTokens special) const {
    if (special == SpecialTokens::Parse) return encodeWithPlainSpans(text, addBos, {});
    return encodeWithPlainSpans(text, addBos, {TextSpan{0, text.size()}});
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skipSpecial) const {
    std::string bytes;
    DecodeState state;
    for (int32_t id : ids) appendDecoded(id, skipSpecial, state, bytes);
    return finishDecoded(bytes);
}

}  // namespace lmw::engine
