// Tokenizer against Hugging Face reference ids, round trips, streaming UTF-8 safety, errors,
// and special tokens from tokenizer_config.json.
#include <QtTest>

#include <filesystem>
#include <fstream>

#include "lmw/error.h"
#include "lmw/tokenizer.h"
#include "test_util.h"

using namespace lmw;
using namespace lmw::engine;
namespace fs = std::filesystem;

namespace {

std::vector<int32_t> toIds(const nlohmann::json& a) { return a.get<std::vector<int32_t>>(); }

bool validUtf8(const std::string& s) {
    // Strict check written independently of the decoder (no overlongs / surrogates / > U+10FFFF).
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0, n = s.size();
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

// A copy of the model folder with tokenizer.model and a tokenizer_config.json we choose.
std::string copyModelWithConfig(const QTemporaryDir& tmp, const nlohmann::json& cfg) {
    const std::string dir = tmp.path().toStdString();
    fs::copy_file(lmw::test::modelDir() + "/tokenizer.model", dir + "/tokenizer.model");
    std::ofstream(dir + "/tokenizer_config.json") << cfg.dump(2);
    return dir;
}

}  // namespace

class TestTokenizer : public QObject {
    Q_OBJECT

    std::unique_ptr<Tokenizer> m_tok;

private slots:
    void initTestCase() { m_tok = Tokenizer::load(lmw::test::modelDir()); }

    void basics() {
        QCOMPARE(m_tok->vocabSize(), 512);
        QCOMPARE(m_tok->bosId(), 1);
        QCOMPARE(m_tok->eosId(), 2);
        QVERIFY(m_tok->addBos());
        QCOMPARE(m_tok->bosToken(), std::string("<s>"));
        QCOMPARE(m_tok->eosToken(), std::string("</s>"));
        QVERIFY(m_tok->isSpecial(0));
        QVERIFY(m_tok->isSpecial(1));
        QVERIFY(m_tok->isSpecial(2));
        QVERIFY(!m_tok->isSpecial(3));
        QVERIFY(!m_tok->isSpecial(403));
        QCOMPARE(m_tok->idToPiece(403), std::string("\xE2\x96\x81Once"));
        QCOMPARE(m_tok->tokenBytes(403), std::string(" Once"));
        QCOMPARE(m_tok->tokenBytes(13), std::string("\n"));      // <0x0A>
        QCOMPARE(m_tok->tokenBytes(3 + 0xE6), std::string("\xE6"));
        QCOMPARE(m_tok->tokenBytes(410), std::string(" "));
        QCOMPARE(m_tok->tokenId("\xE2\x96\x81Once"), std::optional<int32_t>(403));
        QCOMPARE(m_tok->tokenId("</s>"), std::optional<int32_t>(2));
        QVERIFY(!m_tok->tokenId("no-such-piece").has_value());
        QVERIFY(m_tok->chatTemplateSource().empty());
    }

    void referenceTokenizerCases() {
        const auto ref = lmw::test::reference();
        QCOMPARE(int(ref["tokenizer_cases"].size()), 6);
        for (auto& [text, ids] : ref["tokenizer_cases"].items()) {
            const auto got = m_tok->encode(text);
            if (got != toIds(ids)) QFAIL(("encode mismatch for: " + text).c_str());
            QCOMPARE(m_tok->decode(got), text);
            // without BOS: the same ids after the first
            auto noBos = m_tok->encode(text, false);
            QCOMPARE(noBos, std::vector<int32_t>(got.begin() + 1, got.end()));
        }
    }

    void referenceInputIds() {
        for (const char* model : {"stories260K", "stories260K-qwen2", "stories260K-rope-linear", "stories260K-rope-dynamic"}) {
            const auto ref = lmw::test::reference(model);
            auto tok = Tokenizer::load(lmw::test::modelDir(model));
            for (auto& c : ref["cases"]) {
                const std::string prompt = c["prompt"];
                QCOMPARE(tok->encode(prompt), toIds(c["input_ids"]));
                QCOMPARE(tok->decode(tok->encode(prompt)), prompt);
            }
        }
    }

