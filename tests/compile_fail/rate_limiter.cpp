// expect: rate_limiter
// A limiter must have async_acquire(token), try_acquire() and pause_for(d).
#include <jobpoll/jobpoll.hpp>

struct not_a_limiter {
  bool try_acquire() { return true; }
};

void use(not_a_limiter& limiter) {
  jobpoll::poll_options opts;
  opts.limiter = limiter;
}
