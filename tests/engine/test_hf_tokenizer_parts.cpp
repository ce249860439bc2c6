// The parts of the tokenizer.json tokenizer one at a time (normalizers, pre-tokenizers, BPE,
// added tokens, decoders, post-processors), with the expected results of the `tokenizers`
// library's own unit tests (tokenizers/src/**/*.rs) where it has them.
#include <QtTest>

#include <filesystem>
#include <fstream>

#include "lmw/error.h"
#include "lmw/tokenizer.h"
#include "tokenizer/bpe.h"
#include "tokenizer/hf_decoder.h"
#include "tokenizer/hf_normalizer.h"
#include "tokenizer/hf_pre_tokenizer.h"
#include "tokenizer/utf8.h"

using namespace lmw;
using namespace lmw::engine;
using nlohmann::json;
using Strings = std::vector<std::string>;

namespace {

const std::string kFile = "tokenizer.json";
const std::string kSpace = "\xE2\x96\x81";  // "▁"

std::string normalize(const json& j, const std::string& text) {
    auto n = Normalizer::fromJson(j, JsonAt(kFile, "normalizer"));
    std::string buffer;
    return std::string(n->apply(text, buffer));
}

Strings preTokenize(const json& j, const std::string& text) {
    auto p = PreTokenizer::fromJson(j, JsonAt(kFile, "pre_tokenizer"));
    PreTokenizeScratch scratch;
    Strings out;
    p->run(text, true, scratch, [&](std::string_view piece, bool) { out.emplace_back(piece); });
    return out;
}

std::string decodeTokens(const json& j, const Strings& tokens) {
    HfDecoder d(j, JsonAt(kFile, "decoder"));
    DecodeState state;
    std::string out;
    for (const std::string& t : tokens) {
        d.append(t, state, out);
        ++state.tokens;
    }
    return utf8::sanitize(out, d.lossy());
}

std::vector<int32_t> bpe(const json& model, const std::string& word) {
    BpeModel m(model, JsonAt(kFile, "model"));
    WordCache cache;
    std::vector<int32_t> ids;
    m.tokenize(word, cache, ids);
    std::vector<int32_t> again;
    m.tokenize(word, cache, again);  // the cached answer is the same
    return again == ids ? ids : std::vector<int32_t>{-1};
}

json split(const std::string& regex, const char* behavior, bool invert) {
    return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", behavior}, {"invert", invert}};
}

// A tokenizer whose vocabulary is single characters (no merges): what is not an added token
// becomes one id per character, so expected ids follow from the expected splits.
struct CharTokenizer {
    std::unique_ptr<Tokenizer> tok;
    std::map<std::string, int32_t> ids;  // character -> id

