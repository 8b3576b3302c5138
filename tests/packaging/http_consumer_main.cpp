// The HTTP side of an installed jobpoll: the json and curl components link
// and work together (no network: a job client is built and a body decoded).

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/transport/curl.hpp>

#include <asio/io_context.hpp>

#include <iostream>

int main() {
  asio::io_context ctx;
  jobpoll::curl_transport transport(ctx.get_executor());
  jobpoll::job_description description;
  description.submit = {"POST", "https://api.example.com/v1/jobs"};
  description.handle = jobpoll::handle_source::header("Location");
  description.poll = {"GET", "{+handle}"};
  jobpoll::field_status<jobpoll::json_codec> status("/status", {.succeeded = {"done"}, .failed = {}, .pending = {}});
  jobpoll::job_client client(transport, description, status);
  const auto verdict = status(jobpoll::json_codec{}.decode(R"({"status":"done"})"));
  std::cout << "status: " << jobpoll::to_string(verdict.state) << '\n';
  return verdict.state == jobpoll::job_state::succeeded ? 0 : 1;
}
