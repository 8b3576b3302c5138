// expect: codec
// A codec must decode, encode and read values by pointer (see jobpoll::codec).
#include <jobpoll/jobpoll.hpp>
#include <jobpoll/transport/scripted.hpp>

#include <string>
#include <string_view>

struct text_only_codec {
  using value_type = std::string;
  std::string decode(std::string_view body) const { return std::string(body); }
  std::string encode(const std::string& value) const { return value; }
};

int main() {
  asio::io_context ctx;
  jobpoll::scripted_transport transport(ctx.get_executor());
  auto status = [](const std::string&) { return jobpoll::poll_status::succeeded(); };
  jobpoll::job_client<jobpoll::scripted_transport, text_only_codec, decltype(status)> client(transport, {}, status);
}
