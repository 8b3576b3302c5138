#pragma once
// The rate limiter concept and a non-owning reference that lets any limiter
// be shared by pollers through one option type.

#include <chrono>
#include <concepts>
#include <memory>
#include <optional>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/limiter_permit.hpp"

namespace jobpoll {

/// A shared budget of requests, counted as the server counts them.
///
/// `async_acquire(token)` completes with `void(error_code,
/// limiter_permit)` when the caller may start one request; the caller holds
/// the permit until the request's answer (or failure) is known, and the
/// request counts against the budget from the permit's release. Waiters are
/// served in FIFO order; a wait cancelled through its cancellation slot
/// completes with `asio::error::operation_aborted` and consumes nothing.
/// `try_acquire()` returns a permit only if a slot is free now and nobody is
/// queued (an empty one otherwise). `pause_for(d)` grants nothing to anybody
/// for `d` from now (one caller's 429 + Retry-After holds back everyone
/// sharing the limiter).
template <class L>
concept rate_limiter = requires(L& l, std::chrono::nanoseconds d) {
  { l.async_acquire(asio::use_awaitable) } -> std::same_as<asio::awaitable<limiter_permit>>;
  { l.try_acquire() } -> std::same_as<limiter_permit>;
  l.pause_for(d);
};

/// A non-owning, copyable reference to any `rate_limiter`, or empty. The
/// limiter must outlive every poll that uses the reference (as with Asio's
/// buffers). Two pointers, so every poll can carry one cheaply.
class limiter_ref {
 public:
  /// An empty reference: no limiter.
  limiter_ref() noexcept = default;

  template <rate_limiter L>
    requires(!std::same_as<L, limiter_ref>)
  limiter_ref(L& limiter) noexcept  // NOLINT(google-explicit-constructor): a reference converts implicitly
      : object_(std::addressof(limiter)), operations_(&operations_for<L>) {}

  // Spelled out so that a type that is not a limiter gets a diagnostic naming rate_limiter.
  template <class L>
    requires(!std::same_as<L, limiter_ref> && rate_limiter<L>)
  limiter_ref& operator=(L& limiter) noexcept {
    object_ = std::addressof(limiter);
    operations_ = &operations_for<L>;
    return *this;
  }

  /// True when it refers to a limiter.
  explicit operator bool() const noexcept { return operations_ != nullptr; }

  /// Waits for a slot; throws `std::system_error(operation_aborted)` when
  /// cancelled. Precondition: not empty (likewise below).
  asio::awaitable<limiter_permit> acquire() const { return operations_->acquire(object_); }

  /// A permit if a slot is free now and nobody is queued; empty otherwise.
  limiter_permit try_acquire() const { return operations_->try_acquire(object_); }

  /// Holds back every user of the limiter for `d` from now.
  void pause_for(std::chrono::nanoseconds d) const { operations_->pause_for(object_, d); }

  /// How long a wait started now would last if nothing else changed, when
  /// the limiter can tell (its `expected_wait()`, if it has one).
  std::optional<std::chrono::nanoseconds> expected_wait() const { return operations_->expected_wait(object_); }

 private:
  struct operations {
    asio::awaitable<limiter_permit> (*acquire)(void*);
    limiter_permit (*try_acquire)(void*);
    void (*pause_for)(void*, std::chrono::nanoseconds);
    std::optional<std::chrono::nanoseconds> (*expected_wait)(void*);
  };

  template <class L>
  static constexpr operations operations_for{
      [](void* p) { return static_cast<L*>(p)->async_acquire(asio::use_awaitable); },
      [](void* p) { return static_cast<L*>(p)->try_acquire(); },
      [](void* p, std::chrono::nanoseconds d) { static_cast<L*>(p)->pause_for(d); },
      [](void* p) -> std::optional<std::chrono::nanoseconds> {
        if constexpr (requires(L& l) { { l.expected_wait() } -> std::convertible_to<std::optional<std::chrono::nanoseconds>>; }) {
          return static_cast<L*>(p)->expected_wait();
        } else {
          return std::nullopt;
        }
      },
  };

  void* object_ = nullptr;
  const operations* operations_ = nullptr;
};

}  // namespace jobpoll
