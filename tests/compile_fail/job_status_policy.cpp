// expect: job_status_policy
// A job status policy must be callable as poll_status(const Codec::value_type&).
#include <jobpoll/codec/json.hpp>
#include <jobpoll/jobpoll.hpp>
#include <jobpoll/transport/scripted.hpp>

int main() {
  asio::io_context ctx;
  jobpoll::scripted_transport transport(ctx.get_executor());
  auto status = [](const std::string& body) { return body == "done"; };  // not a poll_status, not a document
  jobpoll::job_client<jobpoll::scripted_transport, jobpoll::json_codec, decltype(status)> client(transport, {}, status);
}
