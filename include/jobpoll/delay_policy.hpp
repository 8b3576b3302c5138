#pragma once
// The concept shared by intervals (waits after "pending") and backoffs (waits
// after a transient failure), and a copyable type-erased holder for either.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace jobpoll {

/// A sequence of waits. `next()` returns the next wait and advances; `reset()`
/// starts the sequence again. Policies are copied into each poll, so a
/// stateful policy (jitter, schedules) never leaks state between polls.
template <class P>
concept delay_policy = std::copy_constructible<P> && requires(P& p) {
  { p.next() } -> std::convertible_to<std::chrono::nanoseconds>;
  p.reset();
};

/// How long to wait after a poll that said "pending". The n-th call of
/// `next()` gives the wait after the n-th pending response of one poll.
template <class P>
concept interval_policy = delay_policy<P>;

/// How long to wait after the n-th consecutive transient failure. `reset()` is
/// called after every poll that got a valid answer.
template <class P>
concept backoff_policy = delay_policy<P>;

/// A copyable, type-erased `delay_policy`, so options are one plain type
/// whatever the policies in them. Never empty: default is a zero wait.
/// A policy of up to `inline_size` bytes (every policy of jobpoll's,
/// jittered backoffs included) is stored inside the object; a larger one,
/// or one whose move may throw, on the heap.
class any_delay {
 public:
  /// The largest policy stored inline.
  static constexpr std::size_t inline_size = 48;

  any_delay() noexcept : ops_(&zero_ops) {}

  // The any_delay check comes first: clang would otherwise recurse through
  // delay_policy<any_delay> (copy_constructible) while checking a copy.
  template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, any_delay> && delay_policy<P>)
  any_delay(P policy)  // NOLINT(google-explicit-constructor): policies convert implicitly by design
      : ops_(&ops_for<P>) {
    ops_for<P>.emplace(storage_, &policy);
  }

  any_delay(const any_delay& other) : ops_(other.ops_) { ops_->copy(storage_, other.storage_); }
  any_delay(any_delay&& other) noexcept : ops_(other.ops_) {
    ops_->move(storage_, other.storage_);
    other.ops_ = &zero_ops;
  }
  any_delay& operator=(const any_delay& other) {
    if (this != &other) *this = any_delay(other);
    return *this;
  }
  any_delay& operator=(any_delay&& other) noexcept {
    if (this != &other) {
      ops_->destroy(storage_);
      ops_ = other.ops_;
      ops_->move(storage_, other.storage_);
      other.ops_ = &zero_ops;
    }
    return *this;
  }
  // Spelled out (not only through the converting constructor) so that a type
  // that is not a policy gets a diagnostic naming delay_policy.
  template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, any_delay> && delay_policy<std::remove_cvref_t<P>>)
  any_delay& operator=(P&& policy) {
    return *this = any_delay(std::remove_cvref_t<P>(std::forward<P>(policy)));
  }
  ~any_delay() { ops_->destroy(storage_); }

  std::chrono::nanoseconds next() { return ops_->next(storage_); }
  void reset() { ops_->reset(storage_); }

 private:
  struct operations {
    std::chrono::nanoseconds (*next)(void*);
    void (*reset)(void*);
    void (*emplace)(void*, void*);           // from a policy object, moved
    void (*copy)(void*, const void*);
    void (*move)(void*, void*) noexcept;     // leaves the source empty (nothing to destroy)
    void (*destroy)(void*) noexcept;
  };

  template <class P>
  static constexpr bool fits_inline = sizeof(P) <= inline_size && alignof(P) <= alignof(void*) &&
                                      std::is_nothrow_move_constructible_v<P>;

  template <class P>
  static P& get(void* s) noexcept {
    if constexpr (fits_inline<P>) {
      return *std::launder(static_cast<P*>(s));
    } else {
      return **static_cast<P**>(s);
    }
  }

  template <class P>
  static constexpr operations ops_for{
      [](void* s) -> std::chrono::nanoseconds { return get<P>(s).next(); },
      [](void* s) { get<P>(s).reset(); },
      [](void* s, void* from) {
        if constexpr (fits_inline<P>) {
          ::new (s) P(std::move(*static_cast<P*>(from)));
        } else {
          *static_cast<P**>(s) = new P(std::move(*static_cast<P*>(from)));
        }
      },
      [](void* s, const void* from) {
        if constexpr (fits_inline<P>) {
          ::new (s) P(*std::launder(static_cast<const P*>(from)));
        } else {
          *static_cast<P**>(s) = new P(**static_cast<P* const*>(from));
        }
      },
      [](void* s, void* from) noexcept {
        if constexpr (fits_inline<P>) {
          P& source = *std::launder(static_cast<P*>(from));
          ::new (s) P(std::move(source));
          source.~P();
        } else {
          *static_cast<P**>(s) = std::exchange(*static_cast<P**>(from), nullptr);
        }
      },
      [](void* s) noexcept {
        if constexpr (fits_inline<P>) {
          std::launder(static_cast<P*>(s))->~P();
        } else {
          delete *static_cast<P**>(s);
        }
      },
  };

  static constexpr operations zero_ops{
      [](void*) { return std::chrono::nanoseconds::zero(); },
      [](void*) {},
      [](void*, void*) {},
      [](void*, const void*) {},
      [](void*, void*) noexcept {},
      [](void*) noexcept {},
  };

  const operations* ops_;
  alignas(void*) unsigned char storage_[inline_size];
};

}  // namespace jobpoll
