#pragma once
// Errors inside the engine are thrown as lmw::Error; the public API returns Result<T>.
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace lmw {

enum class ErrorCode {
    InvalidArgument,        // a bad request or option
    NotFound,               // a file, tensor or field that should be there is not
    InvalidModel,           // a model folder that is there but is broken
    Unsupported,            // well-formed but not something we run (architecture, rope type, dtype)
    ContextLengthExceeded,  // prompt (+ max tokens) longer than the session length
    OutOfMemory,
    Cancelled,
    Io,
    Cuda,
    Internal,
};

const char* errorCodeName(ErrorCode code);

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), m_code(code) {}
    ErrorCode code() const { return m_code; }

private:
    ErrorCode m_code;
};

// A value or an Error. Used at the public API edge so callers on other threads never see exceptions.
template <class T>
class Result {
public:
    Result(T value) : m_v(std::move(value)) {}
    Result(Error error) : m_v(std::move(error)) {}
    bool ok() const { return m_v.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(m_v); }
    const T& value() const { return std::get<0>(m_v); }
    T& operator*() { return value(); }
    T* operator->() { return &value(); }
    const Error& error() const { return std::get<1>(m_v); }

private:
    std::variant<T, Error> m_v;
};

// Runs f() and turns an lmw::Error (or any std::exception) into a Result.
template <class F>
auto catchErrors(F&& f) -> Result<decltype(f())> {
    try {
        return f();
    } catch (const Error& e) {
        return e;
    } catch (const std::bad_alloc&) {
        return Error(ErrorCode::OutOfMemory, "out of memory");
    } catch (const std::exception& e) {
        return Error(ErrorCode::Internal, e.what());
    }
}

}  // namespace lmw
