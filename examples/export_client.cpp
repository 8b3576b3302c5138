// A client for a reporting API that builds transaction exports in the
// background: POST /transaction/load-job with the criteria answers with a
// hash; GET /transaction/get-job-data?hash=... says "working" until the export
// is ready, then "pass" with the first page of items (or "fail"). The items
// come in pages (offset, limit, total), all of which are collected.
//
// The API allows 20 requests in any 15 seconds: one sliding-window limiter is
// shared by every request of the client (submits, polls, pages), so several
// load_job calls running at once still keep to the quota. A 429 answer is
// retried after its Retry-After, which also pauses the limiter for everyone.
//
// Usage: export_client BASE_URL [--site S] [--start T] [--end T]
//   e.g. export_client http://127.0.0.1:8080 --site MAIN
// Prints the number of transactions, then each one as a line of JSON.

#include <chrono>
#include <cstddef>
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
#include <jobpoll/poll_options.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/transport/curl.hpp>

using namespace std::chrono_literals;

/// How an `export_client` polls. The contract's defaults: poll every 2 s,
/// give up after 300 s, at most 20 requests in any 15 s, 5 transient failures
/// (429, 5xx, resets) in a row.
struct export_options {
  std::chrono::nanoseconds interval = 2s;
  std::chrono::nanoseconds timeout = 300s;
  std::size_t requests_per_window = 20;
  std::chrono::nanoseconds window = 15s;
  std::size_t max_retries = 5;
};

/// The load-job / get-job-data export contract, ready to copy into a project.
class export_client {
 public:
  /// `base_url` is the API's origin, e.g. "https://api.example.com/v1".
  /// Throws std::invalid_argument for a zero quota or a window <= 0.
  export_client(asio::any_io_executor executor, std::string base_url, export_options opts = {})
      : transport_(executor),
        quota_(executor, opts.requests_per_window,
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(opts.window)),
        client_(transport_, describe(base_url), status_policy()) {
    poll_.interval = jobpoll::fixed_interval{opts.interval};
    poll_.deadline = opts.timeout;
    poll_.max_retries = opts.max_retries;
    poll_.limiter = quota_;
  }

  // The job client points at the transport, the options at the limiter.
  export_client(const export_client&) = delete;
  export_client& operator=(const export_client&) = delete;

  /// Submits an export with `criteria` ("startDate", "endDate" and "site",
  /// all required), waits for it and returns every transaction of every page
  /// as one JSON array. Throws `jobpoll::job_error`: `job_failed` (the
  /// server's message in what(), its answer in last_response()), `timeout`,
  /// `retries_exhausted`, `expired_handle` (the hash is no longer known),
  /// `http_error`, `decode_error`; `std::system_error(invalid_argument)`
  /// naming a missing criterion. Cancelled through the awaiting coroutine's
  /// cancellation slot (`operation_aborted`).
  asio::awaitable<nlohmann::json> load_job(jobpoll::job_params criteria) {
    auto result = co_await client_.run(std::move(criteria), poll_);
    co_return std::move(result.value);
  }

 private:
  static jobpoll::job_description describe(const std::string& base) {
    jobpoll::job_description d;
    d.submit = {"POST", base + "/transaction/load-job?startDate={startDate}&endDate={endDate}&site={site}"};
    d.handle = jobpoll::handle_source::body("/data/hash");
    d.poll = {"GET", base + "/transaction/get-job-data?hash={handle}"};
    // "pass" already carries the first page: fetching goes on from its last item.
    d.result = jobpoll::result_source::paged(
        {"GET", base + "/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}"},
        {"/data/data", "/data/total", 100, 0, true});
    return d;
  }

  static jobpoll::field_status<jobpoll::json_codec> status_policy() {
    return jobpoll::field_status<jobpoll::json_codec>(
               "/data/status", {.succeeded = {"pass"}, .failed = {"fail"}, .pending = {"working"}})
        .failure_detail_at("/data/message");
  }

  jobpoll::curl_transport transport_;
  jobpoll::sliding_window_limiter quota_;
  jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, jobpoll::field_status<jobpoll::json_codec>> client_;
  jobpoll::poll_options poll_;
};

namespace {

asio::awaitable<int> export_and_print(std::string base_url, jobpoll::job_params criteria) {
  // The executor in a statement of its own: g++ 12 mishandles the default
  // options argument inside an expression that also holds a co_await.
  const auto executor = co_await asio::this_coro::executor;
  export_client client(executor, std::move(base_url));
  try {
    const nlohmann::json items = co_await client.load_job(std::move(criteria));
    std::cout << items.size() << " transactions\n";
    for (const auto& item : items) std::cout << item.dump() << '\n';
    co_return 0;
  } catch (const jobpoll::job_error& e) {
    std::cerr << "export failed: " << e.what() << '\n';
    co_return 1;
  }
}

int usage(std::string_view problem) {
  std::cerr << "export_client: " << problem << "\nusage: export_client BASE_URL [--site S] [--start T] [--end T]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]).starts_with("--")) return usage("the first argument must be the base URL");
  const std::string base_url = argv[1];
  // The seed's example criteria: one day of site MAIN.
  jobpoll::job_params criteria{{"site", "MAIN"}, {"startDate", "1591040159"}, {"endDate", "1591126559"}};
  for (int i = 2; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* name = flag == "--site"    ? "site"
                       : flag == "--start" ? "startDate"
                       : flag == "--end"   ? "endDate"
                                           : nullptr;
    if (name == nullptr) return usage("unknown argument '" + std::string(flag) + "'");
    if (i + 1 == argc) return usage(std::string(flag) + " needs a value");
    criteria.insert_or_assign(name, argv[i + 1]);
  }

  asio::io_context ctx;
  int exit_code = 1;
  asio::co_spawn(ctx, export_and_print(base_url, std::move(criteria)), [&](std::exception_ptr e, int code) {
    if (e) std::rethrow_exception(e);
    exit_code = code;
  });
  ctx.run();
  return exit_code;
}
