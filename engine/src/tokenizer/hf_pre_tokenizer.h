#pragma once
// tokenizer.json "pre_tokenizer": cuts normalized text into the words the model encodes one by
// one. Split (regex or string, with the five delimiter behaviors), ByteLevel, Metaspace, Digits,
// WhitespaceSplit, Whitespace and Sequence of them. Pieces flow from step to step through
// callbacks into per-step scratch buffers, so pre-tokenizing allocates nothing per word.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/function_ref.h"
#include "tokenizer/hf_json.h"

namespace lmw::engine {

// atOrigin: the piece starts where the input text starts (Metaspace's prepend_scheme "first").
using PieceSink = FunctionRef<void(std::string_view piece, bool atOrigin)>;

struct Span {
    size_t start, end;
    bool flag;  // a match of the pattern; after the behavior is applied: removed
};

struct PreTokenizeScratch {
    struct Level {
        std::string a, b;
        std::vector<Span> spans, kept;
    };
    std::vector<Level> levels;
};

class PreTokenizerStep {
public:
    virtual ~PreTokenizerStep() = default;
    // Emits the non-empty pieces `piece` is cut into, in order.
    virtual void apply(std::string_view piece, bool atOrigin, PreTokenizeScratch::Level& s, const PieceSink& next) const = 0;
};

class PreTokenizer {
public:
    // nullptr for a JSON null (the whole text is one word).
    static std::unique_ptr<PreTokenizer> fromJson(const Json& j, const JsonAt& at);

    bool byteLevel() const;           // some step spells bytes in the byte-level alphabet
    bool endsWithByteLevel() const;   // ... and it is the last one
    // The last (ByteLevel) step hands raw bytes on instead of their alphabet characters; the model
    // reads them as such (BpeModel::setRawByteInput).
    void setRawByteOutput(bool on);

    void run(std::string_view text, bool atOrigin, PreTokenizeScratch& s, const PieceSink& sink) const;

private:
    void add(const Json& j, const JsonAt& at);
    void runFrom(size_t step, std::string_view piece, bool atOrigin, PreTokenizeScratch& s, const PieceSink& sink) const;
    std::vector<std::unique_ptr<PreTokenizerStep>> m_steps;
    std::vector<bool> m_isByteLevel;
};

}  // namespace lmw::engine
