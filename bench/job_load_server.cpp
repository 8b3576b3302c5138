// The job server the job_load benchmark's clients poll: a benchmark load
// generator's peer, not a product. It exists because the Python job server
// of the tests (tests/server/job_server.py) answers a few thousand requests a
// second, while 10,000 jobs polled every 0.5 s ask for about 20,000: with it,
// the server would set the pace and the run would take minutes. This one is
// a single-threaded Asio HTTP/1.1 keep-alive server that does the least a
// correct server must: it parses the request line, the headers and a
// Content-Length body (pipelined requests included), and answers with a
// Content-Length.
//
//   job_load_server [--port=0] [--job-ms=2000]
//
// POST /v1/jobs          -> 202 {"job_id": "job-<n>", "status": "running"} (the body is read and ignored)
// GET  /v1/jobs/job-<n>  -> 200 {"job_id", "status": "running"}, or "completed" with "result": n once
//                           --job-ms have passed since the submit (steady clock); unknown -> 404
// GET  /_control/stats   -> 200 {"requests": job requests so far, "connections": accepted so far}
// POST /_control/reset   -> 200 {}: no jobs, counts back to 0 (control requests are never counted)
//
// Binds 127.0.0.1 only. Prints "PORT <n>" once listening; exits with status 0
// on SIGTERM or SIGINT and when stdin reaches EOF (so a driver that dies never
// leaves it behind).

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <jobpoll/asio.hpp>
#if defined(JOBPOLL_USE_BOOST_ASIO)
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>
#else
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/write.hpp>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using asio::ip::tcp;

struct server_state {
  std::chrono::milliseconds job_time{2000};
  std::vector<clock_type::time_point> jobs;  // job-<n> is jobs[n - 1]: its completion time
  std::uint64_t requests = 0;
  std::uint64_t connections = 0;
};

constexpr std::size_t max_head = 16 * 1024;
constexpr std::size_t max_body = 1024 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

