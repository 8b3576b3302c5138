// The HTTP side of an installed jobpoll: the json, curl and sqlite components
// link and work together (no network: a job client and a batch runner over
// an in-memory store are built, a body decoded and an empty batch reconciled).

#include <jobpoll/batch.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/store/sqlite.hpp>
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
  jobpoll::sqlite_store store(":memory:", "empty");
  store.create({});
  jobpoll::batch_runner batch(ctx.get_executor(), client, store, jobpoll::batch_options{});
  std::cout << "batch: " << jobpoll::to_json(batch.summary()).dump() << '\n';
  return verdict.state == jobpoll::job_state::succeeded && batch.summary().status == jobpoll::batch_status::completed ? 0 : 1;
}
