// libFuzzer: tokenizer.json + tokenizer_config.json -> readTokenizerConfig and loadHfTokenizer; a
// tokenizer that loads must then encode and decode (one-shot and streaming) without faults.
//   <tokenizer.json>[\n#CONFIG#\n<tokenizer_config.json>]
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "fuzz_dir.h"
#include "lmw/error.h"
#include "lmw/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

using namespace lmw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string dir = fuzz::scratchDir("tokenizer");
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto [tokenizerJson, configJson] = fuzz::splitAt(in, "\n#CONFIG#\n");
    fuzz::writeFile(dir + "/tokenizer.json", tokenizerJson);
    std::filesystem::remove(dir + "/tokenizer_config.json");
    if (!configJson.empty()) fuzz::writeFile(dir + "/tokenizer_config.json", configJson);
    std::unique_ptr<engine::Tokenizer> tok;
    try {
        tok = engine::loadHfTokenizer(dir + "/tokenizer.json", engine::readTokenizerConfig(dir));
    } catch (const Error&) {
        return 0;
    }
    static const std::string texts[] = {
        "Hello world", "  two  spaces\tand\nnewlines\r\n", "<s> </s> <|im_end|><|endoftext|>[UNK]",
        "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82", "bad \xff\xfe utf-8 \xc3", "", "a",
        "1234567890 3.14 x=y+z", std::string(300, 'a'),
    };
    try {
        for (const std::string& text : texts) {
            std::vector<int32_t> ids = tok->encode(text);
            (void)tok->decode(ids);
            (void)tok->decode(ids, false);
            engine::StreamDecoder sd(*tok);
            for (int32_t id : ids) (void)sd.push(id);
            (void)sd.flush();
            for (int32_t id : ids) {
                (void)tok->idToPiece(id);
                (void)tok->tokenBytes(id);
                (void)tok->isSpecial(id);
            }
        }
        const int n = tok->vocabSize();
        std::vector<int32_t> all;
        for (int32_t id = 0; id < n && id < 512; ++id) all.push_back(id);
        (void)tok->decode(all, false);
        (void)tok->specialTokenTexts();
    } catch (const Error&) {
    }
    return 0;
}
