// Requests per second and client CPU per request of curl_transport against the
// loopback job server (tests/server/job_server.py, started here), next to
// plain libcurl sending the same requests in the same process:
//
// - get_1: one request in flight at a time. Baseline: one easy handle,
//   curl_easy_perform in a loop.
// - get_100, get_1000: N requests in flight; each of N "jobs" sends its next
//   request when its previous one completes. Baseline: N easy handles in one
//   multi handle driven by curl_multi_perform + curl_multi_poll, each added
//   again when it completes (the plain-libcurl way to have N in flight).
//
// Every request is GET /v1/jobs/job-1, a completed job (200, a JSON body of
// about 80 bytes), on kept-alive connections: each side opens its
// connections in an untimed warm-up round first. Both sides keep the body and
// the header lines and check the status.
//
// The server is one Python process: it sets the pace for both sides alike,
// so items_per_second mostly measures the server and its ratio says little.
// The figure that compares the clients is cpu_us_per_request: this process's
// CPU time (every thread, from CLOCK_PROCESS_CPUTIME_ID) per request.

#include <time.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

#include <jobpoll/asio.hpp>
#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <jobpoll/transport/curl.hpp>

#include "loopback_server.hpp"

namespace {

jobpoll::test::loopback_server& server() {
  static jobpoll::test::loopback_server instance;
  return instance;
}

// A fresh server state with job-1 completed; its URL.
std::string prepare() {
  const auto& s = server();
  s.reset();  // also drops the request log, which grows with every request
  s.request("POST", "/v1/jobs", R"({"steps":0})");
  s.request("GET", "/v1/jobs/job-1");  // the job is now completed, and says so on every later GET
  return s.url("/v1/jobs/job-1");
}

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Requests per timed iteration: every job sends three or more; Google
// Benchmark repeats iterations for at least a second.
int requests_per_iteration(int concurrency) { return std::max(200, 3 * concurrency); }

void report(benchmark::State& state, int per_iteration, double cpu_seconds) {
  const double requests = static_cast<double>(state.iterations()) * per_iteration;
  state.SetItemsProcessed(static_cast<std::int64_t>(requests));
  state.counters["cpu_us_per_request"] = cpu_seconds * 1e6 / requests;
}

// --- baseline: plain libcurl -------------------------------------------------------

struct easy_exchange {
  CURL* easy = nullptr;
  std::string body;
  std::vector<std::string> header_lines;
};

std::size_t keep_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<easy_exchange*>(out)->body.append(data, size * count);
  return size * count;
}

std::size_t keep_header(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<easy_exchange*>(out)->header_lines.emplace_back(data, size * count);
  return size * count;
}

