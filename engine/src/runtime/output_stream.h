#pragma once
// Turns generated ids into UTF-8-safe text deltas and finds stop strings, holding back any tail
// that could still become a stop string so that a stop string is never emitted.
#include <string>
#include <vector>

#include "lmw/tokenizer.h"

namespace lmw::engine {

class OutputStream {
public:
    // afterText: see StreamDecoder (completions keep the leading space of their first token).
    OutputStream(const Tokenizer& tok, bool skipSpecial, bool afterText, std::vector<std::string> stops);
    // Text that is final after this id. Sets `stopped` (and drops the stop string and all after it)
    // when a stop string is complete.
    std::string push(int32_t id, bool& stopped);
    // The held-back rest, at the end of generation; nothing once a stop string has ended it.
    std::string finish();

private:
    std::string takeSafe();

    StreamDecoder m_decoder;
    std::vector<std::string> m_stops;
    std::string m_pending;  // decoded but not emitted yet
    bool m_stopped = false;  // a stop string was found: what follows it is dropped
};

}  // namespace lmw::engine
