// The many-jobs workload of issue 9: N jobs started at once, each submitted
// (POST /v1/jobs) and then polled (GET /v1/jobs/<id>) every 0.5 s until it
// completes, which the server makes happen 2 s after the submit; 100
// connections. Three clients do the same jobs against the same loopback
// server, each as its own child process so that its CPU time and peak RSS
// are its own (wait4):
//   jobpoll  job_client over curl_transport (this file, --client=jobpoll)
//   curl     plain libcurl multi, hand-written (this file, --client=curl): the floor
//   python   aiohttp + tenacity (bench/python/aiohttp_client.py): what users would otherwise write
// The figure compared is client CPU time per request, the requests being the
// ones the SERVER counted; then peak RSS and wall time. The server is
// bench/job_load_server.cpp (C++, so that it is not the bottleneck).
//
// A second table: jobpoll's CPU per request over HTTP/2 and HTTP/1.1 against
// one TLS server that speaks both (tests/server/h2_server.py, hypercorn),
// http2 on and off. That server is slow: compare CPU per request, not wall time.
//
//   job_load [--jobs=1000,10000] [--h2-jobs=1000] [--reps=1] [--clients=jobpoll,curl,python]
//            [--connections=100] [--interval-ms=500] [--job-ms=2000]
//   (--h2-jobs=0 skips the HTTP/2 table; --jobs=0 the main one)
//
// Every request goes to 127.0.0.1; every server started here is stopped here.

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <jobpoll/asio.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/transport/curl.hpp>

#include "bench_process.hpp"
#include "loopback_server.hpp"
#include "test_pki.hpp"

#if !defined(JOBPOLL_TEST_PYTHON) || !defined(JOBPOLL_BENCH_PYTHON_CLIENT) || !defined(JOBPOLL_BENCH_H2_SERVER) || \
    !defined(JOBPOLL_BENCH_LOAD_SERVER)
#error "job_load needs JOBPOLL_TEST_PYTHON and JOBPOLL_BENCH_PYTHON_CLIENT, _H2_SERVER, _LOAD_SERVER (set in bench/CMakeLists.txt)"
#endif

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

// The submit body: h2_server.py completes such a job 2 s after it; the C++
// server ignores the body and uses its --job-ms.
constexpr std::string_view submit_body = R"({"seconds": 2})";

// What one client run is told.
struct client_config {
  std::string url;  // http(s)://127.0.0.1:<port>
  int jobs = 1000;
  long connections = 100;
  std::chrono::milliseconds interval{500};
  std::string ca_file;  // https: the private CA
  bool http2 = false;
};

std::map<std::string, std::string> parse_flags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (!a.starts_with("--")) throw std::invalid_argument("unexpected argument '" + std::string(a) + "'");
    const std::size_t eq = a.find('=');
    flags[std::string(a.substr(2, eq == a.npos ? a.npos : eq - 2))] = eq == a.npos ? "1" : std::string(a.substr(eq + 1));
  }
  return flags;
}