    void decodeRules() {
        // sentencepiece drops the leading space of the first piece only; control tokens don't count.
        QCOMPARE(m_tok->decode({410, 410, 259}), std::string("  t"));
        QCOMPARE(m_tok->decode({259, 410, 259}), std::string("t  t"));
        QCOMPARE(m_tok->decode({1, 403, 407}), std::string("Once upon"));
        QCOMPARE(m_tok->decode({1, 403, 2}, false), std::string("<s>Once</s>"));
        QCOMPARE(m_tok->decode({13, 403}), std::string("\n Once"));  // a byte piece is a first piece too
        // invalid / truncated bytes become U+FFFD, one per byte (as sentencepiece does)
        QCOMPARE(m_tok->decode({3 + 0xE6, 3 + 0x97}), std::string("\xEF\xBF\xBD\xEF\xBF\xBD"));
        QCOMPARE(m_tok->decode({3 + 0xE6, 3 + 0x97, 259}), std::string("\xEF\xBF\xBD\xEF\xBF\xBD t"));
        QCOMPARE(m_tok->decode({-5, 100000, 403}), std::string("Once"));  // out of range ids are ignored
    }

    void streamingIsUtf8SafeAndMatchesDecode() {
        const std::string text = "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xC3\xA9moji \xF0\x9F\x99\x82 and \xE2\x80\x94 done";
        const auto ids = m_tok->encode(text, false);
        QVERIFY(ids.size() > 20);
        StreamDecoder sd(*m_tok);
        std::string all;
        int emptyPushes = 0;
        for (int32_t id : ids) {
            const std::string piece = sd.push(id);
            QVERIFY2(validUtf8(piece), "a push returned invalid UTF-8");
            if (piece.empty()) ++emptyPushes;
            all += piece;
        }
        const std::string rest = sd.flush();
        QVERIFY(rest.empty());
        all += rest;
        QCOMPARE(all, m_tok->decode(ids));
        QCOMPARE(all, text);
        QVERIFY(emptyPushes >= 6);  // the byte-fallback pieces of multi-byte characters were held back

        // Every prefix of the stream, flushed, equals decode() of that prefix.
        for (size_t cut = 0; cut <= ids.size(); ++cut) {
            std::vector<int32_t> prefix(ids.begin(), ids.begin() + cut);
            StreamDecoder s2(*m_tok);
            std::string got;
            for (int32_t id : prefix) got += s2.push(id);
            got += s2.flush();
            QCOMPARE(got, m_tok->decode(prefix));
        }
    }

    void streamingRandomIdsMatchDecode() {
        std::mt19937 rng(7);
        for (int round = 0; round < 200; ++round) {
            std::vector<int32_t> ids(1 + rng() % 20);
            for (auto& id : ids) id = rng() % 512;
            for (bool skip : {true, false}) {
                StreamDecoder sd(*m_tok, skip);
                std::string got;
                for (int32_t id : ids) {
                    std::string p = sd.push(id);
                    QVERIFY(validUtf8(p));
                    got += p;
                }
                got += sd.flush();
                QCOMPARE(got, m_tok->decode(ids, skip));
                QVERIFY(validUtf8(got));
            }
        }
    }

    void completeUtf8PrefixCases() {
        QCOMPARE(completeUtf8Prefix(""), size_t(0));
        QCOMPARE(completeUtf8Prefix("abc"), size_t(3));
        QCOMPARE(completeUtf8Prefix("ab\xE6\x97"), size_t(2));
        QCOMPARE(completeUtf8Prefix("ab\xE6\x97\xA5"), size_t(5));
        QCOMPARE(completeUtf8Prefix("a\xF0\x9F\x99"), size_t(1));
        QCOMPARE(completeUtf8Prefix("a\x97"), size_t(2));       // a stray continuation byte is final
        QCOMPARE(completeUtf8Prefix("\xE6\x97x"), size_t(3));   // broken sequence: final
    }

    void missingModel() {
        QTemporaryDir tmp;
        const std::string dir = tmp.path().toStdString();
        try {
            Tokenizer::load(dir);
            QFAIL("no error");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::NotFound);
            QVERIFY2(std::string(e.what()).find(dir + "/tokenizer.model") != std::string::npos, e.what());
        }
    }

