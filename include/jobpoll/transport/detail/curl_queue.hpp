#pragma once
// The requests of one curl_transport that wait for libcurl to have room: a
// FIFO, and an index of when each must stop waiting so that one timer serves
// them all.

#include <cstddef>
#include <optional>

#include "jobpoll/transport/detail/curl_request.hpp"

namespace jobpoll::detail {

// The FIFO is intrusive (the links live in the request: no allocation, O(1)
// push, pop and erase); the wait index is a multimap node per request,
// O(log n) to insert (amortised O(1) in the usual case of limits that grow
// in arrival order, thanks to the end() hint) and O(1) to erase. Strand only.
class curl_queue {
 public:
  using time_point = curl_request::time_point;

  curl_queue() = default;
  curl_queue(const curl_queue&) = delete;
  curl_queue& operator=(const curl_queue&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }

  // Appends `r`. Throws std::bad_alloc, and then `r` is not queued.
  void push_back(curl_request& r) {
    r.wait_entry = limits_.emplace_hint(limits_.end(), r.wait_limit, &r);
    r.prev = tail_;
    r.next = nullptr;
    (tail_ ? tail_->next : head_) = &r;
    tail_ = &r;
    ++size_;
  }

  // Removes and returns the oldest request. Not empty.
  curl_request& pop_front() noexcept {
    curl_request& r = *head_;
    erase(r);
    return r;
  }

  // Removes `r`, which is queued here.
  void erase(curl_request& r) noexcept {
    limits_.erase(r.wait_entry);
    (r.prev ? r.prev->next : head_) = r.next;
    (r.next ? r.next->prev : tail_) = r.prev;
    r.next = r.prev = nullptr;
    --size_;
  }

  // The earliest wait limit of a queued request; none when empty.
  std::optional<time_point> next_limit() const noexcept {
    if (limits_.empty()) return std::nullopt;
    return limits_.begin()->first;
  }

  // Removes and returns a request whose wait limit is `now` or earlier, or
  // nullptr when none is.
  curl_request* pop_expired(time_point now) noexcept {
    if (limits_.empty() || limits_.begin()->first > now) return nullptr;
    curl_request* r = limits_.begin()->second;
    erase(*r);
    return r;
  }

 private:
  curl_request* head_ = nullptr;
  curl_request* tail_ = nullptr;
  std::size_t size_ = 0;
  curl_wait_index limits_;
};

}  // namespace jobpoll::detail