std::string flag(const std::map<std::string, std::string>& flags, const std::string& name, std::string fallback) {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

std::vector<int> int_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

// ---------------------------------------------------------------- jobpoll --

int run_jobpoll(const client_config& c) {
  using status_type = jobpoll::field_status<jobpoll::json_codec>;
  using client_type = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, status_type>;
  asio::io_context ctx(1);
  jobpoll::curl_options options;
  options.max_total_connections = c.connections;
  options.ca_file = c.ca_file;
  options.http2 = c.http2;
  jobpoll::curl_transport transport(ctx.get_executor(), options);

  jobpoll::job_description d;
  d.submit = {"POST", c.url + "/v1/jobs", "{body}"};
  d.handle = jobpoll::handle_source::body("/job_id");
  d.poll = {"GET", "/v1/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  client_type client(transport, d, status_type("/status", {.succeeded = {"completed"}, .failed = {"failed"}, .pending = {"running"}}));
  jobpoll::poll_options po;
  po.interval = jobpoll::fixed_interval{c.interval};
  po.deadline = 300s;  // a guard: a run that long has failed anyway

  int ok = 0;
  int failed = 0;
  std::string first_error;
  const auto start = clock_type::now();
  for (int i = 0; i < c.jobs; ++i) {
    asio::co_spawn(ctx, client.run({{"body", std::string(submit_body)}}, po),
                   [&](std::exception_ptr e, const jobpoll::job_result<json>&) {
                     if (!e) {
                       ++ok;
                       return;
                     }
                     ++failed;
                     if (first_error.empty()) {
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& x) {
                         first_error = x.what();
                       }
                     }
                   });
  }
  ctx.run();
  const double wall = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("ok=%d failed=%d wall_s=%.3f connections=%llu\n", ok, failed, wall,
              static_cast<unsigned long long>(transport.connections_opened()));
  if (!first_error.empty()) std::fprintf(stderr, "jobpoll client, first failure: %s\n", first_error.c_str());
  return 0;  // failures are reported in the table, not as a crash
}

// ------------------------------------------------------------ plain curl --

// The floor: what a careful hand-written libcurl client does. One multi
// handle, at most `connections` transfers at once on a pool of as many easy
// handles (reused: their connections stay alive), its own FIFO of requests
// ready to go and of polls due (the interval is fixed, so due times arrive
// in order), curl_multi_poll / curl_multi_perform, answers parsed with
// nlohmann::json as jobpoll's codec does. A failed request (no answer, 429,
// 5xx) is retried after the interval.
int run_plain_curl(const client_config& c) {
  struct job {
    std::string url;  // its poll URL, once submitted
  };
  struct slot {
    CURL* easy = nullptr;
    std::string body;
    std::size_t job = 0;
    bool submit = false;
  };
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c.connections);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, c.connections);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  const std::string submit_url = c.url + "/v1/jobs";

  std::vector<job> jobs(static_cast<std::size_t>(c.jobs));
  std::vector<slot> slots(static_cast<std::size_t>(c.connections));
  std::vector<slot*> free_slots;
  auto write = +[](char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
  };
  for (auto& s : slots) {
    s.easy = curl_easy_init();
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(s.easy, CURLOPT_WRITEDATA, &s.body);
    curl_easy_setopt(s.easy, CURLOPT_PRIVATE, &s);
    curl_easy_setopt(s.easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s.easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(s.easy, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(s.easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    if (!c.ca_file.empty()) curl_easy_setopt(s.easy, CURLOPT_CAINFO, c.ca_file.c_str());
    free_slots.push_back(&s);
  }

  struct request {
    std::size_t job;
    bool submit;
  };
  std::deque<request> ready;
  std::deque<std::pair<clock_type::time_point, request>> due;
  for (std::size_t i = 0; i < jobs.size(); ++i) ready.push_back({i, true});

  const auto start = clock_type::now();
  const auto give_up = start + 300s;  // a guard
  int completed = 0;
  int failed_requests = 0;
  int running = 0;
  while (completed < c.jobs && clock_type::now() < give_up) {
    auto now = clock_type::now();
    while (!due.empty() && due.front().first <= now) {
      ready.push_back(due.front().second);
      due.pop_front();
    }
    while (!ready.empty() && !free_slots.empty()) {
      slot* s = free_slots.back();
      free_slots.pop_back();
      const request r = ready.front();
      ready.pop_front();
      s->job = r.job;
      s->submit = r.submit;
      s->body.clear();
      if (r.submit) {
        curl_easy_setopt(s->easy, CURLOPT_URL, submit_url.c_str());
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(submit_body.size()));
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, submit_body.data());
      } else {
        curl_easy_setopt(s->easy, CURLOPT_URL, jobs[r.job].url.c_str());
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, nullptr);
        curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
      }
      curl_multi_add_handle(multi, s->easy);
    }
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      slot* s = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &s);
      long status = 0;
      curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      const CURLcode result = m->data.result;
      curl_multi_remove_handle(multi, m->easy_handle);
      now = clock_type::now();
      const request r{s->job, s->submit};
      bool retry = result != CURLE_OK || status == 429 || status >= 500;
      if (!retry) {
        const json answer = json::parse(s->body, nullptr, false);
        if (r.submit && status == 202 && answer.is_object() && answer.contains("job_id")) {
          jobs[r.job].url = c.url + "/v1/jobs/" + answer["job_id"].get<std::string>();
          ready.push_back({r.job, false});  // the first poll at once, as the other clients do
        } else if (!r.submit && status == 200 && answer.is_object() && answer.value("status", "") == "completed") {
          ++completed;
        } else if (!r.submit && status == 200 && answer.is_object() && answer.value("status", "") == "running") {
          due.push_back({now + c.interval, r});
        } else {
          retry = true;
        }
      }
      if (retry) {
        ++failed_requests;
        due.push_back({now + c.interval, r});
      }
      free_slots.push_back(s);
    }
    if (completed >= c.jobs) break;
    if (!ready.empty() && !free_slots.empty()) continue;
    int wait_ms = 1000;
    if (!due.empty()) {
      const auto until = std::chrono::ceil<std::chrono::milliseconds>(due.front().first - clock_type::now()).count();
      wait_ms = static_cast<int>(std::clamp<long long>(until, 0, 1000));
    }
    curl_multi_poll(multi, nullptr, 0, wait_ms, nullptr);
  }
  const double wall = std::chrono::duration<double>(clock_type::now() - start).count();
  for (auto& s : slots) {
    curl_multi_remove_handle(multi, s.easy);
    curl_easy_cleanup(s.easy);
  }
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  std::printf("ok=%d failed=%d wall_s=%.3f retried=%d\n", completed, c.jobs - completed, wall, failed_requests);
  return 0;
}