void append_response(std::string& out, int status, std::string_view reason, std::string_view body, bool close) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason;
  out += "\r\nContent-Type: application/json\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n";
  out += body;
}

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp::socket socket, server_state& state) : socket_(std::move(socket)), state_(state) {}

  void start() { read(); }

 private:
  void read() {
    if (in_.size() - used_ < 4096) in_.resize(std::max<std::size_t>(in_.size() * 2, used_ + 16384));
    socket_.async_read_some(asio::buffer(in_.data() + used_, in_.size() - used_),
                            [self = shared_from_this()](jobpoll::error_code ec, std::size_t n) {
                              if (ec) return;  // closed or reset: the connection ends
                              self->used_ += n;
                              self->process();
                            });
  }

  // Answers every complete request in the buffer, then writes them all, then reads on.
  void process() {
    bool close = false;
    std::size_t start = 0;
    for (;;) {
      const std::string_view data(in_.data() + start, used_ - start);
      const std::size_t head_end = data.find("\r\n\r\n");
      if (head_end == std::string_view::npos) {
        if (data.size() > max_head) {
          append_response(out_, 431, "Request Header Fields Too Large", R"({"error":"header too large"})", true);
          close = true;
        }
        break;
      }
      const std::string_view head = data.substr(0, head_end);
      std::size_t length = 0;
      bool bad = false;
      bool wants_close = false;
      std::size_t line_end = head.find("\r\n");
      const std::string_view request_line = head.substr(0, line_end);
      while (line_end != std::string_view::npos) {
        const std::size_t next = head.find("\r\n", line_end + 2);
        const std::string_view line = head.substr(line_end + 2, next == std::string_view::npos ? head.npos : next - line_end - 2);
        line_end = next;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view name = line.substr(0, colon);
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        if (iequals(name, "Content-Length")) {
          if (value.empty() || value.size() > 9 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            bad = true;
          } else {
            length = static_cast<std::size_t>(std::stoul(std::string(value)));
          }
        } else if (iequals(name, "Transfer-Encoding")) {
          bad = true;  // chunked bodies are not supported: refuse rather than misread
        } else if (iequals(name, "Connection") && iequals(value, "close")) {
          wants_close = true;
        }
      }
      if (bad || length > max_body) {
        append_response(out_, 400, "Bad Request", R"({"error":"bad Content-Length or Transfer-Encoding"})", true);
        close = true;
        break;
      }
      if (data.size() < head_end + 4 + length) break;  // the body is not all here yet
      start += head_end + 4 + length;
      answer(request_line, wants_close);
      if (wants_close) {
        close = true;
        break;
      }
    }
    // Keep what is left of an incomplete request at the front.
    std::copy(in_.begin() + static_cast<std::ptrdiff_t>(start), in_.begin() + static_cast<std::ptrdiff_t>(used_), in_.begin());
    used_ -= start;
    if (out_.empty()) return read();
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this(), close](jobpoll::error_code ec, std::size_t) {
      self->out_.clear();
      if (ec || close) {
        jobpoll::error_code ignored;
        self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
        return;
      }
      self->read();
    });
  }

  void answer(std::string_view request_line, bool close) {
    const std::size_t sp1 = request_line.find(' ');
    const std::size_t sp2 = request_line.find(' ', sp1 == std::string_view::npos ? 0 : sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos)
      return append_response(out_, 400, "Bad Request", R"({"error":"malformed request line"})", close);
    const std::string_view method = request_line.substr(0, sp1);
    const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (method == "GET" && target == "/_control/stats") {
      return append_response(out_, 200, "OK",
                             R"({"requests":)" + std::to_string(state_.requests) + R"(,"connections":)" +
                                 std::to_string(state_.connections) + "}",
                             close);
    }
    if (method == "POST" && target == "/_control/reset") {
      state_.jobs.clear();
      state_.requests = 0;
      state_.connections = 0;
      return append_response(out_, 200, "OK", "{}", close);
    }
    ++state_.requests;
    if (method == "POST" && target == "/v1/jobs") {
      state_.jobs.push_back(clock_type::now() + state_.job_time);
      return append_response(out_, 202, "Accepted",
                             R"({"job_id":"job-)" + std::to_string(state_.jobs.size()) + R"(","status":"running"})",
                             close);
    }
    constexpr std::string_view prefix = "/v1/jobs/job-";
    if (method == "GET" && target.starts_with(prefix)) {
      const std::string_view digits = target.substr(prefix.size());
      std::size_t n = 0;
      const bool numeric = !digits.empty() && digits.size() < 10 &&
                           std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (numeric) n = static_cast<std::size_t>(std::stoul(std::string(digits)));
      if (n == 0 || n > state_.jobs.size())
        return append_response(out_, 404, "Not Found", R"({"error":"unknown job"})", close);
      const std::string id = "job-" + std::string(digits);
      if (clock_type::now() < state_.jobs[n - 1])
        return append_response(out_, 200, "OK", R"({"job_id":")" + id + R"(","status":"running"})", close);
      return append_response(out_, 200, "OK",
                             R"({"job_id":")" + id + R"(","status":"completed","result":)" + std::string(digits) + "}",
                             close);
    }
    append_response(out_, 404, "Not Found", R"({"error":"no such endpoint"})", close);
  }

  tcp::socket socket_;
  server_state& state_;
  std::vector<char> in_;
  std::size_t used_ = 0;
  std::string out_;
};

void accept(tcp::acceptor& acceptor, server_state& state) {
  acceptor.async_accept([&acceptor, &state](jobpoll::error_code ec, tcp::socket socket) {
    if (!ec) {
      socket.set_option(tcp::no_delay(true));
      ++state.connections;
      std::make_shared<connection>(std::move(socket), state)->start();
    }
    if (acceptor.is_open()) accept(acceptor, state);
  });
}

}  // namespace

int main(int argc, char** argv) {
  server_state state;
  unsigned short port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--port=")) {
      port = static_cast<unsigned short>(std::atoi(argv[i] + 7));
    } else if (a.starts_with("--job-ms=")) {
      state.job_time = std::chrono::milliseconds(std::atol(argv[i] + 9));
    } else {
      std::cerr << "usage: job_load_server [--port=0] [--job-ms=2000]\n";
      return 2;
    }
  }
  asio::io_context ctx(1);
  tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  acceptor.listen(4096);
  accept(acceptor, state);

  asio::signal_set signals(ctx, SIGTERM, SIGINT);
  signals.async_wait([&ctx](jobpoll::error_code, int) { ctx.stop(); });
  asio::posix::stream_descriptor in(ctx, ::dup(STDIN_FILENO));
  std::array<char, 256> sink{};
  std::function<void()> watch_stdin = [&] {
    in.async_read_some(asio::buffer(sink), [&](jobpoll::error_code ec, std::size_t) {
      if (ec) return ctx.stop();  // EOF (or an error): the driver is gone
      watch_stdin();
    });
  };
  watch_stdin();

  std::printf("PORT %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  ctx.run();
  return 0;
}
