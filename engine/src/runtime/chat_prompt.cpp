// The rule: the chat template's own markup gives real special tokens; the text of message contents
// never does (unless the caller asks to parse it). Each special-token text found in a content is
// replaced by a placeholder (a private-use character that no content contains, the occurrence's
// number, the character again) before rendering; afterwards the placeholders are put back and the
// places they land are the plain spans. Contents without special-token text are not touched, so
// their prompts and ids are exactly those of a plain render; templates that trim, slice or repeat a
// content keep whole placeholders, and a placeholder the template broke stays inert text.
#include "runtime/chat_prompt.h"

#include <algorithm>

#include "lmw/error.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {

std::string unusedMarker(const std::vector<ChatMessage>& messages) {
    for (uint32_t cp = 0xE000; cp < 0xF900; ++cp) {
        std::string m = utf8::encode(cp);
        if (std::none_of(messages.begin(), messages.end(),
                         [&](const ChatMessage& msg) { return msg.content.find(m) != std::string::npos; }))
            return m;
    }
    throw Error(ErrorCode::InvalidArgument, "message contents use every private-use character (U+E000..U+F8FF)");
}

}  // namespace

std::string renderChatPrompt(const ChatTemplate& tmpl, const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                             bool addGenerationPrompt, const nlohmann::ordered_json& templateKwargs,
                             std::vector<TextSpan>* plainSpans) {
    auto render = [&](const std::vector<ChatMessage>& m) {
        return tmpl.render(m, addGenerationPrompt, tok.bosToken(), tok.eosToken(), templateKwargs);
    };
    if (!plainSpans) return render(messages);
    plainSpans->clear();
    const std::vector<std::string> specials = tok.specialTokenTexts();  // longest first
    bool firstByte[256] = {};
    for (const std::string& s : specials) firstByte[static_cast<unsigned char>(s[0])] = true;

    std::string marker;
    std::vector<const std::string*> found;  // occurrence number -> its special-token text
    std::vector<ChatMessage> marked = messages;
    for (ChatMessage& m : marked) {
        const std::string& c = m.content;
        std::string out;
        for (size_t i = 0; i < c.size();) {
            const std::string* hit = nullptr;
            if (firstByte[static_cast<unsigned char>(c[i])])
                for (const std::string& s : specials)
                    if (c.compare(i, s.size(), s) == 0) {
                        hit = &s;
                        break;
                    }
            if (!hit) {
                out += c[i++];
                continue;
            }
            if (marker.empty()) marker = unusedMarker(messages);
            out += marker + std::to_string(found.size()) + marker;
            found.push_back(hit);
            i += hit->size();
        }
        m.content = std::move(out);
    }
    if (found.empty()) return render(messages);

    const std::string r = render(marked);
    std::string out;
    size_t i = 0;
    for (size_t a; (a = r.find(marker, i)) != std::string::npos;) {
        out.append(r, i, a - i);
        const size_t digits = a + marker.size(), b = r.find(marker, digits);
        size_t k = found.size();
        if (b != std::string::npos && b > digits && b - digits <= 9 &&
            std::all_of(r.begin() + digits, r.begin() + b, [](char ch) { return ch >= '0' && ch <= '9'; }))
            k = std::stoul(r.substr(digits, b - digits));
        if (k >= found.size()) {  // not a placeholder of ours (the template cut one): inert text
            out += marker;
            i = digits;
            continue;
        }
        plainSpans->push_back(TextSpan{out.size(), out.size() + found[k]->size()});
        out += *found[k];
        i = b + marker.size();
    }
    out.append(r, i);
    return out;
}

namespace {
// Where the droppable turns start, plus the end of the last one: the leading system messages and the
// current turn (from the last user message on) are never in them; TruncateMiddle spares the first turn.
std::vector<size_t> droppableStarts(const std::vector<ChatMessage>& messages, ContextOverflow policy) {
    if (policy == ContextOverflow::Stop) return {};
    const size_t n = messages.size();
    size_t first = 0;
    while (first < n && messages[first].role == "system") ++first;
    size_t current = n;
    while (current > first && messages[current - 1].role != "user") --current;
    if (current > first) --current;
    std::vector<size_t> starts;
    for (size_t i = first; i < current; ++i)
        if (i == first || messages[i].role == "user") starts.push_back(i);
    if (policy == ContextOverflow::TruncateMiddle && !starts.empty()) starts.erase(starts.begin());
    if (starts.empty()) return {};
    starts.push_back(current);
    return starts;
}
}  // namespace

int droppableTurns(const std::vector<ChatMessage>& messages, ContextOverflow policy) {
    const size_t k = droppableStarts(messages, policy).size();
    return k ? int(k - 1) : 0;
}

std::vector<ChatMessage> withoutTurns(const std::vector<ChatMessage>& messages, ContextOverflow policy, int turns) {
    const std::vector<size_t> starts = droppableStarts(messages, policy);
    if (turns <= 0 || starts.empty()) return messages;
    const size_t from = starts.front(), to = starts[std::min(size_t(turns), starts.size() - 1)];
    std::vector<ChatMessage> out(messages.begin(), messages.begin() + std::ptrdiff_t(from));
    out.insert(out.end(), messages.begin() + std::ptrdiff_t(to), messages.end());
    return out;
}

std::vector<int32_t> encodeChat(const Tokenizer& tok, const std::string& rendered, const std::vector<TextSpan>& plainSpans) {
    const std::string& bos = tok.bosToken();
    const bool hasBos = !bos.empty() && rendered.rfind(bos, 0) == 0 &&
                        (plainSpans.empty() || plainSpans.front().begin >= bos.size());
    std::vector<int32_t> ids;
    if (tok.addBos() && !hasBos && tok.bosId() >= 0) ids.push_back(tok.bosId());
    const std::vector<int32_t> body = tok.encodeWithPlainSpans(rendered, false, plainSpans);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
}

}  // namespace lmw::engine
