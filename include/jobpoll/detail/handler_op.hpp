#pragma once
// The operation object behind jobpoll's own asynchronous operations (limiter
// waits, scripted and curl requests): it owns the completion handler until
// the completion is posted, is allocated with the handler's associated
// allocator and keeps the handler's associated executor busy meanwhile.

#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

namespace jobpoll::detail {

// `Base` is what the owner of pending operations keeps (a queue node, a
// request); it declares
//   virtual void post_completion(std::error_code, Result) = 0;  // once; ownership passes to the posted completion
//   virtual void discard() noexcept = 0;                        // destroys without calling the handler
// and a protected destructor. `handler_op` implements both for one handler
// of signature `void(error_code, Result)`, the code made the backend's
// (to_error_code) where the completion is posted.
template <class Base, class Handler, class IoExecutor, class Result>
class handler_op final : public Base {
  using allocator_type =
      typename std::allocator_traits<asio::associated_allocator_t<Handler>>::template rebind_alloc<handler_op>;
  using allocator_traits = std::allocator_traits<allocator_type>;
  using work_executor = std::decay_t<decltype(asio::prefer(
      std::declval<const asio::associated_executor_t<Handler, IoExecutor>&>(),
      asio::execution::outstanding_work.tracked))>;

 public:
  /// A new operation for `handler`; `base_args` construct the `Base`.
  template <class... BaseArgs>
  static handler_op* create(Handler handler, const IoExecutor& io_executor, BaseArgs&&... base_args) {
    allocator_type alloc(asio::get_associated_allocator(handler));
    handler_op* op = allocator_traits::allocate(alloc, 1);
    try {
      return ::new (static_cast<void*>(op))
          handler_op(std::move(handler), io_executor, std::forward<BaseArgs>(base_args)...);
    } catch (...) {
      allocator_traits::deallocate(alloc, op, 1);
      throw;
    }
  }

  void post_completion(std::error_code ec, Result result) override {
    const work_executor ex = work_;
    asio::post(ex, completion(this, to_error_code(ec), std::move(result)));
  }

  void discard() noexcept override {
    clear_slot();
    destroy(allocator_type(asio::get_associated_allocator(handler_)));
  }

 private:
  // Runs on the handler's executor (or is destroyed with it unrun).
  class completion {
   public:
    explicit completion(handler_op* op, error_code ec, Result result) noexcept
        : op_(op), ec_(ec), result_(std::move(result)) {}
    completion(completion&& other) noexcept
        : op_(std::exchange(other.op_, nullptr)), ec_(other.ec_), result_(std::move(other.result_)) {}
    completion& operator=(completion&&) = delete;
    ~completion() {
      if (op_) op_->discard();
    }
    void operator()() { std::exchange(op_, nullptr)->finish(ec_, std::move(result_)); }

   private:
    handler_op* op_;
    error_code ec_;
    Result result_;
  };

  template <class... BaseArgs>
  handler_op(Handler handler, const IoExecutor& io_executor, BaseArgs&&... base_args)
      : Base(std::forward<BaseArgs>(base_args)...),
        handler_(std::move(handler)),
        work_(asio::prefer(asio::get_associated_executor(handler_, io_executor),
                           asio::execution::outstanding_work.tracked)) {}

  // The slot is cleared here, on the handler's executor, where cancellation
  // signals are emitted: clearing it from another thread would race with an
  // emit. Until then the slot's handler may run and find the operation alive.
  void clear_slot() noexcept {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
  }

  void finish(error_code ec, Result result) {
    clear_slot();
    allocator_type alloc(asio::get_associated_allocator(handler_));  // before the handler is moved from
    Handler handler(std::move(handler_));
    destroy(alloc);  // free the memory before the upcall, so the handler may reuse it
    std::move(handler)(ec, std::move(result));
  }

  void destroy(allocator_type alloc) noexcept {
    this->~handler_op();
    allocator_traits::deallocate(alloc, this, 1);
  }

  Handler handler_;
  work_executor work_;
};

}  // namespace jobpoll::detail
