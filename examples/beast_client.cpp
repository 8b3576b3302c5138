// jobpoll on Boost.Asio, with Boost.Beast doing the HTTP: what a Beast user
// writes, with Boost's names only (it builds against the -boost-asio
// targets). It submits a job to the demo job server (tests/server/job_server.py)
// and polls it with jobpoll::poll_until until it completes:
//
//   beast_client <port> [steps]
//
// Exit status: 0 when the job completed, 1 when it failed or the deadline
// passed, 2 for a usage error. Prints the job's id, one line per poll and the
// result.

#include <jobpoll/jobpoll.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/system/system_error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using response = http::response<http::string_body>;
using namespace std::chrono_literals;

// One exchange over a fresh connection, bounded by Beast's own timeout.
net::awaitable<response> exchange(net::ip::tcp::endpoint server, http::verb method, std::string target,
                                  std::string body) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  stream.expires_after(10s);
  co_await stream.async_connect(server, net::use_awaitable);
  http::request<http::string_body> request(method, target, 11);
  request.set(http::field::host, server.address().to_string());
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  request.body() = std::move(body);
  request.prepare_payload();
  co_await http::async_write(stream, request, net::use_awaitable);
  beast::flat_buffer buffer;
  response answer;
  co_await http::async_read(stream, buffer, answer, net::use_awaitable);
  co_return answer;
}

// What one answer to GET /v1/jobs/{id} means. A body that is not the JSON
// object the server promises is a permanent error naming what came.
jobpoll::poll_status classify(const response& r) {
  if (r.result() == http::status::too_many_requests || r.result_int() >= 500)
    return jobpoll::poll_status::transient(jobpoll::errc::server_error, "HTTP " + std::to_string(r.result_int()));
  if (r.result() != http::status::ok)
    return jobpoll::poll_status::permanent(jobpoll::errc::http_error, "HTTP " + std::to_string(r.result_int()));
  const json answer = json::parse(r.body(), nullptr, false);
  if (!answer.is_object() || !answer.contains("status") || !answer["status"].is_string())
    return jobpoll::poll_status::permanent(jobpoll::errc::decode_error, "not a job status: " + r.body().substr(0, 200));
  const std::string status = answer["status"].get<std::string>();
  if (status == "completed") return jobpoll::poll_status::succeeded();
  if (status == "failed" || status == "cancelled") return jobpoll::poll_status::failed("status \"" + status + "\"");
  return jobpoll::poll_status::pending(std::nullopt, "status \"" + status + "\"");
}

net::awaitable<int> run(net::ip::tcp::endpoint server, int steps) {
  // Named first, not built in the co_await expression: g++ 12 mishandles a
  // string literal or braced temporary there (workaround W2).
  std::string target = "/v1/jobs";
  std::string body = json{{"steps", steps}}.dump();
  const response submitted = co_await exchange(server, http::verb::post, std::move(target), std::move(body));
  const json job = json::parse(submitted.body(), nullptr, false);
  if (submitted.result() != http::status::accepted || !job.is_object() || !job.contains("job_id")) {
    std::cerr << "submit refused: HTTP " << submitted.result_int() << ' ' << submitted.body() << '\n';
    co_return 1;
  }
  const std::string id = job["job_id"].get<std::string>();
  std::cout << "submitted " << id << '\n';

  auto poll = [=] { return exchange(server, http::verb::get, "/v1/jobs/" + id, {}); };
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [](const jobpoll::poll_event& e) {
    std::cout << "poll " << e.attempt << ": " << jobpoll::to_string(e.status.state) << '\n';
  };
  jobpoll::poll_options options;
  options.interval = jobpoll::fixed_interval{50ms};
  options.backoff = jobpoll::fixed_interval{50ms};  // after a 5xx or 429
  options.deadline = 30s;
  options.hooks = &hooks;
  try {
    const response done = co_await jobpoll::poll_until(poll, classify, options);
    std::cout << "result " << json::parse(done.body())["result"].dump() << '\n';
    co_return 0;
  } catch (const boost::system::system_error& e) {  // a jobpoll::poll_error, or Beast's own failure
    std::cerr << "job " << id << ": " << e.what() << '\n';
    co_return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: beast_client <port> [steps]\n";
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int steps = argc == 3 ? std::atoi(argv[2]) : 2;
  if (port <= 0 || port > 65535 || steps < 0) {
    std::cerr << "beast_client: a port in 1-65535 and steps >= 0, got \"" << argv[1] << "\""
              << (argc == 3 ? std::string(" \"") + argv[2] + "\"" : std::string()) << '\n';
    return 2;
  }
  net::io_context ctx;
  const net::ip::tcp::endpoint server(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  int status = 1;
  net::co_spawn(ctx, run(server, steps), [&](std::exception_ptr e, int code) {
    if (!e) {
      status = code;
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::cerr << "beast_client: " << failure.what() << '\n';
    }
  });
  ctx.run();
  return status;
}