    CharTokenizer(const QTemporaryDir& tmp, const json& normalizer, const json& added, const json& config = json::object()) {
        Strings chars;
        for (int c = 0x20; c < 0x7F; ++c) chars.push_back(std::string(1, char(c)));
        for (const char* c : {"\t", "\xE2\x80\x80" /* U+2000 */, "\xE2\x97\x8C" /* ◌ */, "\xCC\xB0" /* U+0330 */})
            chars.push_back(c);
        json vocab = json::object();
        for (size_t i = 0; i < chars.size(); ++i) {
            vocab[chars[i]] = int(i);
            ids[chars[i]] = int32_t(i);
        }
        json t = {{"added_tokens", added},
                  {"normalizer", normalizer},
                  {"pre_tokenizer", nullptr},
                  {"post_processor", nullptr},
                  {"decoder", {{"type", "Fuse"}}},
                  {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
        const std::string dir = tmp.path().toStdString();
        std::ofstream(dir + "/tokenizer.json") << t.dump();
        std::ofstream(dir + "/tokenizer_config.json") << config.dump();
        tok = Tokenizer::load(dir);
    }

    // Expected ids: {true, content} is an added token, {false, text} its characters.
    std::vector<int32_t> expect(const std::vector<std::pair<bool, std::string>>& splits) const {
        std::vector<int32_t> out;
        for (const auto& [isToken, s] : splits) {
            if (isToken) {
                out.push_back(*tok->tokenId(s));
                continue;
            }
            for (const char* p = s.data(); p < s.data() + s.size();) {
                const char* start = p;
                utf8::next(p);
                out.push_back(ids.at(std::string(start, p)));
            }
        }
        return out;
    }
};

json addedToken(int id, const std::string& content, bool special, bool normalized, bool lstrip = false, bool rstrip = false,
                bool singleWord = false) {
    return {{"id", id},         {"content", content}, {"special", special}, {"normalized", normalized},
            {"lstrip", lstrip}, {"rstrip", rstrip},   {"single_word", singleWord}};
}

}  // namespace

class TestHfTokenizerParts : public QObject {
    Q_OBJECT

private slots:
    void normalizers() {
        QCOMPARE(normalize({{"type", "NFC"}}, "e\xCC\x81 caf\xC3\xA9"), std::string("\xC3\xA9 caf\xC3\xA9"));
        QCOMPARE(normalize({{"type", "NFD"}}, "\xC3\xA9"), std::string("e\xCC\x81"));
        QCOMPARE(normalize({{"type", "NFKC"}}, "\xEF\xBC\xA6\xEF\xBC\xB5\xEF\xBC\xAC\xEF\xBC\xAC \xEF\xAC\x81"),
                 std::string("FULL fi"));  // fullwidth letters, the "fi" ligature
        QCOMPARE(normalize({{"type", "NFKD"}}, "\xEF\xAC\x81\xC3\xA9"), std::string("fie\xCC\x81"));
        QCOMPARE(normalize({{"type", "Lowercase"}}, "HeLLo \xC3\x89T\xC3\x89 \xCE\xA3 \xC4\xB0"),
                 std::string("hello \xC3\xA9t\xC3\xA9 \xCF\x83 i\xCC\x87"));
        QCOMPARE(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \t x y \xE3\x80\x80"),
                 std::string("x y"));
        QCOMPARE(normalize({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, "  x  "), std::string("  x"));
        QCOMPARE(normalize({{"type", "Prepend"}, {"prepend", kSpace}}, "a"), kSpace + "a");
        QCOMPARE(normalize({{"type", "Prepend"}, {"prepend", kSpace}}, ""), std::string());
        QCOMPARE(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}, "a b  c"),
                 "a" + kSpace + "b" + kSpace + kSpace + "c");
        QCOMPARE(normalize({{"type", "Replace"}, {"pattern", {{"String", "a.b"}}}, {"content", "-"}}, "a.b axb"),
                 std::string("- axb"));  // a String pattern is literal
        QCOMPARE(normalize({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}, "a   b  c d"),
                 std::string("a b c d"));
        const json seq = {{"type", "Sequence"},
                          {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", kSpace}},
                                                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}})}};
        QCOMPARE(normalize(seq, "Hey friend"), kSpace + "Hey" + kSpace + "friend");
    }

    void splitBehaviors() {
        // tokenizers pre_tokenizers/split.rs `basic`: the whitespace regex, inverted.
        const std::string re = R"(\w+|[^\w\s]+)";
        const std::string text = "How are you doing?";
        QCOMPARE(preTokenize(split(re, "Removed", true), text), Strings({"How", "are", "you", "doing", "?"}));
        QCOMPARE(preTokenize(split(re, "Isolated", true), text), Strings({"How", " ", "are", " ", "you", " ", "doing", "?"}));
        QCOMPARE(preTokenize(split(re, "MergedWithPrevious", true), text), Strings({"How ", "are ", "you ", "doing", "?"}));
        QCOMPARE(preTokenize(split(re, "MergedWithNext", true), text), Strings({"How", " are", " you", " doing", "?"}));
        QCOMPARE(preTokenize(split(re, "Contiguous", true), text), Strings({"How", " ", "are", " ", "you", " ", "doing?"}));
        // A String pattern splits like the same regex; invert keeps the matches.
        const json byString = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}, {"invert", false}};
        QCOMPARE(preTokenize(byString, "Hey, man!"), preTokenize(split(R"(\s+)", "Removed", false), "Hey, man!"));
        const json hello = {{"type", "Split"}, {"pattern", {{"String", "Hello"}}}, {"behavior", "Removed"}, {"invert", true}};
        QCOMPARE(preTokenize(hello, "Hello Hello Hello"), preTokenize(byString, "Hello Hello Hello"));
        // The look-ahead and Unicode classes of the Qwen / Llama 3 pattern.
        const std::string llama3 =
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
        QCOMPARE(preTokenize(split(llama3, "Isolated", false), "I'M  done 1234567\n\n  x"),
                 Strings({"I", "'M", " ", " done", " ", "123", "456", "7", "\n\n", " ", " x"}));
    }

    void digitsAndWhitespace() {
        QCOMPARE(preTokenize({{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!"),
                 Strings({"Hey ", "123", " friend!"}));
        QCOMPARE(preTokenize({{"type", "Digits"}, {"individual_digits", true}}, "Hey 123 friend!"),
                 Strings({"Hey ", "1", "2", "3", " friend!"}));
        QCOMPARE(preTokenize({{"type", "WhitespaceSplit"}}, " Hey  you!\t"), Strings({"Hey", "you!"}));
        QCOMPARE(preTokenize({{"type", "Whitespace"}}, "Hey man, you!"), Strings({"Hey", "man", ",", "you", "!"}));
    }

    void byteLevel() {
        // pre_tokenizers/byte_level.rs: the GPT-2 regex, newlines, runs of spaces, add_prefix_space.
        const json noPrefix = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
        const std::string G = "\xC4\xA0";  // "Ġ"
        QCOMPARE(preTokenize(noPrefix, "Hello my friend, how is your day going?"),
                 Strings({"Hello", G + "my", G + "friend", ",", G + "how", G + "is", G + "your", G + "day", G + "going", "?"}));
        QCOMPARE(preTokenize(noPrefix, "Hello there\nHello there"),
                 Strings({"Hello", G + "there", "\xC4\x8A", "Hello", G + "there"}));
        QCOMPARE(preTokenize(noPrefix, "Hello there       dear"), Strings({"Hello", G + "there", G + G + G + G + G + G, G + "dear"}));
        QCOMPARE(preTokenize(noPrefix, "i\xE2\xAD\xA2j"), Strings({"i", "\xC3\xA2\xC5\x83\xC2\xA2", "j"}));
        const json prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
        for (const char* s : {" Hello my friend, how", "Hello my friend, how"})
            QCOMPARE(preTokenize(prefix, s), Strings({G + "Hello", G + "my", G + "friend", ",", G + "how"}));
        QCOMPARE(preTokenize({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}, "Hello my"),
                 Strings({G + "Hello" + G + "my"}));
    }

    void metaspace() {
        // pre_tokenizers/metaspace.rs
        const json always = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "always"}, {"split", true}};
        QCOMPARE(preTokenize(always, "Hey   friend!"), Strings({kSpace + "Hey", kSpace, kSpace, kSpace + "friend!"}));
        // prepend_scheme "first": only the piece at the start of the text gets the "▁".
        const json first = {{"type", "Sequence"},
                            {"pretokenizers",
                             json::array({split("(<s>)", "Isolated", false),
                                          {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"}, {"split", false}}})}};
        QCOMPARE(preTokenize(first, "Hey my friend <s>how" + kSpace + "are you"),
                 Strings({kSpace + "Hey" + kSpace + "my" + kSpace + "friend" + kSpace, "<s>", "how" + kSpace + "are" + kSpace + "you"}));
        QCOMPARE(preTokenize(first, " Hey <s>how <s>are <s> you"),
                 Strings({kSpace + "Hey" + kSpace, "<s>", "how" + kSpace, "<s>", "are" + kSpace, "<s>", kSpace + "you"}));
        const json never = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "never"}, {"split", false}};
        QCOMPARE(preTokenize(never, "a b"), Strings({"a" + kSpace + "b"}));
    }

    void bpeModel() {
        // models/bpe/model.rs: `unrelated`, unknown tokens fused or not, byte fallback, prefixes, ignore_merges.
        const json unrelated = {
            {"vocab", {{"u", 0}, {"n", 1}, {"r", 2}, {"e", 3}, {"l", 4}, {"a", 5}, {"t", 6}, {"d", 7}, {"re", 8}, {"at", 9},
                       {"ed", 10}, {"un", 11}, {"ated", 12}, {"rel", 13}, {"related", 14}, {"unrelated", 15}}},
            {"merges", {"r e", "a t", "e d", "u n", "at ed", "re l", "rel ated", "un related"}}};
        QCOMPARE(bpe(unrelated, "unrelated"), std::vector<int32_t>({15}));
        // Words past the linear-scan length go through the priority queue: same merges.
        std::string seven, twenty;
        for (int i = 0; i < 7; ++i) seven += "unrelated";
        for (int i = 0; i < 20; ++i) twenty += "unrelated";
        QCOMPARE(bpe(unrelated, seven), std::vector<int32_t>(7, 15));
        QCOMPARE(bpe(unrelated, twenty), std::vector<int32_t>(20, 15));

        json unk = {{"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}}}, {"merges", json::array()}, {"unk_token", "<unk>"}};
        QCOMPARE(bpe(unk, "c"), std::vector<int32_t>({0}));
        QCOMPARE(bpe(unk, "cc"), std::vector<int32_t>({0, 0}));
        QCOMPARE(bpe(unk, "accb"), std::vector<int32_t>({1, 0, 0, 2}));
        unk["fuse_unk"] = true;
        QCOMPARE(bpe(unk, "cc"), std::vector<int32_t>({0}));
        QCOMPARE(bpe(unk, "accb"), std::vector<int32_t>({1, 0, 2}));
        unk.erase("unk_token");
        QCOMPARE(bpe(unk, "acb"), std::vector<int32_t>({1, 2}));  // no unk_token: unknown characters vanish

        const json fallback = {{"vocab", {{"<unk>", 0}, {"<0x61>", 1}, {"<0x0A>", 2}}},
                               {"merges", json::array()}, {"unk_token", "<unk>"}, {"byte_fallback", true}};
        QCOMPARE(bpe(fallback, "c"), std::vector<int32_t>({0}));
        QCOMPARE(bpe(fallback, "a"), std::vector<int32_t>({1}));
        QCOMPARE(bpe(fallback, "\n"), std::vector<int32_t>({2}));

        const json prefix = {{"vocab", {{"a", 0}, {"##b", 1}, {"##c", 2}, {"ab", 3}, {"abc", 4}}},
                             {"merges", json::array({json::array({"a", "##b"}), json::array({"ab", "##c"})})},
                             {"continuing_subword_prefix", "##"}};
        QCOMPARE(bpe(prefix, "ab"), std::vector<int32_t>({3}));
        QCOMPARE(bpe(prefix, "abc"), std::vector<int32_t>({4}));
        const json suffix = {{"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}}}, {"merges", {"a b</w>"}}, {"end_of_word_suffix", "</w>"}};
        QCOMPARE(bpe(suffix, "ab"), std::vector<int32_t>({2}));

        const std::string G = "\xC4\xA0";
        json ignore = {{"vocab", {{".:.:", 0}, {G + "belirtilen", 1}, {".", 2}, {":", 3}, {"bel", 4}, {"irtilen", 5}, {G, 6},
                                  {".:", 7}, {"belirtilen", 8}, {".:.", 9}, {"be", 10}, {"l", 11}, {"ir", 12}, {"ti", 13},
                                  {"en", 14}, {"irtil", 15}, {"irti", 16}, {"i", 17}, {"r", 18}, {"t", 19}, {"b", 20},
                                  {"e", 21}, {"n", 22}}},
                       {"merges", {". :", "b e", "be l", "i r", "t i", "ir ti", "e n", "irti l"}},
                       {"ignore_merges", true}};
        QCOMPARE(bpe(ignore, ".:.:"), std::vector<int32_t>({0}));
        QCOMPARE(bpe(ignore, G + "belirtilen"), std::vector<int32_t>({1}));
        ignore["ignore_merges"] = false;
        QCOMPARE(bpe(ignore, ".:.:"), std::vector<int32_t>({7, 7}));
        QCOMPARE(bpe(ignore, G + "belirtilen"), std::vector<int32_t>({6, 4, 15, 14}));
    }

    void addedTokenOptions() {
        // tokenizer/added_vocabulary.rs `options_use_cases`: lstrip / rstrip, normalized, single_word.
        QTemporaryDir tmp;
        const json lower = {{"type", "Lowercase"}};
        CharTokenizer t(tmp, lower,
                        json::array({addedToken(1000, "my", false, true, true, true), addedToken(1001, "name", false, true),
                                     addedToken(1002, "ony", false, true, false, false, true), addedToken(1003, "[CLS]", true, false),
                                     addedToken(1004, "[SEP]", true, false)}));
        QCOMPARE(t.tok->encode("[CLS] My name is Anthony [SEP]"),
                 t.expect({{true, "[CLS]"}, {true, "my"}, {true, "name"}, {false, " is anthony "}, {true, "[SEP]"}}));
        QCOMPARE(t.tok->decode(t.tok->encode("[CLS] My name is Anthony [SEP]")), std::string("myname is anthony "));
    }

    void singleWord() {
        // `test_single_word_is_correct` and `test_single_word_is_unicode_correct`
        QTemporaryDir tmp;
        CharTokenizer t(tmp, {{"type", "Lowercase"}}, json::array({addedToken(1000, "<mask>", false, true, false, false, true)}));
        QCOMPARE(t.tok->encode("<mask> My name <mask> A<mask> <mask>ony <mask>"),
                 t.expect({{true, "<mask>"}, {false, " my name "}, {true, "<mask>"}, {false, " a<mask> <mask>ony "}, {true, "<mask>"}}));
        QCOMPARE(t.tok->encode("<mask>, <mask>- \xE2\x97\x8C\xCC\xB0<mask>"),
                 t.expect({{true, "<mask>"}, {false, ", "}, {true, "<mask>"}, {false, "- \xE2\x97\x8C\xCC\xB0<mask>"}}));
    }

    void stripUnicodeSpaces() {
        // `test_lstrip_unicode_space`: \t and U+2000 are whitespace; one token's rstrip is not stripped again.
        QTemporaryDir tmp;
        CharTokenizer t(tmp, {{"type", "Lowercase"}}, json::array({addedToken(1000, "<mask>", false, true, true, true, true)}));
        QCOMPARE(t.tok->encode("Hi <mask> there\t<mask>\t<mask>\xE2\x80\x80"),
                 t.expect({{false, "hi"}, {true, "<mask>"}, {false, "there"}, {true, "<mask>"}, {true, "<mask>"}}));
    }

    void splitSpecialTokens() {
        // `test_encode_special_tokens`, with split_special_tokens from tokenizer_config.json
        const json added = json::array({addedToken(1000, "<mask>", true, false, true, true, true),
                                         addedToken(1001, "ask>", false, true), addedToken(1002, "<pad>", true, false)});
        const std::string text = "Hi <mask> there\t<mask>\t<mask>\xE2\x80\x80 <pad> <mask><pad><pad>";
        QTemporaryDir a, b;
        CharTokenizer split(a, {{"type", "Lowercase"}}, added, {{"split_special_tokens", true}});
        QCOMPARE(split.tok->encode(text),
                 split.expect({{false, "hi <m"}, {true, "ask>"}, {false, " there\t<m"}, {true, "ask>"}, {false, "\t<m"},
                               {true, "ask>"}, {false, "\xE2\x80\x80 <pad> <m"}, {true, "ask>"}, {false, "<pad><pad>"}}));
        CharTokenizer whole(b, {{"type", "Lowercase"}}, added);
        QCOMPARE(whole.tok->encode(text),
                 whole.expect({{false, "hi"}, {true, "<mask>"}, {false, "there"}, {true, "<mask>"}, {true, "<mask>"},
                               {true, "<pad>"}, {true, "<mask>"}, {true, "<pad>"}, {true, "<pad>"}}));
    }

    void decoders() {
        const json always = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "always"}, {"split", true}};
        const json never = {{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "never"}, {"split", true}};
        QCOMPARE(decodeTokens(always, {kSpace + "Hey", kSpace + "friend!"}), std::string("Hey friend!"));
        QCOMPARE(decodeTokens(never, {kSpace + "Hey", kSpace + "friend!"}), std::string(" Hey friend!"));
        const std::string G = "\xC4\xA0";
        QCOMPARE(decodeTokens({{"type", "ByteLevel"}}, {"Hello", G + "my", G + "friend", ",", G + "how", "?"}),
                 std::string("Hello my friend, how?"));
        const json fallback = {{"type", "ByteFallback"}};
        QCOMPARE(decodeTokens(fallback, {"Hey", "friend!"}), std::string("Heyfriend!"));
        QCOMPARE(decodeTokens(fallback, {"<0x61>"}), std::string("a"));
        QCOMPARE(decodeTokens(fallback, {"<0xE5>", "<0x8f>", "<0xab>", "a"}), std::string("\xE5\x8F\xAB" "a"));
        QCOMPARE(decodeTokens(fallback, {"<0xE5>", "<0x8f>", "a"}), std::string("\xEF\xBF\xBD\xEF\xBF\xBD" "a"));
        // Where a run of byte tokens is partly valid, the library replaces the whole run; here only its
        // invalid bytes are, so that streaming (which cannot take back text) gives the same answer.
        QCOMPARE(decodeTokens(fallback, {"<0x61>", "<0xE5>"}), std::string("a\xEF\xBF\xBD"));
        QCOMPARE(decodeTokens({{"type", "Strip"}, {"content", "H"}, {"start", 1}, {"stop", 0}}, {"Hey", " friend!", "HHH"}),
                 std::string("ey friend!HH"));
        QCOMPARE(decodeTokens({{"type", "Strip"}, {"content", "y"}, {"start", 0}, {"stop", 1}}, {"Hey", " friend!"}),
                 std::string("He friend!"));
        // Llama 2 / Mistral: Replace, ByteFallback, Fuse, then strip one space off the start of the text.
        const json llama = {{"type", "Sequence"},
                            {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                                                      {{"type", "ByteFallback"}},
                                                      {{"type", "Fuse"}},
                                                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
        QCOMPARE(decodeTokens(llama, {kSpace + "Hey", kSpace + "friend", "<0x21>"}), std::string("Hey friend!"));
        QCOMPARE(decodeTokens(llama, {kSpace, kSpace + "a"}), std::string(" a"));
        QCOMPARE(decodeTokens(nullptr, {"a", "b"}), std::string("a b"));  // no decoder: joined with spaces

        try {
            decodeTokens({{"type", "Sequence"}, {"decoders", json::array({{{"type", "Fuse"}}, always})}}, {"x"});
            QFAIL("no error");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::Unsupported);
            QVERIFY2(std::string(e.what()).find("decoder.decoders[1].type") != std::string::npos, e.what());
        }
    }

    void postProcessors() {
        QTemporaryDir tmp;
        const std::string dir = tmp.path().toStdString();
        json t = {{"added_tokens", json::array({addedToken(3, "<s>", true, false), addedToken(4, "</s>", true, false)})},
                  {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
                  {"post_processor",
                   {{"type", "TemplateProcessing"},
                    {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                            {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
                    {"special_tokens", {{"<s>", {{"ids", {3}}}}, {"</s>", {{"ids", {4}}}}}}}}};
        auto write = [&](const json& tokenizer, const json& config) {
            std::ofstream(dir + "/tokenizer.json") << tokenizer.dump();
            std::ofstream(dir + "/tokenizer_config.json") << config.dump();
            return Tokenizer::load(dir);
        };
        const json config = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
        auto tok = write(t, config);
        QCOMPARE(tok->encode("ab"), std::vector<int32_t>({3, 2, 4}));
        QCOMPARE(tok->encode("ab", false), std::vector<int32_t>({2}));
        QVERIFY(tok->addBos());
        QCOMPARE(tok->decode({3, 2, 4}), std::string("ab"));
        QCOMPARE(tok->decode({3, 2, 4}, false), std::string("<s> ab </s>"));  // no decoder: joined with spaces

        // add_bos_token / add_eos_token in the config replace the template (transformers 5).
        tok = write(t, {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", false}, {"add_eos_token", true}});
        QCOMPARE(tok->encode("ab"), std::vector<int32_t>({2, 4}));
        QVERIFY(!tok->addBos());

        t["post_processor"] = {{"type", "Sequence"},
                               {"processors", json::array({{{"type", "ByteLevel"}},
                                                           {{"type", "RobertaProcessing"}, {"cls", json::array({"<s>", 3})}, {"sep", json::array({"</s>", 4})}}})}};
        tok = write(t, config);
        QCOMPARE(tok->encode("aba"), std::vector<int32_t>({3, 2, 0, 4}));
        t["post_processor"] = nullptr;  // none, and nothing asked for in the config
        tok = write(t, config);
        QCOMPARE(tok->encode("ab"), std::vector<int32_t>({2}));
    }
};

QTEST_GUILESS_MAIN(TestHfTokenizerParts)
#include "test_hf_tokenizer_parts.moc"
