#pragma once
// Sending one request through a curl_transport in a test and waiting for its
// end, with a failure guard instead of a wait on time.

#include <chrono>
#include <functional>
#include <optional>
#include <system_error>

#include <jobpoll/asio.hpp>
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <jobpoll/transport/curl.hpp>

namespace jobpoll_test {

/// How one request ended: its error (empty on an answer) and the answer.
struct outcome {
  jobpoll::error_code ec;
  jobpoll::http_response response;
};

/// A CURLcode as the transport reports it.
inline std::error_code curl_code(CURLcode c) { return {c, jobpoll::curl_category()}; }

/// Runs `ctx` until `done` holds; 30 s without any handler is a test failure.
inline void run_until(asio::io_context& ctx, const std::function<bool()>& done) {
  ctx.restart();
  while (!done()) ASSERT_NE(ctx.run_one_for(std::chrono::seconds(30)), 0u) << "no handler ran for 30 s";
}

/// Sends `request` through `transport` and runs `ctx` until it ends.
inline outcome send(asio::io_context& ctx, jobpoll::curl_transport& transport, jobpoll::http_request request) {
  std::optional<outcome> out;
  transport.async_request(std::move(request),
                          [&](jobpoll::error_code ec, jobpoll::http_response response) { out = outcome{ec, std::move(response)}; });
  run_until(ctx, [&] { return out.has_value(); });
  return out.value_or(outcome{});
}

}  // namespace jobpoll_test
