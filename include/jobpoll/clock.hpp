#pragma once
// Time as a policy: the clock concept and the timer that waits on a clock.

#include <chrono>
#include <concepts>

#include "jobpoll/detail/asio_forward.hpp"

namespace jobpoll {

/// A clock in the sense of the standard (`std::chrono::steady_clock` is the
/// default everywhere). A clock may bring its own timer as `Clock::timer_type`
/// (the manual clock does, so tests never touch the OS); otherwise
/// `asio::basic_waitable_timer<Clock>` waits on it.
template <class C>
concept clock = requires {
  typename C::rep;
  typename C::period;
  typename C::duration;
  typename C::time_point;
  { C::now() } -> std::same_as<typename C::time_point>;
  { C::is_steady } -> std::convertible_to<bool>;
};

/// Which timer waits on `Clock`: Asio's waitable timer by default; a clock
/// with a nested `timer_type` names its own. Specialise for a clock you
/// cannot change.
template <clock Clock>
struct timer_traits {
  using timer_type = asio::basic_waitable_timer<Clock>;
};

/// A clock that brings its own timer (as the manual clock does).
template <clock Clock>
  requires requires { typename Clock::timer_type; }
struct timer_traits<Clock> {
  using timer_type = typename Clock::timer_type;
};

/// The timer jobpoll uses for `Clock`: constructible from an executor, with
/// `expires_after`, `expires_at`, `cancel` and `async_wait(token)` completing
/// with `void(error_code)`, cancellable through a cancellation slot.
template <clock Clock>
using timer_for = typename timer_traits<Clock>::timer_type;

}  // namespace jobpoll
