// Runs one job on a job API for long-running tools and shows its progress:
//   POST   /v1/jobs          {"tool": ..., "params": {...}}  -> 202 {"job_id": ...}
//   GET    /v1/jobs/{job_id} -> status pending | running (with progress and
//                               eta_seconds) | completed (with result) | failed
//   DELETE /v1/jobs/{job_id} -> cancels it
//
// A progress bar is drawn on stderr; the result is printed on stdout as JSON.
// Ctrl-C (SIGINT) or SIGTERM cancels the poll, and the job client then sends
// the DELETE so that the server stops the job too.
//
// Usage: job_api_client BASE_URL [--tool T] [--steps N]
//   e.g. job_api_client http://127.0.0.1:8080 --tool blast --steps 5
// --steps is passed in the body: the demo server's job then takes N polls.

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

#include <jobpoll/asio.hpp>

#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/job_description.hpp>
#include <jobpoll/observer.hpp>
#include <jobpoll/poll_options.hpp>
#include <jobpoll/transport/curl.hpp>

using namespace std::chrono_literals;

namespace {

// The job API as data: where to submit, where the id is, how to poll and cancel.
jobpoll::job_description job_api(const std::string& base, const nlohmann::json& body) {
  jobpoll::job_description d;
  d.submit = {"POST", base + "/v1/jobs", body.dump()};
  d.handle = jobpoll::handle_source::body("/job_id");
  d.poll = {"GET", base + "/v1/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  d.cancel = jobpoll::request_template{"DELETE", base + "/v1/jobs/{handle}"};
  return d;
}

// "[############--------]  60% running"
void draw_progress(const jobpoll::poll_event& e) {
  constexpr int width = 20;
  const double done = e.status.progress.value_or(0.0);
  const int filled = static_cast<int>(done * width + 0.5);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), '-');
  std::fprintf(stderr, "\r[%s] %3.0f%% %-40s", bar.c_str(), done * 100, e.status.detail.c_str());
  if (e.status.terminal()) std::fputc('\n', stderr);
  std::fflush(stderr);
}

asio::awaitable<int> run_job(std::string base_url, nlohmann::json body) {
  // The executor in a statement of its own: g++ 12 mishandles the transport's
  // default options argument inside an expression that also holds a co_await.
  const auto executor = co_await asio::this_coro::executor;
  jobpoll::curl_transport transport(executor);
  jobpoll::job_client client(
      transport, job_api(base_url, body),
      jobpoll::field_status<jobpoll::json_codec>(
          "/status", {.succeeded = {"completed"}, .failed = {"failed", "cancelled"}, .pending = {"pending", "running"}})
          .progress_at("/progress")
          .hint_at("/eta_seconds")
          .failure_detail_at("/error"));

  jobpoll::poll_hooks hooks;
  hooks.on_poll = draw_progress;
  jobpoll::poll_options options;
  options.interval = jobpoll::fixed_interval{500ms};
  options.deadline = 10min;
  options.hooks = &hooks;
  try {
    auto result = co_await client.run({}, options);
    std::cout << result.value.dump() << '\n';
    co_return 0;
  } catch (const jobpoll::job_error& e) {
    std::fputc('\n', stderr);
    std::cerr << (e.code() == asio::error::operation_aborted ? "cancelled: " : "job failed: ") << e.what() << '\n';
    co_return e.code() == asio::error::operation_aborted ? 130 : 1;
  }
}

int usage(std::string_view problem) {
  std::cerr << "job_api_client: " << problem << "\nusage: job_api_client BASE_URL [--tool T] [--steps N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]).starts_with("--")) return usage("the first argument must be the base URL");
  nlohmann::json body = {{"tool", "blast"}, {"params", {{"sequence", "ACGTTGCA"}}}, {"steps", 5}};
  for (int i = 2; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag != "--tool" && flag != "--steps") return usage("unknown argument '" + std::string(flag) + "'");
    if (i + 1 == argc) return usage(std::string(flag) + " needs a value");
    const std::string_view value = argv[i + 1];
    if (flag == "--tool") {
      body["tool"] = value;
      continue;
    }
    unsigned steps = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), steps);
    if (value.empty() || ec != std::errc{} || end != value.data() + value.size())
      return usage("--steps needs a non-negative integer, got '" + std::string(value) + "'");
    body["steps"] = steps;
  }

  asio::io_context ctx;
  // The first signal cancels the job (and so sends the DELETE). The set holds
  // both signals until the job ends: a second one cannot kill the process
  // halfway through the DELETE.
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  asio::cancellation_signal cancel;
  signals.async_wait([&](const jobpoll::error_code& ec, int) {
    if (!ec) cancel.emit(asio::cancellation_type::terminal);
  });

  int exit_code = 1;
  asio::co_spawn(ctx, run_job(argv[1], std::move(body)),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, int code) {
                   signals.cancel();
                   if (e) std::rethrow_exception(e);
                   exit_code = code;
                 }));
  ctx.run();
  return exit_code;
}
