#include "runtime/output_stream.h"

#include <algorithm>

namespace lmw::engine {

OutputStream::OutputStream(const Tokenizer& tok, bool skipSpecial, bool afterText, std::vector<std::string> stops)
    : m_decoder(tok, skipSpecial, afterText), m_stops(std::move(stops)) {
    m_stops.erase(std::remove(m_stops.begin(), m_stops.end(), std::string()), m_stops.end());
}

std::string OutputStream::push(int32_t id, bool& stopped) {
    m_pending += m_decoder.push(id);
    stopped = false;
    size_t cut = std::string::npos;
    for (const auto& s : m_stops) cut = std::min(cut, m_pending.find(s));
    if (cut != std::string::npos) {
        stopped = m_stopped = true;
        std::string out = m_pending.substr(0, cut);
        m_pending.clear();
        return out;
    }
    return takeSafe();
}

std::string OutputStream::takeSafe() {
    // Keep the longest tail of m_pending that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : m_stops) {
        for (size_t n = std::min(s.size() - 1, m_pending.size()); n > hold; --n) {
            if (m_pending.compare(m_pending.size() - n, n, s, 0, n) == 0) {
                hold = n;
                break;
            }
        }
    }
    std::string out = m_pending.substr(0, m_pending.size() - hold);
    m_pending.erase(0, m_pending.size() - hold);
    return out;
}

std::string OutputStream::finish() {
    if (m_stopped) return "";
    std::string out = m_pending + m_decoder.flush();
    m_pending.clear();
    return out;
}

}  // namespace lmw::engine
