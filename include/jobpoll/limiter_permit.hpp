#pragma once
// The slot a rate limiter grants: held while its request is under way, given
// back when the request's answer (or failure) is known.

#include <memory>
#include <utility>

namespace jobpoll {

namespace detail {

// What a permit gives its slot back to: a limiter's shared state. Called at
// most once per permit, from any thread.
class permit_issuer {
 public:
  virtual void release_permit() noexcept = 0;

 protected:
  permit_issuer() = default;
  permit_issuer(const permit_issuer&) = delete;
  permit_issuer& operator=(const permit_issuer&) = delete;
  ~permit_issuer() = default;
};

}  // namespace detail

/// One request's slot in a rate limiter, from the grant until the request's
/// answer (or failure) is known: a limiter counts the request against its
/// budget from the moment the permit is released, because that is when the
/// server has surely seen it (see limiter_budget.hpp for why and what it
/// costs). Move-only; releasing is idempotent, and the destructor releases.
///
/// Hold it across exactly one request:
/// \code
///   jobpoll::limiter_permit permit = co_await quota.async_acquire(asio::use_awaitable);
///   auto answer = co_await http.async_request(req, asio::use_awaitable);
///   permit.release();  // or let it go out of scope
/// \endcode
/// A permit dropped at once (`co_await quota.async_acquire(...);` with the
/// result discarded) counts the request at its grant, which only holds
/// against the server's count if the request arrives at once.
///
/// A permit may outlive its limiter (releasing it then does nothing), but
/// not the limiter's execution context.
class [[nodiscard]] limiter_permit {
 public:
  /// An empty permit: holds nothing (a refused `try_acquire`, an aborted wait).
  limiter_permit() noexcept = default;

  /// Holds a slot of `issuer`, which gets it back on release.
  explicit limiter_permit(std::shared_ptr<detail::permit_issuer> issuer) noexcept : issuer_(std::move(issuer)) {}

  limiter_permit(limiter_permit&& other) noexcept = default;
  limiter_permit& operator=(limiter_permit&& other) noexcept {
    if (this != &other) {
      release();
      issuer_ = std::move(other.issuer_);
    }
    return *this;
  }
  limiter_permit(const limiter_permit&) = delete;
  limiter_permit& operator=(const limiter_permit&) = delete;

  ~limiter_permit() { release(); }

  /// True while it holds a slot.
  explicit operator bool() const noexcept { return issuer_ != nullptr; }

  /// The request's answer is known: the slot counts against the budget from
  /// now on. Does nothing on an empty or released permit.
  void release() noexcept {
    if (auto issuer = std::move(issuer_)) issuer->release_permit();
  }

 private:
  std::shared_ptr<detail::permit_issuer> issuer_;
};

}  // namespace jobpoll