// ----------------------------------------------------------------- driver --

// One blocking request to a server's control endpoint; the decoded answer.
json control(const std::string& method, const std::string& url, const std::string& ca_file = {}) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  std::string body;
  CURL* e = curl.get();
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  if (!ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
  });
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  if (const CURLcode rc = curl_easy_perform(e); rc != CURLE_OK)
    throw std::runtime_error(method + " " + url + ": " + curl_easy_strerror(rc));
  return json::parse(body);
}

struct row {
  std::string what;
  int jobs = 0;
  jobpoll_bench::client_run run;
  double requests = 0;     // as the server counted them
  double connections = 0;  // as the server counted them
  double cpu_us_per_request() const { return requests > 0 ? run.cpu_s * 1e6 / requests : 0; }
};

void print_row(const row& r) {
  std::printf("%-14s %6d %9.0f %6.0f %11.1f %12.1f %8.2f %8.0f %7.0f %s\n", r.what.c_str(), r.jobs, r.requests,
              r.connections, r.cpu_us_per_request(), r.run.peak_rss_mb, r.run.wall_s, r.run.out.count("ok") ? r.run.out.at("ok") : -1,
              r.run.out.count("failed") ? r.run.out.at("failed") : -1,
              r.run.exit_code == 0 ? "" : ("exit " + std::to_string(r.run.exit_code)).c_str());
  std::fflush(stdout);
}

void print_header() {
  std::printf("%-14s %6s %9s %6s %11s %12s %8s %8s %7s\n", "client", "jobs", "requests", "conns", "CPU us/req",
              "peak RSS MB", "wall s", "ok", "failed");
}

