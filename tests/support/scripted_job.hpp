#pragma once
// A scripted job for tests: each poll takes the next step of a script (the
// last step repeats), on the manual clock, and records when it was called.

#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <jobpoll/asio.hpp>

#include <jobpoll/poll_status.hpp>
#include <jobpoll/testing/manual_clock.hpp>

namespace jobpoll_test {

using jobpoll::testing::manual_clock;

/// What the fake server answers: a job status ("working", "pass", "fail",
/// "http-429", ...), optionally after a delay, or an error thrown by the poll.
struct step {
  std::string status;
  std::optional<std::chrono::nanoseconds> hint{};
  std::chrono::nanoseconds delay{};
  jobpoll::error_code throws{};
  double progress = -1;
};

struct response {
  std::string status;
  std::optional<std::chrono::nanoseconds> hint;
  double progress = -1;
  int id = 0;  // which poll produced it (1-based)
};

/// Shared state so the poll callable can be copied into poll_until and the
/// test still sees the calls.
struct job_record {
  std::vector<step> script;
  std::vector<manual_clock::duration> calls;      // when each poll started
  int completed = 0;                               // polls that returned or threw
  int cancelled = 0;                               // polls that saw cancellation
};

class scripted_job {
 public:
  explicit scripted_job(std::vector<step> script) : record_(std::make_shared<job_record>()) {
    record_->script = std::move(script);
  }

  asio::awaitable<response> operator()() const {
    auto rec = record_;
    rec->calls.push_back(manual_clock::now().time_since_epoch());
    const std::size_t index = std::min(rec->calls.size(), rec->script.size()) - 1;
    const step s = rec->script[index];
    if (s.delay > std::chrono::nanoseconds::zero()) {
      manual_clock::timer t(co_await asio::this_coro::executor);
      t.expires_after(s.delay);
      try {
        co_await t.async_wait(asio::use_awaitable);
      } catch (const jobpoll::system_error&) {
        ++rec->cancelled;
        throw;
      }
    }
    ++rec->completed;
    if (s.throws) throw std::system_error(s.throws, "scripted poll failure");
    co_return response{s.status, s.hint, s.progress, static_cast<int>(rec->calls.size())};
  }

  const job_record& record() const { return *record_; }
  std::size_t polls() const { return record_->calls.size(); }
  std::vector<double> call_seconds() const {
    std::vector<double> out;
    for (auto c : record_->calls) out.push_back(std::chrono::duration<double>(c).count());
    return out;
  }

 private:
  std::shared_ptr<job_record> record_;
};

/// The same script as an Asio asynchronous operation: `job(token)`
/// completes with `void(jobpoll::error_code, response)`, a thrown error becoming
/// the code, and the handler's cancellation slot cancels the step's delay.
class scripted_async_job {
 public:
  explicit scripted_async_job(std::vector<step> script) : job_(std::move(script)) {}

  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(jobpoll::error_code, response)>(
        [job = job_](auto handler) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          auto ex = asio::get_associated_executor(handler);
          asio::co_spawn(ex, job(),
                         asio::bind_cancellation_slot(slot, [handler = std::move(handler)](std::exception_ptr e,
                                                                                          response r) mutable {
                           jobpoll::error_code ec;
                           if (e) {
                             try {
                               std::rethrow_exception(e);
                             } catch (const std::exception& failure) {
                               // The script's own failure or Asio's (either backend).
                               ec = jobpoll::detail::system_failure_of(failure).value().code;
                             }
                           }
                           std::move(handler)(ec, std::move(r));
                         }));
        },
        token);
  }

  const job_record& record() const { return job_.record(); }
  std::size_t polls() const { return job_.polls(); }
  std::vector<double> call_seconds() const { return job_.call_seconds(); }

 private:
  scripted_job job_;
};

/// The seed API's status policy: "pass" succeeded, "fail" failed, "working"
/// pending; "http-429"/"http-503" transient (with the step's hint),
/// "http-400" permanent, anything else an unknown status.
struct seed_status {
  jobpoll::poll_status operator()(const response& r) const {
    using jobpoll::poll_status;
    std::optional<double> progress;
    if (r.progress >= 0) progress = r.progress;
    if (r.status == "pass") return poll_status::succeeded("status \"pass\"");
    if (r.status == "fail") return poll_status::failed("status \"fail\"");
    if (r.status == "working") {
      auto s = poll_status::pending(progress, "status \"working\"");
      s.retry_after = r.hint;
      return s;
    }
    if (r.status == "http-429") return poll_status::transient(jobpoll::errc::rate_limited, "HTTP 429", r.hint);
    if (r.status == "http-503") return poll_status::transient(jobpoll::errc::server_error, "HTTP 503", r.hint);
    if (r.status == "http-400") return poll_status::permanent(jobpoll::errc::http_error, "HTTP 400: bad hash");
    return poll_status::permanent(jobpoll::errc::unknown_status, "status \"" + r.status + "\"");
  }
};

}  // namespace jobpoll_test
