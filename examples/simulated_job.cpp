// Polls a simulated export job until it is done and prints every step.
//
// The "server" is an in-process fake of a reporting API (submit returns a
// hash; polling returns working -> pass with progress, with one 503 along the
// way), answering after a few milliseconds of simulated latency. Everything
// else is the real library on the real clock: interval, backoff, a shared
// 20-requests-per-15-seconds limiter, a deadline and the hooks.
//
// Usage: simulated_job [job_seconds]   (default 1.5)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <jobpoll/asio.hpp>

#include <jobpoll/jobpoll.hpp>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// What the fake API answers to GET /jobs/{hash}.
struct job_response {
  int http_status = 200;
  std::string status;  // "working", "pass", "fail"
  double progress = 0;
  std::vector<std::string> rows;
};

// An in-process stand-in for a reporting API with background export jobs.
class fake_report_api {
 public:
  fake_report_api(asio::any_io_executor ex, std::chrono::milliseconds job_length)
      : executor_(std::move(ex)), job_length_(job_length) {}

  asio::awaitable<std::string> submit() {
    co_await latency();
    started_ = clock_type::now();
    co_return "1aabac6d068eef6a7bad3fdf50a05cc8";
  }

  asio::awaitable<job_response> get(const std::string& hash) {
    co_await latency();
    ++polls_;
    if (polls_ == 3) co_return job_response{503, "", 0, {}};  // a transient hiccup
    const auto ran = clock_type::now() - started_;
    if (ran < job_length_) {
      co_return job_response{200, "working", std::chrono::duration<double>(ran) / job_length_, {}};
    }
    co_return job_response{200, "pass", 1.0, {"site MAIN: 22 transactions", "site EAST: 17 transactions",
                                              "hash " + hash.substr(0, 8)}};
  }

 private:
  asio::awaitable<void> latency() {
    asio::steady_timer t(executor_, 15ms);
    co_await t.async_wait(asio::use_awaitable);
  }

  asio::any_io_executor executor_;
  std::chrono::milliseconds job_length_;
  clock_type::time_point started_{};
  int polls_ = 0;
};

// The API's contract: 200 + "pass"/"fail"/"working"; 429 and 5xx are transient.
jobpoll::poll_status classify(const job_response& r) {
  using jobpoll::poll_status;
  if (r.http_status == 429) return poll_status::transient(jobpoll::errc::rate_limited, "HTTP 429");
  if (r.http_status >= 500) return poll_status::transient(jobpoll::errc::server_error, "HTTP " + std::to_string(r.http_status));
  if (r.http_status != 200) return poll_status::permanent(jobpoll::errc::http_error, "HTTP " + std::to_string(r.http_status));
  if (r.status == "pass") return poll_status::succeeded("status \"pass\"");
  if (r.status == "fail") return poll_status::failed("status \"fail\"");
  if (r.status == "working") return poll_status::pending(r.progress, "status \"working\"");
  return poll_status::permanent(jobpoll::errc::unknown_status, "status \"" + r.status + "\"");
}

double ms(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }

asio::awaitable<int> run(std::chrono::milliseconds job_length) {
  auto ex = co_await asio::this_coro::executor;
  fake_report_api api(ex, job_length);
  jobpoll::sliding_window_limiter quota(ex, 20, 15s);  // the API allows 20 requests per 15 s

  const std::string hash = co_await api.submit();
  std::printf("submitted export job, hash %s\n", hash.c_str());

  jobpoll::poll_options opts;
  opts.deadline = 30s;
  opts.interval = jobpoll::exponential_interval{100ms, 1.5, 400ms};
  opts.backoff = jobpoll::exponential_backoff(50ms, 1s);
  opts.max_retries = 3;
  opts.attempt_timeout = 2s;
  opts.limiter = quota;
  jobpoll::poll_hooks hooks;  // one set of hooks can serve any number of polls
  hooks.on_poll = [](const jobpoll::poll_event& e) {
    std::printf("attempt %zu at %7.1f ms: %-15s", e.attempt, ms(e.elapsed), std::string(to_string(e.status.state)).c_str());
    if (e.status.progress) std::printf(" %3.0f%%", *e.status.progress * 100);
    std::printf("  (%s)\n", e.status.detail.c_str());
  };
  hooks.on_wait = [](const jobpoll::wait_event& e) {
    std::printf("    wait %6.1f ms  [%s]\n", ms(e.duration), std::string(to_string(e.reason)).c_str());
  };
  opts.hooks = &hooks;

  try {
    job_response done = co_await jobpoll::poll_until([&] { return api.get(hash); }, classify, opts);
    std::printf("job done; %zu result rows:\n", done.rows.size());
    for (const auto& row : done.rows) std::printf("  %s\n", row.c_str());
    co_return 0;
  } catch (const jobpoll::poll_error& e) {
    std::printf("polling failed: %s\n", e.what());
    co_return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.5;
  if (!(seconds >= 0 && seconds <= 3600)) {
    std::fprintf(stderr, "usage: %s [job_seconds]   (0..3600, got \"%s\")\n", argv[0], argv[1]);
    return 2;
  }
  asio::io_context ctx;
  int exit_code = 1;
  asio::co_spawn(ctx, run(std::chrono::milliseconds(static_cast<long>(seconds * 1000))),
                 [&](std::exception_ptr e, int code) {
                   if (e) std::rethrow_exception(e);
                   exit_code = code;
                 });
  ctx.run();
  return exit_code;
}
