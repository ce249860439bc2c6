// PCRE2 (8-bit, UTF + UCP, JIT-compiled) behind the small interface the tokenizer needs. Match
// data and the JIT stack are per thread, so one compiled pattern serves concurrent encodes.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <stdexcept>

#include "lmw/error.h"
#include "tokenizer/utf8.h"

namespace lmw::engine {

namespace {

std::string pcre2Message(int code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
}

// One thread's match data and JIT stack. The JIT stack grows up to 8 MiB, far more than the
// tokenizer patterns need even on megabytes of one character class.
struct ThreadMatch {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    ThreadMatch() { pcre2_jit_stack_assign(context, nullptr, stack); }
    ~ThreadMatch() {
        pcre2_jit_stack_free(stack);
        pcre2_match_context_free(context);
        pcre2_match_data_free(data);
    }
};

ThreadMatch& threadMatch() {
    thread_local ThreadMatch m;
    return m;
}

}  // namespace

Regex::Regex(const std::string& pattern) : m_pattern(pattern) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    m_code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                           &offset, nullptr);
    if (!m_code)
        throw std::invalid_argument(pcre2Message(err) + " at offset " + std::to_string(offset) + " of /" + pattern + "/");
    m_jit = pcre2_jit_compile(m_code, PCRE2_JIT_COMPLETE) == 0;  // without JIT the interpreter still works
}

Regex::~Regex() { pcre2_code_free(m_code); }

std::string Regex::escape(std::string_view literal) {
    std::string out;
    out.reserve(literal.size() * 2);
    for (char c : literal) {
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && static_cast<unsigned char>(c) < 0x80) out += '\\';
        out += c;
    }
    return out;
}

size_t Regex::charLength(std::string_view text, size_t at) { return utf8::charLen(static_cast<unsigned char>(text[at])); }

bool Regex::find(std::string_view text, size_t from, size_t& start, size_t& end) const {
    ThreadMatch& tm = threadMatch();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const int rc = m_jit ? pcre2_jit_match(m_code, subject, text.size(), from, 0, tm.data, tm.context)
                         : pcre2_match(m_code, subject, text.size(), from, PCRE2_NO_UTF_CHECK, tm.data, tm.context);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0)
        throw Error(ErrorCode::Internal, "regex /" + m_pattern + "/ failed on a text of " + std::to_string(text.size()) +
                                             " bytes: " + pcre2Message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tm.data);
    start = ov[0];
    end = ov[1];
    return true;
}

}  // namespace lmw::engine
