#pragma once
// Reading tokenizer.json with errors that name the file and the field ("model.merges[12]"), so a
// broken or unsupported file is one clear lmw::Error and never a crash.
#include <string>
#include <string_view>

#include "lmw/error.h"
#include "nlohmann/json.hpp"
#include "tokenizer/utf8.h"

namespace lmw::engine {

using Json = nlohmann::json;

class JsonAt {
public:
    JsonAt(const std::string& file, std::string path = {}) : m_file(&file), m_path(std::move(path)) {}
    JsonAt operator/(std::string_view key) const {
        return JsonAt(*m_file, m_path.empty() ? std::string(key) : m_path + "." + std::string(key));
    }
    JsonAt operator[](size_t i) const { return JsonAt(*m_file, m_path + "[" + std::to_string(i) + "]"); }
    const std::string& file() const { return *m_file; }
    const std::string& path() const { return m_path; }

    [[noreturn]] void fail(const std::string& problem, ErrorCode code = ErrorCode::InvalidModel) const {
        throw Error(code, *m_file + ": " + (m_path.empty() ? "" : m_path + " ") + problem);
    }
    [[noreturn]] void unsupported(const std::string& what) const { fail(what + " is not supported", ErrorCode::Unsupported); }

private:
    const std::string* m_file;
    std::string m_path;
};

// obj[key], which must be there.
inline const Json& requireField(const Json& obj, const JsonAt& at, const char* key) {
    if (!obj.is_object()) at.fail("must be an object");
    auto it = obj.find(key);
    if (it == obj.end()) (at / key).fail("is missing");
    return *it;
}

inline const Json* optionalField(const Json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline std::string stringField(const Json& obj, const JsonAt& at, const char* key) {
    const Json& v = requireField(obj, at, key);
    if (!v.is_string()) (at / key).fail("must be a string");
    return v.get<std::string>();
}

inline std::string stringField(const Json& obj, const JsonAt& at, const char* key, const std::string& dflt) {
    const Json* v = optionalField(obj, key);
    if (!v) return dflt;
    if (!v->is_string()) (at / key).fail("must be a string");
    return v->get<std::string>();
}

inline bool boolField(const Json& obj, const JsonAt& at, const char* key, bool dflt) {
    const Json* v = optionalField(obj, key);
    if (!v) return dflt;
    if (!v->is_boolean()) (at / key).fail("must be true or false");
    return v->get<bool>();
}

inline int64_t intField(const Json& obj, const JsonAt& at, const char* key, int64_t dflt) {
    const Json* v = optionalField(obj, key);
    if (!v) return dflt;
    if (!v->is_number_integer()) (at / key).fail("must be an integer");
    return v->get<int64_t>();
}

// The "type" of a component object ({"type": "NFC", ...}).
inline std::string typeField(const Json& obj, const JsonAt& at) {
    if (!obj.is_object()) at.fail("must be an object");
    return stringField(obj, at, "type");
}

// A single character field (Metaspace replacement, Strip content), as a code point.
inline uint32_t charField(const Json& obj, const JsonAt& at, const char* key) {
    const std::string s = stringField(obj, at, key);
    const char* p = s.data();
    if (s.empty() || !utf8::isValid(s)) (at / key).fail("must be one character");
    const uint32_t cp = utf8::next(p);
    if (p != s.data() + s.size()) (at / key).fail("must be one character");
    return cp;
}

}  // namespace lmw::engine
