// expect: transport
// A transport must offer async_request(http_request, token) delivering an http_response.
#include <jobpoll/codec/json.hpp>
#include <jobpoll/jobpoll.hpp>

struct blocking_http {
  jobpoll::http_response request(const jobpoll::http_request&) { return {}; }
};

int main() {
  blocking_http http;
  jobpoll::field_status<jobpoll::json_codec> status("/status", {.succeeded = {"done"}, .failed = {}, .pending = {}});
  jobpoll::job_client<blocking_http, jobpoll::json_codec, decltype(status)> client(http, {}, status);
}
