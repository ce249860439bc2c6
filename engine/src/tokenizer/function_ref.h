#pragma once
// A non-owning reference to a callable: the tokenizer pipeline passes pieces downstream through
// these without allocating (std::function may allocate for each capture).
#include <type_traits>
#include <utility>

namespace lmw::engine {

template <class Sig>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
    FunctionRef(F&& f) : m_obj(const_cast<void*>(static_cast<const void*>(&f))), m_call([](void* o, Args... a) -> R {
                             return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
                         }) {}
    R operator()(Args... a) const { return m_call(m_obj, std::forward<Args>(a)...); }

private:
    void* m_obj;
    R (*m_call)(void*, Args...);
};

}  // namespace lmw::engine
