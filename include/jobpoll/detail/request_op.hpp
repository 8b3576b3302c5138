#pragma once
// A request in progress inside an in-memory transport (scripted, and the test
// support's memory job API): it owns its completion handler until the
// completion is posted, and counts itself in a shared count of requests
// whose handler has not run yet.

#include <atomic>
#include <cstddef>
#include <memory>
#include <system_error>
#include <utility>

#include "jobpoll/detail/handler_op.hpp"
#include "jobpoll/http.hpp"

namespace jobpoll::detail {

// Counts requests whose handler has not run (or been destroyed) yet. Shared
// with each operation, so a completion that outlives its transport can still
// count itself out.
using pending_count = std::shared_ptr<std::atomic<std::size_t>>;

// One request in progress: owns its completion handler until the completion
// is posted, then the posted completion owns it.
class request_op {
 public:
  // Posts the handler's invocation to its associated executor; called once,
  // and ownership passes to the posted completion.
  virtual void post_completion(std::error_code ec, http_response response) = 0;
  // Destroys the operation without calling its handler.
  virtual void discard() noexcept = 0;

 protected:
  explicit request_op(pending_count pending) : pending_(std::move(pending)) {
    pending_->fetch_add(1, std::memory_order_relaxed);
  }
  request_op(const request_op&) = delete;
  request_op& operator=(const request_op&) = delete;
  ~request_op() { pending_->fetch_sub(1, std::memory_order_acq_rel); }

 private:
  pending_count pending_;
};

struct request_op_deleter {
  void operator()(request_op* op) const noexcept { op->discard(); }
};
using request_op_ptr = std::unique_ptr<request_op, request_op_deleter>;

// A request holding its completion handler.
template <class Handler, class IoExecutor>
using request_op_impl = handler_op<request_op, Handler, IoExecutor, http_response>;

}  // namespace jobpoll::detail