// Options like the transport's for a GET: same request on the wire.
void set_up(easy_exchange& x, const std::string& url) {
  x.easy = curl_easy_init();
  curl_easy_setopt(x.easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(x.easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x.easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(x.easy, CURLOPT_USERAGENT, "jobpoll/0.1.0");
  curl_easy_setopt(x.easy, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(x.easy, CURLOPT_PRIVATE, static_cast<void*>(&x));
  curl_easy_setopt(x.easy, CURLOPT_WRITEFUNCTION, &keep_body);
  curl_easy_setopt(x.easy, CURLOPT_WRITEDATA, static_cast<void*>(&x));
  curl_easy_setopt(x.easy, CURLOPT_HEADERFUNCTION, &keep_header);
  curl_easy_setopt(x.easy, CURLOPT_HEADERDATA, static_cast<void*>(&x));
}

// "" if the exchange got a 200, else what went wrong.
std::string check(easy_exchange& x, CURLcode rc) {
  if (rc != CURLE_OK) return std::string("libcurl: ") + curl_easy_strerror(rc);
  long status = 0;
  curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status);
  return status == 200 ? "" : "HTTP " + std::to_string(status);
}

void clear(easy_exchange& x) {
  x.body.clear();
  x.header_lines.clear();
}

void baseline_sequential(benchmark::State& state) {
  const std::string url = prepare();
  easy_exchange x;
  set_up(x, url);
  std::string failure = check(x, curl_easy_perform(x.easy));  // warm-up: connects
  const int per_iteration = requests_per_iteration(1);
  double cpu = 0;
  for (auto _ : state) {
    if (!failure.empty()) break;
    const double start = process_cpu_seconds();
    for (int i = 0; i < per_iteration && failure.empty(); ++i) {
      clear(x);
      failure = check(x, curl_easy_perform(x.easy));
    }
    cpu += process_cpu_seconds() - start;
  }
  curl_easy_cleanup(x.easy);
  if (!failure.empty()) return state.SkipWithError(failure.c_str());
  report(state, per_iteration, cpu);
}

// `total` requests through `exchanges.size()` easy handles in one multi handle.
std::string run_multi(CURLM* multi, std::vector<easy_exchange>& exchanges, int total) {
  int started = 0;
  int done = 0;
  std::string failure;
  for (auto& x : exchanges) {
    if (started == total) break;
    clear(x);
    curl_multi_add_handle(multi, x.easy);
    ++started;
  }
  while (done < total) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode rc = msg->data.result;
      char* p = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
      auto& x = *static_cast<easy_exchange*>(static_cast<void*>(p));
      if (std::string f = check(x, rc); !f.empty() && failure.empty()) failure = f;
      curl_multi_remove_handle(multi, easy);
      ++done;
      if (started < total) {
        clear(x);
        curl_multi_add_handle(multi, easy);
        ++started;
      }
    }
    if (done < total) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  return failure;
}

void baseline_multi(benchmark::State& state) {
  const int concurrency = static_cast<int>(state.range(0));
  const std::string url = prepare();
  CURLM* multi = curl_multi_init();
  std::vector<easy_exchange> exchanges(static_cast<std::size_t>(concurrency));
  for (auto& x : exchanges) set_up(x, url);
  std::string failure = run_multi(multi, exchanges, concurrency);  // warm-up: connects
  const int per_iteration = requests_per_iteration(concurrency);
  double cpu = 0;
  for (auto _ : state) {
    if (!failure.empty()) break;
    const double start = process_cpu_seconds();
    failure = run_multi(multi, exchanges, per_iteration);
    cpu += process_cpu_seconds() - start;
  }
  for (auto& x : exchanges) curl_easy_cleanup(x.easy);
  curl_multi_cleanup(multi);
  if (!failure.empty()) return state.SkipWithError(failure.c_str());
  report(state, per_iteration, cpu);
}

// --- curl_transport ---------------------------------------------------------------------

// `concurrency` jobs, each sending its next request from the previous one's
// completion handler, until `total` have completed.
class transport_run {
 public:
  transport_run(jobpoll::curl_transport& t, std::string url) : transport_(t), url_(std::move(url)) {}

  std::string run(asio::io_context& ctx, int concurrency, int total) {
    to_start_ = total;
    for (int i = 0; i < concurrency && to_start_ > 0; ++i) start();
    ctx.restart();
    ctx.run();  // returns once every request has completed: idle connections hold no work
    return failure_;
  }

 private:
  void start() {
    --to_start_;
    jobpoll::http_request request;
    request.url = url_;
    transport_.async_request(std::move(request), [this](jobpoll::error_code ec, jobpoll::http_response response) {
      if (failure_.empty() && ec) failure_ = "curl_transport: " + ec.message();
      if (failure_.empty() && response.status != 200) failure_ = "HTTP " + std::to_string(response.status);
      if (to_start_ > 0) start();
    });
  }

  jobpoll::curl_transport& transport_;
  const std::string url_;
  int to_start_ = 0;
  std::string failure_;
};

void transport(benchmark::State& state) {
  const int concurrency = static_cast<int>(state.range(0));
  const std::string url = prepare();
  asio::io_context ctx(1);
  jobpoll::curl_transport t(ctx.get_executor());
  transport_run runs(t, url);
  std::string failure = runs.run(ctx, concurrency, concurrency);  // warm-up: connects
  const int per_iteration = requests_per_iteration(concurrency);
  double cpu = 0;
  for (auto _ : state) {
    if (!failure.empty()) break;
    const double start = process_cpu_seconds();
    failure = runs.run(ctx, concurrency, per_iteration);
    cpu += process_cpu_seconds() - start;
  }
  if (!failure.empty()) return state.SkipWithError(failure.c_str());
  report(state, per_iteration, cpu);
}

BENCHMARK(baseline_sequential)->Name("get_1/baseline")->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(transport)->Name("get_1/curl_transport")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(baseline_multi)->Name("get_100/baseline")->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(transport)->Name("get_100/curl_transport")->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(baseline_multi)->Name("get_1000/baseline")->Arg(1000)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(transport)->Name("get_1000/curl_transport")->Arg(1000)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace
