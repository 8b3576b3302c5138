// expect: delay_policy
// An interval must have next() and reset().
#include <jobpoll/jobpoll.hpp>

struct only_next {
  std::chrono::nanoseconds next() { return {}; }
};

void use() {
  jobpoll::poll_options opts;
  opts.interval = only_next{};
}