    void corruptModel() {
        QTemporaryDir tmp;
        const std::string dir = tmp.path().toStdString();
        std::ofstream(dir + "/tokenizer.model") << "this is not a sentencepiece model";
        try {
            Tokenizer::load(dir);
            QFAIL("no error");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidModel);
            QVERIFY2(std::string(e.what()).find(dir + "/tokenizer.model") != std::string::npos, e.what());
        }
    }

    void corruptConfig() {
        QTemporaryDir tmp;
        const std::string dir = tmp.path().toStdString();
        fs::copy_file(lmw::test::modelDir() + "/tokenizer.model", dir + "/tokenizer.model");
        std::ofstream(dir + "/tokenizer_config.json") << "{ \"add_bos_token\": tru";
        try {
            Tokenizer::load(dir);
            QFAIL("no error");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::InvalidModel);
            QVERIFY2(std::string(e.what()).find(dir + "/tokenizer_config.json") != std::string::npos, e.what());
        }
    }

    void specialTokensInText() {
        QTemporaryDir tmp;
        auto cfg = lmw::test::readJson(lmw::test::modelDir() + "/tokenizer_config.json");
        cfg["eos_token"] = {{"content", "<|im_end|>"}, {"special", true}};
        cfg["added_tokens_decoder"] = {
            {"2", {{"content", "<|im_end|>"}, {"special", true}, {"lstrip", false}, {"rstrip", false}}},
            {"512", {{"content", "<|im_start|>"}, {"special", true}}},
            {"513", {{"content", "<|im_start|>x"}, {"special", true}}},  // longer match wins
            {"514", {{"content", "<tool>"}, {"special", false}}},
            {"515", {{"content", "<|r|>"}, {"special", true}, {"rstrip", true}}},
        };
        cfg["chat_template"] = nlohmann::json::array(
            {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D"}}});
        auto tok = Tokenizer::load(copyModelWithConfig(tmp, cfg));
        QCOMPARE(tok->vocabSize(), 516);
        QCOMPARE(tok->eosId(), 2);
        QCOMPARE(tok->eosToken(), std::string("<|im_end|>"));
        QCOMPARE(tok->chatTemplateSource(), std::string("D"));
        QCOMPARE(tok->tokenId("<|im_start|>"), std::optional<int32_t>(512));
        QVERIFY(tok->isSpecial(512));
        QVERIFY(!tok->isSpecial(514));

        // Each segment between special tokens is encoded alone (legacy: it gets its own "▁").
        const auto hello = m_tok->encode("Hello world", false);
        auto ids = tok->encode("Hello world<|im_end|>");
        std::vector<int32_t> want = {1};
        want.insert(want.end(), hello.begin(), hello.end());
        want.push_back(2);
        QCOMPARE(ids, want);

        ids = tok->encode("<|im_start|>Hello world<|im_end|><|im_start|>x", false);
        want = {512};
        want.insert(want.end(), hello.begin(), hello.end());
        want.push_back(2);
        want.push_back(513);
        QCOMPARE(ids, want);

        // "<s>" in text is the BOS token (HF splits on every special token), not the letters.
        QCOMPARE(tok->encode("<s>", false), std::vector<int32_t>({1}));
        // rstrip eats the whitespace after the token
        QCOMPARE(tok->encode("<|r|>   Hello world", false), [&] {
            std::vector<int32_t> w = {515};
            w.insert(w.end(), hello.begin(), hello.end());
            return w;
        }());

        QCOMPARE(tok->decode(tok->encode("<|im_start|>Hello world<|im_end|>")), std::string("Hello world"));
        QCOMPARE(tok->decode(tok->encode("<|im_start|>Hello world<|im_end|>"), false),
                 std::string("<s><|im_start|>Hello world<|im_end|>"));
        QCOMPARE(tok->decode(tok->encode("a<tool>b", false)), std::string("a<tool> b"));
    }

    void addBosFalseAndNullBos() {
        QTemporaryDir tmp;
        auto cfg = lmw::test::readJson(lmw::test::modelDir() + "/tokenizer_config.json");
        cfg["add_bos_token"] = false;
        cfg["chat_template"] = "{{ messages }}";
        auto tok = Tokenizer::load(copyModelWithConfig(tmp, cfg));
        QVERIFY(!tok->addBos());
        QCOMPARE(tok->encode("Hello world"), m_tok->encode("Hello world", false));
        QCOMPARE(tok->encode("Hello world", true), m_tok->encode("Hello world"));
        QCOMPARE(tok->chatTemplateSource(), std::string("{{ messages }}"));
    }
};

QTEST_GUILESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