// The median of each client's rows (by CPU per request).
const row* median(const std::vector<row>& rows, const std::string& what, int jobs) {
  std::vector<const row*> mine;
  for (const auto& r : rows)
    if (r.what == what && r.jobs == jobs) mine.push_back(&r);
  if (mine.empty()) return nullptr;
  std::sort(mine.begin(), mine.end(),
            [](const row* a, const row* b) { return a->cpu_us_per_request() < b->cpu_us_per_request(); });
  return mine[mine.size() / 2];
}

int drive(const std::map<std::string, std::string>& flags, const std::string& self) {
  const std::vector<int> sizes = int_list(flag(flags, "jobs", "1000,10000"));
  const int h2_jobs = std::stoi(flag(flags, "h2-jobs", "1000"));
  const int reps = std::max(1, std::stoi(flag(flags, "reps", "1")));
  const std::string connections = flag(flags, "connections", "100");
  const std::string interval_ms = flag(flags, "interval-ms", "500");
  const std::string job_ms = flag(flags, "job-ms", "2000");
  std::vector<std::string> clients;
  {
    std::stringstream in(flag(flags, "clients", "jobpoll,curl,python"));
    for (std::string c; std::getline(in, c, ',');) clients.push_back(c);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::printf("job_load: jobs take %s ms of server time, polls every %s ms, %s connections, all jobs started at once\n",
              job_ms.c_str(), interval_ms.c_str(), connections.c_str());
  std::printf("CPU and peak RSS are the client process's own (wait4); requests and connections (conns) are the "
              "server's counts\n\n");
  print_header();
  std::vector<row> rows;
  for (int jobs : sizes) {
    if (jobs <= 0) continue;
    jobpoll::test::loopback_server server(
        jobpoll::test::loopback_server::command_line{{JOBPOLL_BENCH_LOAD_SERVER, "--job-ms=" + job_ms}});
    const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
    for (int rep = 0; rep < reps; ++rep) {
      for (const auto& client : clients) {
        control("POST", base + "/_control/reset");
        std::vector<std::string> argv;
        if (client == "python") {
          argv = {JOBPOLL_TEST_PYTHON, JOBPOLL_BENCH_PYTHON_CLIENT, "--url", base, "--jobs", std::to_string(jobs),
                  "--connections", connections, "--interval", std::to_string(std::stod(interval_ms) / 1000)};
        } else if (client == "jobpoll" || client == "curl") {
          argv = {self, "--client=" + client, "--url=" + base, "--jobs=" + std::to_string(jobs),
                  "--connections=" + connections, "--interval-ms=" + interval_ms};
        } else {
          throw std::invalid_argument("unknown client '" + client + "' (jobpoll, curl, python)");
        }
        row r{client, jobs, jobpoll_bench::run_client(argv), 0};
        const json stats = control("GET", base + "/_control/stats");
        r.requests = stats["requests"].get<double>();
        r.connections = stats["connections"].get<double>();
        print_row(r);
        rows.push_back(std::move(r));
      }
    }
  }

  std::vector<row> h2_rows;
  if (h2_jobs > 0) {
    std::printf("\nHTTP/2 vs HTTP/1.1, jobpoll over TLS against tests/server/h2_server.py (hypercorn; slow: "
                "compare CPU per request, not wall time)\n");
    print_header();
    const jobpoll_test::test_pki pki;
    jobpoll::test::loopback_server server(JOBPOLL_BENCH_H2_SERVER,
                                          {"--tls-cert", pki.server_cert(), "--tls-key", pki.server_key()});
    const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
    for (int rep = 0; rep < reps; ++rep) {
      for (const bool http2 : {true, false}) {
        control("POST", base + "/_control/reset", pki.ca_cert());
        row r{http2 ? "jobpoll h2" : "jobpoll h1.1", h2_jobs,
              jobpoll_bench::run_client({self, "--client=jobpoll", "--url=" + base,
                                         "--jobs=" + std::to_string(h2_jobs), "--connections=" + connections,
                                         "--interval-ms=" + interval_ms, "--ca-file=" + pki.ca_cert(),
                                         std::string("--http2=") + (http2 ? "1" : "0")}),
              0};
        const json stats = control("GET", base + "/_control/stats", pki.ca_cert());
        r.requests = stats["requests"].get<double>();
        r.connections = stats["connections"].get<double>();
        print_row(r);
        h2_rows.push_back(std::move(r));
      }
    }
  }

  std::printf("\nratios (medians of %d run(s); CPU = client CPU per server-counted request)\n", reps);
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (int jobs : sizes) {
    const row* j = median(rows, "jobpoll", jobs);
    const row* c = median(rows, "curl", jobs);
    const row* p = median(rows, "python", jobs);
    if (j && c)
      std::printf("  %5d jobs: CPU jobpoll / plain libcurl   %6.2f   (target <= 1.2)\n", jobs,
                  ratio(j->cpu_us_per_request(), c->cpu_us_per_request()));
    if (j && p) {
      std::printf("  %5d jobs: CPU python / jobpoll          %6.2f   (target >= 10 at 10,000)\n", jobs,
                  ratio(p->cpu_us_per_request(), j->cpu_us_per_request()));
      std::printf("  %5d jobs: peak RSS python / jobpoll     %6.2f   (target >= 10 at 10,000)\n", jobs,
                  ratio(p->run.peak_rss_mb, j->run.peak_rss_mb));
    }
    if (j && c)
      std::printf("  %5d jobs: peak RSS jobpoll / plain libcurl %4.2f\n", jobs, ratio(j->run.peak_rss_mb, c->run.peak_rss_mb));
  }
  for (const char* client : {"jobpoll", "curl", "python"}) {
    if (sizes.size() < 2) break;
    const row* small = median(rows, client, sizes.front());
    const row* large = median(rows, client, sizes.back());
    if (small && large)
      std::printf("  %-7s CPU per request, %d / %d jobs   %6.2f   (target: flat, about 1)\n", client, sizes.back(),
                  sizes.front(), ratio(large->cpu_us_per_request(), small->cpu_us_per_request()));
  }
  const row* h2 = median(h2_rows, "jobpoll h2", h2_jobs);
  const row* h1 = median(h2_rows, "jobpoll h1.1", h2_jobs);
  if (h2 && h1)
    std::printf("  %5d jobs over TLS: CPU jobpoll HTTP/2 / HTTP/1.1   %6.2f\n", h2_jobs,
                ratio(h2->cpu_us_per_request(), h1->cpu_us_per_request()));
  bool all_ok = true;
  for (const auto* list : {&rows, &h2_rows})
    for (const auto& r : *list) all_ok = all_ok && r.run.exit_code == 0 && r.run.out.count("failed") && r.run.out.at("failed") == 0;
  if (!all_ok) std::printf("  NOTE: some runs had failed jobs or a non-zero exit (see the table)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto flags = parse_flags(argc, argv);
    const std::string client = flag(flags, "client", "");
    if (client.empty()) return drive(flags, "/proc/self/exe");  // the clients are this program, re-run
    client_config c;
    c.url = flag(flags, "url", "");
    if (!c.url.starts_with("http://127.0.0.1:") && !c.url.starts_with("https://127.0.0.1:"))
      throw std::invalid_argument("--url must be http(s)://127.0.0.1:<port>, got '" + c.url + "'");
    c.jobs = std::stoi(flag(flags, "jobs", "1000"));
    c.connections = std::stol(flag(flags, "connections", "100"));
    c.interval = std::chrono::milliseconds(std::stol(flag(flags, "interval-ms", "500")));
    c.ca_file = flag(flags, "ca-file", "");
    c.http2 = flag(flags, "http2", "0") == "1";
    if (client == "jobpoll") return run_jobpoll(c);
    if (client == "curl") return run_plain_curl(c);
    throw std::invalid_argument("unknown --client '" + client + "' (jobpoll, curl)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "job_load: %s\n", e.what());
    return 1;
  }
}
