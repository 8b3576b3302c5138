#pragma once
// The concept shared by intervals (waits after "pending") and backoffs (waits
// after a transient failure), and a copyable type-erased holder for either.

#include <chrono>
#include <concepts>
#include <memory>
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
class any_delay {
 public:
  any_delay() : any_delay(zero{}) {}

  // The any_delay check comes first: clang would otherwise recurse through
  // delay_policy<any_delay> (copy_constructible) while checking a copy.
  template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, any_delay> && delay_policy<P>)
  any_delay(P policy)  // NOLINT(google-explicit-constructor): policies convert implicitly by design
      : impl_(std::make_unique<model<P>>(std::move(policy))) {}

  any_delay(const any_delay& other) : impl_(other.impl_->clone()) {}
  any_delay(any_delay&&) noexcept = default;
  any_delay& operator=(const any_delay& other) {
    if (this != &other) impl_ = other.impl_->clone();
    return *this;
  }
  any_delay& operator=(any_delay&&) noexcept = default;
  // Spelled out (not only through the converting constructor) so that a type
  // that is not a policy gets a diagnostic naming delay_policy.
  template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, any_delay> && delay_policy<std::remove_cvref_t<P>>)
  any_delay& operator=(P&& policy) {
    impl_ = std::make_unique<model<std::remove_cvref_t<P>>>(std::forward<P>(policy));
    return *this;
  }
  ~any_delay() = default;

  std::chrono::nanoseconds next() { return impl_->next(); }
  void reset() { impl_->reset(); }

 private:
  struct zero {
    std::chrono::nanoseconds next() const noexcept { return {}; }
    void reset() noexcept {}
  };

  struct concept_t {
    virtual ~concept_t() = default;
    virtual std::chrono::nanoseconds next() = 0;
    virtual void reset() = 0;
    virtual std::unique_ptr<concept_t> clone() const = 0;
  };

  template <class P>
  struct model final : concept_t {
    explicit model(P p) : policy(std::move(p)) {}
    std::chrono::nanoseconds next() override { return policy.next(); }
    void reset() override { policy.reset(); }
    std::unique_ptr<concept_t> clone() const override { return std::make_unique<model>(policy); }
    P policy;
  };

  std::unique_ptr<concept_t> impl_;
};

}  // namespace jobpoll
